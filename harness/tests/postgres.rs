//! PostgreSQL against the real `lockbench` binary and real servers (issue 14): a
//! wrong password and a closed port stop preflight with status 5 and a clear
//! message that never holds the password (a silent listener: tests/unavailable.rs,
//! with the other kinds); the right password (from
//! LOCKBENCH_POSTGRES_PASSWORD) runs and no file of the result holds it; and no
//! postgres, postgres backend or pgbouncer process outlives a run that is
//! interrupted (SIGINT) or SIGKILLed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::text;
use lockbench_backends::servers::local::{LocalCluster, ServerOptions, postgres_bin};
use lockbench_backends::servers::{ServerKind, Servers};

fn storm() -> String {
    common::scenario("contention-storm")
}

/// Run SQL as the superuser on the local server at `port` (psql from Debian's
/// postgresql-client, which `postgresql` depends on).
fn psql(port: u16, sql: &str) -> String {
    let psql = postgres_bin("psql").expect("psql is not installed: run scripts/setup");
    let o = Command::new(psql)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-XAtq", "-c", sql])
        .output()
        .unwrap();
    assert!(o.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A local PostgreSQL where user `lb` must log in with password `RightPw8` (SCRAM).
fn server_with_password() -> (LocalCluster, u16) {
    let c = LocalCluster::start(ServerKind::Postgres, 1, ServerOptions::default()).expect("postgres (scripts/setup)");
    let port: u16 = c.endpoints()[0].rsplit_once(':').unwrap().1.parse().unwrap();
    psql(port, "CREATE ROLE lb LOGIN PASSWORD 'RightPw8'");
    // PostgreSQL 15 lets only the owner create in `public`; the lease table needs it.
    psql(port, "GRANT CREATE ON SCHEMA public TO lb");
    let hba = psql(port, "SHOW hba_file");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all lb 127.0.0.1/32 scram-sha-256\n{old}")).unwrap();
    psql(port, "SELECT pg_reload_conf()");
    (c, port)
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(all_files(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_wrong_password_or_no_server_fails_preflight_with_status_5_and_never_shows_the_password() {
    let (_server, port) = server_with_password();
    let dir = tempfile::tempdir().unwrap();
    let at = format!("127.0.0.1:{port}");
    let out = dir.path().join("out");
    let run = |endpoint: &str, env: &[(&str, &str)], duration: &str, out: &Path| {
        let o = Command::new(common::bin())
            .args(["run", &storm(), "-b", "postgres-lease", "--endpoints", endpoint, "--duration", duration])
            .arg("--out")
            .arg(out)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        (o.status.code(), text(&o))
    };
    for (endpoint, env) in [
        (format!("postgres=lb:WrongPw9@{at}"), vec![]),
        (format!("postgres=postgres://lb:WrongPw9@{at}/postgres"), vec![]),
        (format!("postgres=lb@{at}"), vec![("LOCKBENCH_POSTGRES_PASSWORD", "WrongPw9")]),
    ] {
        let started = Instant::now();
        let (code, t) = run(&endpoint, &env, "1s", &out);
        assert_eq!(code, Some(5), "{endpoint}: {t}");
        assert!(t.contains("preflight failed: postgres-lease at lb") && t.contains(&at), "names the endpoint: {t}");
        assert!(t.contains("password authentication failed"), "says what the server said: {t}");
        assert!(!t.contains("WrongPw9"), "the password was printed: {t}");
        assert!(!out.exists(), "a run that never started wrote a result");
        assert!(started.elapsed() < Duration::from_secs(8), "{endpoint}: {:?}", started.elapsed());
    }
    // Nothing listens on port 1; the message says so.
    let (code, t) = run("postgres=lb:WrongPw9@127.0.0.1:1", &[], "1s", &out);
    assert_eq!(code, Some(5), "{t}");
    assert!(t.contains("127.0.0.1:1") && t.contains("Connection refused"), "{t}");
    assert!(!t.contains("WrongPw9"), "{t}");
    // The right password, from the variable: the run happens, and neither its output
    // nor any file it wrote holds the password.
    let (code, t) = run(&format!("postgres=lb@{at}"), &[("LOCKBENCH_POSTGRES_PASSWORD", "RightPw8")], "400ms", &out);
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("postgres-lease") && !t.contains("RightPw8"), "{t}");
    let files = all_files(&out);
    assert!(files.iter().any(|f| f.ends_with("summary.json")), "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(8).any(|w| w == b"RightPw8"), "{} holds the password", f.display());
    }
}

#[test]
fn no_postgres_or_pgbouncer_process_outlives_an_interrupted_or_killed_run() {
    // Wait for the run: postgres with its backends, and pgbouncer with clients.
    common::nothing_outlives(&["run", &storm(), "-b", "postgres-advisory-pooled", "--duration", "30s"], |t| {
        t.iter().any(|(_, c)| c == "pgbouncer") && t.iter().filter(|(_, c)| c == "postgres").count() >= 4
    });
}
