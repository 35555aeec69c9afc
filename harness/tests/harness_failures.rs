//! The harness's own failures are the harness's: a worker process killed outside
//! any fault is recorded as a harness error (exit 6) and never becomes the
//! backend's violation; faults that would fall after the end, and runs in which
//! nothing could run, are refused instead of passing in silence.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, lockbench, scenario, text};

/// `lockbench worker` children of `pid`, alive.
fn workers_of(pid: u32) -> Vec<u32> {
    common::processes()
        .into_iter()
        .filter(|p| p.ppid == pid && !p.zombie && p.cmdline.contains("worker"))
        .map(|p| p.pid)
        .collect()
}

#[test]
fn workers_killed_outside_a_fault_are_harness_errors_not_the_backends_violations() {
    let d = tempfile::tempdir().unwrap();
    let scen = d.path().join("no-faults.toml");
    std::fs::write(
        &scen,
        "client_mode = \"process\"\nclients = 8\nduration = \"3s\"\n[keys]\ncount = 2\n[lock]\nlease = \"500ms\"\n\
         wait = \"2s\"\nbackoff_max = \"10ms\"\n[work]\nhold = \"uniform(10ms, 30ms)\"\n",
    )
    .unwrap();
    let out = d.path().join("r");
    let child = Command::new(bin())
        .args(["run", scen.to_str().unwrap(), "-b", "sqlite", "--out", out.to_str().unwrap()])
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut victims = Vec::new();
    while victims.len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no workers appeared");
        std::thread::sleep(Duration::from_millis(100));
        if t0.elapsed() > Duration::from_millis(1200) {
            victims = workers_of(child.id());
        }
    }
    for &p in &victims[..3] {
        // SAFETY: kill(2) on a process of this test's own child.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(6), "{t}");
    assert!(t.contains("HARNESS ERROR ×3"), "{t}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let b = &s["backends"][0];
    let errors = b["harness_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].as_str().unwrap().contains("signal 9"), "{errors:?}");
    assert_eq!(b["crashes"], 0, "not counted as scheduled crashes");
    assert_eq!(b["violations"]["within_lease"], 0, "{b}");
    assert_eq!(b["violations"]["after_expiry"], 0, "a dead worker's hold ends at its death: {b}");
    assert!(b["grants"].as_u64().unwrap() > 10);
}

#[test]
fn a_fault_after_the_end_is_refused_with_the_fault_and_duration_named() {
    let d = tempfile::tempdir().unwrap();
    let o = lockbench(&["run", &scenario("crashed-holders"), "-b", "sqlite", "--duration", "400ms"], d.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("--duration 400ms") && t.contains("crash-holder: `at` = 500ms falls at or after the end"),
        "{t}"
    );
    assert!(!d.path().join("results").exists(), "nothing written: {t}");
}

#[test]
fn a_named_scenario_none_of_whose_pairs_can_run_fails_with_the_reasons() {
    let d = tempfile::tempdir().unwrap();
    let o = lockbench(&["run", &scenario("server-restart"), "-b", "inprocess,sqlite", "--duration", "1s"], d.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("nothing ran for server-restart"), "{t}");
    assert!(t.contains("sqlite: server-restart needs a backend with servers"), "{t}");
    // No result folder pretends a run happened.
    let left: Vec<_> = std::fs::read_dir(d.path().join("results"))
        .map(|r| r.flatten().filter(|e| e.path().is_dir()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn holds_longer_than_the_run_end_at_the_drain_and_the_time_past_is_stated() {
    let d = tempfile::tempdir().unwrap();
    for mode in ["task", "process"] {
        let scen = d.path().join(format!("long-{mode}.toml"));
        std::fs::write(
            &scen,
            format!(
                "client_mode = \"{mode}\"\nclients = 2\nduration = \"1s\"\ndrain = \"300ms\"\n[keys]\ncount = 2\n\
                 [lock]\nlease = \"30s\"\n[work]\nhold = \"20s\"\n"
            ),
        )
        .unwrap();
        let out = d.path().join(format!("r-{mode}"));
        let t0 = Instant::now();
        let o = lockbench(&["run", scen.to_str().unwrap(), "-b", "sqlite", "--out", out.to_str().unwrap()], d.path());
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{mode}: {t}");
        // 1 s of load + 0.3 s of drain, far from the 21 s the holds asked for.
        assert!(t0.elapsed() < Duration::from_secs(12), "{mode}: took {:?}", t0.elapsed());
        assert!(t.contains("past the 1s duration"), "{mode}: {t}");
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let b = &s["backends"][0];
        assert_eq!(b["grants"], 2, "{mode}: {b}");
        assert_eq!(b["violations"]["within_lease"], 0);
        assert!(b["harness_errors"].as_array().unwrap().is_empty(), "{mode}: {b}");
        let h = common::history_text(&out);
        let cut = h.lines().filter(|l| l.contains("\"f\":\"release\"") || l.contains("drain ended")).count();
        assert!(cut >= 2, "{mode}: each hold ends at the drain: {h}");
    }
}

/// lockbench with its open-files limit set to (soft, hard).
fn with_nofile(soft: u64, hard: u64, args: &[&str], cwd: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(bin());
    c.args(args).current_dir(cwd);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit_or_the_run_refused_with_the_figure() {
    let d = tempfile::tempdir().unwrap();
    let storm = scenario("contention-storm");
    let args = ["run", &storm, "-b", "sqlite", "--clients", "500", "--duration", "300ms", "--out"];
    // 500 clients need ~1756 descriptors: a soft limit of 256 is raised to the hard 4096.
    let out = d.path().join("raised");
    let mut a = args.to_vec();
    a.push(out.to_str().unwrap());
    let o = with_nofile(256, 4096, &a, d.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["backends"][0]["acquire_errors"], 0, "no connect failed for want of a descriptor");
    // With a hard limit of 1024 the run is refused before it starts, with the figure.
    let out = d.path().join("refused");
    let mut a = args.to_vec();
    a.push(out.to_str().unwrap());
    let o = with_nofile(1024, 1024, &a, d.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("needs about 1756 open files") && t.contains("1024"), "{t}");
    assert!(!out.exists());
}

#[test]
fn workers_that_finish_their_share_of_ops_are_no_harness_error() {
    let d = tempfile::tempdir().unwrap();
    let scen = d.path().join("ops.toml");
    // 6 clients share 4 acquires: two get none and end at once, the rest after one.
    std::fs::write(
        &scen,
        "client_mode = \"process\"\nclients = 6\nops = 4\n[keys]\ncount = 2\n[lock]\nlease = \"2s\"\n[work]\nhold = \"5ms\"\n",
    )
    .unwrap();
    let out = d.path().join("r");
    let o = lockbench(&["run", scen.to_str().unwrap(), "-b", "sqlite", "--out", out.to_str().unwrap()], d.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!t.contains("HARNESS ERROR"), "{t}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["backends"][0]["grants"], 4, "{s}");
    assert!(s["backends"][0]["harness_errors"].as_array().unwrap().is_empty());
}
