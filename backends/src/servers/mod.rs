//! How a backend's servers come to exist.
//!
//! A provider hands out running servers and, where it can, fault controls on them.
//! `local` starts the programs that `scripts/setup` installed as child processes on
//! loopback; `external` takes endpoints the user gives and offers no server faults.

use std::fmt;

/// The kinds of server program a backend may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    Redis,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerKind::Redis => f.write_str("redis"),
        }
    }
}
