//! The nemesis: what a fault is, and the one place faults are applied.
//!
//! A fault is a closed enum of verbs ([`FaultSpec`]), scheduled in the scenario
//! (`[[faults]]`, at a time since the load started, optionally repeating). The
//! nemesis picks its targets with the run's seeded RNG and records every fault as a
//! window in the history (invoke = start, ok = end), so the report can shade it and
//! the checker can say which fault was active at a violation.

pub mod proxy;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lockbench_backends::Clock;
use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::{Endpoint, ServerFault, Servers};
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
    /// Cut `clients` off from `servers` (default: all) for `duration`: bytes in
    /// `direction` are held by the proxy, not dropped, and arrive when it heals.
    Partition {
        at: Dur,
        every: Option<Dur>,
        duration: Dur,
        #[serde(default)]
        clients: Clients,
        servers: Option<Vec<usize>>,
        #[serde(default)]
        direction: Way,
    },
    /// Delay every chunk between `clients` and `servers` by `delay` plus up to
    /// `jitter`, for `duration`.
    NetDelay {
        at: Dur,
        every: Option<Dur>,
        duration: Dur,
        delay: Dur,
        #[serde(default)]
        jitter: Dur,
        #[serde(default)]
        clients: Clients,
        servers: Option<Vec<usize>>,
    },
    /// Close every open connection between `clients` and `servers` at once.
    NetReset {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        clients: Clients,
        servers: Option<Vec<usize>>,
    },
    /// Skew the clocks of `clients` (the clock they read lease time from) or of
    /// server `server` (restarted under libfaketime): run at `rate`, and/or jump by
    /// `jump` ("+10s", "-2s"). With `duration`, the clock is put right afterwards
    /// (a client's jump is undone; a server is restarted with a true clock).
    ClockSkew {
        at: Dur,
        every: Option<Dur>,
        duration: Option<Dur>,
        clients: Option<Clients>,
        server: Option<usize>,
        rate: Option<f64>,
        jump: Option<SignedDur>,
    },
}

/// Which clients a fault hits: `"all"`, `"holder"` (one client that holds a lock
/// when the fault fires, chosen with the seeded RNG) or client numbers `"0,2"`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Clients {
    #[default]
    All,
    Holder,
    List(Vec<u32>),
}

impl FromStr for Clients {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Clients::All),
            "holder" => Ok(Clients::Holder),
            list => list
                .split(',')
                .map(|c| c.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|v| !v.is_empty())
                .map(Clients::List)
                .ok_or_else(|| {
                    format!("clients: expected \"all\", \"holder\" or client numbers like \"0,2\", got `{s}`")
                }),
        }
    }
}

impl fmt::Display for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clients::All => f.write_str("all"),
            Clients::Holder => f.write_str("holder"),
            Clients::List(v) => f.write_str(&v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
        }
    }
}

crate::scenario::serde_as_str!(Clients);

/// Which way a partition holds bytes.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Way {
    /// Both directions.
    #[default]
    Both,
    /// Client to server only: requests are held, replies to earlier ones pass.
    Up,
    /// Server to client only: requests arrive and act, their replies are held.
    Down,
}

/// A signed duration: `"+10s"`, `"-250ms"` (no sign: forward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedDur(pub i64);

impl FromStr for SignedDur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (neg, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let d: Dur = rest.parse()?;
        let ns = d.0.as_nanos() as i64;
        Ok(SignedDur(if neg { -ns } else { ns }))
    }
}

impl fmt::Display for SignedDur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Dur(Duration::from_nanos(self.0.unsigned_abs()));
        write!(f, "{}{d}", if self.0 < 0 { "-" } else { "+" })
    }
}

crate::scenario::serde_as_str!(SignedDur);

impl FaultSpec {
    pub fn name(&self) -> &'static str {
        match self {
            FaultSpec::CrashHolder { .. } => "crash-holder",
            FaultSpec::PauseHolder { .. } => "pause-holder",
            FaultSpec::ServerKill { .. } => "server-kill",
            FaultSpec::ServerPause { .. } => "server-pause",
            FaultSpec::ServerRestart { .. } => "server-restart",
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::NetDelay { .. } => "net-delay",
            FaultSpec::NetReset { .. } => "net-reset",
            FaultSpec::ClockSkew { .. } => "clock-skew",
        }
    }

    /// The server a fault acts on, for faults that need servers.
    pub fn server(&self) -> Option<usize> {
        match self {
            FaultSpec::ServerKill { server, .. }
            | FaultSpec::ServerPause { server, .. }
            | FaultSpec::ServerRestart { server, .. } => Some(*server),
            FaultSpec::ClockSkew { server, .. } => *server,
            _ => None,
        }
    }

    /// Does this fault act on the network between clients and servers (so each
    /// client needs its own proxies)?
    pub fn is_network(&self) -> bool {
        matches!(self, FaultSpec::Partition { .. } | FaultSpec::NetDelay { .. } | FaultSpec::NetReset { .. })
    }

    /// Does this fault skew client clocks (so each client needs its own clock)?
    pub fn is_client_clock(&self) -> bool {
        matches!(self, FaultSpec::ClockSkew { clients: Some(_), .. })
    }

    fn at(&self) -> Duration {
        match self {
            FaultSpec::CrashHolder { at, .. }
            | FaultSpec::PauseHolder { at, .. }
            | FaultSpec::ServerKill { at, .. }
            | FaultSpec::ServerPause { at, .. }
            | FaultSpec::ServerRestart { at, .. }
            | FaultSpec::Partition { at, .. }
            | FaultSpec::NetDelay { at, .. }
            | FaultSpec::NetReset { at, .. }
            | FaultSpec::ClockSkew { at, .. } => at.0,
        }
    }

    fn every(&self) -> Option<Duration> {
        match self {
            FaultSpec::CrashHolder { every, .. }
            | FaultSpec::PauseHolder { every, .. }
            | FaultSpec::ServerKill { every, .. }
            | FaultSpec::ServerPause { every, .. }
            | FaultSpec::ServerRestart { every, .. }
            | FaultSpec::Partition { every, .. }
            | FaultSpec::NetDelay { every, .. }
            | FaultSpec::NetReset { every, .. }
            | FaultSpec::ClockSkew { every, .. } => every.map(|d| d.0),
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
            FaultSpec::Partition { duration, .. } | FaultSpec::NetDelay { duration, .. } if duration.0.is_zero() => {
                Err(format!("{}: `duration` must be above zero", self.name()))
            }
            FaultSpec::Partition { clients, .. }
            | FaultSpec::NetDelay { clients, .. }
            | FaultSpec::NetReset { clients, .. } => check_clients(self, clients, s),
            FaultSpec::ClockSkew { clients, server, rate, jump, .. } => {
                match (clients, server) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err("clock-skew: give either `clients` or `server`, not both".into());
                    }
                    (Some(c), None) => {
                        check_clients(self, c, s)?;
                        if s.client_mode == crate::scenario::ClientMode::Process {
                            return Err("clock-skew on clients needs client_mode = \"task\"".into());
                        }
                    }
                    (None, Some(_)) => {}
                }
                if rate.is_none() && jump.is_none() {
                    return Err("clock-skew: give `rate` (e.g. 1.5), `jump` (e.g. \"+10s\") or both".into());
                }
                match rate {
                    Some(r) if !(*r > 0.0 && r.is_finite() && *r <= 1000.0) => {
                        Err(format!("clock-skew: `rate` must be above 0 and at most 1000, got {r}"))
                    }
                    _ => Ok(()),
                }
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

fn check_clients(f: &FaultSpec, c: &Clients, s: &Scenario) -> Result<(), String> {
    match c {
        Clients::List(v) if v.iter().any(|&c| c >= s.clients()) => {
            Err(format!("{}: client numbers go from 0 to {} (clients = {})", f.name(), s.clients() - 1, s.clients()))
        }
        _ => Ok(()),
    }
}

/// The FAKETIME value (libfaketime) that gives a server this skew: shifted by
/// `jump`, running at `rate`.
pub fn faketime_value(rate: Option<f64>, jump: Option<SignedDur>) -> String {
    let secs = jump.map_or(0.0, |j| j.0 as f64 / 1e9);
    match rate {
        Some(r) => format!("{secs:+} x{r}"),
        None => format!("{secs:+}"),
    }
}

/// The schedule, flattened: (when, which fault). Same seed, same schedule.
pub fn schedule(faults: &[FaultSpec], until: Duration) -> Vec<(Duration, usize)> {
    let mut v: Vec<(Duration, usize)> =
        faults.iter().enumerate().flat_map(|(i, f)| f.times(until).into_iter().map(move |t| (t, i))).collect();
    v.sort();
    v
}

/// Each client's own proxies, one per server (`[client][server]`), for scenarios
/// with network faults: cutting one client off must not cut the others.
pub struct Net {
    proxies: Vec<Vec<proxy::Proxy>>,
    /// The servers as given (credentials included), to hand each client the same
    /// endpoint at its proxy's address.
    upstream: Vec<Endpoint>,
}

impl Net {
    /// Start `clients` × servers proxies in front of `endpoints` (loopback only).
    pub async fn start(clients: u32, endpoints: &[String]) -> Result<Net, String> {
        let given = endpoints
            .iter()
            .map(|e| Endpoint::from_env(e).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let upstream = given
            .iter()
            .map(|e| {
                use std::net::ToSocketAddrs;
                e.addr()
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.find(|a| a.ip().is_loopback()))
                    .ok_or_else(|| format!("network faults need servers on loopback, and `{e}` is not"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut proxies = Vec::with_capacity(clients as usize);
        for _ in 0..clients {
            let mut mine = Vec::with_capacity(upstream.len());
            for u in &upstream {
                mine.push(proxy::Proxy::start(*u).await.map_err(|e| format!("starting a proxy to {u}: {e}"))?);
            }
            proxies.push(mine);
        }
        Ok(Net { proxies, upstream: given })
    }

    /// Where client `c` connects instead of the servers (same credentials).
    pub fn endpoints(&self, c: u32) -> Vec<String> {
        self.proxies[c as usize]
            .iter()
            .zip(&self.upstream)
            .map(|(p, e)| e.at(&p.addr().to_string()).map_or_else(|_| p.addr().to_string(), |e| e.to_env()))
            .collect()
    }

    /// The proxies between `clients` and `servers` (None: all servers); the
    /// description names what was hit, or what does not exist.
    fn select(&self, clients: &[usize], servers: &Option<Vec<usize>>) -> (Vec<&proxy::Proxy>, String) {
        let n = self.proxies.first().map_or(0, |p| p.len());
        let servers: Vec<usize> = servers.clone().unwrap_or_else(|| (0..n).collect());
        let missing: Vec<String> = servers.iter().filter(|&&i| i >= n).map(|i| i.to_string()).collect();
        let hit = clients
            .iter()
            .flat_map(|&c| servers.iter().filter(|&&i| i < n).map(move |&i| &self.proxies[c][i]))
            .collect();
        let mut d = format!("{} ↔ {}", who(clients), which_servers(&servers, n));
        if !missing.is_empty() {
            d += &format!(" (no server {}: {n} here)", missing.join(", "));
        }
        (hit, d)
    }
}

fn who(clients: &[usize]) -> String {
    match clients {
        [] => "no client".into(),
        [c] => format!("client {c}"),
        v => format!("clients {}", v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")),
    }
}

fn which_servers(servers: &[usize], n: usize) -> String {
    if servers.len() == n && servers.iter().enumerate().all(|(i, s)| i == *s) {
        "all servers".into()
    } else {
        format!("server {}", servers.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
    }
}

/// What the nemesis can act on.
pub struct World {
    pub controls: Vec<Arc<Control>>,
    pub shared: Arc<Shared>,
    pub servers: Option<Arc<dyn Servers>>,
    /// Per-client proxies, when the scenario has network faults and the backend
    /// has servers.
    pub net: Option<Arc<Net>>,
    /// Why there is no `net` although the scenario asked for one.
    pub net_error: Option<String>,
    /// Each client's clock (skewable when the scenario skews client clocks).
    pub clocks: Vec<Clock>,
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
    let (controls, shared, servers) = (&w.controls, &w.shared, &w.servers);
    let run_end = start + until.as_nanos() as u64;
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
                (hit_holders(f, *count, cmd, controls, shared, &mut rng).await, mono_ns(), Duration::ZERO)
            }
            FaultSpec::PauseHolder { count, pause, .. } => {
                let d = hit_holders(f, *count, Command::Pause(pause.0), controls, shared, &mut rng).await;
                (d, mono_ns(), pause.0)
            }
            FaultSpec::ServerKill { server, down, .. } => {
                let t0 = mono_ns();
                let d = on_server(servers, *server, ServerFault::Kill, f);
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
                let d = on_server(servers, *server, ServerFault::Pause, f);
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
                let d = tokio::task::block_in_place(|| on_server(servers, *server, ServerFault::Restart, f));
                (d, t0, Duration::from_nanos(mono_ns() - t0))
            }
            FaultSpec::Partition { duration, clients, servers: on, direction, .. } => {
                let who = pick(clients, controls, shared, &mut rng).await;
                let t0 = mono_ns();
                let direction = *direction;
                let d = on_net(
                    &w,
                    f,
                    &who,
                    on,
                    move |p, on| {
                        if direction != Way::Down {
                            p.set_blackhole(proxy::Direction::Up, on);
                        }
                        if direction != Way::Up {
                            p.set_blackhole(proxy::Direction::Down, on);
                        }
                    },
                    duration.0,
                );
                (d, t0, duration.0)
            }
            FaultSpec::NetDelay { duration, delay, jitter, clients, servers: on, .. } => {
                let who = pick(clients, controls, shared, &mut rng).await;
                let t0 = mono_ns();
                let (delay, jitter) = (delay.0, jitter.0);
                let d = on_net(
                    &w,
                    f,
                    &who,
                    on,
                    move |p, on| {
                        if on { p.set_delay(delay, jitter) } else { p.set_delay(Duration::ZERO, Duration::ZERO) }
                    },
                    duration.0,
                );
                (d, t0, duration.0)
            }
            FaultSpec::NetReset { clients, servers: on, .. } => {
                let who = pick(clients, controls, shared, &mut rng).await;
                let t0 = mono_ns();
                let d = on_net(
                    &w,
                    f,
                    &who,
                    on,
                    |p, on| {
                        if on {
                            p.reset()
                        }
                    },
                    Duration::ZERO,
                );
                (d, t0, Duration::ZERO)
            }
            FaultSpec::ClockSkew { duration, clients: Some(clients), rate, jump, .. } => {
                let who = pick(clients, controls, shared, &mut rng).await;
                let t0 = mono_ns();
                let clocks: Vec<Clock> = who.iter().filter_map(|&c| w.clocks.get(c).cloned()).collect();
                let (rate, jump) = (*rate, *jump);
                let skew = move |clocks: &[Clock], undo: bool| {
                    for c in clocks {
                        if let Some(r) = rate {
                            c.set_rate(if undo { 1.0 } else { r });
                        }
                        if let Some(j) = jump {
                            c.jump(if undo { -j.0 } else { j.0 });
                        }
                    }
                };
                skew(&clocks, false);
                if let Some(d) = duration {
                    let d = d.0;
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        skew(&clocks, true);
                    });
                }
                let what = skew_desc(rate, jump);
                let desc = if who.is_empty() {
                    format!("{}: no client to skew", f.name())
                } else {
                    format!("{}: {} {what}", f.name(), self::who(&who))
                };
                (desc, t0, duration.map_or(Duration::MAX, |d| d.0))
            }
            FaultSpec::ClockSkew { duration, server, rate, jump, .. } => {
                let i = server.unwrap_or(0);
                let t0 = mono_ns();
                let ft = faketime_value(*rate, *jump);
                let d = match servers {
                    None => format!("{}: no servers to act on", f.name()),
                    Some(s) => match tokio::task::block_in_place(|| s.set_clock(i, Some(&ft))) {
                        Ok(()) => format!("{}: server {i} restarted with FAKETIME=\"{ft}\"", f.name()),
                        Err(e) => format!("{}: server {i} failed: {e}", f.name()),
                    },
                };
                if let (Some(d), Some(s)) = (duration, servers.clone()) {
                    let d = d.0;
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tokio::task::block_in_place(|| s.set_clock(i, None));
                    });
                }
                (d, t0, duration.map_or(Duration::MAX, |d| d.0))
            }
        };
        // A window that outlasts the run (or a fault never undone: MAX) ends with it.
        let window = window.min(Duration::from_nanos(run_end.saturating_sub(t0)));
        let mut inv = Event::new(t0, n as u32, Kind::Invoke, Op::Fault, 0).with_msg(desc.clone());
        inv.a = window.as_nanos() as u64;
        let end = Event::new(t0 + window.as_nanos() as u64, n as u32, Kind::Ok, Op::Fault, 0).with_msg(desc);
        out.lock().unwrap_or_else(|p| p.into_inner()).extend([inv, end]);
    }
}

fn skew_desc(rate: Option<f64>, jump: Option<SignedDur>) -> String {
    match (rate, jump) {
        (Some(r), Some(j)) => format!("clock x{r}, jumped {j}"),
        (Some(r), None) => format!("clock x{r}"),
        (None, Some(j)) => format!("clock jumped {j}"),
        (None, None) => String::new(),
    }
}

/// Switch a network fault on for the proxies between `who` and `on`, and off again
/// after `window` (if above zero).
fn on_net(
    w: &World,
    f: &FaultSpec,
    who: &[usize],
    on: &Option<Vec<usize>>,
    set: impl Fn(&proxy::Proxy, bool) + Send + 'static,
    window: Duration,
) -> String {
    let Some(net) = &w.net else {
        return match &w.net_error {
            Some(e) => format!("{}: not applied: {e}", f.name()),
            None => format!("{}: no network to act on (embedded backend)", f.name()),
        };
    };
    if who.is_empty() {
        return format!("{}: no holder to hit", f.name());
    }
    let (hit, desc) = net.select(who, on);
    for p in &hit {
        set(p, true);
    }
    if !window.is_zero() {
        let (net, who, on) = (net.clone(), who.to_vec(), on.clone());
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            for p in net.select(&who, &on).0 {
                set(p, false);
            }
        });
    }
    format!("{}: {desc}", f.name())
}

/// The clients a fault names, resolving "holder" to one client that holds a lock now.
async fn pick(c: &Clients, controls: &[Arc<Control>], shared: &Shared, rng: &mut StdRng) -> Vec<usize> {
    match c {
        Clients::All => (0..controls.len()).collect(),
        Clients::List(v) => v.iter().map(|&c| c as usize).filter(|&c| c < controls.len()).collect(),
        Clients::Holder => holders(1, controls, shared, rng).await,
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

/// Up to `count` clients that hold a lock now, chosen with the seeded RNG.
async fn holders(count: u32, controls: &[Arc<Control>], shared: &Shared, rng: &mut StdRng) -> Vec<usize> {
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
    targets
}

/// Send `cmd` to up to `count` holders; the description names them.
async fn hit_holders(
    f: &FaultSpec,
    count: u32,
    cmd: Command,
    controls: &[Arc<Control>],
    shared: &Shared,
    rng: &mut StdRng,
) -> String {
    let targets = holders(count, controls, shared, rng).await;
    for &c in &targets {
        controls[c].send(cmd);
    }
    if targets.is_empty() {
        format!("{}: no holder to hit", f.name())
    } else {
        format!("{}: {}", f.name(), who(&targets))
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
