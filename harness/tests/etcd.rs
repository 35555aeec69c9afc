//! etcd against the real `lockbench` binary and a real local cluster (issue 13):
//! an unreachable cluster stops preflight with status 5 and names every member,
//! and no etcd member outlives a run that is interrupted (SIGINT) or SIGKILLed.

#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::{lockbench, text};

#[test]
fn an_unreachable_cluster_fails_preflight_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let storm = common::scenario("contention-storm");
    let o = lockbench(
        &["run", &storm, "-b", "etcd", "--endpoints", "etcd=127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"],
        dir.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains("etcd at 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"), "names the cluster: {t}");
    assert!(t.contains("onnection refused"), "says why: {t}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}: {t}", started.elapsed());
    // Nothing half-written: no result folder (results/ holds only its marker).
    let written: Vec<_> = std::fs::read_dir(dir.path().join("results"))
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| !n.to_string_lossy().starts_with('.')).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn no_etcd_member_outlives_an_interrupted_or_killed_run() {
    let pause = common::scenario("etcd-pause");
    // Three members under lockbench, and worker processes (etcd-pause runs its
    // clients as processes).
    common::nothing_outlives(&["run", &pause, "-b", "etcd"], |t| {
        t.iter().filter(|(_, c)| c == "etcd").count() == 3 && t.iter().any(|(_, c)| c == "lockbench")
    });
}
