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
    /// Run the scenario once per value of one field (`keys.held`, `keys.count`,
    /// `clients`), each point on fresh servers: `{ "keys.held" = [1000, 10000] }`
    /// (or the dotted form `keys.held = [...]`). `--sweep` overrides it.
    #[serde(default, serialize_with = "sweep_as_table", skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Spanned<toml::Value>>,
    /// Acquire-latency ratios to put beside the figures, each `"A / B"`: backend
    /// A's p50 and p99 over backend B's, when both ran (lwt-cost: an LWT over the
    /// plain write it replaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratios: Vec<Spanned<String>>,
}

/// A ratio's two backend names, from `"A / B"`.
pub fn ratio_pair(s: &str) -> Result<(String, String), String> {
    let names = lockbench_backends::registry();
    let known = |n: &str| names.iter().any(|b| b.name == n);
    match s.split_once('/').map(|(a, b)| (a.trim(), b.trim())) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && a != b => match (known(a), known(b)) {
            (true, true) => Ok((a.to_owned(), b.to_owned())),
            (false, _) => Err(format!("`{a}` is not a backend (lockbench list names them)")),
            (_, false) => Err(format!("`{b}` is not a backend (lockbench list names them)")),
        },
        _ => Err(format!("expected \"A / B\" with two different backend names, got `{s}`")),
    }
}

/// The sweep as its plain table (toml's serializer leaves a spanned table out).
fn sweep_as_table<S: serde::Serializer>(v: &Option<Spanned<toml::Value>>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(|v| v.get_ref()).serialize(s)
}

/// The fields a sweep may vary.
pub const SWEEP_FIELDS: [&str; 3] = ["keys.held", "keys.count", "clients"];

/// A sweep: the field and its values, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub field: String,
    pub values: Vec<u64>,
}

impl Sweep {
    /// `FIELD=V1,V2,...` (the `--sweep` flag).
    pub fn parse_flag(text: &str) -> Result<Sweep, String> {
        let bad = |why: &str| format!("--sweep `{text}`: {why} (e.g. --sweep keys.held=1000,10000,100000)");
        let (field, values) = text.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let values = values
            .split(',')
            .map(|v| v.trim().replace('_', "").parse::<u64>().map_err(|_| bad(&format!("`{v}` is not a whole number"))))
            .collect::<Result<Vec<_>, _>>()?;
        let sw = Sweep { field: field.trim().to_owned(), values };
        sw.check().map_err(|why| bad(&why))?;
        Ok(sw)
    }

    /// From the `[sweep]` table: exactly one field, an array of whole numbers.
    fn from_value(v: &toml::Value) -> Result<Sweep, String> {
        // `"keys.held" = [...]` and `keys.held = [...]` (a nested table) alike.
        fn leaves(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                        leaves(&name, v, out);
                    }
                }
                other => out.push((prefix.to_owned(), other.clone())),
            }
        }
        let mut found = Vec::new();
        leaves("", v, &mut found);
        let [(field, values)] = found.as_slice() else {
            return Err(format!("give exactly one field to sweep over (one of {})", SWEEP_FIELDS.join(", ")));
        };
        let values = values
            .as_array()
            .ok_or_else(|| format!("`{field}`: a list of values, e.g. [1000, 10000]"))?
            .iter()
            .map(|x| {
                x.as_integer()
                    .and_then(|i| u64::try_from(i).ok())
                    .ok_or_else(|| format!("`{field}`: `{x}` is not a whole number"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sw = Sweep { field: field.clone(), values };
        sw.check()?;
        Ok(sw)
    }

    fn check(&self) -> Result<(), String> {
        if !SWEEP_FIELDS.contains(&self.field.as_str()) {
            return Err(format!("cannot sweep over `{}` (one of {})", self.field, SWEEP_FIELDS.join(", ")));
        }
        if self.values.is_empty() || self.values.len() > 20 {
            return Err(format!("`{}`: give 1 to 20 values", self.field));
        }
        // Each point's runs are named by their value: two alike would be one.
        if let Some(v) = self.values.iter().enumerate().find_map(|(i, v)| self.values[..i].contains(v).then_some(v)) {
            return Err(format!("`{}`: {v} is given twice", self.field));
        }
        Ok(())
    }

    /// `keys.held=1000`: how a point is named (backends' result names carry it).
    pub fn label(&self, value: u64) -> String {
        format!("{}={value}", self.field)
    }
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
    /// Put each server on a network node of its own even without a peer
    /// partition (root only; `run --nodes`): the same scenario over a bridge
    /// instead of loopback.
    #[serde(default)]
    pub nodes: bool,
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
    /// Locks taken before the load and held through it, on keys of their own
    /// (`held0` ...): the load's cost beside that many held locks (many-locks).
    /// They are not part of the history.
    pub held: Option<Spanned<u32>>,
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
        for r in &self.ratios {
            if let Err(msg) = ratio_pair(r.get_ref()) {
                p.at(r.span(), "ratios", msg);
            }
        }
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
        if let Some(h) = &k.held
            && *h.get_ref() > 1_000_000
        {
            p.at(h.span(), "keys.held", "at most 1000000");
        }
        if let Some(sw) = &self.sweep {
            match Sweep::from_value(sw.get_ref()) {
                Err(msg) => p.at(sw.span(), "sweep", msg),
                Ok(sw) => {
                    for v in &sw.values {
                        let mut one = self.clone();
                        one.sweep = None;
                        if let Err(msg) = one.set(&sw.field, *v) {
                            p.at(self.sweep.as_ref().map_or(0..0, |s| s.span()), "sweep", msg);
                            break;
                        }
                        let mut q = Problems { src: p.src, path: p.path, first: None };
                        one.validate(&mut q);
                        if let Some(e) = q.first {
                            p.at(
                                self.sweep.as_ref().map_or(0..0, |s| s.span()),
                                "sweep",
                                format!("at {}: {}", sw.label(*v), e.message),
                            );
                            break;
                        }
                    }
                }
            }
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
            nodes: self.servers.nodes || self.has_peer_partition(),
        }
    }
    /// Does a fault cut cluster members apart (so they need network nodes)?
    pub fn has_peer_partition(&self) -> bool {
        self.faults.iter().any(|f| matches!(f.get_ref(), crate::faults::FaultSpec::PeerPartition { .. }))
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
    /// Locks held beside the load (`keys.held`; 0: none).
    pub fn held(&self) -> u32 {
        self.keys.held.as_ref().map_or(0, |h| *h.get_ref())
    }
    /// The scenario's sweep, if it has one (validated at load).
    pub fn sweep(&self) -> Option<Sweep> {
        self.sweep.as_ref().and_then(|s| Sweep::from_value(s.get_ref()).ok())
    }
    /// Set a sweepable field (see [`SWEEP_FIELDS`]).
    fn set(&mut self, field: &str, v: u64) -> Result<(), String> {
        let v32 = u32::try_from(v).map_err(|_| format!("{field} = {v} is too large"))?;
        match field {
            "keys.held" => self.keys.held = Some(Spanned::new(0..0, v32)),
            "keys.count" => self.keys.count = Spanned::new(0..0, v32),
            "clients" => self.clients = Spanned::new(0..0, v32),
            _ => return Err(format!("cannot sweep over `{field}`")),
        }
        Ok(())
    }
    /// The scenario at one point of a sweep: the field set, no sweep left.
    pub fn at_point(&self, sw: &Sweep, v: u64) -> Result<Scenario, String> {
        let mut one = self.clone();
        one.sweep = None;
        one.set(&sw.field, v)?;
        let mut p = Problems { src: "", path: &self.path, first: None };
        one.validate(&mut p);
        match p.first {
            Some(e) => Err(format!("{}: at {}: {}", self.path.display(), sw.label(v), e.message)),
            None => Ok(one),
        }
    }
    /// Replace the sweep (`--sweep`).
    pub fn set_sweep(&mut self, sw: &Sweep) -> Result<(), String> {
        let mut t = toml::Table::new();
        t.insert(
            sw.field.clone(),
            toml::Value::Array(sw.values.iter().map(|v| toml::Value::Integer(*v as i64)).collect()),
        );
        // Every point is checked before the scenario changes.
        for v in &sw.values {
            self.at_point(sw, *v)?;
        }
        self.sweep = Some(Spanned::new(0..0, toml::Value::Table(t)));
        Ok(())
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
