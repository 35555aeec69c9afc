//! No server outlives a test that panics: a child process (this test binary again)
//! starts servers and panics; afterwards none of them may be alive.

use std::process::Command;
use std::time::{Duration, Instant};

use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
use lockbench_backends::servers::{ServerKind, Servers};

const CHILD_ENV: &str = "LOCKBENCH_ORPHAN_CHILD";

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie is dead: it only waits for a reaper.
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The processes of `pids` still alive after waiting up to `within` for all to die.
fn still_alive(pids: &[u32], within: Duration) -> Vec<u32> {
    let t0 = Instant::now();
    while pids.iter().any(|p| alive(*p)) && t0.elapsed() < within {
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().copied().filter(|p| alive(*p)).collect()
}

/// Run `test` of this binary again as a child with `env` set (the child starts
/// servers, prints `PIDS [..]` and panics); the line it printed and the pids.
fn panicking_child(test: &str, env: &str) -> (String, Vec<u32>) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child was meant to panic:\n{text}");
    let line =
        text.lines().find_map(|l| l.split_once("PIDS ").map(|x| x.1)).unwrap_or_else(|| panic!("no pids in:\n{text}"));
    let pids = line.trim_matches(|c| c == '[' || c == ']').split(',').filter_map(|p| p.trim().parse().ok()).collect();
    (line.to_owned(), pids)
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
    let (line, pids) = panicking_child("servers_die_with_a_panicking_test", CHILD_ENV);
    assert_eq!(pids.len(), 3, "{line}");
    let left = still_alive(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "redis servers outlived the panicking test: {left:?}");
}

/// Every process below this one (from /proc).
fn my_descendants() -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![std::process::id()];
    while let Some(p) = todo.pop() {
        for task in std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

#[test]
fn postgres_its_backends_and_pgbouncer_die_with_a_panicking_test() {
    const CHILD: &str = "LOCKBENCH_ORPHAN_CHILD_PG";
    if std::env::var(CHILD).is_ok() {
        let c = LocalCluster::start(ServerKind::Pgbouncer, 1, ServerOptions::default())
            .expect("start postgres and pgbouncer (scripts/setup)");
        // Two client connections through PgBouncer, so that the server has backend
        // processes besides its own workers.
        let port: u16 = c.endpoints()[0].rsplit_once(':').unwrap().1.parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            assert!(lockbench_backends::servers::postgres::probe_open(&mut s));
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        println!("PIDS {:?}", my_descendants());
        std::mem::forget(c);
        std::mem::forget(held);
        panic!("deliberate panic with servers running");
    }
    let (line, pids) = panicking_child("postgres_its_backends_and_pgbouncer_die_with_a_panicking_test", CHILD);
    let names: Vec<String> = pids
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim().to_owned())
        .collect();
    // The postmaster, its workers (checkpointer, walwriter, ...), the backends of
    // PgBouncer's server connections, and PgBouncer.
    assert!(pids.len() >= 5, "too few processes seen: {line}");
    let left = still_alive(&pids, Duration::from_secs(10));
    assert!(left.is_empty(), "outlived the panicking test: {left:?} of {pids:?} {names:?}");
}

#[test]
fn redis_servers_and_their_sentinels_die_with_a_panicking_test() {
    const CHILD: &str = "LOCKBENCH_ORPHAN_CHILD_SENTINEL";
    if std::env::var(CHILD).is_ok() {
        let c = LocalCluster::start(ServerKind::RedisSentinel, 3, ServerOptions::default())
            .expect("start redis with sentinels (scripts/setup)");
        println!("PIDS {:?}", my_descendants());
        std::mem::forget(c);
        panic!("deliberate panic with servers running");
    }
    let (line, pids) = panicking_child("redis_servers_and_their_sentinels_die_with_a_panicking_test", CHILD);
    // Three servers and three Sentinels.
    assert!(pids.len() >= 6, "too few processes seen: {line}");
    let left = still_alive(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "outlived the panicking test: {left:?} of {pids:?}");
}
