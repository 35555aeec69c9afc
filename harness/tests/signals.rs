//! Signals and temp folders, against the real `lockbench` binary and real servers:
//! SIGTERM and SIGINT stop a run within bounds in every phase (the load, session
//! set-up against a server that never answers, a Cassandra node still starting),
//! a second signal aborts at once and leaves the `.partial` folder marked, no
//! server outlives the run, no temp folder of the run is left, and a run removes
//! the temp folders that dead runs left.
//!
//! The bounds are behaviour (the load stops within 2 s of a signal), measured from
//! the signal, with a second of slack for a loaded two-core machine. The tests run
//! one at a time so that they do not slow each other down.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// 2 s promised, 1 s of slack for a busy machine.
const BOUND: Duration = Duration::from_secs(3);

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn start(args: &[&str]) -> Child {
    Command::new(common::bin())
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill({pid}, {sig})");
}

/// Send `sig`, wait for the exit; the output and the time from the signal.
fn signal_and_wait(child: Child, sig: i32) -> (Output, Duration) {
    let t0 = Instant::now();
    kill(child.id(), sig);
    let o = child.wait_with_output().unwrap();
    (o, t0.elapsed())
}

/// The temp folders of process `pid`: `lockbench-<pid>-<tag>` and
/// `lockbench-<kind>-<pid>-<port>`.
fn temp_folders(pid: u32) -> Vec<PathBuf> {
    let scratch = format!("lockbench-{pid}-");
    let server = format!("-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&scratch) || (n.starts_with("lockbench-") && n.contains(&server))
        })
        .map(|e| e.path())
        .collect()
}

/// Wait until `f` holds (up to `max`).
fn wait_for(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < max {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Pids of the live children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    common::processes().into_iter().filter(|p| p.ppid == pid && !p.zombie).map(|p| p.pid).collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

fn children_named(pid: u32, name: &str) -> Vec<u32> {
    children(pid).into_iter().filter(|c| comm(*c) == name).collect()
}

/// The children of `pid` named `name`, waited for up to `within`; fails the test
/// with `why` if none appears.
fn started(pid: u32, name: &str, within: Duration, why: &str) -> Vec<u32> {
    let mut found = Vec::new();
    assert!(
        wait_for(within, || {
            found = children_named(pid, name);
            !found.is_empty()
        }),
        "{why}"
    );
    found
}

fn all_dead(pids: &[u32]) -> bool {
    wait_for(Duration::from_secs(5), || pids.iter().all(|p| !common::alive(*p)))
}

#[test]
fn a_signal_during_the_drain_cuts_it_short() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    // Holds of 30 s on a 1 s load with a 20 s drain: after the load, every client
    // is holding, and the drain would wait for them.
    let scenario = d.path().join("long-holds.toml");
    std::fs::write(
        &scenario,
        "clients = 4\nduration = \"1s\"\ndrain = \"20s\"\n[keys]\ncount = 8\n[lock]\nlease = \"60s\"\n\
         [work]\nhold = \"30s\"\n",
    )
    .unwrap();
    let out = d.path().join("r");
    let run = start(&[scenario.to_str().unwrap(), "-b", "sqlite", "--out", out.to_str().unwrap()]);
    let pid = run.id();
    assert!(wait_for(Duration::from_secs(10), || !temp_folders(pid).is_empty()), "no scratch folder appeared");
    // Past the 1 s load: in the drain.
    std::thread::sleep(Duration::from_millis(2500));
    let (o, took) = signal_and_wait(run, libc::SIGTERM);
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(143), "{t}");
    assert!(took <= BOUND, "a SIGTERM in the drain took {took:?} to end the run (the drain is 20 s): {t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(s["backends"][0]["grants"].as_u64().unwrap() >= 4, "{t}");
    assert!(s["backends"][0]["harness_errors"].as_array().unwrap().is_empty(), "{t}");
}

#[test]
fn sighup_mid_run_is_handled_as_sigterm_and_exits_129() {
    signal_mid_run(libc::SIGHUP, 129);
}

#[test]
fn sigterm_mid_run_stops_the_load_writes_a_whole_result_marked_interrupted_and_exits_143() {
    signal_mid_run(libc::SIGTERM, 143);
}

/// `sig` about 1 s into a 5 s load: the load stops within the bound, the result is
/// written whole and marked interrupted, the exit status is `status`, and no temp
/// folder is left.
fn signal_mid_run(sig: i32, status: i32) {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let storm = common::scenario("contention-storm");
    let run = start(&[&storm, "-b", "sqlite", "--duration", "5s", "--out", out.to_str().unwrap()]);
    let pid = run.id();
    // The scratch folder exists once the backend is being set up; then ~1 s of load.
    assert!(wait_for(Duration::from_secs(10), || !temp_folders(pid).is_empty()), "no scratch folder appeared");
    std::thread::sleep(Duration::from_secs(1));
    let (o, took) = signal_and_wait(run, sig);
    let t = common::text(&o);
    let name = if sig == libc::SIGHUP { "SIGHUP" } else { "SIGTERM" };
    assert_eq!(o.status.code(), Some(status), "{t}");
    assert!(took <= BOUND, "{name} took {took:?} to end the run: {t}");
    assert!(t.contains(&format!("interrupted by {name}")), "{t}");
    for f in ["summary.json", "history.jsonl.zst", "report.html", "scenario.toml", "sqlite.hlog"] {
        assert!(out.join(f).is_file(), "{f} missing from the result: {t}");
    }
    assert!(!d.path().join("r.partial").exists());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true, "{t}");
    assert!(s["backends"][0]["grants"].as_u64().unwrap() > 0, "nothing recorded before the signal");
    assert!(t.contains("marked `interrupted`"), "the message must say what summary.json says: {t}");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "temp folders left: {t}");
}

/// A Cassandra port that accepts connections and never writes a byte.
#[cfg(feature = "cassandra")]
fn silent_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            a.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, accepted)
}

#[cfg(feature = "cassandra")]
#[test]
fn sigterm_and_sigint_end_a_run_against_a_cassandra_endpoint_that_never_answers() {
    use std::sync::atomic::Ordering;
    let _serial = one_at_a_time();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (port, accepted) = silent_server();
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        let endpoints = format!("cassandra=127.0.0.1:{port}");
        let storm = common::scenario("contention-storm");
        let run = start(&[
            &storm,
            "--endpoints",
            &endpoints,
            "-b",
            "cassandra-lwt",
            "--duration",
            "10s",
            "--out",
            out.to_str().unwrap(),
        ]);
        let pid = run.id();
        let t0 = Instant::now();
        assert!(
            wait_for(Duration::from_secs(10), || accepted.load(Ordering::SeqCst) > 0),
            "lockbench never connected to the endpoint"
        );
        // About a second in: the client is waiting for an answer that never comes.
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()).max(Duration::from_millis(300)));
        let (o, took) = signal_and_wait(run, sig);
        let t = common::text(&o);
        assert_eq!(o.status.code(), Some(128 + sig), "signal {sig}: {t}");
        assert!(took <= BOUND, "signal {sig} took {took:?} to end the command: {t}");
        // Nothing was recorded, so nothing was written.
        assert!(!out.exists() && !d.path().join("r.partial").exists(), "signal {sig}: a result was written: {t}");
        assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "signal {sig}: temp folders left");
    }
}

#[cfg(feature = "cassandra")]
#[test]
fn ctrl_c_while_a_local_cassandra_node_is_starting_ends_the_run_and_the_node() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let storm = common::scenario("contention-storm");
    let t0 = Instant::now();
    let run = start(&[&storm, "-b", "cassandra-lwt", "--duration", "10s", "--out", out.to_str().unwrap()]);
    let pid = run.id();
    let java = started(
        pid,
        "java",
        Duration::from_secs(10),
        "no java child started (is Cassandra installed? run scripts/setup)",
    );
    let data = temp_folders(pid);
    assert!(data.iter().any(|p| p.to_string_lossy().contains("lockbench-cassandra-")), "{data:?}");
    // Two seconds after the start: the node takes far longer to answer.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    let (o, took) = signal_and_wait(run, libc::SIGINT);
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(took <= BOUND, "Ctrl-C took {took:?} to end the run: {t}");
    assert!(all_dead(&java), "java outlived the run: {java:?}");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "temp folders left");
    assert!(!out.exists() && !d.path().join("r.partial").exists(), "a result was written: {t}");
}

#[test]
fn a_second_sigint_aborts_at_once_and_leaves_the_partial_folder_marked_incomplete() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let storm = common::scenario("contention-storm");
    let run = start(&[&storm, "-b", "redis", "--duration", "20s", "--out", out.to_str().unwrap()]);
    let pid = run.id();
    let redis = started(pid, "redis-server", Duration::from_secs(20), "no redis-server started");
    // Let the load run a second, so that checking and writing have work to do.
    std::thread::sleep(Duration::from_secs(1));
    kill(pid, libc::SIGINT);
    // Long enough for the first to be handled on its own, short of the run's end.
    std::thread::sleep(Duration::from_millis(30));
    let (o, took) = signal_and_wait(run, libc::SIGINT);
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(t.contains("aborted by a second SIGINT"), "{t}");
    assert!(took <= BOUND, "the second Ctrl-C took {took:?}: {t}");
    let partial = d.path().join("r.partial");
    let note = std::fs::read_to_string(partial.join("INCOMPLETE")).unwrap_or_else(|e| panic!("{e}: {t}"));
    assert!(note.contains("aborted by a second signal (SIGINT"), "{note}");
    assert!(!out.exists(), "an aborted run made a result folder");
    assert!(all_dead(&redis), "redis-server outlived the aborted run: {redis:?}");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "temp folders left");
}

#[test]
fn a_run_removes_temp_folders_of_dead_or_foreign_pids_and_never_a_live_runs() {
    let _serial = one_at_a_time();
    // A live run, whose scratch folder must stay (it runs first: at its start it
    // cleans too).
    let d = tempfile::tempdir().unwrap();
    let storm = common::scenario("contention-storm");
    let live = start(&[&storm, "-b", "sqlite", "--duration", "30s", "--out", d.path().join("live").to_str().unwrap()]);
    let live_pid = live.id();
    assert!(wait_for(Duration::from_secs(10), || !temp_folders(live_pid).is_empty()), "the live run made no folder");
    let live_folders = temp_folders(live_pid);
    let tmp = std::env::temp_dir();
    // A pid no process can have: pids are below pid_max.
    let dead: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let stale = tmp.join(format!("lockbench-{dead}-x"));
    std::fs::create_dir_all(stale.join("sub")).unwrap();
    std::fs::write(stale.join("sub/db.sqlite"), "left by a killed run").unwrap();
    let stale_server = tmp.join(format!("lockbench-redis-{dead}-6379"));
    std::fs::create_dir_all(&stale_server).unwrap();
    // A live process that is not lockbench.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let foreign = tmp.join(format!("lockbench-{}-x", sleeper.id()));
    std::fs::create_dir_all(&foreign).unwrap();
    // A folder of a live pid is taken for stale only once it is a minute old (a
    // live owner may be between making it and locking it).
    let c = std::ffi::CString::new(foreign.as_os_str().as_encoded_bytes()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let t = libc::timeval { tv_sec: now - 120, tv_usec: 0 };
    // SAFETY: utimes on a folder this test made, with two valid timevals.
    assert_eq!(unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) }, 0);

    let o = Command::new(common::bin())
        .args(["run", &storm, "-b", "sqlite", "--duration", "200ms", "--out"])
        .arg(d.path().join("next"))
        .output()
        .unwrap();
    let t = common::text(&o);
    let live_kept = live_folders.iter().all(|p| p.exists());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let (lo, _) = signal_and_wait(live, libc::SIGTERM);
    assert!(live_kept, "the live run's folder was removed: {t}");
    assert!(o.status.success(), "{t}");
    assert!(!stale.exists() && !stale_server.exists(), "a dead run's temp folders stayed: {t}");
    assert!(!foreign.exists(), "a folder named after a live process that is not lockbench stayed: {t}");
    assert!(t.contains(&format!("removed {}", stale.display())), "{t}");
    assert!(t.contains(&format!("pid {dead} is not running")), "{t}");
    assert_eq!(lo.status.code(), Some(143), "the live run did not end as interrupted: {}", common::text(&lo));
    assert!(d.path().join("live/summary.json").is_file(), "the live run wrote no result: {}", common::text(&lo));
}

#[test]
fn a_sigkilled_runs_temp_folders_are_removed_by_the_next_run() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let storm = common::scenario("contention-storm");
    let mut killed =
        start(&[&storm, "-b", "redis", "--duration", "30s", "--out", d.path().join("a").to_str().unwrap()]);
    let pid = killed.id();
    let redis = started(pid, "redis-server", Duration::from_secs(20), "no redis-server started");
    killed.kill().unwrap(); // SIGKILL: no handler, no destructor runs.
    killed.wait().unwrap();
    assert!(all_dead(&redis), "redis-server outlived a SIGKILLed run");
    let left = temp_folders(pid);
    assert_eq!(left.len(), 2, "a SIGKILLed run leaves its scratch and server folders: {left:?}");
    let o = Command::new(common::bin())
        .args(["run", &storm, "-b", "sqlite", "--duration", "200ms", "--out"])
        .arg(d.path().join("b"))
        .output()
        .unwrap();
    let t = common::text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "the next run left the killed run's folders: {t}");
    assert!(t.contains(&format!("pid {pid} is not running")), "{t}");
}

#[test]
fn a_failed_server_start_leaves_no_temp_folder() {
    let _serial = one_at_a_time();
    // A redis-server that exits at once, first on PATH.
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("redis-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'fake redis-server: refusing to start' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let storm = common::scenario("contention-storm");
    let run = Command::new(common::bin())
        .env("PATH", path)
        .args(["run", &storm, "-b", "redis", "--duration", "1s", "--out"])
        .arg(d.path().join("r"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    let o = run.wait_with_output().unwrap();
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("exited at start"), "{t}");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "a failed set-up left temp folders: {t}");
}

#[test]
fn a_signal_after_the_load_has_ended_leaves_the_result_whole_and_says_so() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let storm = common::scenario("contention-storm");
    let run = Command::new(common::bin())
        .env("LOCKBENCH_TEST_PAUSE_BEFORE_CHECK_MS", "1500")
        .args(["run", &storm, "-b", "sqlite", "--duration", "300ms", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    // The backend's scratch folder goes when its load has ended (the history's own
    // temp folder stays until the result is written): the run is then in the pause
    // before checking.
    let scratch = || temp_folders(pid).into_iter().filter(|p| !p.to_string_lossy().ends_with("-history")).count();
    assert!(wait_for(Duration::from_secs(10), || scratch() > 0), "no scratch folder appeared");
    assert!(wait_for(Duration::from_secs(10), || scratch() == 0), "the load did not end");
    let (o, took) = signal_and_wait(run, libc::SIGINT);
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(took <= BOUND + Duration::from_millis(1500), "{took:?}: {t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], false, "the load was whole: {t}");
    assert!(t.contains("written whole, not marked `interrupted`"), "{t}");
    assert!(!t.contains("marked `interrupted` (the load was cut short)"), "{t}");
}

#[test]
fn ctrl_c_at_a_terminal_reaches_lockbench_alone_not_its_workers_and_servers() {
    let _serial = one_at_a_time();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    // crashed-holders runs each client in a worker process; redis is a server child.
    let scen = common::scenario("crashed-holders");
    let run = Command::new(common::bin())
        .args(["run", &scen, "-b", "redis", "--duration", "10s", "--out", out.to_str().unwrap()])
        // Its own process group, as a shell gives a foreground job.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    let mut kids = Vec::new();
    assert!(
        wait_for(Duration::from_secs(20), || {
            kids = children(pid);
            kids.len() >= 9
        }),
        "expected a redis-server and 8 workers, saw {kids:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    // What the terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    let t0 = Instant::now();
    // SAFETY: kill(2) on the process group of a child of this test.
    assert_eq!(unsafe { libc::kill(-(pid as i32), libc::SIGINT) }, 0);
    let o = run.wait_with_output().unwrap();
    let (t, took) = (common::text(&o), t0.elapsed());
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(took <= BOUND, "Ctrl-C took {took:?}: {t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true, "{t}");
    let b = &s["backends"][0];
    assert_eq!(b["harness_errors"], serde_json::json!([]), "the workers died of the Ctrl-C: {t}");
    assert!(b["grants"].as_u64().unwrap() > 0, "{t}");
    assert!(all_dead(&kids), "children outlived the run");
    assert_eq!(temp_folders(pid), Vec::<PathBuf>::new(), "temp folders left");
}
