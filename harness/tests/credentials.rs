//! A password never reaches any output: a password-protected local redis-server,
//! every documented endpoint form, the password variable, a wrong password and
//! malformed forms; then every file the runs wrote, their stdout and stderr, and
//! the command lines of their child processes are searched for the password.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockbench_backends::servers::local::free_port;

mod common;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_with_password(pw: &str) -> (Redis, u16) {
    let port = free_port().unwrap();
    let dir = std::env::temp_dir();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", pw])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (run scripts/setup)");
    let r = Redis(child);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (r, port)
}

/// The command lines of `pid`'s descendants (not its own), read now.
fn descendants_cmdlines(pid: u32) -> Vec<String> {
    let all = common::processes();
    let mut tree: BTreeSet<u32> = [pid].into();
    loop {
        let before = tree.len();
        for p in &all {
            if tree.contains(&p.ppid) {
                tree.insert(p.pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    // The process itself has what the user typed; its children must not.
    tree.remove(&pid);
    all.into_iter().filter(|p| tree.contains(&p.pid)).map(|p| p.cmdline).collect()
}

struct Ran {
    code: Option<i32>,
    output: String,
    cmdlines: Vec<String>,
}

/// Run lockbench, watching its child processes' command lines while it runs.
fn run(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Ran {
    let mut child = Command::new(common::bin())
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let mut cmdlines = Vec::new();
    let t0 = Instant::now();
    let status = loop {
        cmdlines.extend(descendants_cmdlines(child.id()));
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("lockbench {args:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(30));
    };
    Ran { code: status.code(), output: out.join().unwrap() + &err.join().unwrap(), cmdlines }
}

fn files_under(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut stack = vec![d.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let q = e.path();
            if q.is_dir() {
                stack.push(q);
            } else if let Ok(b) = std::fs::read(&q) {
                // Compressed histories are searched as they read.
                let b = if q.extension().is_some_and(|x| x == "zst") {
                    zstd::stream::decode_all(&b[..]).unwrap()
                } else {
                    b
                };
                v.push((q.display().to_string(), b));
            }
        }
    }
    v
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_password_reaches_any_output_in_any_endpoint_form() {
    let pw = format!("Pw{:08x}z", std::process::id().wrapping_mul(2_654_435_761));
    let wrong = format!("Wrong{:08x}q", std::process::id());
    let (_redis, port) = redis_with_password(&pw);
    let d = tempfile::tempdir().unwrap();
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/crashed-holders.toml");
    let scen = scen.to_str().unwrap();
    let hp = format!("127.0.0.1:{port}");

    // (endpoint, environment, must succeed)
    let good: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("redis=:{pw}@{hp}"), vec![]),
        (format!("redis=default:{pw}@{hp}"), vec![]),
        (format!("redis=redis://:{pw}@{hp}"), vec![]),
        (format!("redis=redis://default:{pw}@{hp}/0"), vec![]),
        (format!("redis={hp}"), vec![("LOCKBENCH_REDIS_PASSWORD", pw.clone())]),
        (format!("redis=default@{hp}"), vec![("LOCKBENCH_REDIS_PASSWORD", pw.clone())]),
    ];
    let mut everything: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (ep, env)) in good.iter().enumerate() {
        let out = d.path().join(format!("good{i}"));
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = run(
            &["run", scen, "-b", "redis", "--duration", "1200ms", "--endpoints", ep, "--out", out.to_str().unwrap()],
            &envs,
            d.path(),
        );
        assert_eq!(r.code, Some(0), "form #{i}: {}", r.output);
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert!(s["backends"][0]["grants"].as_u64().unwrap() > 0, "form #{i} logged in and ran: {}", r.output);
        let cmd = s["command"].as_str().unwrap();
        assert!(cmd.contains(&format!("--endpoints \"redis=")) && cmd.contains(&hp), "keeps --endpoints: {cmd}");
        assert!(cmd.contains("${LOCKBENCH_REDIS_PASSWORD}"), "the variable stands for the password: {cmd}");
        assert!(r.cmdlines.iter().any(|c| c.contains(" worker")), "worker processes were seen: {:?}", r.cmdlines);
        everything.push((format!("form #{i} output"), r.output.into_bytes()));
        everything.push((format!("form #{i} command lines"), r.cmdlines.join("\n").into_bytes()));
    }

    // A wrong password, and malformed forms: refused or failing, never echoed.
    let bad = [
        format!("redis=:{wrong}@{hp}"),
        format!("redis=:{pw}@127.0.0.1"),
        format!("redis=redis://:{pw}@127.0.0.1:notaport"),
        format!("redis=rediss://:{pw}@{hp}"),
        format!("redis=ftp://u:{pw}@{hp}"),
        format!("rediz=:{pw}@{hp}"),
        format!(":{pw}@{hp}"),
    ];
    for (i, ep) in bad.iter().enumerate() {
        let out = d.path().join(format!("bad{i}"));
        let r = run(
            &["run", scen, "-b", "redis", "--duration", "600ms", "--endpoints", ep, "--out", out.to_str().unwrap()],
            &[],
            d.path(),
        );
        if i > 0 {
            assert_eq!(r.code, Some(1), "malformed {i} is refused: {}", r.output);
            assert!(r.output.contains("endpoints") || r.output.contains("endpoint"), "{}", r.output);
        }
        everything.push((format!("bad #{i} output"), r.output.into_bytes()));
        everything.push((format!("bad #{i} command lines"), r.cmdlines.join("\n").into_bytes()));
    }

    everything.extend(files_under(d.path()));
    assert!(everything.iter().any(|(n, _)| n.ends_with("history.jsonl.zst")), "the runs wrote histories");
    for (name, bytes) in &everything {
        assert!(!contains(bytes, &pw), "the password appears in {name}");
        assert!(!contains(bytes, &wrong), "the wrong password appears in {name}");
    }
}
