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

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

pub use availability::{Availability, ErrorClass, Errors};

pub use crate::record::Source;
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
    /// Fault windows: (start, end, what), in the order they ended; a window
    /// still open at the end of the history ends there.
    #[serde(skip)]
    pub faults: Vec<(u64, u64, String)>,
    /// Faults that hit nothing (no holder at the time, not applied).
    #[serde(skip)]
    pub faults_missed: u64,
    /// Failures of the harness (crash events that `fail`), in time order.
    #[serde(skip)]
    pub harness_errors: Vec<String>,
    /// Grants per client, in client order.
    #[serde(skip)]
    pub grants_per_client: Vec<u64>,
    /// The busiest keys and their grants, busiest first (at most [`BUSIEST_KEYS`]).
    #[serde(skip)]
    pub busiest_keys: Vec<(u32, u64)>,
    /// Requests sent (the answers' `n`) and the answers that counted them, per
    /// operation: acquire, release, renew.
    #[serde(skip)]
    pub requests: [(u64, u64); 3],
}

impl Verdict {
    /// Mean requests per acquire, release and renew; None where none was counted.
    pub fn requests_per_op(&self) -> Option<crate::report::summary::PerOp> {
        let mean = |(sum, n): (u64, u64)| (n > 0).then(|| sum as f64 / n as f64);
        let [a, r, n] = self.requests.map(mean);
        (a.is_some() || r.is_some() || n.is_some()).then_some(crate::report::summary::PerOp {
            acquire: a,
            release: r,
            renew: n,
        })
    }
    /// Every request the operations sent (acquires granted or not, renews,
    /// releases) per granted lock: what one lock costs where requests are priced
    /// (DynamoDB, Momento). None where nothing was counted or granted.
    pub fn requests_per_grant(&self) -> Option<f64> {
        let sent: u64 = self.requests.iter().map(|(sum, _)| sum).sum();
        (sent > 0 && self.grants > 0).then(|| sent as f64 / self.grants as f64)
    }
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

/// Reconstruct every grant's hold from the history, in the order they were granted.
pub fn holds(h: &(impl Source + ?Sized)) -> Vec<Hold> {
    let mut c = Checker::new(h.start(), h.end());
    let kept = std::rc::Rc::new(RefCell::new(Vec::new()));
    let k = kept.clone();
    c.on_hold = Some(Box::new(move |x: &Hold| k.borrow_mut().push(x.clone())));
    if h.scan(&mut |e| c.event(e)).is_err() {
        return Vec::new();
    }
    c.finish();
    let mut out = std::mem::take(&mut *kept.borrow_mut());
    // Granted order (holds end in another).
    out.sort_by_key(|x| (x.start, x.owner));
    out
}

/// Fault windows: (start, end, description), in the order they end; a window
/// still open at the end of the history ends there.
pub fn fault_windows(h: &History) -> Vec<(u64, u64, String)> {
    check(h).faults
}

/// Check one backend's history (in memory).
pub fn check(h: &History) -> Verdict {
    check_source(h).expect("a history in memory reads without error")
}

/// Check a history in one pass over its events, in time order: memory follows the
/// holds open at once and the keys, never the length of the history.
pub fn check_source(h: &(impl Source + ?Sized)) -> std::io::Result<Verdict> {
    let mut c = Checker::new(h.start(), h.end());
    h.scan(&mut |e| c.event(e))?;
    Ok(c.finish())
}

/// A hold while the checker still needs it: open, or in an overlap whose other
/// hold is still open, or an example.
struct Live {
    hold: Hold,
    closed: bool,
    overlapped: bool,
    /// Overlaps with this hold not yet judged (both holds must have ended).
    pairs: Vec<u64>,
}

type L = Rc<RefCell<Live>>;

#[derive(Default)]
struct KeyState {
    /// Holds of this key not yet ended, in the order they were granted.
    open: Vec<L>,
    /// Those of them that count as holders (see `Checker::pending`).
    active: Vec<L>,
    episode_start: u64,
    /// Fencing: the grant with the highest token among those that ended (ok)
    /// before every acquire still waiting began, and the later grants with tokens.
    fence_base: Option<L>,
    fence_recent: VecDeque<L>,
    /// The register: acknowledged writes, and the newest write's version and value.
    writes: u64,
    version: u64,
    value: u64,
    /// Crashes of holders of this key still waiting for the key's next grant.
    crashes: Vec<u64>,
    grants: u64,
}

/// The streaming checker: feed it every event in time order, then `finish`.
pub struct Checker {
    end: u64,
    v: Verdict,
    seq: usize,
    /// Each client's last invoke (any operation), with its index.
    last_invoke: HashMap<u32, (usize, Event)>,
    /// Each client's last acquire invoke: (time, intended start).
    last_acquire: HashMap<u32, (u64, u64)>,
    /// Acquires not yet answered: client → invoke time.
    outstanding: HashMap<u32, u64>,
    last_write: HashMap<u32, (usize, Event)>,
    by_owner: HashMap<u64, L>,
    keys: HashMap<u32, KeyState>,
    pairs: HashMap<u64, (L, L)>,
    next_pair: u64,
    /// Holds granted at `pending_t`, not yet counted as holders: a hold that ends
    /// when another starts does not overlap it, so every end at a time counts
    /// before any start at that time, and a hold that ends where it starts (granted
    /// as the run ended) never counts.
    pending: Vec<L>,
    pending_t: u64,
    within: Spread<(L, L, u64, u64, OverlapClass, Vec<String>)>,
    after: Spread<(L, L, u64, u64, OverlapClass, Vec<String>)>,
    regressions: Vec<(u32, L, L)>,
    faults_open: HashMap<u32, (u64, String)>,
    grants_by_client: HashMap<u32, u64>,
    recoveries: Vec<(u64, u64)>,
    avail: availability::Builder,
    /// Called with every hold as it ends (timelines, `holds`).
    pub on_hold: Option<Box<dyn FnMut(&Hold)>>,
}

impl Checker {
    pub fn new(start: u64, end: u64) -> Checker {
        Checker {
            end,
            v: Verdict::default(),
            seq: 0,
            last_invoke: HashMap::new(),
            last_acquire: HashMap::new(),
            outstanding: HashMap::new(),
            last_write: HashMap::new(),
            by_owner: HashMap::new(),
            keys: HashMap::new(),
            pairs: HashMap::new(),
            next_pair: 0,
            pending: Vec::new(),
            pending_t: 0,
            within: Spread::new(MAX_EXAMPLES / 2),
            after: Spread::new(MAX_EXAMPLES / 2),
            regressions: Vec::new(),
            faults_open: HashMap::new(),
            grants_by_client: HashMap::new(),
            recoveries: Vec::new(),
            avail: availability::Builder::new(start, end),
            on_hold: None,
        }
    }

    pub fn event(&mut self, e: &Event) {
        let i = self.seq;
        self.seq += 1;
        if !self.pending.is_empty() && e.t > self.pending_t {
            self.count_holders();
        }
        self.avail.event(e);
        if e.kind == Kind::Info {
            self.v.unknown_outcomes += 1;
        }
        if e.n > 0 {
            let i = match e.op {
                Op::Acquire => Some(0),
                Op::Release => Some(1),
                Op::Renew => Some(2),
                _ => None,
            };
            if let Some(i) = i {
                self.v.requests[i].0 += u64::from(e.n);
                self.v.requests[i].1 += 1;
            }
        }
        match (e.op, e.kind) {
            (Op::Fault, Kind::Invoke) => {
                if e.b == crate::faults::MISSED {
                    self.v.faults_missed += 1;
                }
                self.faults_open.insert(e.client, (e.t, e.msg.as_deref().unwrap_or("fault").to_owned()));
            }
            (Op::Fault, _) => {
                if let Some((s, d)) = self.faults_open.remove(&e.client) {
                    self.v.faults.push((s, e.t, d));
                }
            }
            (_, Kind::Invoke) => {
                self.last_invoke.insert(e.client, (i, e.clone()));
                match e.op {
                    Op::Release => {
                        if let Some(x) = self.by_owner.get(&e.owner).cloned() {
                            self.close(&x, e.t, "release", i);
                        }
                    }
                    Op::Acquire => {
                        self.v.acquire_attempts += 1;
                        self.grants_by_client.entry(e.client).or_insert(0);
                        self.last_acquire.insert(e.client, (e.t, e.a));
                        self.outstanding.insert(e.client, e.t);
                    }
                    Op::Write => {
                        self.last_write.insert(e.client, (i, e.clone()));
                    }
                    _ => {}
                }
            }
            (Op::Acquire, Kind::Ok) => self.granted(e, i),
            (Op::Acquire, _) => {
                self.outstanding.remove(&e.client);
                match e.kind {
                    Kind::Fail if e.msg.as_deref() == Some("timeout") => self.v.acquire_timeouts += 1,
                    Kind::Fail if e.msg.as_deref() == Some(crate::run::client::REFUSED) => self.v.acquire_refused += 1,
                    Kind::Fail => self.v.acquire_errors += 1,
                    _ => {}
                }
            }
            (Op::Renew, Kind::Ok) => {
                if let (Some(x), Some((_, inv))) = (self.by_owner.get(&e.owner), self.last_invoke.get(&e.client)) {
                    // Renewed: valid for `a` from the renew's invoke.
                    let mut x = x.borrow_mut();
                    x.hold.expires = x.hold.expires.max(inv.t + inv.a);
                }
            }
            (Op::Crash, kind) => {
                if let Some(x) = self.by_owner.get(&e.owner).cloned() {
                    self.close(&x, e.t, "crash", i);
                }
                match kind {
                    Kind::Ok => {
                        self.v.crashes += 1;
                        self.keys.entry(e.key).or_default().crashes.push(e.t);
                    }
                    Kind::Fail => self.v.harness_errors.push(e.msg.as_deref().unwrap_or("harness error").to_owned()),
                    _ => {}
                }
            }
            (Op::Write, Kind::Ok) => self.write_ok(e, i),
            (Op::Write, Kind::Fail) if e.msg.as_deref().is_some_and(|m| m.starts_with("stale token")) => {
                self.v.stale_writes_refused += 1;
            }
            _ => {}
        }
    }

    fn granted(&mut self, e: &Event, i: usize) {
        self.outstanding.remove(&e.client);
        let (inv_i, invoked) = match self.last_invoke.get(&e.client) {
            Some((j, ie)) if ie.op == Op::Acquire => (Some(*j), ie.t),
            _ => (None, e.t),
        };
        let cur: L = Rc::new(RefCell::new(Live {
            hold: Hold {
                key: e.key,
                client: e.client,
                owner: e.owner,
                token: e.token,
                invoked,
                start: e.t,
                end: 0,
                // `a` is what was left of the lease at the grant.
                expires: e.t + e.a,
                ended_by: String::new(),
                events: inv_i.into_iter().chain([i]).collect(),
            },
            closed: false,
            overlapped: false,
            pairs: Vec::new(),
        }));
        self.v.grants += 1;
        *self.grants_by_client.entry(e.client).or_insert(0) += 1;
        if let Some(&(t, intended)) = self.last_acquire.get(&e.client) {
            let from = if intended != 0 { intended } else { t };
            self.v.longest_wait_ns = self.v.longest_wait_ns.max(e.t.saturating_sub(from));
        }
        let floor = self.outstanding.values().copied().min().unwrap_or(invoked).min(invoked);
        let ks = self.keys.entry(e.key).or_default();
        ks.grants += 1;
        // Crashes of this key's holders: this is the next grant after them.
        ks.crashes.retain(|&c| {
            if c < e.t {
                self.recoveries.push((c, e.t - c));
                false
            } else {
                true
            }
        });
        // Fencing: the token must be above that of every grant that was made
        // before this acquire began. Grants before every waiting acquire began
        // count for all of them: fold them into one, the highest.
        if e.token != 0 {
            while ks.fence_recent.front().is_some_and(|x| x.borrow().hold.start < floor) {
                let x = ks.fence_recent.pop_front().expect("checked");
                if ks.fence_base.as_ref().is_none_or(|b| x.borrow().hold.token > b.borrow().hold.token) {
                    ks.fence_base = Some(x);
                }
            }
            let mut best = ks.fence_base.clone();
            for x in &ks.fence_recent {
                let xb = x.borrow();
                if xb.hold.start < invoked && best.as_ref().is_none_or(|b| xb.hold.token > b.borrow().hold.token) {
                    drop(xb);
                    best = Some(x.clone());
                }
            }
            if let Some(b) = best
                && e.token <= b.borrow().hold.token
            {
                self.v.token_regressions += 1;
                if self.regressions.len() < MAX_EXAMPLES {
                    self.regressions.push((e.key, b, cur.clone()));
                }
            }
            ks.fence_recent.push_back(cur.clone());
        }
        // Mutual exclusion: every hold of this key still open may overlap this
        // one; judged when both have ended.
        for a in &ks.open {
            if a.borrow().hold.owner == e.owner {
                continue;
            }
            let id = self.next_pair;
            self.next_pair += 1;
            a.borrow_mut().pairs.push(id);
            cur.borrow_mut().pairs.push(id);
            self.pairs.insert(id, (a.clone(), cur.clone()));
        }
        ks.open.push(cur.clone());
        self.pending.push(cur.clone());
        self.pending_t = e.t;
        self.by_owner.insert(e.owner, cur);
    }

    /// Concurrency: the holds granted at `pending_t` become holders (holders at
    /// once, episodes with two or more).
    fn count_holders(&mut self) {
        for x in std::mem::take(&mut self.pending) {
            let (key, t) = (x.borrow().hold.key, x.borrow().hold.start);
            let ks = self.keys.entry(key).or_default();
            ks.active.push(x);
            let n = ks.active.len();
            self.v.max_holders = self.v.max_holders.max(n as u64);
            if n == 2 {
                self.v.overlap_episodes += 1;
                ks.episode_start = t;
            }
            if n >= 2 {
                for a in &ks.active {
                    a.borrow_mut().overlapped = true;
                }
            }
        }
    }

    fn close(&mut self, x: &L, t: u64, by: &str, i: usize) {
        let (key, owner, pairs) = {
            let mut xb = x.borrow_mut();
            if xb.closed {
                return;
            }
            xb.closed = true;
            xb.hold.end = t.max(xb.hold.start);
            xb.hold.ended_by = by.to_owned();
            if i != usize::MAX {
                xb.hold.events.push(i);
            }
            if xb.overlapped {
                self.v.holds_overlapped += 1;
            }
            (xb.hold.key, xb.hold.owner, std::mem::take(&mut xb.pairs))
        };
        if self.by_owner.get(&owner).is_some_and(|y| Rc::ptr_eq(x, y)) {
            self.by_owner.remove(&owner);
        }
        let was_pending = self.pending.iter().position(|y| Rc::ptr_eq(x, y));
        if let Some(p) = was_pending {
            // Ended where it started: never a holder.
            self.pending.remove(p);
        }
        if let Some(ks) = self.keys.get_mut(&key) {
            ks.open.retain(|y| !Rc::ptr_eq(x, y));
            let before = ks.active.len();
            ks.active.retain(|y| !Rc::ptr_eq(x, y));
            if before >= 2 && ks.active.len() == 1 {
                self.v.overlap_ns += t - ks.episode_start;
            }
        }
        if let Some(f) = self.on_hold.as_mut() {
            f(&x.borrow().hold);
        }
        for id in pairs {
            let done = self.pairs.get(&id).is_some_and(|(a, b)| a.borrow().closed && b.borrow().closed);
            if done {
                let (a, b) = self.pairs.remove(&id).expect("checked");
                self.judge(a, b);
            }
        }
    }

    /// Both holds of an overlap have ended: was it one, and of which class?
    fn judge(&mut self, a: L, cur: L) {
        let (ab, cb) = (a.borrow(), cur.borrow());
        if ab.hold.end <= cb.hold.start {
            return;
        }
        let from = cb.hold.start;
        let to = ab.hold.end.min(cb.hold.end);
        let class = if from < ab.hold.expires.min(cb.hold.expires) {
            OverlapClass::WithinLease
        } else {
            OverlapClass::AfterExpiry
        };
        let a_start = ab.hold.start;
        drop((ab, cb));
        let sample = match class {
            OverlapClass::WithinLease => {
                self.v.within_lease += 1;
                &mut self.within
            }
            OverlapClass::AfterExpiry => {
                self.v.after_expiry += 1;
                &mut self.after
            }
        };
        if sample.wants() {
            // Faults whose window touched the first hold up to the overlap (a
            // window still open will end after both).
            let faults = self
                .v
                .faults
                .iter()
                .map(|(s, e, d)| (*s, *e, d))
                .chain(self.faults_open.values().map(|(s, d)| (*s, u64::MAX, d)))
                .filter(|(s, e, _)| *s <= from && *e >= a_start)
                .map(|(_, _, d)| d.clone())
                .collect();
            sample.offer(|| (a, cur, from, to, class, faults));
        } else {
            sample.offer(|| unreachable!("offered only when wanted"));
        }
    }

    fn write_ok(&mut self, e: &Event, i: usize) {
        let Some((j, inv)) = self.last_write.get(&e.client) else {
            return;
        };
        let j = *j;
        if self.by_owner.get(&e.owner).is_some_and(|x| inv.t >= x.borrow().hold.expires) {
            self.v.late_writes_accepted += 1;
        }
        // The register's version counts accepted writes: anything but read + 1
        // means another write landed in between and was overwritten.
        self.v.writes_acknowledged += 1;
        let read = inv.b;
        let k = self.keys.entry(e.key).or_default();
        k.writes += 1;
        if e.b >= k.version {
            (k.version, k.value) = (e.b, e.a);
        }
        if e.b != read + 1 {
            self.v.clobbering_writes += 1;
            if self.v.lost.len() < MAX_EXAMPLES {
                self.v.lost.push(LostUpdate {
                    key: e.key,
                    client: e.client,
                    owner: e.owner,
                    read_version: read,
                    wrote_version: e.b,
                    events: vec![j, i],
                });
            }
        }
    }

    pub fn finish(mut self) -> Verdict {
        // Holds still open end with the run, in the order they were granted.
        let mut open: Vec<L> = self.keys.values().flat_map(|k| k.open.iter().cloned()).collect();
        open.sort_by_key(|x| (x.borrow().hold.start, x.borrow().hold.events.last().copied()));
        let end = self.end;
        if !self.pending.is_empty() && end > self.pending_t {
            self.count_holders();
        }
        for x in open {
            self.close(&x, end, "run-end", usize::MAX);
        }
        let mut open_faults: Vec<_> = std::mem::take(&mut self.faults_open).into_values().collect();
        open_faults.sort();
        self.v.faults.extend(open_faults.into_iter().map(|(s, d)| (s, end, d)));
        let mut v = self.v;
        // Zero-length holds (granted as the run ended) still count as holders.
        if v.grants > 0 {
            v.max_holders = v.max_holders.max(1);
        }
        // The register only ever gets value read + 1: its final value is the
        // number of increments that survived.
        v.increments_lost = self.keys.values().map(|k| k.writes.saturating_sub(k.value)).sum();
        self.recoveries.sort_unstable();
        v.crash_recovery_ns = self.recoveries.into_iter().map(|(_, d)| d).collect();
        let n = self.grants_by_client.keys().copied().max().map_or(0, |c| c as usize + 1);
        v.grants_per_client = vec![0; n];
        for (&c, &g) in &self.grants_by_client {
            v.grants_per_client[c as usize] = g;
        }
        v.fairness = jain(self.grants_by_client.values().copied());
        let mut busiest: Vec<(u32, u64)> =
            self.keys.iter().filter(|(_, k)| k.grants > 0).map(|(&k, s)| (k, s.grants)).collect();
        busiest.sort_by_key(|&(k, n)| (std::cmp::Reverse(n), k));
        busiest.truncate(BUSIEST_KEYS);
        v.busiest_keys = busiest;
        let mut examples: Vec<Overlap> = self
            .within
            .into_vec()
            .into_iter()
            .chain(self.after.into_vec())
            .map(|(a, b, from, to, class, faults)| Overlap {
                key: a.borrow().hold.key,
                class,
                first: a.borrow().hold.clone(),
                second: b.borrow().hold.clone(),
                from,
                to,
                faults,
            })
            .collect();
        examples.sort_by_key(|o| (o.from, o.key));
        v.overlaps = examples;
        v.regressions = self
            .regressions
            .into_iter()
            .map(|(key, a, b)| TokenRegression {
                key,
                earlier: a.borrow().hold.clone(),
                later: b.borrow().hold.clone(),
            })
            .collect();
        v.regressions.sort_by_key(|r| (r.key, r.later.start));
        v.availability = self.avail.finish();
        v
    }
}

/// Keys whose grant counts the verdict keeps (the busiest), for the timelines.
pub const BUSIEST_KEYS: usize = 8;

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
mod reference;
#[cfg(test)]
mod tests;

/// Failures of the harness itself (a worker process that died outside any fault,
/// or could not start): recorded as `fail` crash events, never a violation of the
/// backend. Their messages, in time order.
pub fn harness_errors(h: &History) -> Vec<String> {
    check(h).harness_errors
}
