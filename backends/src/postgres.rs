//! `postgres-advisory`, `postgres-lease` and `postgres-advisory-pooled`: one
//! PostgreSQL server (tokio-postgres, one connection per session, prepared
//! statements).
//!
//! - `postgres-advisory` is the advice most teams get: `pg_try_advisory_lock(key)`,
//!   `pg_advisory_unlock(key)`, and for a wait `pg_advisory_lock(key)` under
//!   `lock_timeout`. There is no lease: the lock lives as long as the holder's
//!   connection. A paused holder keeps it for the whole pause (a liveness figure,
//!   not a safety violation), a crashed one until the server sees the connection
//!   close. No fencing token either.
//! - `postgres-lease` is a lease row per key with a fencing token from a sequence:
//!   acquire = `INSERT … ON CONFLICT (key) DO UPDATE … WHERE expires_at < now()`,
//!   release and renew owner-checked `UPDATE`s. Leases run on the server's clock.
//! - `postgres-advisory-pooled` is UNSAFE on purpose: the same advisory locks
//!   through PgBouncer in transaction pooling mode. Each statement runs on
//!   whichever server connection is free, so the lock is taken by (and re-granted
//!   to, advisory locks being re-entrant) a connection that no client owns, and the
//!   unlock lands elsewhere. Holders overlap.
//!
//! Sessions connect lazily (the first operation) and again after a connection is
//! lost; a lost connection takes its advisory locks with it, so the session
//! forgets them too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage, Statement};

use crate::servers::{Endpoint, redact};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Owner, Result, new_owner};

/// How long one statement may take before its outcome is called unknown (as for
/// Redis: loopback answers in well under a millisecond).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting, logging in and preparing the statements may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A hold without a lease, for the checker: unbounded (its NO_LEASE is
/// `u64::MAX / 4` too).
const NO_LEASE_NS: u64 = u64::MAX / 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Advisory,
    Lease,
    Pooled,
}

const DDL: &str = "BEGIN;
SELECT pg_advisory_xact_lock(27755, 1);
CREATE SEQUENCE IF NOT EXISTS lockbench_fence;
CREATE TABLE IF NOT EXISTS lockbench_locks (
  key text PRIMARY KEY,
  owner bigint NOT NULL,
  token bigint NOT NULL,
  expires_at timestamptz NOT NULL
) WITH (fillfactor = 50);
COMMIT;";

/// The token comes from the sequence inside the row's update, after the row lock
/// is held, so a later grant always has a higher token. (A token from VALUES
/// would be drawn before waiting for the row, and a slow statement could then
/// write a token lower than its predecessor's.) The INSERT path runs once per key
/// ever: release keeps the row. The NOT EXISTS pre-check makes an attempt on a
/// held key a plain read: without it, ON CONFLICT locks the row (a write, a
/// transaction id, and an fsync at commit) for every refused attempt.
const ACQUIRE: &str = "INSERT INTO lockbench_locks AS l (key, owner, token, expires_at)
SELECT $1, $2, nextval('lockbench_fence'), now() + $3::float8 * interval '1 second'
WHERE NOT EXISTS (SELECT 1 FROM lockbench_locks WHERE key = $1 AND expires_at >= now())
ON CONFLICT (key) DO UPDATE
  SET owner = EXCLUDED.owner, token = nextval('lockbench_fence'), expires_at = EXCLUDED.expires_at
  WHERE l.expires_at < now()
RETURNING token";
const RELEASE: &str = "UPDATE lockbench_locks SET owner = 0, expires_at = '-infinity' WHERE key = $1 AND owner = $2 AND expires_at >= now()";
const RENEW: &str = "UPDATE lockbench_locks SET expires_at = now() + $3::float8 * interval '1 second'
WHERE key = $1 AND owner = $2 AND expires_at >= now()";

/// An advisory lock key: FNV-1a (64 bits) of the key's name.
fn advisory_key(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "lockbench:".bytes().chain(key.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// What the server (or the client library) said, without any password.
fn describe(e: &tokio_postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut t = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                t.push_str(&format!(": {s}"));
                src = s.source();
            }
            t
        }
    };
    redact(&text)
}

/// An error while connecting and logging in: nothing of ours was done.
fn connect_error(at: &str, e: &tokio_postgres::Error) -> BackendError {
    BackendError::Unavailable(format!("postgres at {at}: {}", describe(e)))
}

/// A statement's error. The server answering with an error means the statement
/// did nothing (rolled back), unless the session itself is ending (FATAL,
/// shutdown, crash: class 57, 08). A timeout or a dropped connection may have
/// delivered the statement: unknown.
fn classify(e: &tokio_postgres::Error) -> BackendError {
    let text = describe(e);
    match e.as_db_error() {
        Some(db) => {
            let c = db.code().code();
            if c.starts_with("57") || c.starts_with("08") || db.severity() == "FATAL" || db.severity() == "PANIC" {
                BackendError::Unknown(text)
            } else if c.starts_with("53") {
                // Insufficient resources (too many connections, out of memory): refused.
                BackendError::Unavailable(text)
            } else {
                BackendError::Rejected(text)
            }
        }
        None => BackendError::Unknown(text),
    }
}

/// Does this error mean the connection is gone (so its session locks are)?
fn lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none_or(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

pub struct Postgres {
    variant: Variant,
    at: String,
    cfg: Arc<Config>,
    clock: Clock,
    /// The lease table exists (created once per process, under an advisory lock).
    ddl_done: Arc<AtomicBool>,
}

fn open(env: &BackendEnv, variant: Variant) -> Result<Arc<dyn LockBackend>> {
    let endpoint = env.endpoints.first().ok_or_else(|| BackendError::Config("postgres needs one endpoint".into()))?;
    let e = Endpoint::from_env(endpoint)?;
    let mut cfg = Config::new();
    cfg.host(&e.host)
        .port(e.port)
        .user(e.user.as_deref().unwrap_or(crate::servers::postgres::SUPERUSER))
        .dbname(e.database.clone().or(e.db.map(|n| n.to_string())).as_deref().unwrap_or("postgres"))
        .application_name("lockbench")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true);
    if let Some(p) = e.password() {
        cfg.password(p);
    }
    Ok(Arc::new(Postgres {
        variant,
        at: e.to_string(),
        cfg: Arc::new(cfg),
        clock: env.clock.clone(),
        ddl_done: Arc::new(AtomicBool::new(false)),
    }))
}

pub(crate) fn open_advisory(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Advisory)
}

pub(crate) fn open_lease(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Lease)
}

pub(crate) fn open_pooled(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Pooled)
}

#[async_trait]
impl LockBackend for Postgres {
    fn name(&self) -> &str {
        match self.variant {
            Variant::Advisory => "postgres-advisory",
            Variant::Lease => "postgres-lease",
            Variant::Pooled => "postgres-advisory-pooled",
        }
    }
    fn capabilities(&self) -> Capabilities {
        match self.variant {
            Variant::Advisory => Capabilities { blocking_wait: true, multi_process: true, ..Default::default() },
            Variant::Lease => {
                Capabilities { lease: true, renew: true, fencing: true, multi_process: true, ..Default::default() }
            }
            Variant::Pooled => Capabilities { multi_process: true, naive: true, ..Default::default() },
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        Ok(Box::new(Session {
            variant: self.variant,
            at: self.at.clone(),
            cfg: self.cfg.clone(),
            clock: self.clock.clone(),
            ddl_done: self.ddl_done.clone(),
            conn: None,
            held: HashMap::new(),
            sent: 0,
        }))
    }
}

/// The prepared statements of one connection.
enum Prepared {
    Advisory {
        try_lock: Statement,
        lock: Statement,
        unlock: Statement,
    },
    Lease {
        acquire: Statement,
        release: Statement,
        renew: Statement,
    },
    /// Through PgBouncer in transaction mode a named prepared statement lives on
    /// one server connection and the next statement may run on another: plain
    /// (simple-protocol) queries only.
    Pooled,
}

struct Conn {
    client: Client,
    st: Prepared,
    /// The connection's I/O task: aborted with the connection, so that a session
    /// dropped mid-statement closes its socket at once (and the server frees its
    /// advisory locks) instead of waiting for an answer that may never come.
    io: JoinHandle<()>,
    /// The `lock_timeout` set on this connection, in ms.
    lock_timeout_ms: Option<u128>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.io.abort();
    }
}

struct Session {
    variant: Variant,
    at: String,
    cfg: Arc<Config>,
    clock: Clock,
    ddl_done: Arc<AtomicBool>,
    conn: Option<Conn>,
    /// Advisory locks this session's connection holds, by key. PostgreSQL grants an
    /// advisory lock again to the session that holds it (they are re-entrant); a
    /// lock client must not, so a second acquire of a held key is refused here.
    held: HashMap<String, Owner>,
    /// Statements this session sent (the connection's set-up not counted).
    sent: u64,
}

impl Session {
    async fn connect(&self) -> Result<Conn> {
        let at = &self.at;
        let work = async {
            let (client, connection) = self.cfg.connect(NoTls).await.map_err(|e| connect_error(at, &e))?;
            let io = tokio::spawn(async move {
                let _ = connection.await;
            });
            // From here on, an early return drops `client` and aborts `io`.
            let mut guard = Conn { client, st: Prepared::Pooled, io, lock_timeout_ms: None };
            let c = &guard.client;
            let st = match self.variant {
                Variant::Advisory => Prepared::Advisory {
                    try_lock: c.prepare("SELECT pg_try_advisory_lock($1)").await.map_err(|e| connect_error(at, &e))?,
                    lock: c.prepare("SELECT pg_advisory_lock($1)").await.map_err(|e| connect_error(at, &e))?,
                    unlock: c.prepare("SELECT pg_advisory_unlock($1)").await.map_err(|e| connect_error(at, &e))?,
                },
                Variant::Lease => {
                    if !self.ddl_done.load(Ordering::Acquire) {
                        c.batch_execute(DDL).await.map_err(|e| connect_error(at, &e))?;
                        self.ddl_done.store(true, Ordering::Release);
                    }
                    Prepared::Lease {
                        acquire: c.prepare(ACQUIRE).await.map_err(|e| connect_error(at, &e))?,
                        release: c.prepare(RELEASE).await.map_err(|e| connect_error(at, &e))?,
                        renew: c.prepare(RENEW).await.map_err(|e| connect_error(at, &e))?,
                    }
                }
                Variant::Pooled => Prepared::Pooled,
            };
            guard.st = st;
            Ok(guard)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
            Ok(r) => r,
            // Nothing of ours was asked yet (the table DDL is idempotent).
            Err(_) => Err(BackendError::Unavailable(format!(
                "postgres at {at}: no answer within {CONNECT_TIMEOUT:?} while connecting"
            ))),
        }
    }

    /// The connection, opened if there is none.
    async fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.drop_conn();
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    fn drop_conn(&mut self) {
        self.conn = None;
        self.held.clear();
    }

    /// Run one statement under `deadline`; a lost connection is dropped.
    async fn run<T>(
        &mut self,
        deadline: Duration,
        f: impl for<'c> FnOnce(
            &'c Conn,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>>,
    ) -> Result<T, StatementError> {
        self.conn().await.map_err(StatementError::Backend)?;
        self.sent += 1;
        let conn = self.conn.as_ref().expect("just opened");
        match tokio::time::timeout(deadline, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if lost(&e) {
                    self.drop_conn();
                }
                Err(StatementError::Pg(e))
            }
            Err(_) => {
                // The statement may have reached the server and may still run: the
                // outcome is unknown, and the connection is closed so that whatever
                // it took goes with it.
                self.drop_conn();
                Err(StatementError::Backend(BackendError::Unknown(format!(
                    "postgres at {}: no answer within {deadline:?}",
                    self.at
                ))))
            }
        }
    }

    fn lease(&self, key: &str, owner: Owner, token: Option<u64>, now: u64, lease: Option<Duration>) -> Lease {
        let len = lease.map_or(NO_LEASE_NS, |l| l.as_nanos() as u64);
        Lease { key: key.to_owned(), owner, fencing_token: token, granted_at: now, expires_at: now.saturating_add(len) }
    }

    /// One simple-protocol query's first value (`t`/`f` for a boolean).
    async fn simple_value(&mut self, sql: String) -> Result<Option<String>> {
        let rows = self
            .run(RESPONSE_TIMEOUT, move |c| Box::pin(async move { c.client.simple_query(&sql).await }))
            .await
            .map_err(|e| e.into_backend())?;
        Ok(rows.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        }))
    }
}

enum StatementError {
    Pg(tokio_postgres::Error),
    Backend(BackendError),
}

impl StatementError {
    fn into_backend(self) -> BackendError {
        match self {
            StatementError::Pg(e) => classify(&e),
            StatementError::Backend(b) => b,
        }
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let v = self.simple_value("SELECT current_setting('server_version')".into()).await?;
        Ok(v.map(|v| format!("PostgreSQL {v}")))
    }

    /// `SELECT 1`, bounded by the connection and statement deadlines.
    async fn ping(&mut self) -> Result<()> {
        match self.simple_value("SELECT 1".into()).await?.as_deref() {
            Some("1") => Ok(()),
            other => Err(BackendError::Rejected(format!("postgres at {}: SELECT 1 answered {other:?}", self.at))),
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent)
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let owner = new_owner();
        // The lease's clock starts before the request leaves: the server's starts
        // later, so this estimate can only be early.
        let now = self.clock.now_ns();
        match self.variant {
            Variant::Advisory => {
                if self.held.contains_key(key) {
                    return Ok(None);
                }
                let k = advisory_key(key);
                let row = self
                    .run(RESPONSE_TIMEOUT, move |c| {
                        Box::pin(async move {
                            let Prepared::Advisory { try_lock, .. } = &c.st else { unreachable!() };
                            c.client.query_one(try_lock, &[&k]).await
                        })
                    })
                    .await
                    .map_err(|e| e.into_backend())?;
                if !row.get::<_, bool>(0) {
                    return Ok(None);
                }
                self.held.insert(key.to_owned(), owner);
                Ok(Some(self.lease(key, owner, None, now, None)))
            }
            Variant::Pooled => {
                // As the advice reads: no bookkeeping, the server is trusted.
                let v = self.simple_value(format!("SELECT pg_try_advisory_lock({})", advisory_key(key))).await?;
                Ok((v.as_deref() == Some("t")).then(|| self.lease(key, owner, None, now, None)))
            }
            Variant::Lease => {
                let (k, o, secs) = (key.to_owned(), owner as i64, lease.as_secs_f64());
                let row = self
                    .run(RESPONSE_TIMEOUT, move |c| {
                        Box::pin(async move {
                            let Prepared::Lease { acquire, .. } = &c.st else { unreachable!() };
                            c.client.query_opt(acquire, &[&k, &o, &secs]).await
                        })
                    })
                    .await
                    .map_err(|e| e.into_backend())?;
                Ok(row.map(|r| self.lease(key, owner, Some(r.get::<_, i64>(0) as u64), now, Some(lease))))
            }
        }
    }

    /// Advisory locks wait natively: `pg_advisory_lock` under `lock_timeout` = the
    /// wait. The others poll, as the trait's default does (`poll_acquire`).
    async fn acquire(&mut self, key: &str, lease: Duration, wait: &crate::Wait) -> Result<Option<Lease>> {
        if self.variant == Variant::Advisory && !wait.max.is_zero() {
            if self.held.contains_key(key) {
                return Ok(None);
            }
            let owner = new_owner();
            let now = self.clock.now_ns();
            let ms = wait.max.as_millis().max(1);
            if self.conn().await?.lock_timeout_ms != Some(ms) {
                let sql = format!("SET lock_timeout = {ms}");
                self.run(RESPONSE_TIMEOUT, move |c| Box::pin(async move { c.client.batch_execute(&sql).await }))
                    .await
                    .map_err(|e| e.into_backend())?;
                if let Some(c) = self.conn.as_mut() {
                    c.lock_timeout_ms = Some(ms);
                }
            }
            let k = advisory_key(key);
            let r = self
                .run(wait.max + RESPONSE_TIMEOUT, move |c| {
                    Box::pin(async move {
                        let Prepared::Advisory { lock, .. } = &c.st else { unreachable!() };
                        c.client.execute(lock, &[&k]).await
                    })
                })
                .await;
            return match r {
                Ok(_) => {
                    self.held.insert(key.to_owned(), owner);
                    Ok(Some(self.lease(key, owner, None, now, None)))
                }
                // lock_timeout ran out: the wait is over, nothing taken.
                Err(StatementError::Pg(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(None),
                Err(e) => Err(e.into_backend()),
            };
        }
        crate::poll_acquire(self, key, lease, wait).await
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        match self.variant {
            // No lease to extend: the lock lasts as long as the connection, so it
            // is still ours exactly when this connection still holds it.
            Variant::Advisory => Ok(self.held.get(&lease.key) == Some(&lease.owner)
                && self.conn.as_ref().is_some_and(|c| !c.client.is_closed())),
            Variant::Pooled => Ok(true),
            Variant::Lease => {
                let (k, o, secs) = (lease.key.clone(), lease.owner as i64, extend.as_secs_f64());
                let n = self
                    .run(RESPONSE_TIMEOUT, move |c| {
                        Box::pin(async move {
                            let Prepared::Lease { renew, .. } = &c.st else { unreachable!() };
                            c.client.execute(renew, &[&k, &o, &secs]).await
                        })
                    })
                    .await
                    .map_err(|e| e.into_backend())?;
                Ok(n == 1)
            }
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        match self.variant {
            Variant::Advisory => {
                if self.held.get(&lease.key) != Some(&lease.owner) {
                    return Ok(false);
                }
                let k = advisory_key(&lease.key);
                let row = self
                    .run(RESPONSE_TIMEOUT, move |c| {
                        Box::pin(async move {
                            let Prepared::Advisory { unlock, .. } = &c.st else { unreachable!() };
                            c.client.query_one(unlock, &[&k]).await
                        })
                    })
                    .await
                    .map_err(|e| e.into_backend())?;
                self.held.remove(&lease.key);
                Ok(row.get::<_, bool>(0))
            }
            Variant::Pooled => {
                // No owner check and whichever server connection is free: the unlock
                // usually lands where the lock is not.
                let v = self.simple_value(format!("SELECT pg_advisory_unlock({})", advisory_key(&lease.key))).await?;
                Ok(v.as_deref() == Some("t"))
            }
            Variant::Lease => {
                let (k, o) = (lease.key.clone(), lease.owner as i64);
                let n = self
                    .run(RESPONSE_TIMEOUT, move |c| {
                        Box::pin(async move {
                            let Prepared::Lease { release, .. } = &c.st else { unreachable!() };
                            c.client.execute(release, &[&k, &o]).await
                        })
                    })
                    .await
                    .map_err(|e| e.into_backend())?;
                Ok(n == 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_keys_differ_per_name_and_stay_put() {
        assert_ne!(advisory_key("k0"), advisory_key("k1"));
        assert_eq!(advisory_key("k0"), advisory_key("k0"));
    }
}
