//! The nemesis: the one place faults are applied.
//!
//! A fault is a closed enum of verbs ([`FaultSpec`], in `spec`), scheduled in the
//! scenario (`[[faults]]`, at a time since the load started, optionally repeating).
//! The nemesis picks its targets with the run's seeded RNG and records every fault
//! as a window in the history (invoke = start, ok = end), so the report can shade it
//! and the checker can say which fault was active at a violation.
//!
//! Faults act through narrow handles, one family a file: clients through [`Crew`]
//! (`process`: crash or pause a holder; `clock`: a client's clock), servers through
//! the provider's `Servers` (`server`), the network through the per-client proxies
//! (`net`). This module must not reach into the runner: the runner implements
//! [`Crew`], and that is all a fault sees of it.

mod clock;
mod net;
mod process;
pub mod proxy;
mod server;
mod spec;

use std::sync::Arc;
use std::time::Duration;

use lockbench_backends::Clock;
use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::Servers;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use net::Net;
pub use spec::{Clients, FaultSpec, SignedDur, Way, faketime_value};

use crate::record::{Event, Kind, Op};

/// What a fault may do to the clients of a run: the nemesis's only handle on them.
pub trait Crew: Send + Sync {
    /// How many clients the run has.
    fn count(&self) -> usize;
    /// The clients that hold a lock now.
    fn holders(&self) -> Vec<usize>;
    /// Kill client `c`'s holder without releasing (SIGKILL a worker process, or
    /// drop a task's session); it comes back after `restart_after`. Must not wait.
    fn crash(&self, c: usize, restart_after: Duration);
    /// Stop client `c` for `d` (SIGSTOP, or a task that sleeps), then let it carry
    /// on. Must not wait.
    fn pause(&self, c: usize, d: Duration);
    /// Has the load stopped?
    fn stopped(&self) -> bool;
}

/// What the nemesis can act on.
pub struct World {
    pub crew: Arc<dyn Crew>,
    pub servers: Option<Arc<dyn Servers>>,
    /// Per-client proxies, when the scenario has network faults and the backend
    /// has servers.
    pub net: Option<Arc<Net>>,
    /// Why there is no `net` although the scenario asked for one.
    pub net_error: Option<String>,
    /// Each client's clock (skewable when the scenario skews client clocks).
    pub clocks: Vec<Clock>,
}

/// What one firing of a fault did.
pub(crate) struct Applied {
    /// What was hit, or why nothing was.
    pub desc: String,
    /// When it began (ns).
    pub t0: u64,
    /// How long its window lasts (`Duration::MAX`: until the run ends).
    pub window: Duration,
    /// False when the fault hit nothing (no holder, no servers, not applied).
    pub hit: bool,
}

impl Applied {
    fn missed(desc: String, t0: u64) -> Applied {
        Applied { desc, t0, window: Duration::ZERO, hit: false }
    }
}

/// The fault event's `b` when the fault hit nothing (counted in the summary).
pub const MISSED: u64 = 1;

/// The schedule, flattened: (when, which fault). Same seed, same schedule.
pub fn schedule(faults: &[FaultSpec], until: Duration) -> Vec<(Duration, usize)> {
    let mut v: Vec<(Duration, usize)> =
        faults.iter().enumerate().flat_map(|(i, f)| f.times(until).into_iter().map(move |t| (t, i))).collect();
    v.sort();
    v
}

/// Apply the schedule until the run stops, recording each fault window into `out`
/// as it starts (so that nothing is lost if the run is cut short).
pub async fn nemesis(
    out: Arc<std::sync::Mutex<Vec<Event>>>,
    faults: Vec<FaultSpec>,
    until: Duration,
    start: u64,
    seed: u64,
    w: World,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6E65_6D65_7369_73);
    let run_end = start + until.as_nanos() as u64;
    for (n, (at, i)) in schedule(&faults, until).into_iter().enumerate() {
        let due = start + at.as_nanos() as u64;
        let now = mono_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        if w.crew.stopped() {
            break;
        }
        // What a fault's own watcher sees later (a new leader elected during a
        // peer partition) is recorded as a fault of no duration, numbered apart.
        let note: Note = {
            let (out, id) = (out.clone(), FOLLOW_UP + n as u32);
            Arc::new(move |t: u64, msg: String| {
                let inv = Event::new(t, id, Kind::Invoke, Op::Fault, 0).with_msg(msg.clone());
                let end = Event::new(t, id, Kind::Ok, Op::Fault, 0).with_msg(msg);
                out.lock().unwrap_or_else(|p| p.into_inner()).extend([inv, end]);
            })
        };
        let a = apply(&faults[i], &w, &mut rng, note).await;
        // A window that outlasts the run (or a fault never undone: MAX) ends with it.
        let window = a.window.min(Duration::from_nanos(run_end.saturating_sub(a.t0)));
        let mut inv = Event::new(a.t0, n as u32, Kind::Invoke, Op::Fault, 0).with_msg(a.desc.clone());
        inv.a = window.as_nanos() as u64;
        inv.b = if a.hit { 0 } else { MISSED };
        let end = Event::new(a.t0 + window.as_nanos() as u64, n as u32, Kind::Ok, Op::Fault, 0).with_msg(a.desc);
        out.lock().unwrap_or_else(|p| p.into_inner()).extend([inv, end]);
    }
}

/// Records what a fault's watcher saw, at a time (ns).
pub(crate) type Note = Arc<dyn Fn(u64, String) + Send + Sync>;

/// Fault numbers of what watchers saw: the fault's own number plus this.
pub const FOLLOW_UP: u32 = 1_000_000;

/// Apply one fault now, through its family.
async fn apply(f: &FaultSpec, w: &World, rng: &mut StdRng, note: Note) -> Applied {
    let name = f.name();
    let crew = &*w.crew;
    match f {
        FaultSpec::CrashHolder { count, restart_after, .. } => {
            process::crash(crew, name, *count, restart_after.0, rng).await
        }
        FaultSpec::PauseHolder { count, pause, .. } => process::pause(crew, name, *count, pause.0, rng).await,
        FaultSpec::ServerKill { server, down, .. } => server::kill(&w.servers, name, *server, down.map(|d| d.0)),
        FaultSpec::ServerPause { server, pause, .. } => server::pause(&w.servers, name, *server, pause.0),
        FaultSpec::ServerRestart { server, .. } => server::restart(&w.servers, name, *server),
        FaultSpec::PeerPartition { duration, shape, server: target, .. } => {
            server::peer_partition(&w.servers, name, *shape, *target, duration.0, rng, note)
        }
        FaultSpec::Partition { duration, clients, servers: on, direction, .. } => {
            let who = process::pick(clients, crew, rng).await;
            let direction = *direction;
            let set = move |p: &proxy::Proxy, on: bool| {
                if direction != Way::Down {
                    p.set_blackhole(proxy::Direction::Up, on);
                }
                if direction != Way::Up {
                    p.set_blackhole(proxy::Direction::Down, on);
                }
            };
            net::on_net(w, name, &who, on, set, duration.0)
        }
        FaultSpec::NetDelay { duration, delay, jitter, clients, servers: on, .. } => {
            let who = process::pick(clients, crew, rng).await;
            let (delay, jitter) = (delay.0, jitter.0);
            let set = move |p: &proxy::Proxy, on: bool| {
                if on { p.set_delay(delay, jitter) } else { p.set_delay(Duration::ZERO, Duration::ZERO) }
            };
            net::on_net(w, name, &who, on, set, duration.0)
        }
        FaultSpec::NetReset { clients, servers: on, .. } => {
            let who = process::pick(clients, crew, rng).await;
            let set = |p: &proxy::Proxy, on: bool| {
                if on {
                    p.reset()
                }
            };
            net::on_net(w, name, &who, on, set, Duration::ZERO)
        }
        FaultSpec::ClockSkew { duration, clients: Some(clients), rate, jump, .. } => {
            let who = process::pick(clients, crew, rng).await;
            clock::skew(&w.clocks, name, &who, *rate, *jump, duration.map(|d| d.0))
        }
        FaultSpec::ClockSkew { duration, server, rate, jump, .. } => {
            server::skew(&w.servers, name, server.unwrap_or(0), *rate, *jump, duration.map(|d| d.0))
        }
    }
}

/// "client 2", "clients 0,3".
fn who(clients: &[usize]) -> String {
    match clients {
        [] => "no client".into(),
        [c] => format!("client {c}"),
        v => format!("clients {}", v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Dur;

    #[test]
    fn repeating_faults_fire_until_the_end() {
        let f = FaultSpec::CrashHolder {
            at: Dur(Duration::from_secs(1)),
            every: Some(Dur(Duration::from_secs(2))),
            count: 1,
            restart_after: Dur::default(),
        };
        let s = schedule(&[f], Duration::from_secs(6));
        let secs: Vec<u64> = s.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(secs, vec![1, 3, 5]);
    }
}
