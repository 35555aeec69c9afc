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
    // The run gave up on a request still waiting when its drain ended: the
    // harness's decision, not the backend's failure.
    if msg.starts_with("the run's drain ended") {
        return None;
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
///
/// Works on spans of slots, never on one cell per slot: memory and time follow
/// the number of attempts, not the history's length (a history read from disk may
/// claim any timestamps).
pub fn availability(h: &History) -> Availability {
    let mut b = Builder::new(h.start, h.end);
    for e in &h.events {
        b.event(e);
    }
    b.finish()
}

/// [`availability`] one event at a time, in time order: the spans are merged as
/// they come, so memory follows the gaps in the service, not the attempts.
pub struct Builder {
    start: u64,
    end: u64,
    n: u64,
    /// Inclusive spans of slots: where the server answered, and where attempts
    /// were made (answered or not).
    answered: SpanSet,
    tried: SpanSet,
    errors: Errors,
    invoked: HashMap<u32, u64>,
    /// A client's last attempt that got no answer: until its next attempt (its
    /// backoff), the server is still not answering it.
    unanswered_since: HashMap<u32, u64>,
}

impl Builder {
    pub fn new(start: u64, end: u64) -> Builder {
        let n = end.saturating_sub(start).div_ceil(SLOT).max(1);
        Builder {
            start,
            end,
            n,
            answered: SpanSet::default(),
            tried: SpanSet::default(),
            errors: Errors::default(),
            invoked: HashMap::new(),
            unanswered_since: HashMap::new(),
        }
    }

    fn slot(&self, t: u64) -> u64 {
        (t.saturating_sub(self.start) / SLOT).min(self.n - 1)
    }

    pub fn event(&mut self, e: &Event) {
        let class = classify(e);
        match class {
            Some(ErrorClass::Refused) => self.errors.refused += 1,
            Some(ErrorClass::Rejected) => self.errors.rejected += 1,
            Some(ErrorClass::Unknown) => self.errors.unknown += 1,
            Some(ErrorClass::Resource) => self.errors.resource += 1,
            None => {}
        }
        if e.op != Op::Acquire {
            return;
        }
        if e.kind == Kind::Invoke {
            if let Some(f) = self.unanswered_since.remove(&e.client) {
                self.tried.insert(self.slot(f), self.slot(e.t));
            }
            self.invoked.insert(e.client, e.t);
            return;
        }
        let from = self.invoked.remove(&e.client).unwrap_or(e.t).min(e.t);
        // Given up by the run at its drain's end: says nothing either way.
        if e.msg.as_deref().is_some_and(|m| m.starts_with("the run's drain ended")) {
            return;
        }
        let span = (self.slot(from), self.slot(e.t));
        match class {
            // The server answered: granted, held by another, or rejected. An
            // attempt that waited may have polled the server all along.
            None | Some(ErrorClass::Rejected) => self.answered.insert(span.0, span.1),
            // No answer from the time it was made to the time it gave up.
            Some(_) => {
                self.unanswered_since.insert(e.client, e.t);
            }
        }
        self.tried.insert(span.0, span.1);
    }

    pub fn finish(mut self) -> Availability {
        // Still backing off when the run ended.
        let last = self.slot(self.end);
        for (_, f) in std::mem::take(&mut self.unanswered_since) {
            self.tried.insert(self.slot(f), last);
        }
        let unavailable = measure_without(&self.tried.spans(), &self.answered.spans());
        let tenths = |slots: u64| slots as f64 * SLOT as f64 / 1e9;
        Availability {
            errors: self.errors,
            load_seconds: tenths(self.n),
            unavailable_seconds: tenths(unavailable),
            load_slots: self.n,
            unavailable_slots: unavailable,
        }
    }
}

/// Disjoint, non-adjacent inclusive spans, merged as they are added.
#[derive(Default)]
struct SpanSet(std::collections::BTreeMap<u64, u64>);

impl SpanSet {
    fn insert(&mut self, a: u64, b: u64) {
        let (mut lo, mut hi) = (a.min(b), a.max(b));
        while let Some((l, h)) = self.0.range(..=hi.saturating_add(1)).next_back().map(|(&l, &h)| (l, h)) {
            if h.saturating_add(1) < lo {
                break;
            }
            self.0.remove(&l);
            (lo, hi) = (lo.min(l), hi.max(h));
        }
        self.0.insert(lo, hi);
    }
    fn spans(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|(&l, &h)| (l, h)).collect()
    }
}

/// How many slots of `a` are in no span of `b` (both sorted and disjoint).
fn measure_without(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let mut total = 0;
    let mut j = 0;
    for &(lo, hi) in a {
        let mut cur = lo;
        while j < b.len() && b[j].1 < lo {
            j += 1;
        }
        let mut k = j;
        while cur <= hi {
            match b.get(k) {
                Some(&(blo, bhi)) if blo <= hi => {
                    total += blo.saturating_sub(cur);
                    cur = cur.max(bhi.saturating_add(1));
                    k += 1;
                }
                _ => {
                    total += hi - cur + 1;
                    break;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_client_backing_off_from_a_dead_server_is_unavailable_all_along() {
        // One client: each refused attempt takes 10 ms, then it waits ~0.9 s.
        let s = 1_000_000_000u64;
        let mut h = History { events: Vec::new(), start: 0, end: 3 * s };
        for i in 0..3 {
            let t = i * s;
            h.events.push(Event::new(t, 0, Kind::Invoke, Op::Acquire, 0));
            h.events.push(Event::new(t + s / 100, 0, Kind::Fail, Op::Acquire, 0).with_msg("unavailable: refused"));
        }
        let a = availability(&h);
        assert_eq!(a.load_slots, 30);
        assert!(a.unavailable_slots >= 29, "{a:?}");
        assert!(a.mostly_unavailable());
        // An acquire the run gave up on at its drain's end counts neither way.
        let mut h = History { events: Vec::new(), start: 0, end: s };
        h.events.push(Event::new(0, 0, Kind::Invoke, Op::Acquire, 0));
        h.events.push(
            Event::new(s, 0, Kind::Info, Op::Acquire, 0).with_msg("the run's drain ended with this acquire in flight"),
        );
        assert_eq!(availability(&h).unavailable_slots, 0);
    }

    #[test]
    fn spans_subtract_slot_by_slot() {
        let mut set = SpanSet::default();
        for (a, b) in [(5, 6), (0, 2), (3, 3), (9, 9), (12, 14), (11, 11), (20, 30), (13, 21)] {
            set.insert(a, b);
        }
        assert_eq!(set.spans(), vec![(0, 3), (5, 6), (9, 9), (11, 30)]);
        assert_eq!(measure_without(&[(0, 9)], &[(2, 3), (7, 7)]), 7);
        assert_eq!(measure_without(&[(0, 3), (5, 9)], &[]), 9);
        assert_eq!(measure_without(&[(0, 3), (5, 9)], &[(0, 9)]), 0);
        assert_eq!(measure_without(&[(4, 4), (6, 8)], &[(0, 4), (8, 20)]), 2);
    }

    #[test]
    fn a_history_claiming_a_huge_span_costs_nothing_more() {
        let mut h = History { events: Vec::new(), start: 0, end: u64::MAX };
        h.events.push(Event::new(0, 0, Kind::Invoke, Op::Acquire, 0));
        h.events.push(Event::new(u64::MAX - 1, 0, Kind::Fail, Op::Acquire, 0).with_msg("unavailable: refused"));
        let a = availability(&h);
        assert_eq!(a.load_slots, u64::MAX.div_ceil(SLOT));
        assert_eq!(a.unavailable_slots, a.load_slots);
    }
}
