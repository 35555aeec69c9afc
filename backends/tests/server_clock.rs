//! Server clocks under libfaketime: one server of a cluster skewed from the start,
//! and a true server made fast (and put right) by a restart. Redis's TIME command
//! reports the server's own clock.

#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
use lockbench_backends::servers::{ServerKind, Servers};

/// How fast server `i`'s clock runs, against ours, over ~300 ms.
fn rate(c: &LocalCluster, i: usize) -> f64 {
    let ep = &c.endpoints()[i];
    let mut conn = redis::Client::open(format!("redis://{ep}/")).unwrap().get_connection().unwrap();
    let mut read = || {
        let (s, us): (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap();
        (Instant::now(), s as f64 + us as f64 / 1e6)
    };
    let (t0, s0) = read();
    std::thread::sleep(Duration::from_millis(300));
    let (t1, s1) = read();
    (s1 - s0) / (t1 - t0).as_secs_f64()
}

#[test]
fn one_server_runs_fast_and_a_restart_changes_its_clock() {
    let opts = ServerOptions { faketime: Some("+0 x3".into()), skewed: Some(vec![1]), ..Default::default() };
    let c = LocalCluster::start(ServerKind::Redis, 2, opts).expect("start redis (scripts/setup)");
    let (r0, r1) = (rate(&c, 0), rate(&c, 1));
    assert!((0.8..1.2).contains(&r0), "server 0 should keep true time, runs at {r0:.2}");
    assert!((2.5..3.5).contains(&r1), "server 1 should run 3x, runs at {r1:.2}");
    assert!(c.version().unwrap().contains("server 1 FAKETIME=\"+0 x3\""), "{:?}", c.version());

    c.set_clock(0, Some("+0 x2")).unwrap();
    let r0 = rate(&c, 0);
    assert!((1.6..2.4).contains(&r0), "server 0 after set_clock x2 runs at {r0:.2}");
    c.set_clock(0, None).unwrap();
    let r0 = rate(&c, 0);
    assert!((0.8..1.2).contains(&r0), "server 0 put right runs at {r0:.2}");
}
