//! What a fault is: the `[[faults]]` entries of a scenario, their parameters and
//! the checks on them. Pure data and validation: nothing here acts on a run.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::{Dur, Scenario};

fn one() -> u32 {
    1
}

/// Which server of a cluster a server fault acts on: a number (0 is the first),
/// or, for a cluster with a leader (etcd), `"leader"` or `"follower"` (the first
/// member that does not lead), found when the fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServerRef {
    Index(usize),
    #[default]
    First,
    Leader,
    Follower,
}

impl ServerRef {
    /// How many servers the cluster needs for this to name one.
    pub fn min_servers(self) -> usize {
        match self {
            ServerRef::Index(i) => i + 1,
            ServerRef::First | ServerRef::Leader => 1,
            ServerRef::Follower => 2,
        }
    }
}

impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerRef::Index(i) => write!(f, "{i}"),
            ServerRef::First => f.write_str("0"),
            ServerRef::Leader => f.write_str("leader"),
            ServerRef::Follower => f.write_str("follower"),
        }
    }
}

impl Serialize for ServerRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerRef::Index(i) => s.serialize_u64(*i as u64),
            ServerRef::First => s.serialize_u64(0),
            ServerRef::Leader => s.serialize_str("leader"),
            ServerRef::Follower => s.serialize_str("follower"),
        }
    }
}

impl<'de> Deserialize<'de> for ServerRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ServerRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a server number (0 is the first), \"leader\" or \"follower\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ServerRef, E> {
                Ok(ServerRef::Index(v as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ServerRef, E> {
                usize::try_from(v)
                    .map(ServerRef::Index)
                    .map_err(|_| E::custom(format!("server {v}: not a server number")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ServerRef, E> {
                match v {
                    "leader" => Ok(ServerRef::Leader),
                    "follower" => Ok(ServerRef::Follower),
                    other => Err(E::custom(format!(
                        "server \"{other}\": give a server number (0 is the first), \"leader\" or \"follower\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
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
        server: ServerRef,
        down: Option<Dur>,
    },
    /// SIGSTOP server `server` for `pause`, then SIGCONT.
    ServerPause {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        server: ServerRef,
        pause: Dur,
    },
    /// Kill server `server` and start it again at once on the same port and data
    /// directory. Without persistence (`[servers] persist`) it comes back empty.
    ServerRestart {
        at: Dur,
        every: Option<Dur>,
        #[serde(default)]
        server: ServerRef,
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
    /// Cut cluster members off from each other for `duration`, in one of Jepsen's
    /// shapes, as iptables rules inside the members' network nodes (the clients
    /// still reach every member). `isolate` cuts `server` (a number, "leader" or
    /// "follower") from all others; `halves` a majority from a minority; `bridge`
    /// two halves that share one member; `ring` leaves each member a majority, no
    /// two the same. Needs servers on network nodes (root).
    PeerPartition {
        at: Dur,
        every: Option<Dur>,
        duration: Dur,
        #[serde(default)]
        shape: PeerShape,
        #[serde(default)]
        server: ServerRef,
    },
}

/// The shape of a `peer-partition` (Jepsen's names in the doc of each).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PeerShape {
    /// One member from all others (`partition-random-node`, here a chosen one).
    #[default]
    Isolate,
    /// `partition-halves`.
    Halves,
    /// `bridge`.
    Bridge,
    /// `partition-majorities-ring`.
    Ring,
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
            FaultSpec::PeerPartition { .. } => "peer-partition",
        }
    }

    /// The server a fault acts on, for faults that need servers: the highest
    /// index it may take (a follower needs a second server).
    pub fn server(&self) -> Option<usize> {
        match self {
            FaultSpec::ServerKill { server, .. }
            | FaultSpec::ServerPause { server, .. }
            | FaultSpec::ServerRestart { server, .. } => Some(server.min_servers() - 1),
            FaultSpec::ClockSkew { server, .. } => *server,
            // A cut between members needs at least three of them to mean anything.
            FaultSpec::PeerPartition { server, .. } => Some(server.min_servers().max(3) - 1),
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

    pub(super) fn at(&self) -> Duration {
        match self {
            FaultSpec::CrashHolder { at, .. }
            | FaultSpec::PauseHolder { at, .. }
            | FaultSpec::ServerKill { at, .. }
            | FaultSpec::ServerPause { at, .. }
            | FaultSpec::ServerRestart { at, .. }
            | FaultSpec::Partition { at, .. }
            | FaultSpec::NetDelay { at, .. }
            | FaultSpec::NetReset { at, .. }
            | FaultSpec::ClockSkew { at, .. }
            | FaultSpec::PeerPartition { at, .. } => at.0,
        }
    }

    pub(super) fn every(&self) -> Option<Duration> {
        match self {
            FaultSpec::CrashHolder { every, .. }
            | FaultSpec::PauseHolder { every, .. }
            | FaultSpec::ServerKill { every, .. }
            | FaultSpec::ServerPause { every, .. }
            | FaultSpec::ServerRestart { every, .. }
            | FaultSpec::Partition { every, .. }
            | FaultSpec::NetDelay { every, .. }
            | FaultSpec::NetReset { every, .. }
            | FaultSpec::ClockSkew { every, .. }
            | FaultSpec::PeerPartition { every, .. } => every.map(|d| d.0),
        }
    }

    /// Checks that need the whole scenario.
    pub fn validate(&self, s: &Scenario) -> Result<(), String> {
        // A fault that would fire at or after the end never fires: the scenario's
        // point would be skipped without a word.
        if let Some(d) = s.duration()
            && self.at() >= d
        {
            return Err(format!(
                "{}: `at` = {} falls at or after the end of the run (duration {})",
                self.name(),
                Dur(self.at()),
                Dur(d)
            ));
        }
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
            FaultSpec::Partition { duration, .. }
            | FaultSpec::NetDelay { duration, .. }
            | FaultSpec::PeerPartition { duration, .. }
                if duration.0.is_zero() =>
            {
                Err(format!("{}: `duration` must be above zero", self.name()))
            }
            // A heal flushes every cut of the cluster: a second firing inside the
            // first one's window would be ended by the first one's heal.
            FaultSpec::PeerPartition { duration, every: Some(e), .. } if e.0 < duration.0 => {
                Err(format!("peer-partition: `every` ({}) must be at least `duration` ({})", Dur(e.0), Dur(duration.0)))
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
    pub(super) fn times(&self, until: Duration) -> Vec<Duration> {
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
