//! Whether the history is evidence at all: errors by what caused them, and the
//! seconds in which the server answered nothing.
//!
//! A run against a dead server has no overlaps because it has no grants; calling
//! that `safe` would be a lie. An *unavailable second* is a second of load in which
//! acquire attempts were made and none got an answer from the server: every attempt
//! ending in it was refused, unavailable, timed out or hit the harness's own limits;
//! none was granted, none told "held by someone else", none rejected. A backend
//! unavailable for more than half of its load seconds is `inconclusive` (see
//! [`super::Level`]). The seconds are measured in tenths ([`SLOT`]): whole seconds
//! cannot tell a 3 s run whose server died at 0.95 s from one where it died at
//! 1.05 s, and that difference decided the verdict. Errors are read back from the events' messages, which are the
//! backend errors' own words (`unavailable: …`, `rejected: …`, `outcome unknown: …`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::record::{Event, History, Kind, Op};

/// The resolution of unavailable time: a tenth of a second (ns).
pub const SLOT: u64 = 100_000_000;

/// What caused a failed or unknown operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing reached the server (connection refused, authentication failed, no
    /// session, misconfiguration): it certainly did not happen.
    Refused,
    /// The server answered no (not a plain "held by someone else").
    Rejected,
    /// Sent and not answered in time: the outcome is unknown.
    Unknown,
    /// The harness's own resource limits (EMFILE "Too many open files", ENFILE):
    /// nothing was sent, and it says nothing about the backend.
    Resource,
}

/// Errors by class, over every operation of a backend's history.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Errors {
    /// Refused or unavailable: nothing reached the server.
    pub refused: u64,
    /// Rejected by the server.
    pub rejected: u64,
    /// Timed out or cut off with the outcome unknown.
    pub unknown: u64,
    /// The harness's own resource limits (open files).
    pub resource: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.refused + self.rejected + self.unknown + self.resource
    }
}

/// Errors by class and the unavailable seconds of one backend's run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Availability {
    pub errors: Errors,
    /// Seconds of load (the history's length), in tenths.
    pub load_seconds: f64,
    /// Seconds of load in which attempts were made and none got an answer, in
    /// tenths.
    pub unavailable_seconds: f64,
    /// The same two, in [`SLOT`]s.
    pub load_slots: u64,
    pub unavailable_slots: u64,
}

impl Availability {
    /// Unavailable for more than half of the load seconds.
    pub fn mostly_unavailable(&self) -> bool {
        self.unavailable_slots * 2 > self.load_slots
    }
}

/// The class of a failed or unknown event; `None` when the event is no error (an
/// ok, an invoke, a wait that ran out, a lease found lost, a stale write refused).
pub fn classify(e: &Event) -> Option<ErrorClass> {
    if e.op == Op::Fault || !matches!(e.kind, Kind::Fail | Kind::Info) {
        return None;
    }
    let msg = e.msg.as_deref().unwrap_or("");
    if msg.contains("Too many open files") || msg.contains("os error 24") || msg.contains("os error 23") {
        return Some(ErrorClass::Resource);
    }
    if e.kind == Kind::Info {
        return Some(ErrorClass::Unknown);
    }
    let msg = msg.strip_prefix("no session: ").unwrap_or(msg);
    if msg.starts_with("unavailable:") || msg.starts_with("configuration:") {
        Some(ErrorClass::Refused)
    } else if msg.starts_with("rejected:") {
        Some(ErrorClass::Rejected)
    } else if msg.starts_with("outcome unknown:") {
        Some(ErrorClass::Unknown)
    } else {
        // The protocol's own answers: "timeout" (the wait ran out: the key was
        // held), "lease lost", "not the owner any more", "stale token …".
        None
    }
}

/// Errors by class, and which seconds of load had attempts but no answer.
pub fn availability(h: &History) -> Availability {
    let len = h.end.saturating_sub(h.start);
    let n = len.div_ceil(SLOT).max(1) as usize;
    let sec = |t: u64| ((t.saturating_sub(h.start) / SLOT) as usize).min(n - 1);
    let mut tried = vec![false; n];
    let mut answered = vec![false; n];
    let mut errors = Errors::default();
    let mut invoked: HashMap<u32, u64> = HashMap::new();
    for e in &h.events {
        let class = classify(e);
        match class {
            Some(ErrorClass::Refused) => errors.refused += 1,
            Some(ErrorClass::Rejected) => errors.rejected += 1,
            Some(ErrorClass::Unknown) => errors.unknown += 1,
            Some(ErrorClass::Resource) => errors.resource += 1,
            None => {}
        }
        if e.op != Op::Acquire {
            continue;
        }
        if e.kind == Kind::Invoke {
            invoked.insert(e.client, e.t);
            continue;
        }
        let from = invoked.remove(&e.client).unwrap_or(e.t).min(e.t);
        match class {
            // The server answered: granted, held by another, or rejected. An
            // attempt that waited may have polled the server all along.
            None | Some(ErrorClass::Rejected) => {
                for s in sec(from)..=sec(e.t) {
                    answered[s] = true;
                    tried[s] = true;
                }
            }
            // No answer from the time it was made to the time it gave up.
            Some(_) => {
                for t in &mut tried[sec(from)..=sec(e.t)] {
                    *t = true;
                }
            }
        }
    }
    let unavailable = tried.iter().zip(&answered).filter(|(t, a)| **t && !**a).count() as u64;
    let tenths = |slots: u64| (slots * SLOT) as f64 / 1e9;
    Availability {
        errors,
        load_seconds: tenths(n as u64),
        unavailable_seconds: tenths(unavailable),
        load_slots: n as u64,
        unavailable_slots: unavailable,
    }
}
