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
