//! No server outlives a test that panics: a child process (this test binary again)
//! starts servers and panics; afterwards none of them may be alive.

use std::process::Command;
use std::time::{Duration, Instant};

use lockbench_backends::servers::ServerKind;
use lockbench_backends::servers::local::{LocalCluster, ServerOptions};

const CHILD_ENV: &str = "LOCKBENCH_ORPHAN_CHILD";

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie is dead: it only waits for a reaper.
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

#[test]
fn servers_die_with_a_panicking_test() {
    if std::env::var(CHILD_ENV).is_ok() {
        let c =
            LocalCluster::start(ServerKind::Redis, 3, ServerOptions::default()).expect("start redis (scripts/setup)");
        println!("PIDS {:?}", c.pids());
        // Leak it, so that no destructor runs: only the parent-death signal is left.
        std::mem::forget(c);
        panic!("deliberate panic with servers running");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "servers_die_with_a_panicking_test", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child was meant to panic:\n{text}");
    let line =
        text.lines().find_map(|l| l.split_once("PIDS ").map(|x| x.1)).unwrap_or_else(|| panic!("no pids in:\n{text}"));
    let pids: Vec<u32> =
        line.trim_matches(|c| c == '[' || c == ']').split(',').filter_map(|p| p.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 3, "{line}");
    let t0 = Instant::now();
    while pids.iter().any(|p| alive(*p)) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<&u32> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "redis servers outlived the panicking test: {left:?}");
}
