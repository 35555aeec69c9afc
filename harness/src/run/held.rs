//! Locks held beside the load (`keys.held`): taken before the load starts, on keys
//! of their own (`held0` ...), kept through it, and never part of the history.
//! They are what the many-locks scenario measures the load beside: does a lock
//! service slow down as the number of locks it holds grows?

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockbench_backends::{LockBackend, LockSession};

/// Sessions that take the held locks at once (a backend's session does one
/// request at a time).
const FILLERS: u32 = 32;

/// The sessions that hold the locks: dropped after the load (a crash to the
/// backend, so the locks go when their lease or session runs out).
pub struct Held {
    _sessions: Vec<Box<dyn LockSession>>,
    pub count: u32,
    pub took: Duration,
}

/// Take `n` locks on `held0` .. `held{n-1}` with `lease`, or say why not. A lock
/// refused or an error stops the filling: the load must run beside all of them.
pub async fn take(backend: &Arc<dyn LockBackend>, n: u32, lease: Duration) -> Result<Held, String> {
    let t0 = Instant::now();
    let fillers = FILLERS.min(n.max(1));
    let mut tasks = Vec::new();
    for f in 0..fillers {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = backend.session().await.map_err(|e| format!("opening a session: {e}"))?;
            let mut i = f;
            while i < n {
                let key = format!("held{i}");
                match s.try_acquire(&key, lease).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(format!("{key} was refused (held by someone else?)")),
                    Err(e) => return Err(format!("{key}: {e}")),
                }
                i += fillers;
            }
            Ok::<_, String>(s)
        }));
    }
    let mut sessions = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("a filling task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(format!("taking the {n} locks held beside the load (keys.held) on {} failed: {e}", backend.name()));
    }
    Ok(Held { _sessions: sessions, count: n, took: t0.elapsed() })
}
