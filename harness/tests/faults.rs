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
    assert!(naive.lost_updates > 0, "without fencing the late write must land");
    let (_, safe) = common::run_on(&s, "redis").await;
    assert!(safe.after_expiry > 0, "the pause must outlast the lease");
    assert_eq!(safe.within_lease, 0);
    assert!(safe.stale_writes_refused > 0, "fencing refused nothing");
    assert_eq!(safe.lost_updates, 0, "fencing let a stale write through");
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

/// Alive = exists and is not a zombie (a dead child waiting for a reaper).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn wait_all_dead(pids: &[u32]) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
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
