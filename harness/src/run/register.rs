//! The guarded register: the shared resource a lock is supposed to protect.
//!
//! Every holder reads it, waits its hold time, and writes it back +1. A write that
//! lands on a version other than the one its holder read overwrote someone's update
//! (a lost update; the checker counts these from the history). With fencing, the
//! register remembers the highest token it has seen per key and refuses a write
//! with a lower one (Kleppmann's fencing: the storage, not the lock, says no).
//!
//! The register itself is linearizable (one mutex), so every anomaly it shows comes
//! from the lock.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default, Clone, Copy)]
struct Cell {
    value: u64,
    version: u64,
    max_token: u64,
}

#[derive(Default)]
pub struct Register {
    cells: Mutex<HashMap<u32, Cell>>,
}

/// The register refused a write whose fencing token was below one it had seen.
#[derive(Debug, PartialEq, Eq)]
pub struct StaleToken {
    pub seen: u64,
}

impl Register {
    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Cell>> {
        self.cells.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (value, version) of `key`.
    pub fn read(&self, key: u32) -> (u64, u64) {
        let c = self.cells().get(&key).copied().unwrap_or_default();
        (c.value, c.version)
    }

    /// Write `value`; `token` is the writer's fencing token, if it passes one.
    /// Returns the new version.
    pub fn write(&self, key: u32, value: u64, token: Option<u64>) -> Result<u64, StaleToken> {
        let mut cells = self.cells();
        let c = cells.entry(key).or_default();
        if let Some(t) = token {
            if t < c.max_token {
                return Err(StaleToken { seen: c.max_token });
            }
            c.max_token = t;
        }
        c.value = value;
        c.version += 1;
        Ok(c.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_refuses_lower_tokens_only() {
        let r = Register::default();
        assert_eq!(r.write(1, 1, Some(5)), Ok(1));
        assert_eq!(r.write(1, 2, Some(5)), Ok(2));
        assert_eq!(r.write(1, 3, Some(4)), Err(StaleToken { seen: 5 }));
        assert_eq!(r.read(1), (2, 2));
        assert_eq!(r.write(1, 9, None), Ok(3));
        assert_eq!(r.read(2), (0, 0));
    }
}

/// The register as a client reaches it: in this process, or in the parent of a
/// worker process over its pipe.
pub enum Guarded {
    Local(Register),
    Remote(super::worker::RemoteRegister),
}

impl Default for Guarded {
    fn default() -> Self {
        Guarded::Local(Register::default())
    }
}

impl Guarded {
    pub async fn read(&self, key: u32) -> (u64, u64) {
        match self {
            Guarded::Local(r) => r.read(key),
            Guarded::Remote(r) => r.read(key).await,
        }
    }
    pub async fn write(&self, key: u32, value: u64, token: Option<u64>) -> Result<u64, StaleToken> {
        match self {
            Guarded::Local(r) => r.write(key, value, token),
            Guarded::Remote(r) => r.write(key, value, token).await,
        }
    }
}
