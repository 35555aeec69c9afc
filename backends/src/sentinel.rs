//! `redis-sentinel` and `redis-sentinel-wait`: the `redis` lock (SET NX PX and an
//! INCR in one script, Lua compare-and-delete) on whichever Redis server Redis
//! Sentinel names as the primary.
//!
//! How a session follows the primary, as Redisson's sentinel mode does: it asks a
//! Sentinel for the primary's address (`SENTINEL GET-MASTER-ADDR-BY-NAME`), asks
//! again every second (Redisson's `scanInterval` default) and after any request
//! that failed, and moves its connection when the answer changes. Session i asks
//! Sentinel i mod n first, the others only when that one does not answer. When a
//! partition leaves the Sentinels disagreeing (the old primary's own Sentinel is
//! cut off with it and still names it; the majority has promoted a replica), the
//! sessions follow different primaries, as the clients of one service do when
//! they listen to different Sentinels.
//!
//! Replication is asynchronous: a grant the primary acknowledged may not have
//! reached the replica that Sentinel promotes, which then grants the same key
//! again while the first holder's lease runs (Jepsen's 2013 Redis analysis;
//! the Redis documentation on Sentinel says the same). The INCR counter behind
//! `redis`'s fencing token is replicated the same way, so tokens can go backwards
//! across a failover: these backends claim no fencing.
//!
//! `redis-sentinel-wait` adds `WAIT 1 <a tenth of the lease>` after each grant:
//! when no replica acknowledges the grant in time, the session releases the key
//! (compare-and-delete) and the acquire fails with that reason. WAIT makes a write
//! known to one replica before the client goes on; it does not stop Sentinel from
//! promoting a replica that has not got it, nor the old primary from granting
//! while it cannot reach any replica (its WAIT then fails, and it releases).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::redis::{RESPONSE_TIMEOUT, Scripts, Session as Lock};
use crate::resp::{Conn, Reply};
use crate::servers::SENTINEL_MASTER;
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result};

/// How often a session asks its Sentinel which server is the primary.
pub const RESCAN: Duration = Duration::from_secs(1);

/// WAIT's timeout (ms): a tenth of the lease, within the connection's own
/// response timeout (past which the connection would be dropped and the grant
/// left held).
fn wait_ms(lease: Duration) -> u128 {
    (lease.as_millis() / 10).clamp(1, RESPONSE_TIMEOUT.as_millis() - 200)
}

/// `WAIT 1` after a `what` (grant, renewal) that just succeeded: did a replica
/// acknowledge it within [`wait_ms`] of `lease`? An error is an unknown outcome:
/// the write happened, whether a replica has it is not known.
async fn replicated(lock: &mut Lock, lease: Duration, what: &str) -> Result<bool> {
    let ms = wait_ms(lease).to_string();
    match lock.conn.call(&[b"WAIT", b"1", ms.as_bytes()]).await {
        Ok(Reply::Int(n)) => Ok(n >= 1),
        Ok(other) => Err(BackendError::Unknown(format!("WAIT 1 {ms} answered {other:?} after a {what}"))),
        Err(e) => Err(BackendError::Unknown(format!("WAIT 1 {ms} after a {what}: {e}"))),
    }
}

/// How long a Sentinel may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Sentinel {
    sentinels: Vec<String>,
    wait: bool,
    clock: Clock,
    scripts: Arc<Scripts>,
    /// Sessions opened so far (which Sentinel the next one asks first), counted
    /// from the client number when this instance is one client's own.
    opened: AtomicUsize,
}

fn open(env: &BackendEnv, wait: bool) -> Result<Arc<dyn LockBackend>> {
    if env.endpoints.is_empty() {
        return Err(BackendError::Config("redis-sentinel needs the Sentinels' endpoints".into()));
    }
    Ok(Arc::new(Sentinel {
        sentinels: env.endpoints.clone(),
        wait,
        clock: env.clock.clone(),
        scripts: Arc::new(Scripts::new()),
        opened: AtomicUsize::new(env.client.unwrap_or(0) as usize),
    }))
}

pub(crate) fn open_plain(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, false)
}

pub(crate) fn open_wait(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, true)
}

#[async_trait]
impl LockBackend for Sentinel {
    fn name(&self) -> &str {
        if self.wait { "redis-sentinel-wait" } else { "redis-sentinel" }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { lease: true, renew: true, fencing: false, multi_process: true, ..Default::default() }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let n = self.sentinels.len();
        let first = self.opened.fetch_add(1, Ordering::Relaxed) % n;
        let sentinels =
            (0..n).map(|k| Conn::new(&self.sentinels[(first + k) % n], ASK_TIMEOUT)).collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Session {
            at: self.sentinels.join(","),
            sentinels,
            wait: self.wait,
            clock: self.clock.clone(),
            scripts: self.scripts.clone(),
            on: None,
            asked: None,
            retired: 0,
        }))
    }
}

struct Session {
    /// The Sentinels' endpoints, for messages.
    at: String,
    /// Its own Sentinel first.
    sentinels: Vec<Conn>,
    wait: bool,
    clock: Clock,
    scripts: Arc<Scripts>,
    /// The primary it follows now (`host:port`) and the lock on it.
    on: Option<(String, Lock)>,
    /// When it last asked which server is the primary (None: ask before the next
    /// request).
    asked: Option<Instant>,
    /// Requests sent on connections to earlier primaries.
    retired: u64,
}

impl Session {
    /// The primary's address, from the first Sentinel that names one.
    async fn ask(&mut self) -> Result<String> {
        let mut why = Vec::new();
        for s in self.sentinels.iter_mut() {
            match s.call(&[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER.as_bytes()]).await {
                Ok(Reply::Array(Some(v))) => match &v[..] {
                    [Reply::Bulk(Some(h)), Reply::Bulk(Some(p))] => {
                        return Ok(format!("{}:{}", String::from_utf8_lossy(h), String::from_utf8_lossy(p)));
                    }
                    other => why.push(format!("answered {other:?}")),
                },
                Ok(Reply::Array(None)) => why.push(format!("monitors no primary named {SENTINEL_MASTER}")),
                Ok(other) => why.push(format!("answered {other:?}")),
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(BackendError::Unavailable(format!(
            "redis-sentinel at {}: no sentinel named the primary: {}",
            self.at,
            why.join("; ")
        )))
    }

    /// The lock on the primary, asking the Sentinel first when it is due. When no
    /// Sentinel answers, a session that has a primary keeps it.
    async fn lock(&mut self) -> Result<&mut Lock> {
        let due = self.on.is_none() || self.asked.is_none_or(|t| t.elapsed() >= RESCAN);
        if due {
            match self.ask().await {
                Ok(addr) => {
                    self.asked = Some(Instant::now());
                    if self.on.as_ref().map(|(a, _)| a) != Some(&addr) {
                        let conn = Conn::new(&addr, RESPONSE_TIMEOUT)?;
                        let old = self.on.replace((addr, Lock::new(conn, self.clock.clone(), self.scripts.clone())));
                        self.retired += old.map_or(0, |(_, l)| l.conn.sent);
                    }
                }
                Err(e) if self.on.is_none() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(&mut self.on.as_mut().expect("a primary").1)
    }

    /// After a failed request, ask again before the next one (the primary may have
    /// changed: a dropped connection, or READONLY from a demoted one).
    fn settle<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.asked = None;
        }
        r
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let r = self.lock().await?.server_version().await;
        self.settle(r)
    }

    async fn ping(&mut self) -> Result<()> {
        let r = self.lock().await?.ping().await;
        self.settle(r)
    }

    fn requests_sent(&self) -> Option<u64> {
        let asks: u64 = self.sentinels.iter().map(|s| s.sent).sum();
        Some(self.retired + asks + self.on.as_ref().map_or(0, |(_, l)| l.conn.sent))
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let wait = self.wait;
        let lock = self.lock().await?;
        let r = match lock.try_acquire(key, lease).await {
            Ok(Some(l)) if wait => match replicated(lock, lease, "grant").await {
                Ok(true) => Ok(Some(l)),
                Ok(false) => {
                    let ms = wait_ms(lease);
                    match lock.release(&l).await {
                        Ok(_) => Err(BackendError::Rejected(format!(
                            "WAIT 1 {ms}: no replica acknowledged the grant within {ms} ms; released"
                        ))),
                        Err(e) => Err(BackendError::Unknown(format!(
                            "WAIT 1 {ms}: no replica acknowledged the grant within {ms} ms; the release failed: {e}"
                        ))),
                    }
                }
                Err(e) => Err(e),
            },
            r => r,
        };
        // The token's counter is replicated like the lock (asynchronously): it goes
        // back after a failover, so it fences nothing and is not handed out.
        let r = r.map(|l| l.map(|l| Lease { fencing_token: None, ..l }));
        self.settle(r)
    }

    /// With WAIT, a renewal no replica acknowledged counts as lost: a promoted
    /// replica would let the key expire at the old time.
    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let wait = self.wait;
        let lock = self.lock().await?;
        let r = match lock.renew(lease, extend).await {
            Ok(true) if wait => replicated(lock, extend, "renewal").await,
            r => r,
        };
        self.settle(r)
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let r = self.lock().await?.release(lease).await;
        self.settle(r)
    }
}
