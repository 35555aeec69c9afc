//! `redlock`: the Redlock algorithm of the Redis documentation ("Distributed Locks
//! with Redis", distlock) over N independent Redis servers.
//!
//! 1. Take the current time.
//! 2. Try `SET key value NX PX ttl` with the same key and a random value on every
//!    instance, each with a timeout far below the TTL (so a dead instance costs
//!    little). The documentation describes this sequentially and suggests
//!    multiplexing; we send to all instances at once.
//! 3. The lock is acquired if a majority (N/2 + 1) said yes and the time elapsed is
//!    below the TTL. Its validity is TTL − elapsed − drift, with the documented
//!    clock drift allowance drift = TTL × 0.01 + 2 ms.
//! 4. On failure, unlock every instance (even those that seemed to say no: the
//!    reply may have been lost), and retry after a random delay (the default
//!    `acquire` loop's jittered backoff).
//!
//! Release and renew are owner-checked on every instance (the same Lua scripts as
//! `redis`). Redlock has no fencing token: `Capabilities::fencing` is false, and
//! Kleppmann's pause and clock-jump scenarios are exactly what it cannot survive.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::redis::{RESPONSE_TIMEOUT, Scripts, classify, connect, lock_key, owner_value};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

pub struct Redlock {
    endpoints: Vec<String>,
    clock: Clock,
    scripts: Arc<Scripts>,
}

pub(crate) fn open(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    if env.endpoints.len() < 3 {
        return Err(BackendError::Config(format!(
            "redlock needs at least 3 independent servers, got {}",
            env.endpoints.len()
        )));
    }
    Ok(Arc::new(Redlock {
        endpoints: env.endpoints.clone(),
        clock: env.clock.clone(),
        scripts: Arc::new(Scripts::new()),
    }))
}

#[async_trait]
impl LockBackend for Redlock {
    fn name(&self) -> &str {
        "redlock"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { lease: true, renew: true, fencing: false, multi_process: true, ..Default::default() }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let conns = self.endpoints.iter().map(|e| connect(e, RESPONSE_TIMEOUT)).collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Session {
            conns,
            sent: Default::default(),
            endpoints: self.endpoints.clone(),
            clock: self.clock.clone(),
            scripts: self.scripts.clone(),
        }))
    }
}

struct Session {
    conns: Vec<ConnectionManager>,
    /// Requests sent, every instance's (one per instance per `on_all`).
    sent: std::sync::atomic::AtomicU64,
    /// For messages only (printed through `servers::redact`).
    endpoints: Vec<String>,
    clock: Clock,
    scripts: Arc<Scripts>,
}

/// The per-instance timeout: far below the TTL, as the documentation asks
/// ("if the auto-release time is 10 seconds, the timeout could be in the ~ 5-50
/// milliseconds range"), and never above 50 ms on loopback; never below 20 ms
/// either, or a busy two-core machine (a JVM starting beside us) misses it.
fn instance_timeout(ttl: Duration) -> Duration {
    (ttl / 100).clamp(Duration::from_millis(20), Duration::from_millis(50))
}

/// Clock drift allowance of the Redlock documentation: TTL × 0.01 + 2 ms.
pub fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

impl Session {
    fn quorum(&self) -> usize {
        self.conns.len() / 2 + 1
    }

    /// Run `f` on every instance at once, each bounded by `timeout`; the results in
    /// instance order (a timeout is an `Unknown` error).
    async fn on_all<T, F, Fut>(&self, timeout: Duration, f: F) -> Vec<Result<T>>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.sent.fetch_add(self.conns.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let handles: Vec<_> = self
            .conns
            .iter()
            .map(|c| {
                let fut = f(c.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(BackendError::Unknown(format!("no answer within {timeout:?}"))),
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.unwrap_or_else(|e| Err(BackendError::Unknown(e.to_string()))));
        }
        out
    }

    /// Owner-checked delete on every instance; how many deleted.
    async fn unlock_all(&self, key: &str, value: &str, timeout: Duration) -> usize {
        let (k, v, scripts) = (lock_key(key), value.to_owned(), self.scripts.clone());
        self.on_all(timeout, move |mut c| {
            let (k, v, scripts) = (k.clone(), v.clone(), scripts.clone());
            async move { scripts.release.key(k).arg(v).invoke_async::<i64>(&mut c).await.map_err(classify) }
        })
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(1)))
        .count()
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let n = self.conns.len();
        match self.conns.first_mut() {
            Some(c) => Ok(crate::redis::redis_version(c).await?.map(|v| format!("{v} ×{n}"))),
            None => Ok(None),
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// `PING` on every instance at once; answered when a majority answers (Redlock
    /// works without the rest). Below a majority, the error names each silent
    /// instance and what it said.
    async fn ping(&mut self) -> Result<()> {
        let results = self
            .on_all(RESPONSE_TIMEOUT, |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await.map_err(classify)
            })
            .await;
        let answered = results.iter().filter(|r| r.is_ok()).count();
        if answered >= self.quorum() {
            return Ok(());
        }
        let why: Vec<String> = results
            .iter()
            .zip(&self.endpoints)
            .filter_map(|(r, e)| r.as_ref().err().map(|err| format!("{}: {err}", crate::servers::redact(e))))
            .collect();
        let what = format!(
            "{answered} of {} instances answered, {} needed ({})",
            results.len(),
            self.quorum(),
            why.join("; ")
        );
        // Sent and not answered is unknown, as everywhere; refused is unavailable.
        Err(if results.iter().any(|r| r.as_ref().is_err_and(|e| e.is_indeterminate())) {
            BackendError::Unknown(what)
        } else {
            BackendError::Unavailable(what)
        })
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let owner = new_owner();
        let value = owner_value(owner);
        let ttl_ms = lease.as_millis().max(1) as u64;
        let timeout = instance_timeout(lease);
        let start = self.clock.now_ns();
        let k = lock_key(key);
        let results = {
            let (k, value) = (k.clone(), value.clone());
            self.on_all(timeout, move |mut c| {
                let (k, value) = (k.clone(), value.clone());
                async move {
                    let r: Option<String> = redis::cmd("SET")
                        .arg(&k)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                        .map_err(classify)?;
                    Ok(r.is_some())
                }
            })
            .await
        };
        let granted = results.iter().filter(|r| matches!(r, Ok(true))).count();
        let reachable = results.iter().filter(|r| r.is_ok()).count();
        let elapsed = self.clock.now_ns().saturating_sub(start);
        let validity = (lease.as_nanos() as i128) - elapsed as i128 - drift(lease).as_nanos() as i128;
        if granted >= self.quorum() && validity > 0 {
            return Ok(Some(Lease {
                key: key.to_owned(),
                owner,
                fencing_token: None,
                granted_at: start,
                expires_at: start + validity as u64,
            }));
        }
        // Not acquired: unlock everywhere, including instances whose answer was
        // lost (they may hold our value). Best effort: what stays expires by TTL.
        if granted > 0 || reachable < results.len() {
            self.unlock_all(key, &value, timeout).await;
        }
        if reachable < self.quorum() {
            // No majority answered. When every silent instance certainly did
            // nothing (refused), neither did the attempt; when some were sent the
            // SET and did not answer, the outcome is unknown, and kind and message
            // say so alike.
            let errors: Vec<BackendError> = results.into_iter().filter_map(|r| r.err()).collect();
            let why = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
            let what =
                format!("{reachable} of {} instances answered, {} needed: {why}", self.endpoints.len(), self.quorum());
            return Err(if errors.iter().any(|e| e.is_indeterminate()) {
                BackendError::Unknown(what)
            } else {
                BackendError::Unavailable(what)
            });
        }
        Ok(None)
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let (k, v, scripts) = (lock_key(&lease.key), owner_value(lease.owner), self.scripts.clone());
        let ms = extend.as_millis().max(1) as u64;
        let start = self.clock.now_ns();
        let extended = self
            .on_all(instance_timeout(extend), move |mut c| {
                let (k, v, scripts) = (k.clone(), v.clone(), scripts.clone());
                async move { scripts.renew.key(k).arg(v).arg(ms).invoke_async::<i64>(&mut c).await.map_err(classify) }
            })
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(1)))
            .count();
        let elapsed = Duration::from_nanos(self.clock.now_ns().saturating_sub(start));
        Ok(extended >= self.quorum() && elapsed + drift(extend) < extend)
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let n = self.unlock_all(&lease.key, &owner_value(lease.owner), RESPONSE_TIMEOUT).await;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_and_timeouts_follow_the_documentation() {
        assert_eq!(drift(Duration::from_secs(10)), Duration::from_millis(102));
        assert_eq!(instance_timeout(Duration::from_secs(10)), Duration::from_millis(50));
        assert_eq!(instance_timeout(Duration::from_millis(100)), Duration::from_millis(20));
    }
}
