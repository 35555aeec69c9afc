//! Runs that could not measure say so (issue 19), against real processes: a closed
//! port, a listener that never answers, a Redis that wants a password, a Redis
//! killed mid-run. The `lockbench` binary runs as a user runs it.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockbench_backends::servers::local::{free_port, spawn_guarded, which};

mod common;
use common::{lockbench, text};

fn storm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/contention-storm.toml")
}

/// A redis-server of our own on a free 127.0.0.1 port, killed when dropped (also
/// when the test panics; and by the parent-death signal if the test binary dies).
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start(extra: &[&str]) -> RedisServer {
        let program = which("redis-server").expect("redis-server is not installed: run scripts/setup");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("free port");
        let mut cmd = Command::new(program);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.path().to_str().expect("utf-8 temp dir")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_guarded(cmd).expect("start redis-server");
        let server = RedisServer { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) of our own child; at worst it is gone already.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        lockbench_backends::servers::local::forget(self.child.id());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_closed_port_fails_preflight_naming_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = lockbench(
        &[
            "run",
            storm().to_str().unwrap(),
            "-b",
            "redis",
            "--endpoints",
            "redis=127.0.0.1:1",
            "--duration",
            "1s",
            "--out",
            out.to_str().unwrap(),
            "--fail-on-violation",
        ],
        dir.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains("preflight failed: redis at 127.0.0.1:1"), "{t}");
    assert!(t.contains("Connection refused"), "what the server (or its absence) said: {t}");
    assert!(!out.exists(), "a run that never started wrote a result");
}

#[test]
fn a_listener_that_never_answers_fails_preflight_within_the_connect_timeout() {
    for (kind, backend) in [
        ("redis", "redis"),
        ("cassandra", "cassandra-lwt"),
        ("postgres", "postgres-advisory"),
        ("zookeeper", "zookeeper"),
        ("redis_sentinel", "redis-sentinel"),
        ("dynamodb", "dynamodb-lock-client"),
    ] {
        silent_endpoint_fails_preflight(kind, backend);
    }
}

fn silent_endpoint_fails_preflight(kind: &str, backend: &str) {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    // Accept every connection and hold it open, silent, until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("{kind}=127.0.0.1:{port}");
    let started = Instant::now();
    let o = lockbench(
        &[
            "run",
            storm().to_str().unwrap(),
            "-b",
            backend,
            "--endpoints",
            &endpoint,
            "--connect-timeout",
            "2s",
            "--duration",
            "1s",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
        dir.path(),
    );
    let took = started.elapsed();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains(&format!("{backend} at 127.0.0.1:{port}")), "{t}");
    // The deadline is 2 s; the rest is the binary's start (a loaded machine).
    assert!(took < Duration::from_secs(8), "{backend}: preflight took {took:?} for a 2 s deadline: {t}");
}

#[test]
fn a_redis_that_wants_a_password_fails_preflight_without_printing_one() {
    let server = RedisServer::start(&["--requirepass", "RightPw"]);
    let dir = tempfile::tempdir().unwrap();
    let at = format!("127.0.0.1:{}", server.port);
    for (endpoint, said) in [(at.clone(), "NOAUTH"), (format!(":WrongPw@{at}"), "")] {
        let started = Instant::now();
        let arg = format!("redis={endpoint}");
        let o = lockbench(
            &[
                "run",
                storm().to_str().unwrap(),
                "-b",
                "redis",
                "--endpoints",
                &arg,
                "--duration",
                "1s",
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ],
            dir.path(),
        );
        let t = text(&o);
        assert_eq!(o.status.code(), Some(5), "{endpoint}: {t}");
        assert!(t.contains(&at), "{endpoint}: the message names the endpoint: {t}");
        assert!(t.contains(said), "{endpoint}: {t}");
        assert!(!t.contains("WrongPw"), "the password was printed: {t}");
        // Well inside the default 10 s connect timeout: the server answered at once.
        assert!(started.elapsed() < Duration::from_secs(8), "{endpoint}: {:?}", started.elapsed());
    }
    // The right password works: the probe was the only thing in the way.
    let arg = format!("redis=:RightPw@{at}");
    let out = dir.path().join("ok");
    let o = lockbench(
        &[
            "run",
            storm().to_str().unwrap(),
            "-b",
            "redis",
            "--endpoints",
            &arg,
            "--duration",
            "300ms",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("RightPw"), "{}", text(&o));
}

#[test]
fn a_redis_killed_mid_run_is_not_safe_and_its_outage_is_counted() {
    let mut server = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let arg = format!("redis=127.0.0.1:{}", server.port);
    let mut run = Command::new(env!("CARGO_BIN_EXE_lockbench"))
        .args(["run", storm().to_str().unwrap(), "-b", "redis", "--endpoints", &arg, "--duration", "3s"])
        .args(["--out", out.to_str().unwrap(), "--fail-on-violation"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lockbench");
    std::thread::sleep(Duration::from_secs(1));
    server.kill();
    let status = run.wait().expect("lockbench ends");
    let mut t = String::new();
    run.stdout.take().unwrap().read_to_string(&mut t).unwrap();
    run.stderr.take().unwrap().read_to_string(&mut t).unwrap();
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).unwrap_or_else(|e| panic!("no summary.json ({e}): {t}")),
    )
    .unwrap();
    let b = &s["backends"][0];
    let verdict = b["verdict"].as_str().unwrap();
    assert_ne!(verdict, "safe", "a run whose server died read safe: {t}");
    assert!(["inconclusive", "broken", "data-lost", "fenced"].contains(&verdict), "{verdict}");
    assert!(b["grants"].as_u64().unwrap() > 0, "the server was up for the first second: {t}");
    // Killed about 1 s into 3 s: most of the run had no server.
    let unavailable = b["unavailable_seconds"].as_f64().unwrap();
    assert!(unavailable >= 1.0, "the outage is not counted: {b}");
    let e = &b["errors"];
    assert!(e["refused"].as_u64().unwrap() + e["unknown"].as_u64().unwrap() > 0, "{e}");
    // --fail-on-violation: 4 for inconclusive, 3 for a violation.
    let want = if verdict == "inconclusive" {
        4
    } else if verdict == "fenced" {
        0
    } else {
        3
    };
    assert_eq!(status.code(), Some(want), "{t}");
    // The terminal line says it too.
    assert!(t.to_lowercase().contains(verdict), "{t}");
    assert!(t.contains("unavailable"), "{t}");
}

/// A client whose every request fails backs off instead of spinning: a try-acquire
/// loop against a closed port makes a handful of attempts a second (10 ms doubling
/// to 1 s), not the hundreds of thousands it made before, and none after the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_requests_fail_backs_off_and_records_little() {
    use lockbench::record::{Kind, Op};
    use lockbench::scenario::Scenario;
    let src = "clients = 4\nduration = \"1500ms\"\n[keys]\ncount = 10\n[lock]\nlease = \"1s\"\nwait = \"0s\"\n\
               [work]\ncycle = \"acquire-only\"\n";
    let s = Scenario::parse(src, Path::new("spin.toml"), "spin").expect("scenario");
    let info = lockbench_backends::lookup("redis").expect("redis backend");
    let env = lockbench_backends::BackendEnv { endpoints: vec!["127.0.0.1:1".into()], ..Default::default() };
    let b = info.open(&env).expect("open");
    let r = lockbench::run::run_backend(&s, b, &env, None, &()).await.expect("the history is recorded");
    let h = r.history.load().expect("the history reads back");
    let v = lockbench::check::check(&h);
    let fails = h.events.iter().filter(|e| e.op == Op::Acquire && e.kind == Kind::Fail).count();
    assert!(fails > 0, "nothing was tried");
    // 10, 20, 40, ... ms: at most about 8 attempts per client in 1.5 s.
    assert!(fails <= 4 * 12, "{fails} failed attempts from 4 clients: the client spins");
    assert!(h.events.iter().all(|e| e.kind != Kind::Info), "a refused connection is no unknown outcome");
    assert_eq!(v.level(), lockbench::check::Level::Inconclusive);
    assert_eq!(v.availability.errors.refused as usize, fails);
}

#[test]
fn an_ensemble_member_that_cannot_start_is_named_with_its_log_and_nothing_is_written() {
    // A ZooKeeper "installation" whose jars are empty: every member's JVM exits at
    // once, saying why in its log.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    for j in ["zookeeper", "zookeeper-jute", "slf4j-api", "slf4j-log4j12", "log4j-1.2"] {
        std::fs::write(lib.join(format!("{j}.jar")), b"").unwrap();
    }
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_lockbench"))
        .args(["run", storm().to_str().unwrap(), "-b", "zookeeper", "--duration", "1s", "--out", out.to_str().unwrap()])
        .env("LOCKBENCH_ZOOKEEPER_LIB", &lib)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("zookeeper member 0 of 3 (127.0.0.1:") && t.contains("exited at start"), "{t}");
    assert!(t.contains("Could not find or load main class org.apache.zookeeper"), "the member's log tail: {t}");
    assert!(!out.exists(), "nothing half-written");
}
