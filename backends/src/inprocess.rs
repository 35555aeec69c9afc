//! `inprocess`: a lease table in the harness's own memory.
//!
//! The reference backend: correct by construction (one mutex), so any violation the
//! checker reports on it is a checker or runner bug. It is also the floor of what a
//! lock can cost, which makes it the yardstick for the harness's own overhead.
//! Sessions of one backend share the table; it does not reach other processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{BackendEnv, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

#[derive(Default)]
struct Entry {
    /// The current holder and when its lease ends (backend clock, ns); None when free.
    holder: Option<(u64, u64)>,
    /// The last fencing token handed out for this key.
    token: u64,
}

#[derive(Default)]
struct Table {
    keys: HashMap<String, Entry>,
}

pub struct InProcess {
    table: Arc<Mutex<Table>>,
    clock: Clock,
}

pub(crate) fn open(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    Ok(Arc::new(InProcess::new(env.clock.clone())))
}

impl InProcess {
    pub fn new(clock: Clock) -> Self {
        InProcess { table: Arc::default(), clock }
    }
}

#[async_trait]
impl LockBackend for InProcess {
    fn name(&self) -> &str {
        "inprocess"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { lease: true, renew: true, fencing: true, ..Default::default() }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        Ok(Box::new(Session { table: self.table.clone(), clock: self.clock.clone() }))
    }
}

struct Session {
    table: Arc<Mutex<Table>>,
    clock: Clock,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this mutex leaves a consistent table (every update
        // is a single assignment), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LockSession for Session {
    /// The table lives in this process: taking its lock is the whole round trip.
    async fn ping(&mut self) -> Result<()> {
        let _ = self.lock().keys.len();
        Ok(())
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        let now = self.clock.now_ns();
        let expires = now + lease.as_nanos() as u64;
        let mut t = self.lock();
        let entry = match t.keys.get_mut(key) {
            Some(e) => e,
            None => t.keys.entry(key.to_owned()).or_default(),
        };
        if let Some((_, until)) = entry.holder
            && until > now
        {
            return Ok(None);
        }
        let owner = new_owner();
        entry.token += 1;
        entry.holder = Some((owner, expires));
        Ok(Some(Lease {
            key: key.to_owned(),
            owner,
            fencing_token: Some(entry.token),
            granted_at: now,
            expires_at: expires,
        }))
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let now = self.clock.now_ns();
        let mut t = self.lock();
        match t.keys.get_mut(&lease.key) {
            Some(Entry { holder: Some((owner, until)), .. }) if *owner == lease.owner && *until > now => {
                *until = now + extend.as_nanos() as u64;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let mut t = self.lock();
        match t.keys.get_mut(&lease.key) {
            Some(e) if matches!(e.holder, Some((owner, _)) if owner == lease.owner) => {
                e.holder = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
