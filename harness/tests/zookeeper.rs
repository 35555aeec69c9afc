//! ZooKeeper against the real `lockbench` binary and a real local ensemble (issue
//! 12): no member's JVM outlives a run that is interrupted (SIGINT) or SIGKILLed,
//! and the ensemble's members are started, faulted and named as a cluster.

#![cfg(feature = "zookeeper")]

mod common;

use common::{lockbench, text};

#[test]
fn no_zookeeper_member_outlives_an_interrupted_or_killed_run() {
    let pause = common::scenario("etcd-pause");
    // Three members (java) under lockbench, and worker processes (etcd-pause runs
    // its clients as processes).
    common::nothing_outlives(&["run", &pause, "-b", "zookeeper"], |t| {
        t.iter().filter(|(_, c)| c == "java").count() == 3 && t.iter().any(|(_, c)| c == "lockbench")
    });
}

#[test]
fn a_leader_kill_hits_the_leader_and_the_report_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let kill = common::scenario("leader-kill");
    let o = lockbench(&["run", &kill, "-b", "zookeeper", "--out", out.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let b = &s["backends"][0];
    let faults: Vec<&str> = b["faults"].as_array().unwrap().iter().map(|f| f["what"].as_str().unwrap()).collect();
    assert!(faults.iter().any(|f| f.starts_with("server-kill: server") && f.ends_with("(the leader)")), "{faults:?}");
    assert!(
        faults.iter().any(|f| f.starts_with("server-restart: server") && f.ends_with("(a follower)")),
        "{faults:?}"
    );
    assert_eq!(b["faults_missed"], 0, "{b}");
    assert_eq!(b["verdict"], "safe", "{t}");
    let v = b["server_version"].as_str().unwrap();
    assert!(v.starts_with("ZooKeeper 3.") && (v.contains("fsync on") || v.contains("tmpfs")), "{v}");
}

#[test]
fn the_mutex_queue_is_fair_under_a_contention_storm() {
    // Curator's recipe hands the lock down the queue of sequence nodes: 64 clients
    // on one key each get their turn (Jain's fairness near 1).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let storm = common::scenario("contention-storm");
    let o = lockbench(&["run", &storm, "-b", "zookeeper", "--out", out.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let b = &s["backends"][0];
    assert_eq!(b["verdict"], "safe", "{t}");
    let fairness = b["fairness"].as_f64().unwrap();
    assert!(fairness >= 0.9, "Jain's fairness {fairness} over {} grants: {t}", b["grants"]);
    assert!(b["grants"].as_u64().unwrap() >= 64, "every client had a turn or more: {t}");
}
