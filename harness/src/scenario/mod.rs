//! Scenario files: the schema, loading, and validation.
//!
//! A scenario is a TOML file in `scenarios/` (schema: `scenarios/README.md`). It says
//! what the clients do, not which backend they do it to: every backend of a run is
//! driven by the same scenario and seed. A bad file is refused with its path, line,
//! column and field; nothing is run or written for it.

mod dist;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

pub(crate) use dist::serde_as_str;
pub use dist::{Dur, DurDist};

use crate::faults::FaultSpec;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// From the file name; not a field of the file.
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(default)]
    pub description: String,
    /// The run's seed: key choice, hold and think times, fault targets. `--seed`
    /// overrides it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How many clients run at once.
    pub clients: Spanned<u32>,
    /// How clients run: `task` (tokio tasks in the harness, the cheapest) or
    /// `process` (one `lockbench worker` child process each, so faults can kill or
    /// stop a real process).
    #[serde(default)]
    pub client_mode: ClientMode,
    /// How long the load runs. One of `duration` and `ops` is required.
    pub duration: Option<Spanned<Dur>>,
    /// Total acquire attempts across all clients, shared out evenly.
    pub ops: Option<Spanned<u64>>,
    /// How long, after the load ends, holds still open may finish. Past it, a hold
    /// is cut short and released (recorded `info` if the release does not answer)
    /// and a request still in flight is recorded `info`. `--drain` overrides it.
    #[serde(default = "default_drain")]
    pub drain: Dur,
    /// Holders pass their fencing token to the guarded register, which refuses a
    /// token below one it has seen. Only where the backend has tokens.
    #[serde(default = "yes")]
    pub fencing: bool,
    pub keys: Keys,
    pub lock: Lock,
    #[serde(default)]
    pub work: Work,
    #[serde(default)]
    pub load: Load,
    #[serde(default)]
    pub faults: Vec<Spanned<FaultSpec>>,
    #[serde(default)]
    pub servers: ServerSettings,
}

/// How the local provider runs a backend's servers for this scenario.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Keep data across a server restart (Redis: append-only file, fsync always).
    #[serde(default)]
    pub persist: bool,
    /// Run every server with a skewed clock: a libfaketime FAKETIME value, e.g.
    /// "+0 x1.5" (1.5 times as fast from the start) or "+10s" (ten seconds ahead).
    pub faketime: Option<Spanned<String>>,
    /// Which servers get `faketime` (default: all), e.g. `[2]` for one of Redlock's
    /// five. Numbers past a backend's last server are ignored.
    pub skewed: Option<Vec<usize>>,
}

fn default_drain() -> Dur {
    Dur(Duration::from_secs(5))
}

fn default_seed() -> u64 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClientMode {
    #[default]
    Task,
    Process,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// How many distinct keys (named `k0` ... `k{count-1}`).
    pub count: Spanned<u32>,
    #[serde(default = "unspanned")]
    pub distribution: Spanned<KeyDist>,
    /// zipf: the exponent s (> 0; 1.0 is classic Zipf).
    pub zipf_s: Option<Spanned<f64>>,
    /// hot: the share of picks (0..1) that go to the hot keys ...
    pub hot_share: Option<Spanned<f64>>,
    /// ... and how many keys are hot (the first ones).
    pub hot_count: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDist {
    #[default]
    Uniform,
    Zipf,
    Hot,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The lease (TTL) asked for on every acquire.
    pub lease: Spanned<Dur>,
    /// How long `acquire` may wait for a held key before giving up (a timeout).
    #[serde(default = "default_wait")]
    pub wait: Dur,
    /// Polling backoff while waiting: starts here ...
    #[serde(default = "default_backoff_min")]
    pub backoff_min: Dur,
    /// ... and doubles up to here (with jitter).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: Spanned<Dur>,
    /// Renew the lease this often while holding it; none: never renew.
    pub renew_every: Option<Spanned<Dur>>,
}

fn default_wait() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_backoff_min() -> Dur {
    Dur(Duration::from_millis(1))
}
fn default_backoff_max() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_millis(32)))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Work {
    /// How long a holder keeps the lock: it reads the guarded register, waits this
    /// long, writes it back +1, then releases.
    #[serde(default = "unspanned")]
    pub hold: Spanned<DurDist>,
    /// `full` (default): acquire, guarded read-modify-write, release.
    /// `acquire-only`: one try-acquire per operation and nothing else (the grant
    /// simply expires): the raw cost of taking a lock, for benchmarks.
    #[serde(default)]
    pub cycle: Cycle,
}

impl Default for Work {
    fn default() -> Self {
        Work { hold: unspanned(), cycle: Cycle::Full }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Cycle {
    #[default]
    Full,
    AcquireOnly,
}

/// A default value with no place in the file (its span is empty).
fn unspanned<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    #[serde(default = "unspanned")]
    pub model: Spanned<LoadModel>,
    /// closed: pause between a client's operations.
    #[serde(default)]
    pub think: DurDist,
    /// open: acquire attempts per second across all clients, started on schedule
    /// whether or not earlier ones finished; latency counts from the scheduled start.
    pub rate: Option<Spanned<f64>>,
}

impl Default for Load {
    fn default() -> Self {
        Load { model: Spanned::new(0..0, LoadModel::Closed), think: DurDist::default(), rate: None }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LoadModel {
    #[default]
    Closed,
    Open,
}

/// A scenario file that cannot be used, with where and why.
#[derive(Debug)]
pub struct ScenarioError {
    pub path: PathBuf,
    /// 1-based line and column, where known.
    pub at: Option<(usize, usize)>,
    pub message: String,
    /// The offending line of the file, for the message.
    pub snippet: Option<String>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.message)?,
            None => write!(f, "{}: {}", self.path.display(), self.message)?,
        }
        if let (Some((l, _)), Some(s)) = (self.at, &self.snippet) {
            write!(f, "\n {l:>4} | {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Errors found after parsing: a message and the span of the field it is about.
struct Problems<'a> {
    src: &'a str,
    path: &'a Path,
    first: Option<ScenarioError>,
}

impl Problems<'_> {
    fn at(&mut self, span: Range<usize>, field: &str, msg: impl fmt::Display) {
        if self.first.is_none() {
            self.first = Some(error_at(self.path, self.src, Some(span), format!("field `{field}`: {msg}")));
        }
    }
}

fn error_at(path: &Path, src: &str, span: Option<Range<usize>>, message: String) -> ScenarioError {
    // A problem with no place of its own (a missing field) is the whole file's:
    // line 1.
    let at = span.map(|s| {
        let before = &src[..s.start.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    });
    let snippet = at.and_then(|(l, _)| src.lines().nth(l - 1)).map(|s| s.to_owned());
    ScenarioError { path: path.to_owned(), at, message, snippet }
}

impl Scenario {
    /// Read, parse and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: path.to_owned(),
            at: None,
            message: format!("cannot read: {e}"),
            snippet: None,
        })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Self::parse(&src, path, &name)
    }

    /// Parse and validate scenario text; `path` is only used in messages.
    pub fn parse(src: &str, path: &Path, name: &str) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = toml::from_str(src)
            .map_err(|e| error_at(path, src, e.span().or(Some(0..0)), e.message().trim().to_owned()))?;
        s.name = name.to_owned();
        s.path = path.to_owned();
        let mut p = Problems { src, path, first: None };
        s.validate(&mut p);
        match p.first {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }

    fn validate(&self, p: &mut Problems<'_>) {
        if *self.clients.get_ref() == 0 {
            p.at(self.clients.span(), "clients", "must be at least 1");
        }
        if *self.clients.get_ref() > 10_000 {
            p.at(self.clients.span(), "clients", "at most 10000 (each is a task or a process)");
        }
        match (&self.duration, &self.ops) {
            (None, None) => p.at(0..1, "duration", "one of `duration` and `ops` is required"),
            (Some(d), Some(_)) => p.at(d.span(), "duration", "give `duration` or `ops`, not both"),
            (Some(d), None) if d.get_ref().0.is_zero() => p.at(d.span(), "duration", "must be above zero"),
            (None, Some(o)) if *o.get_ref() == 0 => p.at(o.span(), "ops", "must be at least 1"),
            _ => {}
        }
        let k = &self.keys;
        if *k.count.get_ref() == 0 {
            p.at(k.count.span(), "keys.count", "must be at least 1");
        }
        let dist = *k.distribution.get_ref();
        match (&k.zipf_s, dist) {
            (Some(s), KeyDist::Zipf) if !(*s.get_ref() > 0.0 && s.get_ref().is_finite()) => {
                p.at(s.span(), "keys.zipf_s", "must be a number above 0")
            }
            (Some(s), d) if d != KeyDist::Zipf => {
                p.at(s.span(), "keys.zipf_s", "only goes with distribution = \"zipf\"")
            }
            (None, KeyDist::Zipf) => p.at(k.distribution.span(), "keys.zipf_s", "zipf needs zipf_s (e.g. 1.0)"),
            _ => {}
        }
        for (f, name) in [(&k.hot_share, "keys.hot_share")] {
            match (f, dist) {
                (Some(s), KeyDist::Hot) if !(0.0..=1.0).contains(s.get_ref()) => {
                    p.at(s.span(), name, "must be in 0..1")
                }
                (Some(s), d) if d != KeyDist::Hot => p.at(s.span(), name, "only goes with distribution = \"hot\""),
                (None, KeyDist::Hot) => p.at(k.distribution.span(), name, "hot needs hot_share and hot_count"),
                _ => {}
            }
        }
        match (&k.hot_count, dist) {
            (Some(c), KeyDist::Hot) if *c.get_ref() == 0 || c.get_ref() > k.count.get_ref() => {
                p.at(c.span(), "keys.hot_count", "must be between 1 and keys.count")
            }
            (Some(c), d) if d != KeyDist::Hot => {
                p.at(c.span(), "keys.hot_count", "only goes with distribution = \"hot\"")
            }
            (None, KeyDist::Hot) => p.at(k.distribution.span(), "keys.hot_count", "hot needs hot_share and hot_count"),
            _ => {}
        }
        let l = &self.lock;
        if l.lease.get_ref().0.is_zero() {
            p.at(l.lease.span(), "lock.lease", "must be above zero");
        }
        if l.backoff_max.get_ref().0 < l.backoff_min.0 {
            p.at(l.backoff_max.span(), "lock.backoff_max", "must not be below lock.backoff_min");
        }
        if let Some(r) = &l.renew_every
            && (r.get_ref().0.is_zero() || r.get_ref().0 >= l.lease.get_ref().0)
        {
            p.at(r.span(), "lock.renew_every", "must be above zero and below lock.lease");
        }
        let load = &self.load;
        match (*load.model.get_ref(), &load.rate) {
            (LoadModel::Open, None) => p.at(load.model.span(), "load.rate", "the open model needs a rate (acquires/s)"),
            (LoadModel::Open, Some(r)) if !(*r.get_ref() > 0.0 && r.get_ref().is_finite()) => {
                p.at(r.span(), "load.rate", "must be a number above 0")
            }
            (LoadModel::Closed, Some(r)) => p.at(r.span(), "load.rate", "only goes with model = \"open\""),
            _ => {}
        }
        if let Some(ft) = &self.servers.faketime {
            let v = ft.get_ref().trim();
            let ok = v.starts_with(['+', '-', '@']) && !v.contains(['\n', '\0']);
            if !ok {
                p.at(ft.span(), "servers.faketime", "a libfaketime value such as \"+0 x1.5\" or \"+10s\"");
            }
        }
        for f in &self.faults {
            if let Err(msg) = f.get_ref().validate(self) {
                p.at(f.span(), "faults", msg);
            }
        }
    }

    pub fn clients(&self) -> u32 {
        *self.clients.get_ref()
    }
    pub fn duration(&self) -> Option<Duration> {
        self.duration.as_ref().map(|d| d.get_ref().0)
    }
    pub fn ops(&self) -> Option<u64> {
        self.ops.as_ref().map(|o| *o.get_ref())
    }
    pub fn lease(&self) -> Duration {
        self.lock.lease.get_ref().0
    }
    pub fn hold(&self) -> DurDist {
        *self.work.hold.get_ref()
    }
    /// Does any fault act on the network (so each client gets its own proxies)?
    pub fn has_network_faults(&self) -> bool {
        self.faults.iter().any(|f| f.get_ref().is_network())
    }
    /// Does any fault skew client clocks (so each client gets its own clock)?
    pub fn has_client_clock_faults(&self) -> bool {
        self.faults.iter().any(|f| f.get_ref().is_client_clock())
    }
    /// The local provider's options for this scenario's servers.
    pub fn server_options(&self) -> lockbench_backends::servers::local::ServerOptions {
        lockbench_backends::servers::local::ServerOptions {
            persist: self.servers.persist,
            faketime: self.servers.faketime.as_ref().map(|f| f.get_ref().clone()),
            skewed: self.servers.skewed.clone(),
            // Members cut apart need nodes of their own.
            nodes: self.faults.iter().any(|f| matches!(f.get_ref(), crate::faults::FaultSpec::PeerPartition { .. })),
        }
    }
    /// Does any fault act on servers or on the network to them (so embedded
    /// backends cannot run it)?
    pub fn needs_servers(&self) -> Option<&'static str> {
        self.faults
            .iter()
            .find(|f| f.get_ref().server().is_some() || f.get_ref().is_network())
            .map(|f| f.get_ref().name())
    }
    /// The highest server index a fault names.
    pub fn max_server(&self) -> Option<usize> {
        self.faults.iter().filter_map(|f| f.get_ref().server()).max()
    }
    pub fn key_count(&self) -> u32 {
        *self.keys.count.get_ref()
    }

    /// Apply command-line overrides; errors name the flag.
    pub fn apply_overrides(&mut self, o: &Overrides) -> Result<(), String> {
        if let Some(c) = o.clients {
            if c == 0 {
                return Err("--clients must be at least 1".into());
            }
            self.clients = Spanned::new(0..0, c);
        }
        if let Some(d) = o.duration {
            if d.is_zero() {
                return Err("--duration must be above zero".into());
            }
            self.duration = Some(Spanned::new(0..0, Dur(d)));
            self.ops = None;
        }
        if let Some(s) = o.seed {
            self.seed = s;
        }
        if let Some(d) = o.drain {
            self.drain = Dur(d);
        }
        // The same checks as a file gets (limits, faults within the run), so that
        // what runs, and the scenario.toml written from it, is a valid scenario.
        let mut p = Problems { src: "", path: &self.path, first: None };
        self.validate(&mut p);
        if let Some(e) = p.first {
            let mut flags = Vec::new();
            if let Some(c) = o.clients {
                flags.push(format!("--clients {c}"));
            }
            if let Some(d) = o.duration {
                flags.push(format!("--duration {}", Dur(d)));
            }
            return Err(format!("{}: with {}: {}", self.path.display(), flags.join(" "), e.message));
        }
        Ok(())
    }

    /// The scenario as TOML, for the record in a result folder.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// What the command line may change in a scenario.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub clients: Option<u32>,
    pub duration: Option<Duration>,
    pub seed: Option<u64>,
    pub drain: Option<Duration>,
}

#[cfg(test)]
mod tests;
