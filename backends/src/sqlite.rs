//! `sqlite` and `sqlite-naive`: a lock table in one SQLite file.
//!
//! `sqlite` takes a lock in one `BEGIN IMMEDIATE` transaction: the write lock is
//! taken before the read, so two connections (or two processes) can never both see
//! a key free. A deferred `BEGIN` would read first and then fail the upgrade with
//! SQLITE_BUSY, bypassing busy_timeout. Expiry times are CLOCK_MONOTONIC
//! nanoseconds, which every process on the machine shares.
//!
//! `sqlite-naive` is the check-then-insert recipe many posts show: a SELECT, then an
//! INSERT as a separate statement, no transaction, and a DELETE without an owner
//! check. It is here so that the checker has a real unsafe backend to catch.
//!
//! Calls are synchronous on the calling task: a SQLite transaction here is tens of
//! microseconds, far less than a `spawn_blocking` round trip, and it never waits on
//! another task of this runtime (each transaction is one call).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS locks (
    key TEXT PRIMARY KEY,
    owner INTEGER,              -- NULL: free
    token INTEGER NOT NULL,     -- last fencing token handed out for this key
    expires_at INTEGER NOT NULL -- CLOCK_MONOTONIC ns
) WITHOUT ROWID";

pub struct Sqlite {
    path: PathBuf,
    naive: bool,
    clock: Clock,
}

pub(crate) fn open_safe(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    Ok(Arc::new(Sqlite::open(env.dir.join("locks.sqlite"), false, env.clock.clone())?))
}

pub(crate) fn open_naive(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    Ok(Arc::new(Sqlite::open(env.dir.join("locks-naive.sqlite"), true, env.clock.clone())?))
}

impl Sqlite {
    /// Open (creating if needed) the lock database at `path`. Several processes may
    /// open the same path: that is how the multi-process test shares a lock.
    pub fn open(path: PathBuf, naive: bool, clock: Clock) -> Result<Self> {
        connect(&path)?;
        Ok(Sqlite { path, naive, clock })
    }
}

fn config(path: &std::path::Path, e: rusqlite::Error) -> BackendError {
    BackendError::Config(format!("sqlite database {}: {e}", path.display()))
}

fn connect(path: &std::path::Path) -> Result<Connection> {
    // Two processes opening the same file at once can both try to switch it to
    // WAL; SQLite sees a possible deadlock and answers BUSY at once, without the
    // busy handler. Opening is not an operation we measure: retry, boundedly.
    let mut tries = 0;
    loop {
        match try_connect(path) {
            Err(e) if tries < 100 && is_busy(&e) => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.map_err(|e| config(path, e)),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn try_connect(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // The busy timeout first: switching to WAL needs a lock that another process
    // opening the same file at the same moment may hold.
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL lets readers run beside the one writer; NORMAL syncs at checkpoints only,
    // which is the usual production setting for a lock table on a local disk.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// SQLITE_BUSY/LOCKED mean the statement did not run; anything else during a write
/// may have happened (a failed COMMIT can leave the change on disk): unknown.
fn classify(e: rusqlite::Error) -> BackendError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Unknown(e.to_string()),
    }
}

#[async_trait]
impl LockBackend for Sqlite {
    fn name(&self) -> &str {
        if self.naive { "sqlite-naive" } else { "sqlite" }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lease: true,
            renew: true,
            fencing: !self.naive,
            multi_process: true,
            naive: self.naive,
            ..Default::default()
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let conn = connect(&self.path)?;
        Ok(Box::new(Session { conn, naive: self.naive, clock: self.clock.clone() }))
    }
}

struct Session {
    conn: Connection,
    naive: bool,
    clock: Clock,
}

impl Session {
    fn acquire_safe(&mut self, key: &str, now: u64, expires: u64) -> rusqlite::Result<Option<(u64, u64)>> {
        let owner = new_owner();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Take the row if it is absent, free, or expired; bump the token either way.
        let token: Option<i64> = tx
            .prepare_cached(
                "INSERT INTO locks (key, owner, token, expires_at) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (key) DO UPDATE SET owner = ?2, token = token + 1, expires_at = ?3
                 WHERE owner IS NULL OR expires_at <= ?4
                 RETURNING token",
            )?
            .query_row(params![key, owner as i64, expires as i64, now as i64], |r| r.get(0))
            .optional()?;
        tx.commit()?;
        Ok(token.map(|t| (owner, t as u64)))
    }

    async fn acquire_naive(&mut self, key: &str, now: u64, expires: u64) -> rusqlite::Result<Option<u64>> {
        let held: Option<(Option<i64>, i64)> = self
            .conn
            .prepare_cached("SELECT owner, expires_at FROM locks WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((Some(_), until)) = held
            && until as u64 > now
        {
            return Ok(None);
        }
        // The application's round trip between the check and the write: other
        // clients run here, exactly the window this recipe forgets.
        tokio::task::yield_now().await;
        let owner = new_owner();
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO locks (key, owner, token, expires_at) VALUES (?1, ?2, 0, ?3)")?
            .execute(params![key, owner as i64, expires as i64])?;
        Ok(Some(owner))
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let v: String = self.conn.query_row("SELECT sqlite_version()", [], |r| r.get(0)).map_err(classify)?;
        Ok(Some(format!("SQLite {v}")))
    }

    /// A trivial query on the database file.
    async fn ping(&mut self) -> Result<()> {
        self.conn.query_row("SELECT count(*) FROM locks", [], |r| r.get::<_, i64>(0)).map_err(classify)?;
        Ok(())
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let now = self.clock.now_ns();
        let expires = now + lease.as_nanos() as u64;
        let granted = if self.naive {
            self.acquire_naive(key, now, expires).await.map_err(classify)?.map(|o| (o, None))
        } else {
            self.acquire_safe(key, now, expires).map_err(classify)?.map(|(o, t)| (o, Some(t)))
        };
        Ok(granted.map(|(owner, fencing_token)| Lease {
            key: key.to_owned(),
            owner,
            fencing_token,
            granted_at: now,
            expires_at: expires,
        }))
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let now = self.clock.now_ns();
        let n = self
            .conn
            .prepare_cached("UPDATE locks SET expires_at = ?1 WHERE key = ?2 AND owner = ?3 AND expires_at > ?4")
            .and_then(|mut s| {
                s.execute(params![(now + extend.as_nanos() as u64) as i64, lease.key, lease.owner as i64, now as i64])
            })
            .map_err(classify)?;
        Ok(n == 1)
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let n = if self.naive {
            // No owner check: frees the key even when someone else holds it now.
            self.conn.prepare_cached("DELETE FROM locks WHERE key = ?1").and_then(|mut s| s.execute([&lease.key]))
        } else {
            self.conn
                .prepare_cached("UPDATE locks SET owner = NULL WHERE key = ?1 AND owner = ?2")
                .and_then(|mut s| s.execute(params![lease.key, lease.owner as i64]))
        }
        .map_err(classify)?;
        Ok(n == 1)
    }
}
