//! The sqlite backend excludes across OS processes, not just connections: two
//! processes (this test binary, run again as a child) take the same lock on the
//! same file and increment a counter in a plain file inside the critical section.
//! Any overlap loses increments.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lockbench_backends::sqlite::Sqlite;
use lockbench_backends::{Clock, LockBackend, Wait};

const ROUNDS: u64 = 150;
const CHILD_ENV: &str = "LOCKBENCH_SQLITE_CHILD_DIR";

async fn hammer(dir: &Path) {
    let b = Sqlite::open(dir.join("locks.sqlite"), false, Clock::monotonic()).expect("open");
    let mut s = b.session().await.expect("session");
    let counter = dir.join("counter");
    for _ in 0..ROUNDS {
        let l = s
            .acquire("shared", Duration::from_secs(30), &Wait::new(Duration::from_secs(30)))
            .await
            .expect("acquire")
            .expect("granted within 30 s");
        // Read, pause, write: a lost update unless the lock excludes the other process.
        let v: u64 = std::fs::read_to_string(&counter).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        std::thread::sleep(Duration::from_micros(200));
        std::fs::write(&counter, (v + 1).to_string()).expect("write counter");
        assert!(s.release(&l).await.expect("release"));
    }
}

#[tokio::test]
async fn two_processes_exclude_each_other() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // We are the child.
        hammer(&PathBuf::from(dir)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "two_processes_exclude_each_other", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child process");
    hammer(dir.path()).await;
    let out = child.wait_with_output().expect("child ran");
    assert!(
        out.status.success(),
        "child failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let total: u64 = std::fs::read_to_string(dir.path().join("counter")).unwrap().trim().parse().unwrap();
    assert_eq!(total, 2 * ROUNDS, "increments lost across processes");
}
