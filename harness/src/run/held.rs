//! Locks held beside the load (`keys.held`): taken before the load starts, on keys
//! of their own (`held-<run tag>-<i>`, so that no two runs share one), kept
//! through it, and never part of the history. They are what the many-locks
//! scenario measures the load beside: does a lock service slow down as the number
//! of locks it holds grows?
//!
//! They are asked for with a lease of at least [`HELD_LEASE`], so that they outlive
//! the filling, the load and its drain on backends whose leases need renewing
//! (ZooKeeper's sessions keep them by their own pings). On servers the user gave
//! (`--endpoints`) they are released after the load; local servers and embedded
//! backends go with the run.

use std::fmt;
use std::time::{Duration, Instant};

use lockbench_backends::{Lease, LockBackend, LockSession};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Sessions that take the held locks at once (a backend's session does one
/// request at a time).
const FILLERS: u32 = 32;

/// The shortest lease a held lock is asked for.
pub const HELD_LEASE: Duration = Duration::from_secs(600);

/// The filling failed: the load cannot run beside the locks it was to measure
/// against. The run is skipped with this reason; it is no verdict on anything.
#[derive(Debug)]
pub struct FillFailed(pub String);

impl fmt::Display for FillFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FillFailed {}

/// Is this error of `run_backend` a failed filling (see [`FillFailed`])?
pub fn is_fill_failure(e: &std::io::Error) -> Option<String> {
    e.get_ref().and_then(|x| x.downcast_ref::<FillFailed>()).map(|f| f.0.clone())
}

/// The sessions that hold the locks, each with its leases.
pub struct Held {
    sessions: Vec<(Box<dyn LockSession>, Vec<Lease>)>,
    pub count: u32,
    pub took: Duration,
}

impl Held {
    /// Give every held lock back (servers the user runs keep no leftovers past
    /// the run); failures are ignored: the leases run out on their own.
    pub async fn release(self) {
        let mut set = JoinSet::new();
        for (mut s, leases) in self.sessions {
            set.spawn(async move {
                for l in &leases {
                    let _ = s.release(l).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
    }
}

/// Take `n` locks with a lease of at least [`HELD_LEASE`], or say why not. A lock
/// refused, or any error, stops the filling (every filler is aborted): the load
/// must run beside all of them.
pub async fn take(backend: &Arc<dyn LockBackend>, n: u32, lease: Duration) -> Result<Held, FillFailed> {
    let t0 = Instant::now();
    let lease = lease.max(HELD_LEASE);
    let tag = format!("{:08x}", rand::random::<u32>());
    let fillers = FILLERS.min(n.max(1));
    let mut set = JoinSet::new();
    for f in 0..fillers {
        let (backend, tag) = (backend.clone(), tag.clone());
        set.spawn(async move {
            let mut s = backend.session().await.map_err(|e| format!("opening a session: {e}"))?;
            let mut leases = Vec::new();
            let mut i = f;
            while i < n {
                let key = format!("held-{tag}-{i}");
                match s.try_acquire(&key, lease).await {
                    Ok(Some(l)) => leases.push(l),
                    Ok(None) => return Err(format!("{key} was refused (held by someone else?)")),
                    Err(e) => return Err(format!("{key}: {e}")),
                }
                i += fillers;
            }
            Ok::<_, String>((s, leases))
        });
    }
    let mut sessions = Vec::new();
    while let Some(r) = set.join_next().await {
        let why = match r {
            Ok(Ok(s)) => {
                sessions.push(s);
                continue;
            }
            Ok(Err(e)) => e,
            Err(e) => format!("a filling task failed: {e}"),
        };
        // The rest stop now; what was taken runs out with its lease (its keys
        // are this run's own: no later run trips on them).
        set.abort_all();
        drop(sessions);
        return Err(FillFailed(format!(
            "taking the {n} locks held beside the load (keys.held) on {} failed: {why}",
            backend.name()
        )));
    }
    Ok(Held { sessions, count: n, took: t0.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_locks_are_taken_on_keys_of_the_runs_own_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let env = lockbench_backends::BackendEnv { dir: dir.path().to_owned(), ..Default::default() };
        let b = lockbench_backends::lookup("sqlite").unwrap().open(&env).unwrap();
        let h = take(&b, 40, Duration::from_millis(100)).await.unwrap();
        assert_eq!(h.count, 40);
        let leases: Vec<&Lease> = h.sessions.iter().flat_map(|(_, l)| l).collect();
        assert_eq!(leases.len(), 40);
        // Held for at least HELD_LEASE, however short the scenario's lease.
        assert!(leases.iter().all(|l| l.expires_at - l.granted_at >= HELD_LEASE.as_nanos() as u64));
        let key = leases[0].key.clone();
        assert!(key.starts_with("held-"), "{key}");
        let mut other = b.session().await.unwrap();
        assert!(other.try_acquire(&key, Duration::from_secs(1)).await.unwrap().is_none(), "held");
        h.release().await;
        assert!(other.try_acquire(&key, Duration::from_secs(1)).await.unwrap().is_some(), "given back");
        // A second filling never meets the first one's keys.
        let again = take(&b, 40, Duration::from_millis(100)).await.unwrap();
        assert!(again.sessions.iter().flat_map(|(_, l)| l).all(|l| l.key != key));
    }

    #[test]
    fn a_failed_filling_is_told_apart_from_other_errors() {
        let e = std::io::Error::other(FillFailed("held-x-3 was refused".into()));
        assert_eq!(is_fill_failure(&e).as_deref(), Some("held-x-3 was refused"));
        assert_eq!(is_fill_failure(&std::io::Error::other("disk full")), None);
    }
}
