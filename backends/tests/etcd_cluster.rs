//! The local etcd cluster: three members that elect a leader, a leader that can be
//! found (server faults name "leader" and "follower"), and a new leader after the
//! old one is killed; the killed member rejoins after a restart.

#![cfg(feature = "etcd")]

use std::time::{Duration, Instant};

use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
use lockbench_backends::servers::{ServerFault, ServerKind, Servers};

/// The leader, asked until one answers (an election takes about a second).
fn leader_within(c: &LocalCluster, d: Duration, not: Option<usize>) -> usize {
    let t0 = Instant::now();
    loop {
        if let Some(l) = c.leader().filter(|&l| Some(l) != not) {
            return l;
        }
        assert!(t0.elapsed() < d, "no leader (other than {not:?}) within {d:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_leader_is_found_and_a_new_one_is_elected_after_it_is_killed() {
    let c = LocalCluster::start(ServerKind::Etcd, 3, ServerOptions::default()).expect("start etcd (scripts/setup)");
    assert_eq!(c.endpoints().len(), 3);
    let first = leader_within(&c, Duration::from_secs(10), None);
    // Every member agrees: asking again names the same one.
    assert_eq!(c.leader(), Some(first));
    c.fault(first, ServerFault::Kill).unwrap();
    let second = leader_within(&c, Duration::from_secs(15), Some(first));
    assert_ne!(second, first, "the killed member cannot lead");
    // The old leader comes back as a follower (restart waits until it answers).
    c.fault(first, ServerFault::Restart).unwrap();
    let now = leader_within(&c, Duration::from_secs(15), None);
    assert!(now < 3);
    assert!(c.version().unwrap().contains("etcd"), "{:?}", c.version());
}
