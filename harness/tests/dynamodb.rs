//! DynamoDB (issue 15) against the real `lockbench` binary and a local dynalite:
//! the server listens on 127.0.0.1 only, and no node process outlives a run that
//! is interrupted (SIGINT) or SIGKILLed.

#![cfg(feature = "dynamodb")]

mod common;

/// The listening sockets of process `pid` (`ss -ltnp`): local addresses.
fn listeners(pid: u32) -> Vec<String> {
    let out = std::process::Command::new("ss").args(["-ltnpH"]).output().expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

#[test]
fn dynalite_listens_on_loopback_only_and_outlives_no_run() {
    let crashed = common::scenario("crashed-holders");
    let seen = std::cell::Cell::new(0);
    common::nothing_outlives(&["run", &crashed, "-b", "dynamodb-lock-client,dynamodb-cas"], |t| {
        let Some((node, _)) = t.iter().find(|(_, c)| c == "node") else { return false };
        let l = listeners(*node);
        if l.is_empty() || !t.iter().any(|(_, c)| c == "lockbench") {
            return false;
        }
        // No wildcard (0.0.0.0, [::], *) listener: loopback only.
        assert!(l.iter().all(|a| a.starts_with("127.0.0.1:")), "dynalite listens on {l:?}");
        seen.set(seen.get() + 1);
        true
    });
    assert_eq!(seen.get(), 2, "both runs (SIGINT, SIGKILL) were seen with dynalite listening");
}

#[test]
fn crashed_holders_on_the_lock_client_the_cas_and_redis_is_safe_with_time_to_the_next_grant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let crashed = common::scenario("crashed-holders");
    let o = common::lockbench(
        &[
            "run",
            &crashed,
            "--backend",
            "dynamodb-lock-client,dynamodb-cas,redis",
            "--duration",
            "2s",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let t = common::text(&o);
    assert!(o.status.success(), "{t}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let backends = s["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 3, "{t}");
    for b in backends {
        let name = b["name"].as_str().unwrap();
        assert_eq!(b["verdict"], "safe", "{name}: {t}");
        // Crashes at 0.5 s and 1.2 s: each is followed by a grant of its key about
        // one 500 ms lease later.
        let next: Vec<f64> =
            b["crash_to_next_grant_ms"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
        assert!(!next.is_empty(), "{name}: no crash was followed by a grant: {t}");
        assert!(next.iter().all(|ms| (300.0..2_000.0).contains(ms)), "{name}: {next:?}");
        let per_grant = b["requests_per_grant"].as_f64().unwrap_or_else(|| panic!("{name}: no requests_per_grant"));
        assert!(per_grant >= 2.0, "{name}: a grant takes an acquire and a release at least: {per_grant}");
    }
    assert_eq!(t.matches("from a crashed holder to the next grant of its key: median").count(), 3, "{t}");
    assert_eq!(t.matches("per granted lock").count(), 3, "{t}");
    // dynalite is named as the server the DynamoDB backends ran on.
    assert!(backends[0]["server_version"].as_str().unwrap_or_default().starts_with("dynalite 4."), "{t}");
}
