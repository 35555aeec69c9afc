//! The checker: safety and liveness over one backend's finished history.
//!
//! It reads only the history (never the backend or the runner's state), so a
//! history written to disk can be re-checked later and hand-written histories with
//! known answers can test it (`harness/tests/fixtures/`). Every violation carries
//! the events that prove it.
//!
//! Being conservative is what keeps it from crying wolf: a hold starts at the
//! acquire's `ok` (after the grant happened) and ends at the release's `invoke`
//! (before the release happened), so a correct lock never shows an overlap, however
//! late a client records its events.

pub mod availability;
pub mod import;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use availability::{Availability, ErrorClass, Errors};

use crate::record::{Event, History, Kind, Op};

/// How many violations of each sort keep their events; the counts are always whole.
pub const MAX_EXAMPLES: usize = 200;

/// One grant, from the client's point of view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hold {
    pub key: u32,
    pub client: u32,
    pub owner: u64,
    pub token: u64,
    /// The acquire's invoke (ns, true clock).
    pub invoked: u64,
    /// The acquire's ok: the hold starts.
    pub start: u64,
    /// The release's invoke, the crash, or the end of the run: the hold ends.
    pub end: u64,
    /// When the holder believed its lease ran out: the grant + what was left of
    /// the lease then, moved by renewals.
    pub expires: u64,
    /// How the hold ended: "release", "crash", "run-end".
    pub ended_by: String,
    /// Indices (into the history's events) of the events behind this hold.
    pub events: Vec<usize>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OverlapClass {
    /// Both holders were inside the lease they had been promised: the lock service
    /// broke its promise.
    WithinLease,
    /// One holder's lease had already run out (a paused or slow holder): the lock
    /// did what it said, and only fencing protects the data.
    AfterExpiry,
}

/// Two owners held the same key at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Overlap {
    pub key: u32,
    pub class: OverlapClass,
    pub first: Hold,
    pub second: Hold,
    pub from: u64,
    pub to: u64,
    /// Faults whose window touched the first hold up to the overlap.
    pub faults: Vec<String>,
}

/// A grant whose token is not above that of a grant that finished before it began.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenRegression {
    pub key: u32,
    pub earlier: Hold,
    pub later: Hold,
}

/// An accepted write that overwrote an update its writer never read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LostUpdate {
    pub key: u32,
    pub client: u32,
    pub owner: u64,
    /// The version the writer read, and the version its write made.
    pub read_version: u64,
    pub wrote_version: u64,
    /// The write invoke and ok events.
    pub events: Vec<usize>,
}

/// The verdict in one word, in order of severity.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// An overlap within both leases, or a fencing token going backwards: the lock
    /// broke its promise.
    Broken,
    /// Overlaps only after a lease had expired, and increments of the guarded
    /// register were lost.
    DataLost,
    /// Overlaps only after a lease had expired, and no increment lost: fencing (or
    /// luck, when no stale write was refused) protected the data.
    Fenced,
    /// No overlap, no token regression, nothing lost, and enough evidence.
    Safe,
    /// What would have been `safe`, without the evidence to say so: no grants, or
    /// the backend unavailable for more than half of its load seconds. Never shown
    /// as safe.
    #[default]
    Inconclusive,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::Broken, Level::DataLost, Level::Fenced, Level::Safe, Level::Inconclusive];

    pub fn word(self) -> &'static str {
        match self {
            Level::Broken => "broken",
            Level::DataLost => "data-lost",
            Level::Fenced => "fenced",
            Level::Safe => "safe",
            Level::Inconclusive => "inconclusive",
        }
    }

    /// A safety violation `--fail-on-violation` fails on (exit 3). `fenced` is
    /// not one: the lock did what it promises and fencing kept the data.
    pub fn is_violation(self) -> bool {
        matches!(self, Level::Broken | Level::DataLost)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.word() == s)
            .ok_or_else(|| format!("unknown verdict `{s}` (known: broken, data-lost, fenced, safe, inconclusive)"))
    }
}

/// Everything the checker found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub grants: u64,
    pub acquire_attempts: u64,
    /// Overlapping pairs of holds within both leases (a detail: pairs grow with the
    /// square of concurrency; `holds_overlapped` counts holds).
    pub within_lease: u64,
    /// Overlapping pairs of holds after a lease had expired.
    pub after_expiry: u64,
    pub overlaps: Vec<Overlap>,
    /// Holds that overlapped at least one other hold of their key (≤ grants).
    pub holds_overlapped: u64,
    /// Maximal spans of time in which a key had two or more holders.
    pub overlap_episodes: u64,
    /// The most holders one key had at once (0 without grants).
    pub max_holders: u64,
    /// Total time (ns), summed over keys, in which a key had two or more holders.
    pub overlap_ns: u64,
    pub token_regressions: u64,
    pub regressions: Vec<TokenRegression>,
    /// Register writes the register acknowledged.
    pub writes_acknowledged: u64,
    /// Acknowledged writes − the register's final value, summed per key: the
    /// increments that did not survive (≤ writes_acknowledged).
    pub increments_lost: u64,
    /// Acknowledged writes whose new version is not the version they read + 1:
    /// each overwrote at least one write its writer never read.
    pub clobbering_writes: u64,
    /// The first clobbering writes (exactly those, up to [`MAX_EXAMPLES`]).
    pub lost: Vec<LostUpdate>,
    pub stale_writes_refused: u64,
    /// Writes invoked after the writer's own lease estimate had run out, and accepted.
    pub late_writes_accepted: u64,
    pub unknown_outcomes: u64,
    pub acquire_timeouts: u64,
    /// Try-acquires (no wait) that found the key held: the lock doing its job.
    pub acquire_refused: u64,
    /// Acquire failures other than timeouts and refusals (errors).
    pub acquire_errors: u64,
    pub longest_wait_ns: u64,
    /// Jain's index over the clients' grant counts: 1 = perfectly fair, 1/n = one
    /// client got everything. None when nothing was granted.
    pub fairness: Option<f64>,
    /// For each crash of a holder: ns from the crash to the next grant of its key.
    pub crash_recovery_ns: Vec<u64>,
    pub crashes: u64,
    /// Failed or unknown operations by what caused them, and the seconds in which
    /// the server answered nothing.
    pub availability: Availability,
}

impl Verdict {
    /// Overlapping pairs of any class (a detail; see `holds_overlapped`).
    pub fn violations(&self) -> u64 {
        self.within_lease + self.after_expiry
    }
    /// No overlap, no token regression, nothing lost (evidence aside).
    pub fn is_safe(&self) -> bool {
        self.violations() == 0
            && self.token_regressions == 0
            && self.increments_lost == 0
            && self.clobbering_writes == 0
    }
    /// The verdict in one word. `inconclusive` replaces only `safe`: a run with a
    /// violation keeps its word, whatever its availability.
    pub fn level(&self) -> Level {
        if self.within_lease > 0 || self.token_regressions > 0 {
            Level::Broken
        } else if self.increments_lost > 0 || self.clobbering_writes > 0 {
            Level::DataLost
        } else if self.after_expiry > 0 {
            Level::Fenced
        } else if self.grants == 0 || self.availability.mostly_unavailable() {
            Level::Inconclusive
        } else {
            Level::Safe
        }
    }
}

/// Reconstruct every grant's hold from the history.
pub fn holds(h: &History) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    let mut by_owner: HashMap<u64, usize> = HashMap::new();
    let mut last_invoke: HashMap<u32, usize> = HashMap::new();
    for (i, e) in h.events.iter().enumerate() {
        match (e.op, e.kind) {
            (Op::Fault, _) => {}
            (_, Kind::Invoke) => {
                last_invoke.insert(e.client, i);
                if let Some(&hi) = by_owner.get(&e.owner)
                    && e.op == Op::Release
                    && out[hi].ended_by.is_empty()
                {
                    out[hi].end = e.t;
                    out[hi].ended_by = "release".into();
                    out[hi].events.push(i);
                }
            }
            (Op::Acquire, Kind::Ok) => {
                let inv = last_invoke.get(&e.client).map(|&j| (j, &h.events[j]));
                let (inv_i, inv_t) = match inv {
                    Some((j, ie)) if ie.op == Op::Acquire => (Some(j), ie.t),
                    _ => (None, e.t),
                };
                by_owner.insert(e.owner, out.len());
                out.push(Hold {
                    key: e.key,
                    client: e.client,
                    owner: e.owner,
                    token: e.token,
                    invoked: inv_t,
                    start: e.t,
                    end: 0,
                    // `a` is what was left of the lease at the grant.
                    expires: e.t + e.a,
                    ended_by: String::new(),
                    events: inv_i.into_iter().chain([i]).collect(),
                });
            }
            (Op::Renew, Kind::Ok) => {
                if let (Some(&hi), Some(&j)) = (by_owner.get(&e.owner), last_invoke.get(&e.client)) {
                    let inv = &h.events[j];
                    // Renewed: valid for `a` from the renew's invoke.
                    out[hi].expires = out[hi].expires.max(inv.t + inv.a);
                }
            }
            (Op::Crash, _) => {
                if let Some(&hi) = by_owner.get(&e.owner)
                    && out[hi].ended_by.is_empty()
                {
                    out[hi].end = e.t;
                    out[hi].ended_by = "crash".into();
                    out[hi].events.push(i);
                }
            }
            _ => {}
        }
    }
    for hold in &mut out {
        if hold.ended_by.is_empty() {
            hold.end = h.end.max(hold.start);
            hold.ended_by = "run-end".into();
        }
    }
    out
}

/// Fault windows: (start, end, description), in the order they end; a window
/// still open at the end of the history ends there.
pub fn fault_windows(h: &History) -> Vec<(u64, u64, String)> {
    let mut open: HashMap<u32, (u64, String)> = HashMap::new();
    let mut out = Vec::new();
    for e in h.events.iter().filter(|e| e.op == Op::Fault) {
        let desc = e.msg.as_deref().unwrap_or("fault").to_owned();
        match e.kind {
            Kind::Invoke => {
                open.insert(e.client, (e.t, desc));
            }
            _ => {
                if let Some((s, d)) = open.remove(&e.client) {
                    out.push((s, e.t, d));
                }
            }
        }
    }
    out.extend(open.into_values().map(|(s, d)| (s, h.end, d)));
    out
}

/// Check one backend's history.
pub fn check(h: &History) -> Verdict {
    let mut v = Verdict::default();
    let holds = holds(h);
    v.grants = holds.len() as u64;
    mutual_exclusion(h, &holds, &mut v);
    concurrency(&holds, &mut v);
    fencing(&holds, &mut v);
    register(h, &holds, &mut v);
    liveness(h, &mut v);
    v.availability = availability::availability(h);
    v
}

/// Per key, a sweep over hold starts and ends: which holds overlapped another,
/// the spans with two or more holders, and the most holders at once. A hold that
/// ends exactly when another starts does not overlap it (ends sort first).
fn concurrency(holds: &[Hold], v: &mut Verdict) {
    for hs in by_key(holds).into_values() {
        // (time, 0 = end / 1 = start, index into hs)
        let mut edges: Vec<(u64, u8, usize)> = Vec::with_capacity(hs.len() * 2);
        for (i, x) in hs.iter().enumerate() {
            if x.end > x.start {
                edges.push((x.start, 1, i));
                edges.push((x.end, 0, i));
            }
        }
        edges.sort_unstable();
        let mut active: Vec<usize> = Vec::new();
        let mut overlapped = vec![false; hs.len()];
        let mut episode_start = 0u64;
        for (t, what, i) in edges {
            if what == 0 {
                active.retain(|&a| a != i);
                if active.len() == 1 {
                    v.overlap_ns += t - episode_start;
                }
                continue;
            }
            active.push(i);
            v.max_holders = v.max_holders.max(active.len() as u64);
            if active.len() == 2 {
                v.overlap_episodes += 1;
                episode_start = t;
            }
            if active.len() >= 2 {
                for &a in &active {
                    overlapped[a] = true;
                }
            }
        }
        v.holds_overlapped += overlapped.iter().filter(|&&o| o).count() as u64;
        // Zero-length holds (granted as the run ended) still count as holders.
        if !hs.is_empty() {
            v.max_holders = v.max_holders.max(1);
        }
    }
}

fn by_key(holds: &[Hold]) -> HashMap<u32, Vec<&Hold>> {
    let mut m: HashMap<u32, Vec<&Hold>> = HashMap::new();
    for hd in holds {
        m.entry(hd.key).or_default().push(hd);
    }
    m
}

/// Examples spread evenly over a run, not its first N: keeps every `stride`-th
/// offered item, and when full, every other one of those with the stride doubled.
/// Deterministic, and bounded at `cap` items whatever the number offered.
pub struct Spread<T> {
    cap: usize,
    stride: u64,
    seen: u64,
    items: Vec<(u64, T)>,
}

impl<T> Spread<T> {
    pub fn new(cap: usize) -> Self {
        Spread { cap: cap.max(2), stride: 1, seen: 0, items: Vec::new() }
    }
    /// Would the next offered item be kept? (Build it only then.)
    pub fn wants(&self) -> bool {
        self.seen.is_multiple_of(self.stride)
    }
    /// Offer the next item (`make` runs only when it is kept).
    pub fn offer(&mut self, make: impl FnOnce() -> T) {
        if self.wants() {
            self.items.push((self.seen, make()));
            if self.items.len() >= self.cap {
                self.stride *= 2;
                let stride = self.stride;
                self.items.retain(|(i, _)| i.is_multiple_of(stride));
            }
        }
        self.seen += 1;
    }
    pub fn into_vec(self) -> Vec<T> {
        self.items.into_iter().map(|(_, t)| t).collect()
    }
}

fn mutual_exclusion(h: &History, holds: &[Hold], v: &mut Verdict) {
    let faults = fault_windows(h);
    // Examples of each class, spread over the whole run.
    let mut within = Spread::new(MAX_EXAMPLES / 2);
    let mut after = Spread::new(MAX_EXAMPLES / 2);
    let mut keys: Vec<(u32, Vec<&Hold>)> = by_key(holds).into_iter().collect();
    keys.sort_by_key(|(k, _)| *k);
    for (key, mut hs) in keys {
        hs.sort_by_key(|x| (x.start, x.owner));
        // Sweep: `active` holds those that may still overlap later starts.
        let mut active: Vec<&Hold> = Vec::new();
        for cur in hs {
            active.retain(|a| a.end > cur.start);
            for a in &active {
                if a.owner == cur.owner {
                    continue;
                }
                let from = cur.start;
                let to = a.end.min(cur.end);
                let class = if from < a.expires.min(cur.expires) {
                    OverlapClass::WithinLease
                } else {
                    OverlapClass::AfterExpiry
                };
                match class {
                    OverlapClass::WithinLease => v.within_lease += 1,
                    OverlapClass::AfterExpiry => v.after_expiry += 1,
                }
                let sample = if class == OverlapClass::WithinLease { &mut within } else { &mut after };
                sample.offer(|| {
                    let fs =
                        faults.iter().filter(|(s, e, _)| *s <= from && *e >= a.start).map(|f| f.2.clone()).collect();
                    Overlap { key, class, first: (*a).clone(), second: cur.clone(), from, to, faults: fs }
                });
            }
            active.push(cur);
        }
    }
    let mut examples = within.into_vec();
    examples.extend(after.into_vec());
    examples.sort_by_key(|o| (o.from, o.key));
    v.overlaps = examples;
}

/// Tokens per key must grow: a grant that began after another grant had finished
/// (its ok) must carry a larger token. Grants that overlap in real time may come in
/// either order and are not compared.
fn fencing(holds: &[Hold], v: &mut Verdict) {
    for (key, hs) in by_key(holds) {
        let mut done: Vec<&Hold> = hs.iter().copied().filter(|x| x.token != 0).collect();
        done.sort_by_key(|x| x.start);
        let mut begun = done.clone();
        begun.sort_by_key(|x| x.invoked);
        let mut best: Option<&Hold> = None;
        let mut i = 0;
        for cur in begun {
            while i < done.len() && done[i].start < cur.invoked {
                if best.is_none_or(|b| done[i].token > b.token) {
                    best = Some(done[i]);
                }
                i += 1;
            }
            if let Some(b) = best
                && cur.token <= b.token
            {
                v.token_regressions += 1;
                if v.regressions.len() < MAX_EXAMPLES {
                    v.regressions.push(TokenRegression { key, earlier: b.clone(), later: cur.clone() });
                }
            }
        }
    }
    v.regressions.sort_by_key(|r| (r.key, r.later.start));
}

fn register(h: &History, holds: &[Hold], v: &mut Verdict) {
    let expires: HashMap<u64, u64> = holds.iter().map(|x| (x.owner, x.expires)).collect();
    let mut last_write: HashMap<u32, usize> = HashMap::new();
    // Per key: acknowledged writes, and (version, value) of the newest write.
    let mut per_key: HashMap<u32, (u64, u64, u64)> = HashMap::new();
    for (i, e) in h.events.iter().enumerate() {
        if e.op != Op::Write {
            continue;
        }
        match e.kind {
            Kind::Invoke => {
                last_write.insert(e.client, i);
            }
            Kind::Ok => {
                let Some(&j) = last_write.get(&e.client) else {
                    continue;
                };
                let inv = &h.events[j];
                if expires.get(&e.owner).is_some_and(|&x| inv.t >= x) {
                    v.late_writes_accepted += 1;
                }
                // The register's version counts accepted writes: anything but
                // read + 1 means another write landed in between and was overwritten.
                v.writes_acknowledged += 1;
                let k = per_key.entry(e.key).or_insert((0, 0, 0));
                k.0 += 1;
                if e.b >= k.1 {
                    (k.1, k.2) = (e.b, e.a);
                }
                if e.b != inv.b + 1 {
                    v.clobbering_writes += 1;
                    if v.lost.len() < MAX_EXAMPLES {
                        v.lost.push(LostUpdate {
                            key: e.key,
                            client: e.client,
                            owner: e.owner,
                            read_version: inv.b,
                            wrote_version: e.b,
                            events: vec![j, i],
                        });
                    }
                }
            }
            Kind::Fail if e.msg.as_deref().is_some_and(|m| m.starts_with("stale token")) => {
                v.stale_writes_refused += 1;
            }
            _ => {}
        }
    }
    // The register only ever gets value read + 1: its final value is the number of
    // increments that survived.
    v.increments_lost = per_key.values().map(|&(writes, _, value)| writes.saturating_sub(value)).sum();
}

fn liveness(h: &History, v: &mut Verdict) {
    let mut grants_by_client: HashMap<u32, u64> = HashMap::new();
    let mut last_invoke: HashMap<u32, &Event> = HashMap::new();
    let mut crashes: Vec<(u64, u32)> = Vec::new();
    let mut grants_by_key: HashMap<u32, Vec<u64>> = HashMap::new();
    for e in &h.events {
        if e.kind == Kind::Info {
            v.unknown_outcomes += 1;
        }
        match (e.op, e.kind) {
            (Op::Acquire, Kind::Invoke) => {
                v.acquire_attempts += 1;
                grants_by_client.entry(e.client).or_insert(0);
                last_invoke.insert(e.client, e);
            }
            (Op::Acquire, Kind::Ok) => {
                *grants_by_client.entry(e.client).or_insert(0) += 1;
                grants_by_key.entry(e.key).or_default().push(e.t);
                if let Some(inv) = last_invoke.get(&e.client) {
                    let from = if inv.a != 0 { inv.a } else { inv.t };
                    v.longest_wait_ns = v.longest_wait_ns.max(e.t.saturating_sub(from));
                }
            }
            (Op::Acquire, Kind::Fail) if e.msg.as_deref() == Some("timeout") => v.acquire_timeouts += 1,
            (Op::Acquire, Kind::Fail) if e.msg.as_deref() == Some(crate::run::client::REFUSED) => {
                v.acquire_refused += 1
            }
            (Op::Acquire, Kind::Fail) => v.acquire_errors += 1,
            (Op::Crash, Kind::Ok) => crashes.push((e.t, e.key)),
            _ => {}
        }
    }
    v.crashes = crashes.len() as u64;
    for (t, key) in crashes {
        // Grants of a key are in time order: the first one after the crash.
        if let Some(g) = grants_by_key.get(&key).and_then(|g| g.iter().find(|&&g| g > t)) {
            v.crash_recovery_ns.push(g - t);
        }
    }
    v.fairness = jain(grants_by_client.values().copied());
}

/// Jain's fairness index: (Σx)² / (n·Σx²).
pub fn jain(xs: impl Iterator<Item = u64>) -> Option<f64> {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for x in xs {
        n += 1.0;
        s += x as f64;
        s2 += (x as f64) * (x as f64);
    }
    (s2 > 0.0).then(|| s * s / (n * s2))
}

#[cfg(test)]
mod tests;

/// Failures of the harness itself (a worker process that died outside any fault,
/// or could not start): recorded as `fail` crash events, never a violation of the
/// backend. Their messages, in time order.
pub fn harness_errors(h: &History) -> Vec<String> {
    h.events
        .iter()
        .filter(|e| e.op == Op::Crash && e.kind == Kind::Fail)
        .map(|e| e.msg.as_deref().unwrap_or("harness error").to_owned())
        .collect()
}
