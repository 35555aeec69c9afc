//! Cassandra (or ScyllaDB) through the scylla driver: locks as lightweight
//! transactions (Paxos), and, for contrast, the check-then-write recipe and a plain
//! write that is no lock at all.
//!
//! - `cassandra-lwt`: acquire = `INSERT ... IF NOT EXISTS USING TTL`, release =
//!   `DELETE ... IF owner = ?`, renew = `UPDATE ... USING TTL ... IF owner = ?`;
//!   consistency QUORUM, serial consistency SERIAL (LOCAL_SERIAL with
//!   `LOCKBENCH_CASSANDRA_SERIAL=local`). A timeout on a conditional write is an
//!   unknown outcome: the acquire reads the row back with a SERIAL read (which
//!   completes any Paxos round in flight) and takes the lease if it is ours.
//! - `cassandra-lwt-fenced`: the same, plus a fencing token: a per-key counter row
//!   advanced by a compare-and-set LWT while holding the lock (two more round
//!   trips of Paxos per grant: a SERIAL read and the CAS).
//! - `cassandra-naive`: UNSAFE on purpose, the recipe as blog posts write it: a
//!   SELECT to check, then a plain INSERT (no IF NOT EXISTS), a DELETE without an
//!   owner check, and the lease left to the table's default TTL.
//! - `cassandra-write`: NOT A LOCK: acquire is one plain INSERT with a TTL, which
//!   always "succeeds". It exists to put the cost of an LWT beside the cost of the
//!   plain write it replaces (`scenarios/lwt-cost.toml`).
//! - `cassandra-seed`: UNSAFE on purpose, the final code of the blog post this
//!   project started from, step for step: the table `lock_requests(resource_id text
//!   primary key, lock_status text, created_on timestamp)` whose
//!   `default_time_to_live` is the only lease (set here from the scenario's lease,
//!   whole seconds, at least 2); acquire `INSERT ... VALUES (?, 'LOCKED', ?) IF NOT
//!   EXISTS`; release `DELETE ... WHERE resource_id = ? IF EXISTS`, with no owner
//!   check; no renew. Its `tryLock(timeout, unit)` retries the INSERT with no pause
//!   while the elapsed time *in seconds* is below `timeout`, whatever `unit` says:
//!   a wait is taken as `tryLock(n, MILLISECONDS)` when it is not whole seconds
//!   (so "10ms" spins for 10 s) and `tryLock(n, SECONDS)` when it is.
//!
//! TTLs are whole seconds, and a cell written at second S + f with TTL t expires at
//! second S + t: it may live only t - f. So a lease of L asks for a TTL of
//! ceil(L) + 1 s: the key lives at least L (what the lease promises) and at most
//! ceil(L) + 1 s (how long a crashed holder can block the key).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use scylla::client::session::Session as Db;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use tokio::sync::OnceCell;

use crate::servers::{Endpoint, redact};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

/// What the client waits for one request before calling its outcome unknown:
/// above Cassandra's own write_request_timeout (2 s) and cas_contention_timeout
/// (1.8 s), so the server's verdict usually arrives first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connecting, with the first metadata fetch, must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The naive table's default TTL (seconds): the only lease it knows.
const NAIVE_TTL_S: i32 = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Lwt,
    LwtFenced,
    Naive,
    Write,
    Seed,
}

pub struct Cassandra {
    name: &'static str,
    flavor: Flavor,
    endpoints: Vec<String>,
    clock: Clock,
    inner: OnceCell<Arc<Inner>>,
}

/// One driver session (a connection pool) and the prepared statements.
struct Inner {
    db: Db,
    acquire: PreparedStatement,
    release: PreparedStatement,
    renew: PreparedStatement,
    read_owner: PreparedStatement,
    fence_read: PreparedStatement,
    fence_init: PreparedStatement,
    fence_next: PreparedStatement,
    /// cassandra-seed: its table's TTL (seconds) and its acquire and release,
    /// made on the first acquire (the TTL comes from the scenario's lease).
    seed: OnceCell<(i32, PreparedStatement, PreparedStatement)>,
}

fn open(env: &BackendEnv, flavor: Flavor, name: &'static str) -> Result<Arc<dyn LockBackend>> {
    if env.endpoints.is_empty() {
        return Err(BackendError::Config("cassandra needs at least one contact point (host:port)".into()));
    }
    Ok(Arc::new(Cassandra {
        name,
        flavor,
        endpoints: env.endpoints.clone(),
        clock: env.clock.clone(),
        inner: OnceCell::new(),
    }))
}

pub(crate) fn open_lwt(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Lwt, "cassandra-lwt")
}
/// The same backend; its node runs Paxos v1 (the registry gives it that server kind).
pub(crate) fn open_lwt_v1(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Lwt, "cassandra-lwt-v1")
}
pub(crate) fn open_lwt_fenced(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::LwtFenced, "cassandra-lwt-fenced")
}
pub(crate) fn open_naive(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Naive, "cassandra-naive")
}
pub(crate) fn open_write(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Write, "cassandra-write")
}
pub(crate) fn open_seed(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Seed, "cassandra-seed")
}
/// The same locks on a ring of three nodes, replication factor 3 (the registry
/// gives them three servers; the factor follows the contact points).
pub(crate) fn open_lwt_rf3(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Lwt, "cassandra-lwt-rf3")
}
pub(crate) fn open_write_rf3(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Write, "cassandra-write-rf3")
}
pub(crate) fn open_seed_rf3(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Flavor::Seed, "cassandra-seed-rf3")
}

/// cassandra-seed's table TTL for a lease: whole seconds, at least 2 (a cell lives
/// at least TTL - 1 s, which the lease it reports must cover).
fn seed_ttl(lease: Duration) -> i32 {
    (lease.as_secs_f64().ceil() as i32).max(2)
}

/// How long the post's `tryLock(timeout, unit)` spins for a scenario's wait: it
/// compares the elapsed *seconds* with `timeout` whatever the unit, and a wait
/// that is not whole seconds is written in milliseconds.
fn seed_spin(wait: Duration) -> Duration {
    if wait.subsec_nanos() == 0 { wait } else { Duration::from_secs(wait.as_millis() as u64) }
}

/// The driver's error, sorted the way the harness records it.
fn classify(e: ExecutionError) -> BackendError {
    match &e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => match db {
            DbError::WriteTimeout { .. } | DbError::ReadTimeout { .. } | DbError::WriteFailure { .. } => {
                BackendError::Unknown(e.to_string())
            }
            DbError::Unavailable { .. } | DbError::Overloaded | DbError::IsBootstrapping => {
                BackendError::Unavailable(e.to_string())
            }
            DbError::SyntaxError | DbError::Invalid | DbError::Unauthorized | DbError::ConfigError => {
                BackendError::Config(e.to_string())
            }
            _ => BackendError::Unknown(e.to_string()),
        },
        ExecutionError::BadQuery(_) | ExecutionError::PrepareError(_) => BackendError::Config(e.to_string()),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Unknown(e.to_string()),
    }
}

fn ttl_for(lease: Duration) -> i32 {
    (lease.as_secs_f64().ceil() as i32).max(1) + 1
}

impl Cassandra {
    fn serial() -> SerialConsistency {
        match std::env::var("LOCKBENCH_CASSANDRA_SERIAL").as_deref() {
            Ok("local") => SerialConsistency::LocalSerial,
            _ => SerialConsistency::Serial,
        }
    }

    async fn connect(&self) -> Result<Arc<Inner>> {
        let eps = self.endpoints.iter().map(|e| Endpoint::from_env(e)).collect::<Result<Vec<_>>>()?;
        let shown = eps.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(",");
        let mut builder =
            SessionBuilder::new().known_nodes(eps.iter().map(Endpoint::addr)).connection_timeout(CONNECT_TIMEOUT);
        if let Some(e) = eps.iter().find(|e| e.password().is_some() || e.user.is_some()) {
            builder = builder.user(e.user.as_deref().unwrap_or(""), e.password().unwrap_or(""));
        }
        // The driver's connection timeout covers opening a connection, not the
        // first metadata fetch after it: a node that accepts and never answers
        // would hold `build` forever. One deadline covers the whole set-up.
        let db = match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
            Ok(r) => {
                r.map_err(|e| BackendError::Unavailable(format!("cassandra at {shown}: {}", redact(&e.to_string()))))?
            }
            Err(_) => {
                return Err(BackendError::Unavailable(format!(
                    "cassandra at {shown}: no answer within {CONNECT_TIMEOUT:?} (connection and first metadata fetch)"
                )));
            }
        };
        // Replicas: one per contact point given, up to three, each replication
        // factor its keyspace (`lockbench`, `lockbench_rf3`): on a cluster that
        // runs both, a backend never finds the other's keyspace with its factor.
        let rf = self.endpoints.len().min(3);
        let ks = if rf == 1 { "lockbench".to_owned() } else { format!("lockbench_rf{rf}") };
        let ddl = [
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
            ),
            "CREATE TABLE IF NOT EXISTS locks (key text PRIMARY KEY, owner bigint)".into(),
            "CREATE TABLE IF NOT EXISTS locks_fenced (key text PRIMARY KEY, owner bigint)".into(),
            "CREATE TABLE IF NOT EXISTS fence (key text PRIMARY KEY, n bigint)".into(),
            format!(
                "CREATE TABLE IF NOT EXISTS naive_locks (key text PRIMARY KEY, owner bigint) WITH default_time_to_live = {NAIVE_TTL_S}"
            ),
            "CREATE TABLE IF NOT EXISTS writes (key text PRIMARY KEY, owner bigint)".into(),
        ];
        for (i, q) in ddl.iter().enumerate() {
            db.query_unpaged(q.as_str(), &[]).await.map_err(|e| BackendError::Config(format!("{q}: {e}")))?;
            if i == 0 {
                // Every statement from here on names its table alone.
                db.use_keyspace(&ks, true).await.map_err(|e| BackendError::Config(format!("USE {ks}: {e}")))?;
            }
        }
        // Each flavor its own table, so that backends sharing a node never see
        // each other's locks.
        let lwt = |t: &str| {
            (
                t.to_owned(),
                format!("INSERT INTO {t} (key, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?"),
                format!("DELETE FROM {t} WHERE key = ? IF owner = ?"),
                format!("UPDATE {t} USING TTL ? SET owner = ? WHERE key = ? IF owner = ?"),
            )
        };
        let plain = |t: &str, a: &str, r: &str, n: &str| (t.to_owned(), a.to_owned(), r.to_owned(), n.to_owned());
        let (table, acquire, release, renew) = match self.flavor {
            Flavor::Lwt => lwt("locks"),
            Flavor::LwtFenced => lwt("locks_fenced"),
            Flavor::Naive => plain(
                "naive_locks",
                "INSERT INTO naive_locks (key, owner) VALUES (?, ?)",
                "DELETE FROM naive_locks WHERE key = ?",
                "INSERT INTO naive_locks (key, owner) VALUES (?, ?)",
            ),
            // Its own statements are made on the first acquire (seed_statements).
            Flavor::Seed => plain(
                "naive_locks",
                "SELECT owner FROM naive_locks WHERE key = ?",
                "SELECT owner FROM naive_locks WHERE key = ?",
                "SELECT owner FROM naive_locks WHERE key = ?",
            ),
            Flavor::Write => plain(
                "writes",
                "INSERT INTO writes (key, owner) VALUES (?, ?) USING TTL ?",
                "DELETE FROM writes WHERE key = ?",
                "INSERT INTO writes (key, owner) VALUES (?, ?) USING TTL ?",
            ),
        };
        let read_owner = format!("SELECT owner FROM {table} WHERE key = ?");
        let serial = Self::serial();
        let prep = |q: String, serial_read: bool| {
            let db = &db;
            async move {
                let mut p = db.prepare(q.as_str()).await.map_err(|e| BackendError::Config(format!("{q}: {e}")))?;
                p.set_consistency(if serial_read {
                    match serial {
                        SerialConsistency::LocalSerial => Consistency::LocalSerial,
                        SerialConsistency::Serial => Consistency::Serial,
                    }
                } else {
                    Consistency::Quorum
                });
                p.set_serial_consistency(Some(serial));
                p.set_request_timeout(Some(REQUEST_TIMEOUT));
                Ok::<_, BackendError>(p)
            }
        };
        let serial_reads = matches!(self.flavor, Flavor::Lwt | Flavor::LwtFenced);
        let inner = Inner {
            acquire: prep(acquire, false).await?,
            release: prep(release, false).await?,
            renew: prep(renew, false).await?,
            read_owner: prep(read_owner, serial_reads).await?,
            fence_read: prep("SELECT n FROM fence WHERE key = ?".into(), true).await?,
            fence_init: prep("INSERT INTO fence (key, n) VALUES (?, 1) IF NOT EXISTS".into(), false).await?,
            fence_next: prep("UPDATE fence SET n = ? WHERE key = ? IF n = ?".into(), false).await?,
            seed: OnceCell::new(),
            db,
        };
        Ok(Arc::new(inner))
    }
}

#[async_trait]
impl LockBackend for Cassandra {
    fn name(&self) -> &str {
        self.name
    }
    fn capabilities(&self) -> Capabilities {
        let unsafe_ = matches!(self.flavor, Flavor::Naive | Flavor::Write | Flavor::Seed);
        Capabilities {
            lease: true,
            // The post's lock has no renew.
            renew: self.flavor != Flavor::Seed,
            fencing: self.flavor == Flavor::LwtFenced,
            multi_process: true,
            naive: unsafe_,
            // TTL = ceil(lease) + 1 whole seconds.
            expiry_slack: Duration::from_secs(2),
            ..Default::default()
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let inner = self.inner.get_or_try_init(|| self.connect()).await?.clone();
        Ok(Box::new(Session { inner, flavor: self.flavor, clock: self.clock.clone(), sent: Default::default() }))
    }
}

struct Session {
    inner: Arc<Inner>,
    flavor: Flavor,
    clock: Clock,
    /// CQL requests this session sent (the driver's own retries not counted).
    sent: std::sync::atomic::AtomicU64,
}

/// The `[applied]` column of a conditional statement's answer.
fn applied(r: scylla::response::query_result::QueryResult) -> Result<bool> {
    let rows = r.into_rows_result().map_err(|e| BackendError::Unknown(format!("LWT answer without rows: {e}")))?;
    let row = rows.maybe_first_row::<Row>().map_err(|e| BackendError::Unknown(e.to_string()))?;
    match row.and_then(|r| r.columns.into_iter().next().flatten()) {
        Some(CqlValue::Boolean(b)) => Ok(b),
        other => Err(BackendError::Unknown(format!("LWT answer without [applied]: {other:?}"))),
    }
}

/// The first column of the first row, as a bigint, if any.
fn first_bigint(r: scylla::response::query_result::QueryResult) -> Result<Option<i64>> {
    let rows = r.into_rows_result().map_err(|e| BackendError::Unknown(e.to_string()))?;
    let row = rows.maybe_first_row::<Row>().map_err(|e| BackendError::Unknown(e.to_string()))?;
    Ok(match row.and_then(|r| r.columns.into_iter().next().flatten()) {
        Some(CqlValue::BigInt(n)) => Some(n),
        _ => None,
    })
}

impl Session {
    /// One prepared statement, counted.
    async fn exec(
        &self,
        stmt: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> std::result::Result<scylla::response::query_result::QueryResult, ExecutionError> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.db.execute_unpaged(stmt, values).await
    }

    /// cassandra-seed's table for this lease's TTL, and its acquire and release.
    async fn seed_statements(&self, lease: Duration) -> Result<&(i32, PreparedStatement, PreparedStatement)> {
        let ttl = seed_ttl(lease);
        let got = self
            .inner
            .seed
            .get_or_try_init(|| async {
                let t = format!("lock_requests_ttl{ttl}");
                let ddl = format!(
                    "CREATE TABLE IF NOT EXISTS {t} (resource_id text PRIMARY KEY, lock_status text, created_on timestamp) \
                     WITH default_time_to_live = {ttl}"
                );
                self.inner.db.query_unpaged(ddl.as_str(), &[]).await.map_err(|e| BackendError::Config(format!("{ddl}: {e}")))?;
                // On a ring, another client process may have made the table through
                // another node a moment ago (IF NOT EXISTS then changes nothing here,
                // and the driver does not wait): wait until every node has the same
                // schema before preparing on any of them.
                let agreed = tokio::time::timeout(CONNECT_TIMEOUT, self.inner.db.await_schema_agreement()).await;
                if !matches!(agreed, Ok(Ok(_))) {
                    return Err(BackendError::Unavailable(format!("{ddl}: the nodes did not agree on the schema")));
                }
                let prep = |q: String| async move {
                    let mut p = self.inner.db.prepare(q.as_str()).await.map_err(|e| BackendError::Config(format!("{q}: {e}")))?;
                    p.set_consistency(Consistency::Quorum);
                    p.set_serial_consistency(Some(Cassandra::serial()));
                    p.set_request_timeout(Some(REQUEST_TIMEOUT));
                    Ok::<_, BackendError>(p)
                };
                let acquire = prep(format!(
                    "INSERT INTO {t} (resource_id, lock_status, created_on) VALUES (?, 'LOCKED', ?) IF NOT EXISTS"
                ))
                .await?;
                let release = prep(format!("DELETE FROM {t} WHERE resource_id = ? IF EXISTS")).await?;
                Ok::<_, BackendError>((ttl, acquire, release))
            })
            .await?;
        if got.0 != ttl {
            return Err(BackendError::Config(format!(
                "cassandra-seed: its table's TTL is {} s; a lease of {lease:?} asks for {ttl} s (one lease per run)",
                got.0
            )));
        }
        Ok(got)
    }

    /// The post's acquire: one INSERT IF NOT EXISTS. The lease it can promise is
    /// the table's TTL less the second a cell may lose to whole-second expiry.
    async fn seed_insert(&self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let (ttl, acquire, _) = self.seed_statements(lease).await?;
        let now = self.clock.now_ns();
        let created_on = scylla::value::CqlTimestamp(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
        );
        if !applied(self.exec(acquire, (key, created_on)).await.map_err(classify)?)? {
            return Ok(None);
        }
        let credited = Duration::from_secs((*ttl - 1) as u64);
        Ok(Some(Lease {
            key: key.to_owned(),
            owner: new_owner(),
            fencing_token: None,
            granted_at: now,
            expires_at: now + credited.as_nanos() as u64,
        }))
    }

    async fn owner_now(&self, key: &str) -> Result<Option<i64>> {
        first_bigint(self.exec(&self.inner.read_owner, (key,)).await.map_err(classify)?)
    }

    /// Advance the key's fencing counter by one with compare-and-set; the new value.
    async fn next_token(&self, key: &str) -> Result<u64> {
        for _ in 0..100 {
            let cur = first_bigint(self.exec(&self.inner.fence_read, (key,)).await.map_err(classify)?)?;
            let done = match cur {
                None => applied(self.exec(&self.inner.fence_init, (key,)).await.map_err(classify)?)?.then_some(1),
                Some(n) => applied(self.exec(&self.inner.fence_next, (n + 1, key, n)).await.map_err(classify)?)?
                    .then_some(n + 1),
            };
            if let Some(t) = done {
                return Ok(t as u64);
            }
        }
        Err(BackendError::Unknown("fencing counter: 100 compare-and-set attempts lost".into()))
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let r = self.inner.db.query_unpaged("SELECT release_version FROM system.local", ()).await.map_err(classify)?;
        let rows = r.into_rows_result().map_err(|e| BackendError::Rejected(e.to_string()))?;
        let v = rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(|e| BackendError::Rejected(e.to_string()))?
            .and_then(|(v,)| v);
        Ok(v.map(|v| format!("Cassandra {v}")))
    }

    /// A read of `system.local` (every node has it; nothing of ours changes).
    async fn ping(&mut self) -> Result<()> {
        let q = self.inner.db.query_unpaged("SELECT release_version FROM system.local", &[]);
        match tokio::time::timeout(REQUEST_TIMEOUT, q).await {
            Ok(r) => r.map(|_| ()).map_err(classify),
            Err(_) => {
                Err(BackendError::Unknown(format!("no answer to a read of system.local within {REQUEST_TIMEOUT:?}")))
            }
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let owner = new_owner();
        let now = self.clock.now_ns();
        let grant = |fencing_token| Lease {
            key: key.to_owned(),
            owner,
            fencing_token,
            granted_at: now,
            expires_at: now + lease.as_nanos() as u64,
        };
        let ttl = ttl_for(lease);
        match self.flavor {
            Flavor::Seed => self.seed_insert(key, lease).await,
            Flavor::Lwt | Flavor::LwtFenced => {
                let got = match self.exec(&self.inner.acquire, (key, owner as i64, ttl)).await {
                    Ok(r) => applied(r)?,
                    Err(e) => {
                        let err = classify(e);
                        if !err.is_indeterminate() {
                            return Err(err);
                        }
                        // Outcome unknown: a SERIAL read finishes any Paxos round
                        // in flight, then says whose the key is. Under contention
                        // (several clients' rounds preempting each other) the read
                        // can fail fast too: it is asked again, 50 then 100 ms
                        // later, while less than a second has gone since the first
                        // read began (a read that timed out uses that up: no
                        // quorum answers another either), before the outcome stays
                        // unknown.
                        let (t0, mut pause) = (std::time::Instant::now(), Duration::from_millis(50));
                        loop {
                            match self.owner_now(key).await {
                                Ok(o) => break o == Some(owner as i64),
                                Err(e)
                                    if e.is_indeterminate()
                                        && pause <= Duration::from_millis(100)
                                        && t0.elapsed() < Duration::from_secs(1) =>
                                {
                                    tokio::time::sleep(pause).await;
                                    pause *= 2;
                                }
                                Err(_) => return Err(err),
                            }
                        }
                    }
                };
                if !got {
                    return Ok(None);
                }
                let token = if self.flavor == Flavor::LwtFenced { Some(self.next_token(key).await?) } else { None };
                Ok(Some(grant(token)))
            }
            Flavor::Naive => {
                // Check, then act: two clients can both see the key free.
                if self.owner_now(key).await?.is_some() {
                    return Ok(None);
                }
                self.exec(&self.inner.acquire, (key, owner as i64)).await.map_err(classify)?;
                Ok(Some(grant(None)))
            }
            Flavor::Write => {
                self.exec(&self.inner.acquire, (key, owner as i64, ttl)).await.map_err(classify)?;
                Ok(Some(grant(None)))
            }
        }
    }

    /// The post's `tryLock`: the INSERT again and again, no pause, while the
    /// elapsed whole seconds are below its timeout (see [`seed_spin`]).
    async fn acquire(&mut self, key: &str, lease: Duration, wait: &crate::Wait) -> Result<Option<Lease>> {
        if self.flavor != Flavor::Seed {
            return crate::poll_acquire(self, key, lease, wait).await;
        }
        let spin = seed_spin(wait.max);
        let t0 = std::time::Instant::now();
        loop {
            if let Some(l) = self.seed_insert(key, lease).await? {
                return Ok(Some(l));
            }
            if t0.elapsed().as_secs() >= spin.as_secs().max(1) {
                return Ok(None);
            }
        }
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let (key, owner) = (lease.key.as_str(), lease.owner as i64);
        match self.flavor {
            Flavor::Seed => Err(BackendError::Rejected("cassandra-seed has no renew".into())),
            Flavor::Lwt | Flavor::LwtFenced => {
                applied(self.exec(&self.inner.renew, (ttl_for(extend), owner, key, owner)).await.map_err(classify)?)
            }
            Flavor::Naive => {
                self.exec(&self.inner.renew, (key, owner)).await.map_err(classify)?;
                Ok(true)
            }
            Flavor::Write => {
                self.exec(&self.inner.renew, (key, owner, ttl_for(extend))).await.map_err(classify)?;
                Ok(true)
            }
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        match self.flavor {
            Flavor::Lwt | Flavor::LwtFenced => applied(
                self.exec(&self.inner.release, (lease.key.as_str(), lease.owner as i64)).await.map_err(classify)?,
            ),
            Flavor::Naive | Flavor::Write => {
                self.exec(&self.inner.release, (lease.key.as_str(),)).await.map_err(classify)?;
                Ok(true)
            }
            // Whoever's row it is: the post checks no owner.
            Flavor::Seed => {
                // The statements exist: this lease came from an acquire.
                let (_, _, release) = self
                    .inner
                    .seed
                    .get()
                    .ok_or_else(|| BackendError::Config("cassandra-seed: a release before any acquire".into()))?;
                applied(self.exec(release, (lease.key.as_str(),)).await.map_err(classify)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_lock_keeps_the_posts_units_and_ttls() {
        // tryLock(10, MILLISECONDS) spins for 10 s; whole seconds stay seconds.
        assert_eq!(seed_spin(Duration::from_millis(10)), Duration::from_secs(10));
        assert_eq!(seed_spin(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(seed_spin(Duration::from_millis(1500)), Duration::from_secs(1500));
        assert_eq!(seed_ttl(Duration::from_millis(300)), 2);
        assert_eq!(seed_ttl(Duration::from_millis(2500)), 3);
    }

    #[test]
    fn ttl_covers_the_lease_despite_whole_second_expiry() {
        assert_eq!(ttl_for(Duration::from_millis(300)), 2);
        assert_eq!(ttl_for(Duration::from_secs(1)), 2);
        assert_eq!(ttl_for(Duration::from_millis(1001)), 3);
    }
}
