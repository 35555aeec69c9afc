//! The nemesis: what a fault is, and the one place faults are applied.
//!
//! A fault is a closed enum of verbs ([`FaultSpec`]), scheduled in the scenario
//! (`[[faults]]`, at a time since the load started, optionally repeating). The
//! nemesis picks its targets with the run's seeded RNG and records every fault as a
//! window in the history (invoke = start, ok = end), so the report can shade it and
//! the checker can say which fault was active at a violation.

pub mod proxy;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::{ServerFault, Servers};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::record::{Event, Kind, Op};
use crate::run::client::{Command, Control, Shared};
use crate::scenario::{Dur, Scenario};

fn one() -> u32 {
    1
}

/// One `[[faults]]` entry of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Kill `count` clients that hold a lock, without releasing it; each comes back
    /// with a new session after `restart_after`.
    CrashHolder {
        at: Dur,
        every: Option<Dur>,
        #[serde(default = "one")]
        count: u32,
        #[serde(default)]
        restart_after: Dur,
    },
    /// Stop `count` holders for `pause` (a GC pause); they then finish their write.
    PauseHolder {
        at: Dur,
        pause: Dur,
        every: Option<Dur>,
        #[serde(default = "one")]
        count: u32,
    },
    /// SIGKILL server `server`; start it again after `down` if given.
    ServerKill {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        server: usize,
        down: Option<Dur>,
    },
    /// SIGSTOP server `server` for `pause`, then SIGCONT.
    ServerPause {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        server: usize,
        pause: Dur,
    },
    /// Kill server `server` and start it again at once on the same port and data
    /// directory. Without persistence (`[servers] persist`) it comes back empty.
    ServerRestart {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        server: usize,
    },
}

impl FaultSpec {
    pub fn name(&self) -> &'static str {
        match self {
            FaultSpec::CrashHolder { .. } => "crash-holder",
            FaultSpec::PauseHolder { .. } => "pause-holder",
            FaultSpec::ServerKill { .. } => "server-kill",
            FaultSpec::ServerPause { .. } => "server-pause",
            FaultSpec::ServerRestart { .. } => "server-restart",
        }
    }

    /// The server a fault acts on, for faults that need servers.
    pub fn server(&self) -> Option<usize> {
        match self {
            FaultSpec::ServerKill { server, .. }
            | FaultSpec::ServerPause { server, .. }
            | FaultSpec::ServerRestart { server, .. } => Some(*server),
            _ => None,
        }
    }

    fn at(&self) -> Duration {
        match self {
            FaultSpec::CrashHolder { at, .. }
            | FaultSpec::PauseHolder { at, .. }
            | FaultSpec::ServerKill { at, .. }
            | FaultSpec::ServerPause { at, .. }
            | FaultSpec::ServerRestart { at, .. } => at.0,
        }
    }

    fn every(&self) -> Option<Duration> {
        match self {
            FaultSpec::CrashHolder { every, .. }
            | FaultSpec::PauseHolder { every, .. }
            | FaultSpec::ServerKill { every, .. }
            | FaultSpec::ServerPause { every, .. }
            | FaultSpec::ServerRestart { every, .. } => every.map(|d| d.0),
        }
    }

    /// Checks that need the whole scenario.
    pub fn validate(&self, s: &Scenario) -> Result<(), String> {
        if let Some(e) = self.every()
            && e.is_zero()
        {
            return Err(format!("{}: `every` must be above zero", self.name()));
        }
        match self {
            FaultSpec::CrashHolder { count, .. } | FaultSpec::PauseHolder { count, .. }
                if *count == 0 || *count > s.clients() =>
            {
                Err(format!("{}: `count` must be between 1 and clients ({})", self.name(), s.clients()))
            }
            FaultSpec::PauseHolder { pause, .. } | FaultSpec::ServerPause { pause, .. } if pause.0.is_zero() => {
                Err(format!("{}: `pause` must be above zero", self.name()))
            }
            _ => Ok(()),
        }
    }

    /// Times (since the load started) at which this fault fires, up to `until`.
    fn times(&self, until: Duration) -> Vec<Duration> {
        let mut out = vec![self.at()];
        if let Some(e) = self.every() {
            while let Some(next) = out.last().map(|t| *t + e).filter(|t| *t < until) {
                out.push(next);
            }
        }
        out.retain(|t| *t < until);
        out
    }
}

/// The schedule, flattened: (when, which fault). Same seed, same schedule.
pub fn schedule(faults: &[FaultSpec], until: Duration) -> Vec<(Duration, usize)> {
    let mut v: Vec<(Duration, usize)> =
        faults.iter().enumerate().flat_map(|(i, f)| f.times(until).into_iter().map(move |t| (t, i))).collect();
    v.sort();
    v
}

/// Apply the schedule to in-task clients until the run stops, recording each fault
/// window into `out` as it starts (so that nothing is lost if the run is cut short).
pub async fn nemesis(
    out: Arc<std::sync::Mutex<Vec<Event>>>,
    faults: Vec<FaultSpec>,
    until: Duration,
    start: u64,
    seed: u64,
    controls: Vec<Arc<Control>>,
    shared: Arc<Shared>,
    servers: Option<Arc<dyn Servers>>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6E65_6D65_7369_73);
    for (n, (at, i)) in schedule(&faults, until).into_iter().enumerate() {
        let due = start + at.as_nanos() as u64;
        let now = mono_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let f = &faults[i];
        // Each fault says what it did, when it began, and how long its window lasts.
        let (desc, t0, window) = match f {
            FaultSpec::CrashHolder { count, restart_after, .. } => {
                let cmd = Command::Crash { restart_after: restart_after.0 };
                (hit_holders(f, *count, cmd, &controls, &shared, &mut rng).await, mono_ns(), Duration::ZERO)
            }
            FaultSpec::PauseHolder { count, pause, .. } => {
                let d = hit_holders(f, *count, Command::Pause(pause.0), &controls, &shared, &mut rng).await;
                (d, mono_ns(), pause.0)
            }
            FaultSpec::ServerKill { server, down, .. } => {
                let t0 = mono_ns();
                let d = on_server(&servers, *server, ServerFault::Kill, f);
                if let Some(down) = down {
                    let servers = servers.clone();
                    let (server, down) = (*server, down.0);
                    tokio::spawn(async move {
                        tokio::time::sleep(down).await;
                        if let Some(s) = servers {
                            let _ = tokio::task::block_in_place(|| s.fault(server, ServerFault::Restart));
                        }
                    });
                }
                (d, t0, down.map_or(Duration::ZERO, |d| d.0))
            }
            FaultSpec::ServerPause { server, pause, .. } => {
                let t0 = mono_ns();
                let d = on_server(&servers, *server, ServerFault::Pause, f);
                let servers = servers.clone();
                let (server, pause) = (*server, pause.0);
                tokio::spawn(async move {
                    tokio::time::sleep(pause).await;
                    if let Some(s) = servers {
                        let _ = s.fault(server, ServerFault::Resume);
                    }
                });
                (d, t0, pause)
            }
            FaultSpec::ServerRestart { server, .. } => {
                // The window is the restart itself: down, then back and answering.
                let t0 = mono_ns();
                let d = tokio::task::block_in_place(|| on_server(&servers, *server, ServerFault::Restart, f));
                (d, t0, Duration::from_nanos(mono_ns() - t0))
            }
        };
        let mut inv = Event::new(t0, n as u32, Kind::Invoke, Op::Fault, 0).with_msg(desc.clone());
        inv.a = window.as_nanos() as u64;
        let end = Event::new(t0 + window.as_nanos() as u64, n as u32, Kind::Ok, Op::Fault, 0).with_msg(desc);
        out.lock().unwrap_or_else(|p| p.into_inner()).extend([inv, end]);
    }
}

/// Apply a server fault; the description says what happened (or why not).
fn on_server(servers: &Option<Arc<dyn Servers>>, i: usize, what: ServerFault, f: &FaultSpec) -> String {
    match servers {
        None => format!("{}: no servers to act on", f.name()),
        Some(s) => match s.fault(i, what) {
            Ok(()) => format!("{}: server {i}", f.name()),
            Err(e) => format!("{}: server {i} failed: {e}", f.name()),
        },
    }
}

/// Send `cmd` to up to `count` clients that hold a lock now, chosen with the seeded
/// RNG; the description names them.
async fn hit_holders(
    f: &FaultSpec,
    count: u32,
    cmd: Command,
    controls: &[Arc<Control>],
    shared: &Shared,
    rng: &mut StdRng,
) -> String {
    // Wait briefly for holders to exist: under light load there may be none at the
    // exact instant.
    let mut targets = Vec::new();
    for _ in 0..200 {
        targets = controls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.holding.load(Ordering::Relaxed) != 0)
            .map(|(i, _)| i)
            .collect();
        if !targets.is_empty() || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    targets.shuffle(rng);
    targets.truncate(count as usize);
    for &c in &targets {
        controls[c].send(cmd);
    }
    if targets.is_empty() {
        format!("{}: no holder to hit", f.name())
    } else {
        let who: Vec<String> = targets.iter().map(|c| format!("client {c}")).collect();
        format!("{}: {}", f.name(), who.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
