//! Faults on real servers and real processes: crashed holders recover within the
//! lease, paused holders are caught (and fenced), and no server or worker process
//! outlives a harness that is killed or interrupted.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn crashed_holder_processes_free_their_key_within_the_lease() {
    let s = common::short(common::load("crashed-holders"), Duration::from_millis(2_300));
    let lease = s.lease();
    for backend in ["redis", "sqlite"] {
        let (_, v) = common::run_on(&s, backend).await;
        assert!(v.crashes >= 2, "{backend}: {} crashes", v.crashes);
        assert_eq!(v.within_lease, 0, "{backend}: overlaps within lease after crashes");
        assert!(!v.crash_recovery_ns.is_empty(), "{backend}: no grant after a crash");
        // The key comes back one lease after the grant, so a little less than a
        // lease after the crash; slack for the waiters' backoff.
        let slack = Duration::from_millis(300);
        for r in &v.crash_recovery_ns {
            let r = Duration::from_nanos(*r);
            assert!(r <= lease + slack, "{backend}: recovery {r:?} beyond lease {lease:?} + {slack:?}");
            assert!(r >= lease / 2, "{backend}: recovery {r:?} faster than a lease allows");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_holder_is_an_overlap_and_fencing_refuses_its_write() {
    let s = common::short(common::load("holder-pause"), Duration::from_millis(1_400));
    let (_, naive) = common::run_on(&s, "redis-naive").await;
    assert!(naive.violations() > 0, "redis-naive survived a pause longer than its lease: {naive:?}");
    assert!(naive.clobbering_writes > 0, "without fencing the late write must land");
    let (_, safe) = common::run_on(&s, "redis").await;
    assert!(safe.after_expiry > 0, "the pause must outlast the lease");
    assert_eq!(safe.within_lease, 0);
    assert!(safe.stale_writes_refused > 0, "fencing refused nothing");
    assert_eq!((safe.increments_lost, safe.clobbering_writes), (0, 0), "fencing let a stale write through");
    assert_eq!(safe.level(), lockbench::check::Level::Fenced);
}

/// Pids of the children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let c = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

fn wait_all_dead(pids: &[u32]) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| common::alive(*p)).collect();
        if left.is_empty() || t0.elapsed() > Duration::from_secs(5) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_run(out: &Path) -> std::process::Child {
    let scenario = common::scenarios_dir().join("crashed-holders.toml");
    Command::new(env!("CARGO_BIN_EXE_lockbench"))
        .args(["run", scenario.to_str().unwrap(), "--backend", "redlock", "--duration", "20s", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the run has its servers and workers up; return their pids.
fn grown(pid: u32) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let c = children(pid);
        // 5 redis servers + 8 workers.
        if c.len() >= 13 || t0.elapsed() > Duration::from_secs(20) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nothing_outlives_a_killed_harness() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = start_run(&dir.path().join("r"));
    let kids = grown(run.id());
    assert!(kids.len() >= 13, "expected 5 servers and 8 workers, saw {} children", kids.len());
    run.kill().unwrap(); // SIGKILL: no destructor, no handler runs.
    run.wait().unwrap();
    let left = wait_all_dead(&kids);
    assert!(left.is_empty(), "processes outlived a SIGKILLed harness: {left:?}");
}

#[test]
fn ctrl_c_stops_the_run_writes_what_was_recorded_and_stops_every_child() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = start_run(&out);
    let kids = grown(run.id());
    assert!(kids.len() >= 13, "saw {} children", kids.len());
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let o = run.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(130), "{text}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true);
    assert!(s["backends"][0]["grants"].as_u64().unwrap() > 0, "nothing recorded before the interrupt");
    let left = wait_all_dead(&kids);
    assert!(left.is_empty(), "processes outlived an interrupted run: {left:?}");
}

fn inline(name: &str, toml: &str) -> lockbench::scenario::Scenario {
    lockbench::scenario::Scenario::parse(toml, Path::new(name), name).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_client_clock_outlives_its_lease_and_the_checker_judges_on_the_true_clock() {
    // Each holder means to work 200 ms of a 300 ms lease, but its clock runs at a
    // quarter of true speed: it works 800 ms. The overlaps are after expiry, never
    // within a lease, although by the clients' own clocks every lease looked fine.
    let s = inline(
        "slow-clocks",
        r#"
        clients = 2
        duration = "2s"
        [keys]
        count = 1
        [lock]
        lease = "300ms"
        wait = "2s"
        backoff_max = "5ms"
        [work]
        hold = "200ms"
        [[faults]]
        kind = "clock-skew"
        clients = "all"
        rate = 0.25
        at = "0s"
        "#,
    );
    for backend in ["inprocess", "redis"] {
        let (r, v) = common::run_on(&s, backend).await;
        assert!(v.after_expiry > 0, "{backend}: a 4x slow clock must hold past the lease: {v:?}");
        assert_eq!(v.within_lease, 0, "{backend}: the checker was fooled by the client's clock");
        let h = r.history.load().unwrap();
        let fault = h.events.iter().find(|e| e.op == lockbench::record::Op::Fault).expect("no fault window");
        assert_eq!(fault.msg.as_deref(), Some("clock-skew: clients 0,1 clock x0.25"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn net_delay_slows_each_round_trip_and_lifts_when_its_window_ends() {
    let s = inline(
        "delay",
        r#"
        clients = 1
        duration = "1500ms"
        [keys]
        count = 1
        [lock]
        lease = "1s"
        [work]
        cycle = "acquire-only"
        [load]
        think = "10ms"
        [[faults]]
        kind = "net-delay"
        delay = "30ms"
        at = "300ms"
        duration = "600ms"
        "#,
    );
    let (r, _) = common::run_on(&s, "redis").await;
    let (t0, t1) = (r.history.load().unwrap().start + 300_000_000, r.history.load().unwrap().start + 900_000_000);
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    let mut invoked = None;
    for e in r.history.load().unwrap().events.iter().filter(|e| e.op == lockbench::record::Op::Acquire) {
        match e.kind {
            lockbench::record::Kind::Invoke => invoked = Some(e.t),
            _ => {
                let Some(i) = invoked.take() else { continue };
                let lat = Duration::from_nanos(e.t - i);
                // Only requests wholly inside or wholly outside the window.
                if i >= t0 + 50_000_000 && e.t < t1 {
                    inside.push(lat);
                } else if e.t < t0 || i > t1 + 100_000_000 {
                    outside.push(lat);
                }
            }
        }
    }
    assert!(!inside.is_empty() && !outside.is_empty(), "{} inside, {} outside", inside.len(), outside.len());
    // 30 ms each way: a round trip takes at least 60 ms.
    assert!(inside.iter().all(|l| *l >= Duration::from_millis(60)), "inside the window: {inside:?}");
    outside.sort();
    assert!(outside[outside.len() / 2] < Duration::from_millis(20), "after the window: {outside:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn net_reset_drops_connections_and_clients_reconnect() {
    let s = inline(
        "reset",
        r#"
        clients = 2
        duration = "1500ms"
        [keys]
        count = 2
        [lock]
        lease = "1s"
        wait = "1s"
        [work]
        hold = "5ms"
        [[faults]]
        kind = "net-reset"
        at = "200ms"
        every = "300ms"
        "#,
    );
    let (r, v) = common::run_on(&s, "redis").await;
    let h = r.history.load().unwrap();
    let resets: Vec<_> = h.events.iter().filter(|e| e.op == lockbench::record::Op::Fault).collect();
    // Five resets (200, 500, 800, 1100, 1400 ms), each a zero-length window.
    assert_eq!(resets.len(), 10, "{resets:?}");
    assert!(resets.iter().all(|e| e.msg.as_deref() == Some("net-reset: clients 0,1 ↔ all servers")));
    let last = resets.iter().map(|e| e.t).max().unwrap();
    let after = r
        .history
        .load()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.op == lockbench::record::Op::Acquire && e.kind == lockbench::record::Kind::Ok && e.t > last)
        .count();
    assert!(after > 0, "no grant after the last reset: clients did not reconnect");
    assert!(v.is_safe());
}
