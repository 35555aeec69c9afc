//! One client: the loop that takes a lock, does the guarded read-modify-write while
//! holding it, and lets go, recording every step.
//!
//! The client's schedule (which key, how long to hold, how long to think) comes
//! only from its own seeded RNG, never from timing, so the same seed gives the same
//! schedule on every backend. The client must not judge what it sees: a renew that
//! fails or a stale write that is refused is recorded, and the checker decides.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::{BackendError, Lease, LockSession, Wait};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use super::keys::KeyChooser;
use super::register::Guarded;
use crate::record::{Event, Kind, Op, Recorder};
use crate::scenario::DurDist;

/// What every client of one run shares: the plan, read only.
pub struct Plan {
    pub lease: Duration,
    pub wait: Wait,
    pub hold: DurDist,
    pub think: DurDist,
    pub renew_every: Option<Duration>,
    /// Pass fencing tokens to the register.
    pub fencing: bool,
    /// Only try-acquire: no wait, no register, no release.
    pub acquire_only: bool,
    pub keys: KeyChooser,
    pub key_names: Arc<Vec<String>>,
    pub seed: u64,
    pub clients: u32,
    /// Open model: time between one client's scheduled starts.
    pub open_interval: Option<Duration>,
    /// Total acquire attempts for the run (ops mode).
    pub ops: Option<u64>,
    /// True time the load starts (ns).
    pub start: u64,
    /// The clock clients read lease time from (skewed in clock-skew scenarios).
    pub clock: lockbench_backends::Clock,
}

impl Plan {
    /// This client's share of `ops`.
    fn ops_for(&self, client: u32) -> Option<u64> {
        self.ops.map(|n| n / self.clients as u64 + u64::from((client as u64) < n % self.clients as u64))
    }
}

/// The seed of client `id`'s RNG: distinct per client, fixed per run seed.
pub fn client_seed(seed: u64, id: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(id as u64 + 1)
}

/// What is left of `lease` now, in true nanoseconds, for the checker. The backend
/// promised `expires_at - granted_at` from the start of the attempt that got the
/// lease (which may be long after the acquire's invoke); that attempt's age is read
/// on the client's clock and scaled back to true time by the clock's rate, so a
/// skewed client clock does not move the checker's idea of the lease.
pub fn true_remaining(lease: &Lease, clock: &lockbench_backends::Clock) -> u64 {
    let promised = lease.expires_at as i128 - lease.granted_at as i128;
    let age_c = clock.now_ns() as i128 - lease.granted_at as i128;
    let age = (age_c as f64 / clock.rate()) as i128;
    (promised - age).clamp(0, u64::MAX as i128) as u64
}

/// A fault the nemesis asks of an in-task client while it holds a lock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Drop the session without releasing, as a crashed process would; come back
    /// with a new session after this long.
    Crash { restart_after: Duration },
    /// Stop for this long (a GC pause), then carry on and write.
    Pause(Duration),
}

/// The nemesis's handle on one client, and what the client tells it.
#[derive(Default)]
pub struct Control {
    /// Owner id of the lease the client holds now (0: none).
    pub holding: AtomicU64,
    command: std::sync::Mutex<Option<Command>>,
    wake: Notify,
}

impl Control {
    pub fn send(&self, c: Command) {
        *self.command.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
        self.wake.notify_one();
    }
    fn take(&self) -> Option<Command> {
        self.command.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
    /// Wait for the nemesis's next command (a worker's supervisor acts on it).
    pub async fn next_command(&self) -> Command {
        loop {
            if let Some(c) = self.take() {
                return c;
            }
            self.wake.notified().await;
        }
    }
}

/// Counters the progress bar reads.
#[derive(Default)]
pub struct Progress {
    pub attempts: AtomicU64,
    pub grants: AtomicU64,
}

/// The run-wide flags clients watch.
pub struct Shared {
    /// The load is over: start nothing new.
    pub stop: AtomicBool,
    pub progress: Progress,
    pub register: Guarded,
    /// The drain after the load is over too: cut holds short, give up requests.
    drained: tokio::sync::watch::Sender<bool>,
    /// Open load: every client's session is ready before the schedule starts (so
    /// that set-up is not measured as latency, nor followed by a catch-up burst).
    ready: Option<Ready>,
    /// When the open schedule started (ns), once every session was ready.
    pub load_start: std::sync::OnceLock<u64>,
}

/// Wait until `at` (ns, CLOCK_MONOTONIC) without the timer's millisecond
/// lateness: tokio's timer wakes up to a millisecond late, which an open load's
/// corrected latency would blame on the backend. Sleep to 2 ms before, then yield
/// until the instant.
async fn wait_until(at: u64) {
    const SPIN: u64 = 2_000_000;
    let now = mono_ns();
    if at > now + SPIN {
        tokio::time::sleep(Duration::from_nanos(at - now - SPIN)).await;
    }
    while mono_ns() < at {
        tokio::task::yield_now().await;
    }
}

/// How an open load's clients agree on when its schedule starts: when every
/// session is ready, or [`READY_WAIT`] after a client became ready, so that a
/// session that cannot open holds nobody up for good.
enum Ready {
    /// Task mode: every client is a task of this process.
    Barrier(tokio::sync::Barrier),
    /// Process mode, the parent: it counts its workers ready (`want` of them) and
    /// then tells each one the start (`go`).
    Workers { want: u32, seen: AtomicU64, go: tokio::sync::watch::Sender<Option<u64>> },
    /// Process mode, a worker: `tell` the parent it is ready, and wait for the
    /// start it sends (`go`).
    Parent { tell: fn(), go: tokio::sync::watch::Sender<Option<u64>> },
}

/// How long a ready client waits for the others before the schedule starts anyway.
pub const READY_WAIT: Duration = Duration::from_secs(10);

/// The message of a try-acquire (no wait) that found the key held.
pub const REFUSED: &str = "refused (held)";

/// Once the drain is over, how long a release may still take before it is
/// recorded as unknown.
const RELEASE_AFTER_DRAIN: Duration = Duration::from_secs(1);

impl Shared {
    pub fn new(register: Guarded) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            progress: Progress::default(),
            register,
            drained: tokio::sync::watch::channel(false).0,
            ready: None,
            load_start: std::sync::OnceLock::new(),
        }
    }
    /// Start the open schedule only when `clients` sessions are ready (or after
    /// [`READY_WAIT`]): clients are tasks of this process.
    pub fn with_ready(mut self, clients: u32) -> Shared {
        self.ready = Some(Ready::Barrier(tokio::sync::Barrier::new(clients as usize)));
        self
    }
    /// The same for `clients` worker processes: each says when its session is
    /// ready ([`Shared::worker_ready`]) and is sent the start ([`Shared::started`]).
    pub fn with_workers_ready(mut self, clients: u32) -> Shared {
        let go = tokio::sync::watch::channel(None).0;
        self.ready = Some(Ready::Workers { want: clients, seen: AtomicU64::new(0), go });
        self
    }
    /// Inside a worker: `tell` the parent when the session is ready, then wait for
    /// the start it sends ([`Shared::set_start`]).
    pub fn with_parent_ready(mut self, tell: fn()) -> Shared {
        self.ready = Some(Ready::Parent { tell, go: tokio::sync::watch::channel(None).0 });
        self
    }
    /// Start the schedule now, unless it has started; returns its start (ns).
    fn start_now(&self, not_before: u64) -> u64 {
        let base = *self.load_start.get_or_init(|| mono_ns().max(not_before));
        if let Some(Ready::Workers { go, .. } | Ready::Parent { go, .. }) = &self.ready {
            go.send_if_modified(|v| v.replace(base) != Some(base));
        }
        base
    }
    /// The parent: one more worker's session is ready; with the last one the
    /// schedule starts. (A worker restarted after a crash says so again: the
    /// schedule has started, and it is told when.)
    pub fn worker_ready(&self) {
        if let Some(Ready::Workers { want, seen, .. }) = &self.ready
            && seen.fetch_add(1, Ordering::Relaxed) + 1 >= *want as u64
        {
            self.start_now(0);
        }
    }
    /// The parent: the schedule's start, once every worker is ready or
    /// [`READY_WAIT`] after `ready_at` (ns), when this worker said it was ready.
    pub async fn started(&self, ready_at: u64) -> u64 {
        if let Some(Ready::Workers { go, .. }) = &self.ready {
            let left = (ready_at + READY_WAIT.as_nanos() as u64).saturating_sub(mono_ns());
            let mut rx = go.subscribe();
            if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_nanos(left), rx.wait_for(|v| v.is_some())).await
                && let Some(base) = *v
            {
                return base;
            }
        }
        self.start_now(0)
    }
    /// Inside a worker: the start the parent sent.
    pub fn set_start(&self, base: u64) {
        let _ = self.load_start.set(base);
        self.start_now(base);
    }
    /// A client whose session is ready waits here for the open schedule's start
    /// (ns); `None` when the schedule does not wait (it starts at the plan's start).
    async fn ready_to_start(&self, not_before: u64) -> Option<u64> {
        match self.ready.as_ref()? {
            Ready::Barrier(b) => {
                let _ = tokio::time::timeout(READY_WAIT, b.wait()).await;
                Some(self.start_now(not_before))
            }
            Ready::Parent { tell, go } => {
                tell();
                let mut rx = go.subscribe();
                // The parent starts the schedule within READY_WAIT; past that (and a
                // second for the pipe) this worker starts on its own.
                let wait = READY_WAIT + Duration::from_secs(1);
                if let Ok(Ok(v)) = tokio::time::timeout(wait, rx.wait_for(|v| v.is_some())).await
                    && let Some(base) = *v
                {
                    return Some(base);
                }
                Some(self.start_now(not_before))
            }
            Ready::Workers { .. } => None,
        }
    }
    /// End the drain: holds still open are cut short and released.
    pub fn end_drain(&self) {
        self.drained.send_replace(true);
    }
    pub fn is_drained(&self) -> bool {
        *self.drained.borrow()
    }
    /// Resolves when the drain is over.
    pub async fn drained(&self) {
        let mut rx = self.drained.subscribe();
        let _ = rx.wait_for(|&d| d).await;
    }
}

/// Requests the session sent since it had sent `before` (0: not counted).
fn sent_since(s: &dyn LockSession, before: Option<u64>) -> u32 {
    match (before, s.requests_sent()) {
        (Some(b), Some(a)) => a.saturating_sub(b).min(u64::from(u32::MAX)) as u32,
        _ => 0,
    }
}

/// How a cycle ended (public for the recorder bench).
pub enum HoldEnd {
    /// Released (or tried to), or the acquire got an answer (granted or not).
    Done,
    /// Crashed: the session is gone.
    Crashed(Duration),
    /// The acquire got no answer (refused, unavailable, timed out): back off.
    Failed,
}

/// How long a client waits after a failed request before the next: from
/// [`RETRY_MIN`] doubling to [`RETRY_MAX`], jittered by the client's own seeded RNG
/// (a separate stream from its schedule's, so errors do not shift the keys it
/// asks for). A client whose server is down then records a few events a second,
/// not millions.
pub struct Retry {
    next: Duration,
    rng: StdRng,
}

pub const RETRY_MIN: Duration = Duration::from_millis(10);
pub const RETRY_MAX: Duration = Duration::from_secs(1);

impl Retry {
    pub fn new(seed: u64) -> Self {
        Retry { next: RETRY_MIN, rng: StdRng::seed_from_u64(seed ^ 0xBAC0_FF00_D1CE_5EED) }
    }
    /// The next delay: uniform in [d/2, d], then d doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(RETRY_MAX);
        let half = d / 2;
        half + half.mul_f64(self.rng.random::<f64>())
    }
    /// A request was answered: the next failure starts from the bottom again.
    pub fn reset(&mut self) {
        self.next = RETRY_MIN;
    }
}

pub struct Client {
    pub id: u32,
    pub plan: Arc<Plan>,
    pub shared: Arc<Shared>,
    pub control: Arc<Control>,
    pub rec: Recorder,
    /// The clock this client times its work by (its own when clocks are skewed).
    pub clock: lockbench_backends::Clock,
    /// The clock its backend instance stamps leases with: the client's own clock,
    /// or the shared one of a backend that lives in the harness (inprocess).
    pub lease_clock: lockbench_backends::Clock,
    rng: StdRng,
}

impl Client {
    pub fn new(id: u32, plan: Arc<Plan>, shared: Arc<Shared>, control: Arc<Control>) -> Self {
        let rng = StdRng::seed_from_u64(client_seed(plan.seed, id));
        let clock = plan.clock.clone();
        let lease_clock = clock.clone();
        Client { id, plan, shared, control, rec: Recorder::with_capacity(1024), clock, lease_clock, rng }
    }

    #[inline]
    fn ev(&self, kind: Kind, op: Op, key: u32) -> Event {
        Event::new(mono_ns(), self.id, kind, op, key)
    }

    /// Sleep `d`, or less if the run stops meanwhile.
    async fn pause(&self, d: Duration) {
        let until = mono_ns() + d.as_nanos() as u64;
        loop {
            let now = mono_ns();
            if now >= until || self.shared.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_nanos(until - now).min(Duration::from_millis(50))).await;
        }
    }

    /// A new session, retried with backoff until it opens or the run stops (then
    /// `None`). Each failure is an acquire attempt that failed (or is unknown),
    /// recorded as such: a session that cannot be opened is no grant.
    async fn open<F, Fut>(&mut self, connect: &F, retry: &mut Retry) -> Option<Box<dyn LockSession>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Box<dyn LockSession>, BackendError>>,
    {
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            let invoked = self.ev(Kind::Invoke, Op::Acquire, 0);
            match connect().await {
                Ok(s) => return Some(s),
                Err(e) => {
                    self.rec.push(invoked);
                    // Opening a session never grants a lock: whatever the error, no
                    // grant happened (fail, never unknown).
                    let ev = self.ev(Kind::Fail, Op::Acquire, 0).with_msg(format!("no session: {e}"));
                    self.rec.push(ev);
                    self.shared.progress.attempts.fetch_add(1, Ordering::Relaxed);
                    let d = retry.next_delay();
                    self.pause(d).await;
                }
            }
        }
    }

    /// Run until the run stops (or this client's ops are done). `connect` makes a
    /// new session: at the start and after a crash; a session that cannot be opened
    /// is retried with backoff until the run stops, never abandoned.
    pub async fn run<F, Fut>(mut self, connect: F) -> Recorder
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Box<dyn LockSession>, BackendError>>,
    {
        let mut retry = Retry::new(client_seed(self.plan.seed, self.id));
        let Some(mut session) = self.open(&connect, &mut retry).await else {
            return self.rec;
        };
        let mut left = self.plan.ops_for(self.id);
        // Open model: the schedule starts when every session is ready.
        let mut base = self.plan.start;
        if self.plan.open_interval.is_some()
            && let Some(b) = self.shared.ready_to_start(self.plan.start).await
        {
            base = b;
        }
        // Open model: this client's slots, offset so clients do not start together.
        let mut slot =
            self.plan.open_interval.map(|iv| base + (iv.as_nanos() as u64 * self.id as u64) / self.plan.clients as u64);
        loop {
            if self.shared.stop.load(Ordering::Relaxed) || left == Some(0) {
                break;
            }
            if let Some(l) = left.as_mut() {
                *l -= 1;
            }
            let key = self.plan.keys.next(&mut self.rng);
            let hold = self.plan.hold.sample(&mut self.rng);
            let think = self.plan.think.sample(&mut self.rng);
            let intended = match (slot.as_mut(), self.plan.open_interval) {
                (Some(s), Some(iv)) => {
                    let at = *s;
                    *s += iv.as_nanos() as u64;
                    wait_until(at).await;
                    at
                }
                _ => 0,
            };
            match self.cycle(&mut *session, key, hold, intended).await {
                HoldEnd::Done => retry.reset(),
                HoldEnd::Failed => {
                    // No spinning: a client whose requests fail waits, more each time.
                    let d = retry.next_delay();
                    self.pause(d).await;
                    continue;
                }
                HoldEnd::Crashed(after) => {
                    drop(session);
                    // Back after `after`, unless the run is over by then.
                    self.pause(after).await;
                    if self.shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    session = match self.open(&connect, &mut retry).await {
                        Some(s) => s,
                        None => return self.rec,
                    };
                }
            }
            if self.plan.open_interval.is_none() && !think.is_zero() {
                self.pause(think).await;
            } else {
                // A cycle may not have waited for anything (an embedded lock's
                // try-acquire of a held key answers at once): without this the
                // clients could keep every worker thread, and the timer that ends
                // the load, a signal's stop and the progress display would never
                // run (seen: acquire-only with wait 0 on sqlite ran on for minutes).
                tokio::task::yield_now().await;
            }
        }
        self.rec
    }

    /// One acquire, and if granted the guarded write and the release: the whole
    /// recorded cycle, which `benches/recorder.rs` measures.
    pub async fn cycle(&mut self, s: &mut dyn LockSession, key: u32, hold: Duration, intended: u64) -> HoldEnd {
        let name = &self.plan.key_names[key as usize];
        let mut inv = self.ev(Kind::Invoke, Op::Acquire, key);
        inv.a = intended;
        self.rec.push(inv);
        self.shared.progress.attempts.fetch_add(1, Ordering::Relaxed);
        let before = s.requests_sent();
        let acquire = async {
            if self.plan.acquire_only {
                s.try_acquire(name, self.plan.lease).await
            } else {
                s.acquire(name, self.plan.lease, &self.plan.wait).await
            }
        };
        let got = tokio::select! {
            r = acquire => Some(r),
            _ = self.shared.drained() => None,
        };
        let Some(got) = got else {
            // The request may have been granted as the run gave up on it.
            let mut ev =
                self.ev(Kind::Info, Op::Acquire, key).with_msg("the run's drain ended with this acquire in flight");
            ev.n = sent_since(s, before);
            self.rec.push(ev);
            return HoldEnd::Done;
        };
        let n = sent_since(s, before);
        match got {
            Ok(Some(lease)) => {
                let mut ok = self.ev(Kind::Ok, Op::Acquire, key);
                ok.owner = lease.owner;
                ok.token = lease.fencing_token.unwrap_or(0);
                ok.a = true_remaining(&lease, &self.lease_clock);
                ok.n = n;
                self.rec.push(ok);
                self.shared.progress.grants.fetch_add(1, Ordering::Relaxed);
                if self.plan.acquire_only {
                    return HoldEnd::Done;
                }
                self.hold(s, key, &lease, hold).await
            }
            Ok(None) => {
                // A try without waiting found the key held: a refusal, not a wait
                // that timed out.
                let why = if self.plan.acquire_only || self.plan.wait.max.is_zero() { REFUSED } else { "timeout" };
                let mut ev = self.ev(Kind::Fail, Op::Acquire, key).with_msg(why);
                ev.n = n;
                self.rec.push(ev);
                HoldEnd::Done
            }
            Err(e) => {
                // Unknown (a timeout or lost connection mid-request): the grant may
                // have happened, so this is info, never fail.
                let kind = if e.is_indeterminate() { Kind::Info } else { Kind::Fail };
                let mut ev = self.ev(kind, Op::Acquire, key).with_msg(e.to_string());
                ev.n = n;
                self.rec.push(ev);
                HoldEnd::Failed
            }
        }
    }

    async fn hold(&mut self, s: &mut dyn LockSession, key: u32, lease: &Lease, hold: Duration) -> HoldEnd {
        self.control.holding.store(lease.owner, Ordering::Relaxed);
        let end = self.hold_inner(s, key, lease, hold).await;
        self.control.holding.store(0, Ordering::Relaxed);
        end
    }

    async fn hold_inner(&mut self, s: &mut dyn LockSession, key: u32, lease: &Lease, hold: Duration) -> HoldEnd {
        let token = lease.fencing_token.unwrap_or(0);
        let with = |mut e: Event| {
            e.owner = lease.owner;
            e.token = token;
            e
        };
        // Read the guarded register.
        let inv = with(self.ev(Kind::Invoke, Op::Read, key));
        self.rec.push(inv);
        let (value, version) = self.shared.register.read(key).await;
        let mut ok = with(self.ev(Kind::Ok, Op::Read, key));
        ok.a = value;
        ok.b = version;
        self.rec.push(ok);

        // Hold, renewing on schedule, open to the nemesis. Both are timed by the
        // client's own clock, as a real client's would be.
        let until = self.clock.now_ns() + hold.as_nanos() as u64;
        let mut lost = false;
        loop {
            let now = self.clock.now_ns();
            if now >= until {
                break;
            }
            let step = match self.plan.renew_every {
                Some(r) => r.min(Duration::from_nanos(until - now)),
                None => Duration::from_nanos(until - now),
            };
            tokio::select! {
                _ = tokio::time::sleep(self.clock.true_duration(step)) => {}
                _ = self.control.wake.notified() => {}
                _ = self.shared.drained() => {}
            }
            if self.shared.is_drained() {
                // The run is over and so is its drain: stop holding, do not write
                // (the lease may be gone), release.
                lost = true;
                break;
            }
            match self.control.take() {
                Some(Command::Crash { restart_after }) => {
                    let ev = with(self.ev(Kind::Ok, Op::Crash, key));
                    self.rec.push(ev);
                    return HoldEnd::Crashed(restart_after);
                }
                Some(Command::Pause(d)) => {
                    // A stop-the-world pause: nothing runs, not even renewals. The
                    // end of the run's drain still ends it (so that the history
                    // comes back whole).
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = self.shared.drained() => {}
                    }
                    continue;
                }
                None => {}
            }
            if self.plan.renew_every.is_some() && self.clock.now_ns() < until {
                let mut inv = with(self.ev(Kind::Invoke, Op::Renew, key));
                inv.a = self.plan.lease.as_nanos() as u64;
                self.rec.push(inv);
                let before = s.requests_sent();
                let r = s.renew(lease, self.plan.lease).await;
                let counted = |mut e: Event| {
                    e.n = sent_since(s, before);
                    e
                };
                match r {
                    Ok(true) => self.rec.push(counted(with(self.ev(Kind::Ok, Op::Renew, key)))),
                    Ok(false) => {
                        self.rec.push(counted(with(self.ev(Kind::Fail, Op::Renew, key))).with_msg("lease lost"));
                        lost = true;
                        break;
                    }
                    Err(e) => {
                        let kind = if e.is_indeterminate() { Kind::Info } else { Kind::Fail };
                        self.rec.push(counted(with(self.ev(kind, Op::Renew, key))).with_msg(e.to_string()));
                    }
                }
            }
        }

        // Write back +1, unless a renew told us the lease is gone (a careful holder
        // stops there).
        if !lost {
            let mut inv = with(self.ev(Kind::Invoke, Op::Write, key));
            inv.a = value + 1;
            inv.b = version;
            self.rec.push(inv);
            let fence = (self.plan.fencing && token != 0).then_some(token);
            match self.shared.register.write(key, value + 1, fence).await {
                Ok(v) => {
                    let mut ok = with(self.ev(Kind::Ok, Op::Write, key));
                    ok.a = value + 1;
                    ok.b = v;
                    self.rec.push(ok);
                }
                Err(stale) => {
                    let ev = with(self.ev(Kind::Fail, Op::Write, key))
                        .with_msg(format!("stale token: register has seen {}", stale.seen));
                    self.rec.push(ev);
                }
            }
        }

        // Release.
        self.rec.push(with(self.ev(Kind::Invoke, Op::Release, key)));
        let before = s.requests_sent();
        let released = tokio::select! {
            r = s.release(lease) => Some(r),
            _ = async {
                self.shared.drained().await;
                tokio::time::sleep(RELEASE_AFTER_DRAIN).await;
            } => None,
        };
        let Some(released) = released else {
            // Unknown: it may have been released; the key may still be held.
            self.rec
                .push(with(self.ev(Kind::Info, Op::Release, key)).with_msg("no answer before the run's drain ended"));
            return HoldEnd::Done;
        };
        let mut ev = match released {
            Ok(true) => with(self.ev(Kind::Ok, Op::Release, key)),
            Ok(false) => with(self.ev(Kind::Fail, Op::Release, key)).with_msg("not the owner any more"),
            // Unknown: the release may have happened; the key may still be held.
            Err(e) if e.is_indeterminate() => with(self.ev(Kind::Info, Op::Release, key)).with_msg(e.to_string()),
            Err(e) => with(self.ev(Kind::Fail, Op::Release, key)).with_msg(e.to_string()),
        };
        ev.n = sent_since(s, before);
        self.rec.push(ev);
        HoldEnd::Done
    }
}
