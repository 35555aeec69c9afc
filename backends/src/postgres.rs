//! `postgres-advisory`, `postgres-lease` and `postgres-advisory-pooled`: one
//! PostgreSQL server (one connection per session, `pgwire`: the protocol spoken by
//! the session's own task, prepared statements with binary parameters).
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

use crate::pgwire::{self, FLOAT8, INT8, TEXT, Value};
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

/// SQLSTATE lock_not_available: `lock_timeout` ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What the server (or the connection) said, without any password.
fn describe(e: &pgwire::Error) -> String {
    redact(&e.to_string())
}

/// An error while connecting and logging in: nothing of ours was done.
fn connect_error(at: &str, e: &pgwire::Error) -> BackendError {
    BackendError::Unavailable(format!("postgres at {at}: {}", describe(e)))
}

/// A statement's error. The server answering with an error means the statement
/// did nothing (rolled back), unless the session itself is ending (FATAL,
/// shutdown, crash: class 57, 08). A timeout or a dropped connection may have
/// delivered the statement: unknown.
fn classify(at: &str, e: &pgwire::Error) -> BackendError {
    let text = format!("postgres at {at}: {}", describe(e));
    match e {
        pgwire::Error::Server(db) => {
            let c = db.code.as_str();
            if c.starts_with("57") || c.starts_with("08") || db.ends_session() {
                BackendError::Unknown(text)
            } else if c.starts_with("53") {
                // Insufficient resources (too many connections, out of memory): refused.
                BackendError::Unavailable(text)
            } else {
                BackendError::Rejected(text)
            }
        }
        pgwire::Error::Io(_) => BackendError::Unknown(text),
    }
}

pub struct Postgres {
    variant: Variant,
    at: String,
    server: Arc<Server>,
    clock: Clock,
    /// The lease table exists (created once per process, under an advisory lock).
    ddl_done: Arc<AtomicBool>,
}

/// Where and as whom to log in.
struct Server {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
}

fn open(env: &BackendEnv, variant: Variant) -> Result<Arc<dyn LockBackend>> {
    let endpoint = env.endpoints.first().ok_or_else(|| BackendError::Config("postgres needs one endpoint".into()))?;
    let e = Endpoint::from_env(endpoint)?;
    let server = Server {
        host: e.host.clone(),
        port: e.port,
        user: e.user.clone().unwrap_or_else(|| crate::servers::postgres::SUPERUSER.to_owned()),
        password: e.password().map(str::to_owned),
        database: e.database.clone().or(e.db.map(|n| n.to_string())).unwrap_or_else(|| "postgres".to_owned()),
    };
    Ok(Arc::new(Postgres {
        variant,
        at: e.to_string(),
        server: Arc::new(server),
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
            server: self.server.clone(),
            clock: self.clock.clone(),
            ddl_done: self.ddl_done.clone(),
            conn: None,
            held: HashMap::new(),
            sent: 0,
        }))
    }
}

/// The prepared statements' names. Through PgBouncer in transaction mode a named
/// prepared statement lives on one server connection and the next statement may
/// run on another: `postgres-advisory-pooled` sends simple queries only.
const TRY_LOCK: &str = "try_lock";
const LOCK: &str = "lock";
const UNLOCK: &str = "unlock";
const ACQUIRE_ST: &str = "acquire";
const RELEASE_ST: &str = "release";
const RENEW_ST: &str = "renew";

struct Conn {
    /// Dropping it closes the socket at once, so that a session dropped
    /// mid-statement frees its advisory locks instead of waiting for an answer.
    wire: pgwire::Conn,
    /// The `lock_timeout` set on this connection, in ms.
    lock_timeout_ms: Option<u128>,
}

struct Session {
    variant: Variant,
    at: String,
    server: Arc<Server>,
    clock: Clock,
    ddl_done: Arc<AtomicBool>,
    conn: Option<Conn>,
    /// Advisory locks this session's connection holds, by advisory key (two names
    /// with one advisory key are one lock to the server). PostgreSQL grants an
    /// advisory lock again to the session that holds it (they are re-entrant); a
    /// lock client must not, so a second acquire of a held key is refused here.
    held: HashMap<i64, Owner>,
    /// Statements this session sent (the connection's set-up not counted).
    sent: u64,
}

impl Session {
    async fn connect(&self) -> Result<Conn> {
        let at = &self.at;
        let s = &self.server;
        let err = |e: pgwire::Error| connect_error(at, &e);
        let work = async {
            let login = pgwire::Login {
                user: &s.user,
                password: s.password.as_deref(),
                database: &s.database,
                application: "lockbench",
            };
            let mut wire = pgwire::Conn::connect(&s.host, s.port, &login).await.map_err(err)?;
            match self.variant {
                Variant::Advisory => {
                    let statements: [(&str, &str, &[_]); 3] = [
                        (TRY_LOCK, "SELECT pg_try_advisory_lock($1)", &[INT8]),
                        (LOCK, "SELECT pg_advisory_lock($1)", &[INT8]),
                        (UNLOCK, "SELECT pg_advisory_unlock($1)", &[INT8]),
                    ];
                    wire.prepare(&statements).await.map_err(err)?;
                }
                Variant::Lease => {
                    if !self.ddl_done.load(Ordering::Acquire) {
                        wire.simple(DDL).await.map_err(err)?;
                        self.ddl_done.store(true, Ordering::Release);
                    }
                    let statements: [(&str, &str, &[_]); 3] = [
                        (ACQUIRE_ST, ACQUIRE, &[TEXT, INT8, FLOAT8]),
                        (RELEASE_ST, RELEASE, &[TEXT, INT8]),
                        (RENEW_ST, RENEW, &[TEXT, INT8, FLOAT8]),
                    ];
                    wire.prepare(&statements).await.map_err(err)?;
                }
                Variant::Pooled => {}
            }
            Ok(Conn { wire, lock_timeout_ms: None })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
            Ok(r) => r,
            // Nothing of ours was asked yet (the table DDL is idempotent).
            Err(_) => Err(BackendError::Unavailable(format!(
                "postgres at {at}: no answer within {CONNECT_TIMEOUT:?} while connecting"
            ))),
        }
    }

    /// The connection, opened if there is none (or the server closed it).
    async fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_mut().is_some_and(|c| c.wire.closed()) {
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

    /// Run a prepared statement under `deadline`; a lost connection is dropped.
    async fn execute(
        &mut self,
        deadline: Duration,
        name: &str,
        params: &[Value<'_>],
    ) -> Result<pgwire::Answer, StatementError> {
        self.conn().await.map_err(StatementError::Backend)?;
        self.sent += 1;
        let wire = &mut self.conn.as_mut().expect("just opened").wire;
        let r = tokio::time::timeout(deadline, wire.execute(name, params)).await;
        self.settle(deadline, r)
    }

    /// Run a simple query under the statement deadline: its first value (`t`/`f`
    /// for a boolean).
    async fn simple(&mut self, sql: &str) -> Result<Option<String>> {
        self.conn().await?;
        self.sent += 1;
        let wire = &mut self.conn.as_mut().expect("just opened").wire;
        let r = tokio::time::timeout(RESPONSE_TIMEOUT, wire.simple(sql)).await;
        self.settle(RESPONSE_TIMEOUT, r).map_err(|e| e.into_backend(&self.at))
    }

    fn settle<T>(
        &mut self,
        deadline: Duration,
        r: std::result::Result<pgwire::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StatementError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.lost() {
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
}

enum StatementError {
    Pg(pgwire::Error),
    Backend(BackendError),
}

impl StatementError {
    fn into_backend(self, at: &str) -> BackendError {
        match self {
            StatementError::Pg(e) => classify(at, &e),
            StatementError::Backend(b) => b,
        }
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let v = self.simple("SELECT current_setting('server_version')").await?;
        Ok(v.map(|v| format!("PostgreSQL {v}")))
    }

    /// `SELECT 1`, bounded by the connection and statement deadlines.
    async fn ping(&mut self) -> Result<()> {
        match self.simple("SELECT 1").await?.as_deref() {
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
                let k = advisory_key(key);
                if self.held.contains_key(&k) {
                    return Ok(None);
                }
                let a = self
                    .execute(RESPONSE_TIMEOUT, TRY_LOCK, &[Value::Int8(k)])
                    .await
                    .map_err(|e| e.into_backend(&self.at))?;
                if a.first != Some(1) {
                    return Ok(None);
                }
                self.held.insert(k, owner);
                Ok(Some(self.lease(key, owner, None, now, None)))
            }
            Variant::Pooled => {
                // As the advice reads: no bookkeeping, the server is trusted.
                let v = self.simple(&format!("SELECT pg_try_advisory_lock({})", advisory_key(key))).await?;
                Ok((v.as_deref() == Some("t")).then(|| self.lease(key, owner, None, now, None)))
            }
            Variant::Lease => {
                let params = [Value::Text(key), Value::Int8(owner as i64), Value::Float8(lease.as_secs_f64())];
                let a =
                    self.execute(RESPONSE_TIMEOUT, ACQUIRE_ST, &params).await.map_err(|e| e.into_backend(&self.at))?;
                Ok(a.first.map(|token| self.lease(key, owner, Some(token as u64), now, Some(lease))))
            }
        }
    }

    /// Advisory locks wait natively: `pg_advisory_lock` under `lock_timeout` = the
    /// wait. The others poll, as the trait's default does (`poll_acquire`).
    async fn acquire(&mut self, key: &str, lease: Duration, wait: &crate::Wait) -> Result<Option<Lease>> {
        if self.variant == Variant::Advisory && !wait.max.is_zero() {
            let k = advisory_key(key);
            if self.held.contains_key(&k) {
                return Ok(None);
            }
            let owner = new_owner();
            let now = self.clock.now_ns();
            let ms = wait.max.as_millis().max(1);
            if self.conn().await?.lock_timeout_ms != Some(ms) {
                self.simple(&format!("SET lock_timeout = {ms}")).await?;
                if let Some(c) = self.conn.as_mut() {
                    c.lock_timeout_ms = Some(ms);
                }
            }
            let r = self.execute(wait.max + RESPONSE_TIMEOUT, LOCK, &[Value::Int8(k)]).await;
            return match r {
                Ok(_) => {
                    self.held.insert(k, owner);
                    Ok(Some(self.lease(key, owner, None, now, None)))
                }
                // lock_timeout ran out: the wait is over, nothing taken.
                Err(StatementError::Pg(pgwire::Error::Server(e))) if e.code == LOCK_NOT_AVAILABLE => Ok(None),
                Err(e) => Err(e.into_backend(&self.at)),
            };
        }
        crate::poll_acquire(self, key, lease, wait).await
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        match self.variant {
            // No lease to extend: the lock lasts as long as the connection, so it
            // is still ours exactly when this connection still holds it.
            Variant::Advisory => {
                if self.conn.as_mut().is_some_and(|c| c.wire.closed()) {
                    self.drop_conn();
                }
                Ok(self.held.get(&advisory_key(&lease.key)) == Some(&lease.owner) && self.conn.is_some())
            }
            Variant::Pooled => Ok(true),
            Variant::Lease => {
                let params =
                    [Value::Text(&lease.key), Value::Int8(lease.owner as i64), Value::Float8(extend.as_secs_f64())];
                let a =
                    self.execute(RESPONSE_TIMEOUT, RENEW_ST, &params).await.map_err(|e| e.into_backend(&self.at))?;
                Ok(a.rows == 1)
            }
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        match self.variant {
            Variant::Advisory => {
                let k = advisory_key(&lease.key);
                if self.held.get(&k) != Some(&lease.owner) {
                    return Ok(false);
                }
                let a = self
                    .execute(RESPONSE_TIMEOUT, UNLOCK, &[Value::Int8(k)])
                    .await
                    .map_err(|e| e.into_backend(&self.at))?;
                self.held.remove(&k);
                Ok(a.first == Some(1))
            }
            Variant::Pooled => {
                // No owner check and whichever server connection is free: the unlock
                // usually lands where the lock is not.
                let v = self.simple(&format!("SELECT pg_advisory_unlock({})", advisory_key(&lease.key))).await?;
                Ok(v.as_deref() == Some("t"))
            }
            Variant::Lease => {
                let params = [Value::Text(&lease.key), Value::Int8(lease.owner as i64)];
                let a =
                    self.execute(RESPONSE_TIMEOUT, RELEASE_ST, &params).await.map_err(|e| e.into_backend(&self.at))?;
                Ok(a.rows == 1)
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
