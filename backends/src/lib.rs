//! Distributed lock backends behind one contract.
//!
//! This crate is the "client" room of lockbench: it knows how to take, renew and
//! release a lock on each backend, and how the servers behind a backend come to
//! exist (`servers`). It knows nothing of scenarios, histories, checkers or
//! reports: the harness talks to a backend only through [`LockBackend`] and
//! [`LockSession`].
//!
//! A new backend is one new module plus one entry in [`registry`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod clock;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod inprocess;
#[cfg(feature = "momento")]
pub mod momento;
#[cfg(feature = "postgres")]
pub mod pgwire;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod redlock;
#[cfg(feature = "redis")]
pub mod resp;
#[cfg(feature = "redis")]
pub mod sentinel;
pub mod servers;
pub mod sqlite;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

pub use clock::Clock;

/// An owner id: unique per grant, across every process of a run.
pub type Owner = u64;

/// One granted lock, as the client that holds it sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The key this lease is on.
    pub key: String,
    /// Unique per grant (never reused, also across processes), so that release and
    /// renew can be owner-checked.
    pub owner: Owner,
    /// A number that grows with every grant of this key, where the backend has
    /// [`Capabilities::fencing`].
    pub fencing_token: Option<u64>,
    /// When the acquire was invoked, on the client's [`Clock`] (ns).
    pub granted_at: u64,
    /// The client's own, conservative estimate of when the lease ends, on the
    /// client's [`Clock`] (ns): measured from the invocation, not the reply, because
    /// the server may have started the lease's clock at any point in between.
    pub expires_at: u64,
}

impl Lease {
    /// A grant of `key` whose lease of `lease` counts from `at` (the client's clock,
    /// taken before the request left).
    pub fn counted_from(key: &str, owner: Owner, fencing_token: Option<u64>, at: u64, lease: Duration) -> Lease {
        Lease {
            key: key.to_owned(),
            owner,
            fencing_token,
            granted_at: at,
            expires_at: at.saturating_add(lease.as_nanos() as u64),
        }
    }
}

/// What a backend can do; tests and faults are chosen from these, never from names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Grants expire on their own after the lease (crashed holders free the key).
    pub lease: bool,
    /// `renew` extends a held lease.
    pub renew: bool,
    /// Grants carry a fencing token that grows per key.
    pub fencing: bool,
    /// `acquire` waits natively (watch, queue) instead of polling `try_acquire`.
    pub blocking_wait: bool,
    /// Sessions in several OS processes exclude each other (a real shared server or
    /// file, not one process's memory).
    pub multi_process: bool,
    /// Deliberately unsafe: the recipe as a blog post wrote it. The checker is
    /// expected to catch it.
    pub naive: bool,
    /// How long past its lease an abandoned key may stay blocked: expiry in whole
    /// seconds (Cassandra TTLs) rounds up. Zero for exact expiry.
    pub expiry_slack: std::time::Duration,
    /// A live session keeps its locks by itself (ZooKeeper: the session's own
    /// pings): only a stopped or dead holder's lease runs out.
    pub live_session_holds: bool,
}

/// Why an operation did not succeed. The difference between `Unknown` and the rest
/// is the difference between "it did not happen" and "it may have happened".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The outcome is unknown: a timeout or a dropped connection after the request
    /// may have reached the server. The grant (or release) may have happened.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The backend could not be reached, or refused before doing anything: the
    /// operation certainly did not happen.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The backend answered that it will not do this (bad request, conflict that
    /// is not a plain "held by someone else").
    #[error("rejected: {0}")]
    Rejected(String),
    /// Misconfiguration: a bad endpoint, a missing server program.
    #[error("configuration: {0}")]
    Config(String),
}

impl BackendError {
    /// True when the operation may have taken effect despite the error.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, BackendError::Unknown(_))
    }
    /// True when trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BackendError::Unknown(_) | BackendError::Unavailable(_))
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A lock service: one per run and backend, shared by every client of the run.
#[async_trait]
pub trait LockBackend: Send + Sync {
    /// The registry name: "inprocess", "sqlite", "redis-naive", ...
    fn name(&self) -> &str;
    /// What this backend can do. Must not change during a run.
    fn capabilities(&self) -> Capabilities;
    /// One client's connection(s). Sessions are independent: two sessions of one
    /// backend exclude each other exactly as two machines would. Dropping a session
    /// without releasing is how a crashed holder looks to the backend.
    async fn session(&self) -> Result<Box<dyn LockSession>>;
}

/// One client's handle on a backend.
#[async_trait]
pub trait LockSession: Send {
    /// Take `key` for `lease` if it is free (or its last grant expired), without
    /// waiting. `Ok(None)`: someone else holds it. Must not block on the holder.
    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>>;

    /// Take `key`, waiting up to `wait.max` for it. `Ok(None)`: the wait ran out.
    ///
    /// The default polls [`LockSession::try_acquire`] with the jittered exponential
    /// backoff of `wait`; backends with a native wait
    /// ([`Capabilities::blocking_wait`]) override it. An `Unknown` error ends the
    /// wait at once: the caller must record that the grant may exist.
    async fn acquire(&mut self, key: &str, lease: Duration, wait: &Wait) -> Result<Option<Lease>> {
        poll_acquire(self, key, lease, wait).await
    }

    /// Ask the server something harmless and wait for its answer: a probe that the
    /// session can reach, authenticate to and be answered by every server it needs.
    ///
    /// Contract:
    /// - `Ok(())` only when the server really answered (for Redlock: a majority of
    ///   its instances); a backend without a server (inprocess) answers from its own
    ///   state, a file-based one (sqlite) runs a trivial query on its file.
    /// - It never changes lock state, and never waits longer than the backend's own
    ///   deadlines (connection and response timeouts): a server that accepts and
    ///   never answers gives an error, not a hang.
    /// - Errors are classified like every other operation's: `Unavailable` when
    ///   nothing reached the server or it refused (connection refused,
    ///   authentication failed), `Unknown` when it was sent and not answered. The
    ///   message says what the server said and names no password.
    ///
    /// There is deliberately no default: a default `Ok(())` would be a lie.
    async fn ping(&mut self) -> Result<()>;

    /// Extend a lease this session holds to `extend` from now. Owner-checked:
    /// `Ok(false)` when the lease is no longer this owner's (expired and taken, or
    /// released). Requires [`Capabilities::renew`].
    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool>;

    /// Give a lease back. Owner-checked (compare-and-delete): must never free a key
    /// that another owner holds, except in a `*-naive` backend. `Ok(false)`: it was
    /// no longer ours.
    async fn release(&mut self, lease: &Lease) -> Result<bool>;

    /// Requests this session has sent to its servers so far (every instance's, for
    /// Redlock), or `None` where there is no server or the client cannot count
    /// them. The harness records the difference across each operation.
    fn requests_sent(&self) -> Option<u64> {
        None
    }

    /// The server's own version, for the report: Redis's `redis_version`,
    /// Cassandra's `release_version`, SQLite's `sqlite_version()`; not the version of
    /// the program's wrapper or runtime. `Ok(None)` where there is nothing to ask
    /// (the in-process table).
    async fn server_version(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The default wait of [`LockSession::acquire`]: poll `try_acquire` with the
/// jittered exponential backoff of `wait` until it grants or the wait runs out.
/// For backends whose native wait does not apply to every case.
pub async fn poll_acquire<S: LockSession + ?Sized>(
    s: &mut S,
    key: &str,
    lease: Duration,
    wait: &Wait,
) -> Result<Option<Lease>> {
    let clock = Clock::monotonic();
    let deadline = clock.now_ns() + wait.max.as_nanos() as u64;
    let mut backoff = Backoff::new(wait.backoff_min, wait.backoff_max);
    loop {
        match s.try_acquire(key, lease).await {
            Ok(Some(l)) => return Ok(Some(l)),
            // Unavailable: the attempt certainly did nothing, so polling on is safe.
            Ok(None) | Err(BackendError::Unavailable(_)) if clock.now_ns() < deadline => {}
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_sub(clock.now_ns());
        tokio::time::sleep(backoff.next().min(Duration::from_nanos(left))).await;
    }
}

/// How `acquire` waits for a held key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Give up after this long (zero: one attempt).
    pub max: Duration,
    /// Polling backoff starts here and doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Wait {
    pub fn new(max: Duration) -> Self {
        Wait { max, backoff_min: Duration::from_millis(1), backoff_max: Duration::from_millis(32) }
    }
}

/// Jittered exponential backoff, from `start` doubling to `cap`.
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(start: Duration, cap: Duration) -> Self {
        // A zero start would never grow: poll no faster than every 10 µs.
        let next = start.max(Duration::from_micros(10));
        Backoff { next, cap: cap.max(next) }
    }
    /// The next delay: uniform in [d/2, d], then d doubles up to the cap. The jitter
    /// keeps 64 clients from retrying in lock step.
    pub fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.cap);
        let half = d / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

static OWNER_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new owner id, unique across the processes of one machine: the pid in the high
/// bits, a process-wide counter in the low bits.
pub fn new_owner() -> Owner {
    // The pid, read once: `getpid` is a system call, and this runs on every acquire.
    static PID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(|| std::process::id() as u64 & 0x3f_ffff); // Linux pids fit in 22 bits
    (pid << 42) | (OWNER_SEQ.fetch_add(1, Ordering::Relaxed) + 1)
}

/// Where a backend finds what it needs: a scratch directory for file-based
/// backends, the endpoints of its servers for the rest.
#[derive(Clone, Default)]
pub struct BackendEnv {
    /// A directory of this run's own (sqlite puts its database file here).
    pub dir: PathBuf,
    /// `host:port` of each server, in order (Redlock uses them all).
    pub endpoints: Vec<String>,
    /// The clock clients read lease time from.
    pub clock: Clock,
    /// The client this instance is opened for, when each client opens its own
    /// (worker processes, per-client proxies or clocks); None when one instance
    /// serves every client.
    pub client: Option<u32>,
}

impl fmt::Debug for BackendEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendEnv").field("dir", &self.dir).field("endpoints", &self.endpoints).finish()
    }
}

/// What a backend needs before it can be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: runs inside the harness (inprocess) or on a local file (sqlite).
    Embedded,
    /// `n` servers of the given kind, from a server provider.
    Servers { kind: servers::ServerKind, n: usize },
    /// A hosted service with no local server (Momento), reached with the
    /// credentials in the environment variable `var`: no server faults, no
    /// client-side network faults (its traffic goes over TLS to the service).
    Service { var: &'static str },
}

/// One entry of the registry.
pub struct BackendInfo {
    pub name: &'static str,
    pub needs: Needs,
    /// One line for `lockbench list`.
    pub about: &'static str,
    /// Compiled in (its cargo feature is on).
    pub compiled: bool,
    open: fn(&BackendEnv) -> Result<Arc<dyn LockBackend>>,
}

impl BackendInfo {
    /// Open the backend. Servers, if any, must already answer at `env.endpoints`.
    pub fn open(&self, env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
        if !self.compiled {
            return Err(BackendError::Config(format!(
                "backend {} is not compiled in: rebuild with its cargo feature",
                self.name
            )));
        }
        (self.open)(env)
    }
    pub fn is_embedded(&self) -> bool {
        self.needs == Needs::Embedded
    }
}

#[allow(dead_code)] // used when a backend feature is off
fn not_compiled(_: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    Err(BackendError::Config("not compiled in".into()))
}

macro_rules! feature_open {
    ($feat:literal, $path:path) => {{
        #[cfg(feature = $feat)]
        let f: fn(&BackendEnv) -> Result<Arc<dyn LockBackend>> = $path;
        #[cfg(not(feature = $feat))]
        let f: fn(&BackendEnv) -> Result<Arc<dyn LockBackend>> = not_compiled;
        (cfg!(feature = $feat), f)
    }};
}

/// Every backend lockbench knows, embedded ones first.
pub fn registry() -> Vec<BackendInfo> {
    let (redis_on, redis_open) = feature_open!("redis", redis::open_safe);
    let (_, redis_naive_open) = feature_open!("redis", redis::open_naive);
    let (_, redlock_open) = feature_open!("redis", redlock::open);
    let (_, sentinel_open) = feature_open!("redis", sentinel::open_plain);
    let (_, sentinel_wait_open) = feature_open!("redis", sentinel::open_wait);
    let (cass_on, cass_lwt) = feature_open!("cassandra", cassandra::open_lwt);
    let (_, cass_lwt_v1) = feature_open!("cassandra", cassandra::open_lwt_v1);
    let (_, cass_fenced) = feature_open!("cassandra", cassandra::open_lwt_fenced);
    let (_, cass_naive) = feature_open!("cassandra", cassandra::open_naive);
    let (_, cass_write) = feature_open!("cassandra", cassandra::open_write);
    let (_, cass_seed) = feature_open!("cassandra", cassandra::open_seed);
    let (_, cass_lwt_rf3) = feature_open!("cassandra", cassandra::open_lwt_rf3);
    let (_, cass_write_rf3) = feature_open!("cassandra", cassandra::open_write_rf3);
    let (_, cass_seed_rf3) = feature_open!("cassandra", cassandra::open_seed_rf3);
    let (pg_on, pg_advisory) = feature_open!("postgres", postgres::open_advisory);
    let (_, pg_lease) = feature_open!("postgres", postgres::open_lease);
    let (_, pg_pooled) = feature_open!("postgres", postgres::open_pooled);
    let (etcd_on, etcd_lock) = feature_open!("etcd", etcd::open_lock);
    let (_, etcd_unfenced) = feature_open!("etcd", etcd::open_unfenced);
    let (_, etcd_txn) = feature_open!("etcd", etcd::open_txn);
    let (zk_on, zk_mutex) = feature_open!("zookeeper", zookeeper::open_mutex);
    let (_, zk_semaphore) = feature_open!("zookeeper", zookeeper::open_semaphore);
    let (ddb_on, ddb_lock_client) = feature_open!("dynamodb", dynamodb::open_lock_client);
    let (_, ddb_hold) = feature_open!("dynamodb", dynamodb::open_lock_client_hold);
    let (_, ddb_cas) = feature_open!("dynamodb", dynamodb::open_cas);
    let (momento_on, momento_open) = feature_open!("momento", momento::open);
    use servers::ServerKind::{
        Cassandra, CassandraPaxosV1, Dynamodb, Etcd, Pgbouncer, Postgres, Redis, RedisSentinel, Zookeeper,
    };
    vec![
        BackendInfo {
            name: "inprocess",
            needs: Needs::Embedded,
            about: "lease table in the harness's memory (the reference: correct by construction)",
            compiled: true,
            open: inprocess::open,
        },
        BackendInfo {
            name: "sqlite",
            needs: Needs::Embedded,
            about: "lock table in one SQLite file, WAL, BEGIN IMMEDIATE",
            compiled: true,
            open: sqlite::open_safe,
        },
        BackendInfo {
            name: "sqlite-naive",
            needs: Needs::Embedded,
            about: "UNSAFE on purpose: SELECT then INSERT, DELETE without owner check",
            compiled: true,
            open: sqlite::open_naive,
        },
        BackendInfo {
            name: "redis",
            needs: Needs::Servers { kind: Redis, n: 1 },
            about: "SET NX PX with an INCR fencing token in one script; Lua compare-and-delete",
            compiled: redis_on,
            open: redis_open,
        },
        BackendInfo {
            name: "redis-naive",
            needs: Needs::Servers { kind: Redis, n: 1 },
            about: "UNSAFE on purpose: SETNX then EXPIRE, DEL without owner check",
            compiled: redis_on,
            open: redis_naive_open,
        },
        BackendInfo {
            name: "redlock",
            needs: Needs::Servers { kind: Redis, n: 5 },
            about: "Redlock over 5 independent Redis servers (quorum 3), no fencing",
            compiled: redis_on,
            open: redlock_open,
        },
        BackendInfo {
            name: "redis-sentinel",
            needs: Needs::Servers { kind: RedisSentinel, n: 3 },
            about: "the redis lock on the primary Redis Sentinel names (1 primary, 2 replicas, 3 sentinels); \
                    no fencing (tokens do not survive a failover)",
            compiled: redis_on,
            open: sentinel_open,
        },
        BackendInfo {
            name: "redis-sentinel-wait",
            needs: Needs::Servers { kind: RedisSentinel, n: 3 },
            about: "redis-sentinel with WAIT 1 (a tenth of the lease) after each grant; released and failed \
                    when no replica acknowledges",
            compiled: redis_on,
            open: sentinel_wait_open,
        },
        BackendInfo {
            name: "cassandra-lwt",
            needs: Needs::Servers { kind: Cassandra, n: 1 },
            about: "Cassandra LWT (Paxos v2): INSERT IF NOT EXISTS USING TTL, DELETE IF owner; no fencing",
            compiled: cass_on,
            open: cass_lwt,
        },
        BackendInfo {
            name: "cassandra-lwt-v1",
            needs: Needs::Servers { kind: CassandraPaxosV1, n: 1 },
            about: "cassandra-lwt on a node with paxos_variant v1 (4 round trips per LWT)",
            compiled: cass_on,
            open: cass_lwt_v1,
        },
        BackendInfo {
            name: "cassandra-lwt-fenced",
            needs: Needs::Servers { kind: Cassandra, n: 1 },
            about: "cassandra-lwt plus a fencing token: a per-key counter advanced by CAS (2 more Paxos rounds a grant)",
            compiled: cass_on,
            open: cass_fenced,
        },
        BackendInfo {
            name: "cassandra-naive",
            needs: Needs::Servers { kind: Cassandra, n: 1 },
            about: "UNSAFE on purpose: SELECT then plain INSERT, DELETE without owner check, table default TTL",
            compiled: cass_on,
            open: cass_naive,
        },
        BackendInfo {
            name: "cassandra-write",
            needs: Needs::Servers { kind: Cassandra, n: 1 },
            about: "NOT A LOCK: one plain INSERT USING TTL, always granted: the cost an LWT is compared with",
            compiled: cass_on,
            open: cass_write,
        },
        BackendInfo {
            name: "cassandra-seed",
            needs: Needs::Servers { kind: Cassandra, n: 1 },
            about: "UNSAFE on purpose: the blog post's own code: INSERT IF NOT EXISTS, table TTL, DELETE IF EXISTS with no owner check, tryLock spinning",
            compiled: cass_on,
            open: cass_seed,
        },
        BackendInfo {
            name: "cassandra-lwt-rf3",
            needs: Needs::Servers { kind: Cassandra, n: 3 },
            about: "cassandra-lwt on three nodes, replication factor 3: QUORUM writes, SERIAL Paxos over 3 replicas",
            compiled: cass_on,
            open: cass_lwt_rf3,
        },
        BackendInfo {
            name: "cassandra-write-rf3",
            needs: Needs::Servers { kind: Cassandra, n: 3 },
            about: "NOT A LOCK: cassandra-write on three nodes, replication factor 3, at QUORUM",
            compiled: cass_on,
            open: cass_write_rf3,
        },
        BackendInfo {
            name: "cassandra-seed-rf3",
            needs: Needs::Servers { kind: Cassandra, n: 3 },
            about: "UNSAFE on purpose: cassandra-seed (the blog post's code) on three nodes, replication factor 3",
            compiled: cass_on,
            open: cass_seed_rf3,
        },
        BackendInfo {
            name: "postgres-advisory",
            needs: Needs::Servers { kind: Postgres, n: 1 },
            about: "PostgreSQL session advisory lock (pg_try_advisory_lock; native wait under lock_timeout); no lease, no fencing",
            compiled: pg_on,
            open: pg_advisory,
        },
        BackendInfo {
            name: "postgres-lease",
            needs: Needs::Servers { kind: Postgres, n: 1 },
            about: "PostgreSQL lease row: INSERT ON CONFLICT DO UPDATE WHERE expired, sequence fencing token, server clock",
            compiled: pg_on,
            open: pg_lease,
        },
        BackendInfo {
            name: "postgres-advisory-pooled",
            needs: Needs::Servers { kind: Pgbouncer, n: 1 },
            about: "UNSAFE on purpose: advisory locks through PgBouncer in transaction pooling mode",
            compiled: pg_on,
            open: pg_pooled,
        },
        BackendInfo {
            name: "etcd",
            needs: Needs::Servers { kind: Etcd, n: 3 },
            about: "etcd v3 lock service (Lock with a session lease, queued wait), revision as fencing token",
            compiled: etcd_on,
            open: etcd_lock,
        },
        BackendInfo {
            name: "etcd-unfenced",
            needs: Needs::Servers { kind: Etcd, n: 3 },
            about: "the etcd lock with no token on the guarded write (what Jepsen measured in etcd 3.4.3)",
            compiled: etcd_on,
            open: etcd_unfenced,
        },
        BackendInfo {
            name: "etcd-txn",
            needs: Needs::Servers { kind: Etcd, n: 3 },
            about: "etcd lease + txn If(CreateRevision(key) == 0) Then(Put(key, owner, lease)), polling",
            compiled: etcd_on,
            open: etcd_txn,
        },
        BackendInfo {
            name: "zookeeper",
            needs: Needs::Servers { kind: Zookeeper, n: 3 },
            about: "Curator's InterProcessMutex: ephemeral sequential node, watch the predecessor; session = lease, czxid as fencing token",
            compiled: zk_on,
            open: zk_mutex,
        },
        BackendInfo {
            name: "zookeeper-semaphore",
            needs: Needs::Servers { kind: Zookeeper, n: 3 },
            about: "Curator's InterProcessSemaphoreMutex: internal mutex, then one lease node; no fencing",
            compiled: zk_on,
            open: zk_semaphore,
        },
        BackendInfo {
            name: "dynamodb-lock-client",
            needs: Needs::Servers { kind: Dynamodb, n: 1 },
            about: "AWS's DynamoDB Lock Client algorithm: conditional put, record version number taken over after \
                    a whole unchanged lease; no fencing",
            compiled: ddb_on,
            open: ddb_lock_client,
        },
        BackendInfo {
            name: "dynamodb-lock-client-hold",
            needs: Needs::Servers { kind: Dynamodb, n: 1 },
            about: "UNSAFE under partitions: dynamodb-lock-client with holdLockOnServiceUnavailable (an unanswered \
                    heartbeat keeps the lock)",
            compiled: ddb_on,
            open: ddb_hold,
        },
        BackendInfo {
            name: "dynamodb-cas",
            needs: Needs::Servers { kind: Dynamodb, n: 1 },
            about: "DynamoDB conditional update with a per-key counter as fencing token, expiry on the item",
            compiled: ddb_on,
            open: ddb_cas,
        },
        BackendInfo {
            name: "momento",
            needs: Needs::Service { var: "MOMENTO_API_KEY" },
            about: "Momento's lock recipe on a hosted Momento cache: set_if_absent with TTL, check-then-act \
                    heartbeat and release; no fencing",
            compiled: momento_on,
            open: momento_open,
        },
    ]
}

/// Look a backend up by name.
pub fn lookup(name: &str) -> Option<BackendInfo> {
    registry().into_iter().find(|b| b.name == name)
}
