//! The command line: `run`, `list`, `check`, `export`, `report`, `compare`, `index`.
//!
//! Everything a run needs is checked before anything is run or written: every
//! scenario file parses and validates, every backend name exists and can be opened
//! here. Only then do runs start, one scenario × backend at a time (they would
//! disturb each other's figures if run together).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lockbench_backends::servers::local::LocalCluster;
use lockbench_backends::servers::tempdirs::{self, TempDir};
use lockbench_backends::servers::{External, ServerKind, Servers};
use lockbench_backends::{BackendEnv, BackendInfo, LockBackend, Needs, registry};

use crate::check::Level;
use crate::report::{self, Machine, Summary};
use crate::run::client::Progress;
use crate::run::{self, BackendRun, INTERRUPTED, Observer, signals};
use crate::scenario::{ClientMode, Dur, Overrides, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "lockbench",
    version,
    about = "Measure distributed lock backends side by side and try to break them",
    after_help = EXIT_STATUSES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The exit statuses, for `--help` (the same list is in the README).
pub const EXIT_STATUSES: &str = "Exit status:
  0    ok
  1    error or bad input
  2    usage
  3    a verdict was broken or data-lost (with --fail-on-violation; fenced does not fail)
  4    a verdict was inconclusive (with --fail-on-violation)
  5    preflight failed: a server did not answer its probe (the message names it)
  6    harness error
  130  interrupted (SIGINT)
  143  terminated (SIGTERM)
  129  hung up (SIGHUP: the terminal went away)";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run scenarios against backends and write a result folder per scenario.
    #[command(after_help = EXIT_STATUSES)]
    Run(RunArgs),
    /// List the shipped scenarios and the backends, with whether each can run here.
    List {
        /// As `run --no-nodes` would: scenarios that need network nodes are marked
        /// not runnable.
        #[arg(long)]
        no_nodes: bool,
    },
    /// (internal) Run one client in this process for a parent `lockbench run`.
    #[command(hide = true)]
    Worker,
    /// Rebuild report.html of a finished run from its summary.json and history.jsonl.
    Report {
        /// A result folder (results/<run-id>).
        dir: PathBuf,
    },
    /// Re-check a history: a result folder's (rewrites summary.json and report.html,
    /// keeps the summary the run wrote as summary.prev.json, and says what changed),
    /// or with --history one recorded elsewhere (nothing is written).
    Check {
        /// A result folder (results/<run-id>).
        #[arg(required_unless_present = "history")]
        dir: Option<PathBuf>,
        /// A history file to check instead of a result folder.
        #[arg(long, conflicts_with = "dir")]
        history: Option<PathBuf>,
        /// The history file's format.
        #[arg(long, value_enum, default_value = "lockbench")]
        format: report::recheck::Format,
        /// Exit with status 3 when any backend shows a safety violation.
        #[arg(long)]
        fail_on_violation: bool,
    },
    /// Write a result folder's history in another tool's form, for an independent
    /// checker: Jepsen operations (EDN) or Porcupine operations (JSON).
    Export {
        /// A result folder (results/<run-id>).
        dir: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Which backend's history (needed when the run has several).
        #[arg(long, short)]
        backend: Option<String>,
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Set two runs side by side, with the change in every figure. A change is
    /// coloured only beyond the figure's noise: the spread its runs showed under
    /// `run --repeat N` where either run has repeats, else a fixed ±10%; the page
    /// and the terminal say which.
    Compare {
        /// The result folder of the first run (A).
        a: PathBuf,
        /// The result folder of the second run (B).
        b: PathBuf,
        /// Where to write the page (default: compare-<A>-vs-<B>.html beside A).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write index.html listing the runs in a results folder.
    Index {
        #[arg(default_value = "results")]
        dir: PathBuf,
    },
}

/// The forms `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Jepsen operations, one EDN map a line (Knossos, elle-cli).
    JepsenEdn,
    /// Porcupine operations as JSON (scripts/porcupine).
    Porcupine,
}

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Scenario files, or names of files in scenarios/ (default: all of them).
    pub scenarios: Vec<String>,
    /// Backends, comma-separated (default: every embedded backend).
    #[arg(long, short, value_delimiter = ',')]
    pub backend: Vec<String>,
    /// Seed for every random choice (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the scenario's duration, e.g. 2s, 500ms.
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<Duration>,
    /// Override the scenario's client count.
    #[arg(long)]
    pub clients: Option<u32>,
    /// How much of the history to keep in the result: every event
    /// (history.jsonl.zst, re-checkable), only the events shown as evidence of
    /// violations, or none.
    #[arg(long, value_enum, default_value_t = report::HistoryMode::Full)]
    pub history: report::HistoryMode,
    /// How long holds still open after the load may finish (default: the
    /// scenario's `drain`, 5 s). Past it they are cut short and released.
    #[arg(long, value_parser = parse_dur)]
    pub drain: Option<Duration>,
    /// The exact result folder (with several scenarios: a folder of results, one
    /// subfolder each). It must be new, empty, or an earlier result (with --force).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Let --out replace an earlier result: only the files lockbench wrote there
    /// are replaced; anything else in the folder stays.
    #[arg(long)]
    pub force: bool,
    /// Where result folders go when --out is not given.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run each backend N times with the same seed and keep every figure of every
    /// run (summary.json's `repeats`): `compare` then takes their spread, (max − min)
    /// over the median, as the noise threshold of each figure instead of a fixed
    /// ±10%. The result folder's history, figures and report are the first run's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Exit with status 3 when any backend's verdict is broken or data-lost, else 4
    /// when any is inconclusive (fenced does not fail: fencing did its job).
    #[arg(long)]
    pub fail_on_violation: bool,
    /// Threads that run the clients (default: one per core). Fewer leave more CPU
    /// to servers running on the same machine.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use running servers instead of starting local ones: KIND=ENDPOINT[,ENDPOINT...]
    /// where ENDPOINT is host:port or user:password@host:port (Redis also
    /// redis://[user:password@]host:port[/db]); e.g. redis=10.0.0.5:6379. Also from
    /// LOCKBENCH_<KIND> (LOCKBENCH_REDIS); a password from LOCKBENCH_<KIND>_PASSWORD
    /// keeps it out of shell history. Server faults cannot act on them.
    #[arg(long = "endpoints", value_name = "KIND=HOST:PORT,...")]
    pub endpoints: Vec<String>,
    /// How long a server has to answer the preflight probe (open a session and
    /// ping), e.g. 2s. Without an answer the command stops with status 5.
    #[arg(long, value_parser = parse_dur, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Run each scenario once per value of one field, each point on fresh
    /// servers, and chart the figures against it: FIELD=V1,V2,... where FIELD is
    /// keys.held, keys.count or clients (e.g. keys.held=1000,10000,100000).
    /// Replaces a scenario's own [sweep].
    #[arg(long, value_name = "FIELD=V1,V2,...")]
    pub sweep: Option<String>,
    /// Never make network nodes (namespaces, a bridge, iptables rules), even as
    /// root: every server stays on loopback, and scenarios that need nodes
    /// (peer-partition faults) are not run, with that reason.
    #[arg(long)]
    pub no_nodes: bool,
    /// Put every server that can go on a network node of its own there (Redis and
    /// Redlock's five, Sentinel, Cassandra, etcd, ZooKeeper), as `[servers] nodes
    /// = true` does: the clients and the fault proxies reach them over a host-only
    /// bridge. Root only; backends whose servers cannot are not run, with that reason.
    #[arg(long, conflicts_with = "no_nodes")]
    pub nodes: bool,
}

/// Where each server kind's servers come from.
#[derive(Default)]
struct Providers {
    external: std::collections::HashMap<ServerKind, External>,
}

impl Providers {
    fn from_args(args: &RunArgs) -> Result<Providers> {
        let mut p = Providers::default();
        let kinds = ServerKind::ALL;
        for k in kinds {
            let var = format!("LOCKBENCH_{}", k.name().to_uppercase());
            if let Ok(v) = std::env::var(&var) {
                p.external.insert(k, External::parse(k, &v).with_context(|| format!("environment variable {var}"))?);
            }
        }
        for e in &args.endpoints {
            let Some((kind, list)) = e.split_once('=') else {
                bail!(
                    "--endpoints `{}`: write KIND=host:port[,host:port...], e.g. redis=127.0.0.1:6379",
                    lockbench_backends::servers::redact(e)
                );
            };
            let Some(k) = kinds.iter().find(|k| k.name() == kind) else {
                bail!(
                    "--endpoints `{}`: unknown server kind `{kind}` (known: {})",
                    lockbench_backends::servers::redact(e),
                    kinds.map(|k| k.name()).join(", ")
                );
            };
            p.external.insert(*k, External::parse(*k, list).context("--endpoints")?);
        }
        Ok(p)
    }
}

/// A backend opened for one scenario, with its servers and scratch folder.
struct Prepared {
    backend: Arc<dyn LockBackend>,
    env: BackendEnv,
    servers: Option<Arc<dyn Servers>>,
    version: Option<String>,
    /// The scratch folder, removed on drop (and on every early return of `prepare`).
    _work: TempDir,
}

/// Open `info` for scenario `s`; `Ok(Err(reason))` when the pair cannot run here.
fn prepare(info: &BackendInfo, s: &Scenario, p: &Providers) -> Result<std::result::Result<Prepared, String>> {
    let work = tempdirs::scratch(&format!("{}-{}", s.name, info.name)).context("creating a scratch folder")?;
    let (servers, endpoints): (Option<Arc<dyn Servers>>, Vec<String>) = match info.needs {
        Needs::Embedded => {
            if let Some(f) = s.needs_servers() {
                return Ok(Err(format!("{f} needs a backend with servers")));
            }
            (None, Vec::new())
        }
        Needs::Servers { kind, n } => {
            if s.has_network_faults() && kind == ServerKind::RedisSentinel {
                // The proxies stand in front of the endpoints the backend is given:
                // a Sentinel client reaches the primary at whatever address
                // Sentinel names, past them, so a cut would not cut it.
                return Ok(Err("client-side network faults (partition, net-delay, net-reset) do not reach the \
                               primary a Sentinel client is sent to (not built yet)"
                    .into()));
            }
            if s.has_network_faults() && kind.is_cassandra() && n > 1 {
                // The driver learns the ring's other nodes from the one it reaches
                // first and speaks to them at their own addresses, past the proxies.
                return Ok(Err("client-side network faults (partition, net-delay, net-reset) do not reach the \
                               nodes a Cassandra driver learns from the ring (not built yet); peer-partition does"
                    .into()));
            }
            if s.has_peer_partition() && !kind.peers(n) {
                return Ok(Err(format!(
                    "peer-partition cuts cluster members apart: {n} {kind} server(s) of {} do not talk to each other",
                    info.name
                )));
            }
            if let Some(ext) = p.external.get(&kind) {
                if let Some(f) = s.needs_servers() {
                    return Ok(Err(format!("{f} cannot act on external servers")));
                }
                if s.servers.nodes {
                    return Ok(Err("[servers] nodes (--nodes) cannot move external servers onto network nodes".into()));
                }
                if s.servers.faketime.is_some() {
                    return Ok(Err("[servers] faketime cannot skew the clock of external servers".into()));
                }
                if ext.endpoints.len() < n {
                    bail!("{} needs {n} {kind} servers, --endpoints gave {}", info.name, ext.endpoints.len());
                }
                let ext = ext.first(n);
                let e = ext.endpoints();
                (Some(Arc::new(ext) as Arc<dyn Servers>), e)
            } else {
                if s.server_options().nodes {
                    // What asked for nodes: a peer partition, or `[servers] nodes` / --nodes.
                    let what = if s.has_peer_partition() { "peer-partition" } else { "[servers] nodes (--nodes)" };
                    if !kind.on_nodes() {
                        return Ok(Err(format!(
                            "{what} needs servers on network nodes (built for {} so far)",
                            ServerKind::on_nodes_names()
                        )));
                    }
                    if let Some(why) = lockbench_backends::servers::nodes::unavailable() {
                        return Ok(Err(format!("{what}: {why}")));
                    }
                }
                if let Some(m) = s.max_server()
                    && m >= n
                {
                    bail!("{}: a fault acts on server {m}, but {} has only {n} server(s)", s.path.display(), info.name);
                }
                let c = LocalCluster::start(kind, n, s.server_options())
                    .with_context(|| format!("starting {n} {kind} server(s) for {}", info.name))?;
                let e = c.endpoints();
                (Some(Arc::new(c) as Arc<dyn Servers>), e)
            }
        }
        Needs::Service { var } => {
            if let Some(f) = s.needs_servers() {
                return Ok(Err(format!("{f} cannot act on a hosted service")));
            }
            if s.has_network_faults() {
                return Ok(Err("client-side network faults (partition, net-delay, net-reset) need a proxy in front \
                               of a server; a hosted service is reached over TLS"
                    .into()));
            }
            if s.servers.faketime.is_some() {
                return Ok(Err("[servers] faketime cannot skew the clock of a hosted service".into()));
            }
            if !service_key(var) {
                return Ok(Err(format!("needs {var}: a hosted service with no local server")));
            }
            (None, Vec::new())
        }
    };
    let env = BackendEnv { dir: work.path().to_owned(), endpoints, ..Default::default() };
    let backend = info.open(&env).with_context(|| format!("opening backend {}", info.name))?;
    if s.client_mode == ClientMode::Process && !backend.capabilities().multi_process {
        return Ok(Err("client_mode = \"process\" needs a backend shared across processes".into()));
    }
    let version = servers.as_ref().and_then(|s| s.version());
    Ok(Ok(Prepared { backend, env, servers, version, _work: work }))
}

/// What `scenarios/expected.toml` says a shipped scenario must show, per backend
/// (empty for a scenario file from elsewhere, whose name may collide).
fn expected_for(s: &Scenario) -> std::collections::HashMap<String, String> {
    let dir = scenarios_dir();
    let shipped = s.path.canonicalize().ok().and_then(|p| p.parent().map(Path::to_owned)) == dir.canonicalize().ok();
    if !shipped {
        return Default::default();
    }
    let Ok(text) = std::fs::read_to_string(dir.join("expected.toml")) else { return Default::default() };
    let Ok(table) = toml::from_str::<std::collections::HashMap<String, toml::Table>>(&text) else {
        return Default::default();
    };
    table
        .get(&s.name)
        .map(|row| {
            row.iter()
                .filter(|(k, _)| *k != "duration")
                .filter_map(|(k, v)| v.as_str().map(|w| (k.clone(), w.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The server's own version (asked through a session: Redis's `redis_version`,
/// Cassandra's `release_version`, SQLite's `sqlite_version()`), with the provider's
/// note on skewed clocks; the provider's program version where the backend cannot say.
async fn server_version(p: &Prepared) -> Option<String> {
    let own = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = p.backend.session().await.ok()?;
        s.server_version().await.ok().flatten()
    })
    .await
    .ok()
    .flatten();
    match (own, &p.version) {
        // The provider's notes (skewed clocks, where the data lives) follow the
        // program's version in parentheses.
        (Some(v), Some(pv)) => Some(match [" (data ", " (clocks:"].iter().filter_map(|m| pv.find(m)).min() {
            Some(i) => format!("{v}{}", &pv[i..]),
            None => v,
        }),
        (Some(v), None) => Some(v),
        (None, pv) => pv.clone(),
    }
}

/// Probe every selected backend whose servers the user gave, once.
async fn preflight_external(
    backends: &[BackendInfo],
    p: &Providers,
    timeout: Duration,
) -> std::result::Result<(), run::preflight::PreflightError> {
    for info in backends {
        let Needs::Servers { kind, n } = info.needs else { continue };
        let Some(ext) = p.external.get(&kind) else { continue };
        // The backends' form (it holds any password: printed only through redact).
        let endpoints: Vec<String> = ext.first(n).endpoints();
        let env = BackendEnv { endpoints: endpoints.clone(), ..Default::default() };
        let backend = info.open(&env).map_err(|e| run::preflight::PreflightError {
            backend: info.name.to_owned(),
            endpoints: endpoints.iter().map(|e| lockbench_backends::servers::redact(e)).collect::<Vec<_>>().join(","),
            what: e.to_string(),
        })?;
        run::preflight::probe(&backend, &endpoints, timeout).await?;
        eprintln!(
            "preflight: {} at {} answered",
            info.name,
            endpoints.iter().map(|e| lockbench_backends::servers::redact(e)).collect::<Vec<_>>().join(",")
        );
    }
    Ok(())
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    s.parse::<Dur>().map(|d| d.0)
}

/// The `scenarios/` folder: here, or beside the workspace this binary was built in.
pub fn scenarios_dir() -> PathBuf {
    let here = PathBuf::from("scenarios");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every scenario file in a folder, by name (expected.toml is the verdict table,
/// not a scenario).
pub fn shipped_scenarios(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading scenario folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.file_stem().is_some_and(|s| s != "expected"))
        .collect();
    v.sort();
    Ok(v)
}

fn resolve_scenario(arg: &str) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.exists() || arg.contains('/') || arg.ends_with(".toml") {
        return p;
    }
    scenarios_dir().join(format!("{arg}.toml"))
}

/// `lockbench` alone: `lockbench run` with clap's defaults (not `Default`, which
/// would leave the results folder empty).
fn default_run() -> RunArgs {
    match Cli::parse_from(["lockbench", "run"]).command {
        Some(Command::Run(a)) => a,
        _ => unreachable!("`lockbench run` parses as run"),
    }
}

/// Parse arguments, run, and return the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    signals::install_panic_hook();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Some(Command::Run(RunArgs { threads: Some(0), .. })) => {
            eprintln!("error: --threads must be at least 1");
            return 2;
        }
        Some(Command::Run(RunArgs { threads: Some(n), .. })) => {
            builder.worker_threads(*n);
        }
        // A worker runs one client: one thread is plenty.
        Some(Command::Worker) => {
            builder.worker_threads(1);
        }
        _ => {}
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        match cli.command.unwrap_or_else(|| Command::Run(default_run())) {
            Command::Run(args) => run_cmd(args).await,
            Command::List { no_nodes } => {
                if no_nodes {
                    lockbench_backends::servers::nodes::turn_off();
                }
                list().map(|_| 0)
            }
            Command::Worker => run::worker::worker_main().await.map(|_| 0),
            Command::Report { dir } => {
                let p = report::rebuild(&dir)?;
                println!("{}", p.display());
                Ok(0)
            }
            Command::Check { dir, history, format, fail_on_violation } => {
                let summary = match (dir, history) {
                    (_, Some(h)) => report::recheck::foreign(&h, format)?,
                    (Some(d), None) => {
                        let (s, changes) = report::recheck::folder(&d)?;
                        if changes.is_empty() {
                            println!("{}: the history gives the same figures as before", d.display());
                        } else {
                            println!("{}: changed (the run's own summary is kept as summary.prev.json):", d.display());
                            for c in &changes {
                                println!("  {c}");
                            }
                        }
                        s
                    }
                    (None, None) => bail!("give a result folder or --history FILE"),
                };
                let mut worst = Worst::default();
                for b in &summary.backends {
                    worst.add(b.verdict);
                    println!("  {:<14} {:>8} grants  {}", b.name, b.grants, verdict_line(b));
                }
                Ok(if fail_on_violation { worst.status() } else { exit::OK })
            }
            Command::Export { dir, format, backend, out } => {
                export(&dir, format, backend.as_deref(), out.as_deref())?;
                Ok(0)
            }
            Command::Compare { a, b, out } => {
                let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let out = out.unwrap_or_else(|| {
                    a.parent().unwrap_or(Path::new(".")).join(format!("compare-{}-vs-{}.html", name(&a), name(&b)))
                });
                let (warnings, noise) = report::compare(&a, &b, &out)?;
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                println!("noise: {noise}");
                println!("{}", out.display());
                Ok(0)
            }
            Command::Index { dir } => {
                println!("{}", report::write_index(&dir)?.display());
                Ok(0)
            }
        }
    });
    // Whatever happened, no temp folder of this process outlives it.
    tempdirs::remove_all();
    match result {
        Ok(code) => code,
        Err(e) => {
            // Whatever the error carries, no password reaches the terminal.
            eprintln!("error: {}", lockbench_backends::servers::redact(&format!("{e:#}")));
            exit::ERROR
        }
    }
}

/// Raise the soft open-files limit to the hard one, and refuse a run whose clients
/// would need more descriptors than that: a connect that fails for want of a
/// descriptor never reached the server, and a run full of them measures nothing.
fn open_files_for(scenarios: &[Scenario], backends: &[BackendInfo]) -> Result<()> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    for s in scenarios {
        for b in backends {
            // Per client: a connection per server (or SQLite's file, journal and
            // shared memory), and a worker process's three pipes in the parent.
            let per_client = match b.needs {
                Needs::Servers { n, .. } => n as u64,
                Needs::Embedded | Needs::Service { .. } => 3,
            } + if s.client_mode == ClientMode::Process { 3 } else { 0 };
            let needed = u64::from(s.clients()) * per_client + 256;
            if needed > lim.rlim_cur as u64 {
                bail!(
                    "{} on {} needs about {needed} open files ({} clients × {per_client} + 256 for the harness), and \
                     this process may open {} (the hard limit): raise it (ulimit -n) or run fewer --clients",
                    s.name,
                    b.name,
                    s.clients(),
                    lim.rlim_cur
                );
            }
        }
    }
    Ok(())
}

/// `lockbench export`.
fn export(dir: &Path, format: ExportFormat, backend: Option<&str>, out: Option<&Path>) -> Result<()> {
    let hp = crate::record::history_path(dir);
    let (_, events) = crate::record::open_history(&hp)
        .and_then(crate::record::read_history)
        .with_context(|| format!("reading {}", hp.display()))?;
    let mut names: Vec<&str> = Vec::new();
    for (b, _) in &events {
        if !names.contains(&b.as_str()) {
            names.push(b);
        }
    }
    let chosen = match (backend, names.as_slice()) {
        (Some(b), _) if names.contains(&b) => b.to_owned(),
        (Some(b), _) => bail!("{} has no backend `{b}` (it has: {})", hp.display(), names.join(", ")),
        (None, [one]) => (*one).to_owned(),
        (None, _) => bail!("{} holds several backends ({}): choose one with --backend", hp.display(), names.join(", ")),
    };
    let mine: Vec<crate::record::Event> = events.into_iter().filter(|(b, _)| *b == chosen).map(|(_, e)| e).collect();
    let text = match format {
        ExportFormat::JepsenEdn => report::export::jepsen_edn(&mine),
        ExportFormat::Porcupine => serde_json::to_string(&report::export::porcupine(&mine))? + "\n",
    };
    match out {
        Some(p) if p.exists() => {
            bail!("{} exists: not writing over it (remove it, or choose another name)", p.display())
        }
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes()).context("writing to standard output")
        }
    }
}

fn list() -> Result<()> {
    println!("Scenarios ({}):", scenarios_dir().display());
    for p in shipped_scenarios(&scenarios_dir())? {
        match Scenario::load(&p) {
            Ok(s) => {
                // Peer partitions are never run without nodes: say so up front.
                let here = match lockbench_backends::servers::nodes::unavailable() {
                    Some(why) if s.server_options().nodes => format!(" [NOT RUNNABLE HERE: {why}]"),
                    _ => String::new(),
                };
                println!("  {:<20} {}{here}", s.name, s.description)
            }
            Err(e) => println!("  {:<20} INVALID: {e}", p.file_stem().unwrap_or_default().to_string_lossy()),
        }
    }
    println!("\nBackends:");
    let all = registry();
    let w = all.iter().map(|b| b.name.len()).max().unwrap_or(14);
    for b in all {
        let here = availability(&b);
        println!("  {:<w$} {:<40} {}", b.name, here, b.about);
    }
    Ok(())
}

fn availability(b: &BackendInfo) -> String {
    if !b.compiled {
        // Each client crate is a cargo feature named after its server.
        let feature = ["redis", "cassandra", "postgres", "etcd", "zookeeper", "dynamodb", "momento"]
            .into_iter()
            .find(|f| b.name.starts_with(f) || (b.name == "redlock" && *f == "redis"))
            .unwrap_or("?");
        return format!("not compiled in: build with --features {feature}");
    }
    match b.needs {
        Needs::Embedded => "available (embedded)".into(),
        Needs::Servers { kind, n } if kind.installed() => format!("available ({n} local {kind} server(s))"),
        Needs::Servers { kind, .. } => format!("{} not installed: run {}", kind.program().0, kind.program().1),
        Needs::Service { var } if service_key(var) => format!("available (hosted service; {var} is set)"),
        Needs::Service { var } => format!("needs {var} (a hosted service: no local server)"),
    }
}

/// Is the credential a hosted service needs in the environment?
fn service_key(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty())
}

/// Can this backend run here (given the providers)?
fn runnable(b: &BackendInfo, p: &Providers) -> bool {
    b.compiled
        && match b.needs {
            Needs::Embedded => true,
            Needs::Servers { kind, .. } => p.external.contains_key(&kind) || kind.installed(),
            Needs::Service { var } => service_key(var),
        }
}

struct Bar(ProgressBar, Option<Duration>);

impl Observer for Bar {
    fn tick(&self, elapsed: Duration, p: &Progress) {
        if let Some(total) = self.1 {
            self.0.set_position(elapsed.min(total).as_millis() as u64);
        }
        self.0.set_message(format!(
            "{:.1}s  {} grants / {} attempts",
            elapsed.as_secs_f64(),
            p.grants.load(Ordering::Relaxed),
            p.attempts.load(Ordering::Relaxed)
        ));
    }
    fn note(&self, what: &str) {
        self.0.set_message(format!("{what}…"));
    }
}

async fn run_cmd(args: RunArgs) -> Result<i32> {
    // 0. From here a signal stops the run in order; and what earlier runs left in
    //    the temp folder (killed, or crashed) goes.
    signals::install().context("watching SIGINT and SIGTERM")?;
    if args.no_nodes {
        lockbench_backends::servers::nodes::turn_off();
    }
    let stale = tempdirs::remove_stale();
    for (p, why) in stale.iter().take(5) {
        eprintln!("note: removed {}, left by an earlier run ({why})", p.display());
    }
    if stale.len() > 5 {
        eprintln!("note: removed {} more temp folders left by earlier runs", stale.len() - 5);
    }
    // And network nodes (namespaces, bridges) of runs that are gone, where this
    // process may touch them (root).
    if lockbench_backends::servers::nodes::unavailable().is_none() {
        lockbench_backends::servers::nodes::remove_stale();
    }
    // 1. Every scenario loads and takes the overrides, or nothing runs.
    let paths: Vec<PathBuf> = if args.scenarios.is_empty() {
        shipped_scenarios(&scenarios_dir())?
    } else {
        args.scenarios.iter().map(|s| resolve_scenario(s)).collect()
    };
    if paths.is_empty() {
        bail!("no scenario files found in {}", scenarios_dir().display());
    }
    let overrides = Overrides { clients: args.clients, duration: args.duration, seed: args.seed, drain: args.drain };
    let sweep =
        args.sweep.as_deref().map(crate::scenario::Sweep::parse_flag).transpose().map_err(anyhow::Error::msg)?;
    let mut scenarios = Vec::new();
    for p in &paths {
        let mut s = Scenario::load(p)?;
        s.apply_overrides(&overrides).map_err(anyhow::Error::msg)?;
        s.servers.nodes |= args.nodes;
        if let Some(sw) = &sweep {
            s.set_sweep(sw).map_err(|e| anyhow::anyhow!("--sweep: {e}"))?;
        }
        scenarios.push(s);
    }
    // 2. Every backend exists and can run here.
    let providers = Providers::from_args(&args)?;
    // Passwords typed on the command line leave it: `ps`, and the child processes
    // forked from here, show `*` instead.
    lockbench_backends::servers::endpoint::hide_in_own_command_line();
    let names: Vec<String> = if args.backend.is_empty() {
        registry().into_iter().filter(|b| b.is_embedded()).map(|b| b.name.to_owned()).collect()
    } else {
        args.backend.clone()
    };
    let mut backends = Vec::new();
    for n in &names {
        let Some(info) = lockbench_backends::lookup(n) else {
            let known: Vec<&str> = registry().iter().map(|b| b.name).collect();
            bail!("--backend: unknown backend `{n}` (known: {})", known.join(", "));
        };
        if !runnable(&info, &providers) {
            bail!("--backend: `{n}` cannot run here: {}", availability(&info));
        }
        backends.push(info);
    }
    // The clients' connections fit in the open-files limit (raised to the hard
    // limit), or the run is refused with the figure it needs.
    open_files_for(&scenarios, &backends)?;

    // 3. Output folders: checked and claimed before anything runs (nothing of the
    //    user's is ever replaced; a second run into the same folder is refused).
    let (started_at, stamp) = report::now_stamps();
    let mut claims = Vec::new();
    let mut names_used: Vec<String> = Vec::new();
    if let (Some(o), true) = (&args.out, scenarios.len() > 1) {
        report::folder::results_out(o)?;
    }
    for s in &scenarios {
        // Two scenario files of one name in one command get two folders.
        let mut name = s.name.clone();
        let mut i = 2;
        while names_used.contains(&name) {
            name = format!("{}-{i}", s.name);
            i += 1;
        }
        names_used.push(name.clone());
        let claim = match (&args.out, scenarios.len()) {
            (Some(o), 1) => report::folder::Claim::out(o, args.force)?,
            (Some(o), _) => report::folder::Claim::out(&o.join(&name), args.force)?,
            (None, _) => report::folder::Claim::fresh(&args.results, &format!("{stamp}-{name}"))?,
        };
        claims.push(Some(claim));
    }

    // 4. Servers the user gave answer, or nothing runs (a signal ends the wait).
    tokio::select! {
        r = preflight_external(&backends, &providers, args.connect_timeout) => {
            if let Err(e) = r {
                eprintln!("preflight failed: {e}");
                return Ok(exit::PREFLIGHT);
            }
        }
        _ = signals::interrupted() => {
            eprintln!("interrupted during the preflight: nothing was run");
            return Ok(signals::exit_status());
        }
    }

    let mut worst = Worst::default();
    let mut harness_failed = false;
    // Scenarios none of whose pairs ran, with why.
    let mut ran_nothing: Vec<String> = Vec::new();
    // Results written marked `interrupted`, and written whole after a signal.
    let (mut cut_short, mut whole) = (Vec::new(), Vec::new());
    for (s, claim) in scenarios.iter().zip(claims.iter_mut()) {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        let mut runs: Vec<BackendRun> = Vec::new();
        let mut skipped: Vec<report::Skipped> = Vec::new();
        let mut versions = Vec::new();
        let mut rtts = Vec::new();
        // Per run: the servers' memory after the load, and the sweep point.
        let mut rss = Vec::new();
        let mut at_point = Vec::new();
        // A sweep runs every backend once per value, each on fresh servers.
        let sw = s.sweep();
        let points: Vec<(Option<u64>, Scenario)> = match &sw {
            Some(sw) => sw
                .values
                .iter()
                .map(|v| Ok((Some(*v), s.at_point(sw, *v).map_err(anyhow::Error::msg)?)))
                .collect::<Result<_>>()?,
            None => vec![(None, s.clone())],
        };
        // --repeat: the figures of each backend's further runs.
        let mut repeats: Vec<Vec<report::BackendSummary>> = Vec::new();
        // Every backend of the scenario ran its load to the end.
        let mut all_ran = true;
        'points: for (point, ps) in &points {
            let label = |name: &str| match (point, &sw) {
                (Some(v), Some(sw)) => format!("{name}@{}", sw.label(*v)),
                _ => name.to_owned(),
            };
            for info in &backends {
                if INTERRUPTED.load(Ordering::Relaxed) {
                    all_ran = false;
                    break 'points;
                }
                let s = ps;
                let prepared = match prepare(info, s, &providers) {
                    // A server start cut short by the signal is no error.
                    Err(e) if INTERRUPTED.load(Ordering::Relaxed) => {
                        eprintln!("{}: {}", s.name, lockbench_backends::servers::redact(&format!("{e:#}")));
                        all_ran = false;
                        break 'points;
                    }
                    Err(e) => return Err(e),
                    Ok(Ok(p)) => p,
                    Ok(Err(reason)) => {
                        // Said once, not once per sweep point.
                        if !skipped.iter().any(|k| k.backend == info.name) {
                            println!("{}: not run on {}: {reason}", s.name, info.name);
                            skipped.push(report::Skipped { backend: info.name.to_owned(), reason });
                        }
                        continue;
                    }
                };
                // A local server answered its provider's readiness check; now it must
                // answer a client too. (External ones were probed before any scenario.)
                let local = match info.needs {
                    Needs::Servers { kind, .. } => !providers.external.contains_key(&kind),
                    Needs::Service { .. } => true,
                    Needs::Embedded => false,
                };
                if local {
                    let probe = tokio::select! {
                        r = run::preflight::probe(&prepared.backend, &prepared.env.endpoints, args.connect_timeout) => Some(r),
                        _ = signals::interrupted() => None,
                    };
                    match probe {
                        Some(Err(e)) => {
                            eprintln!("preflight failed: {e}");
                            eprintln!("stopping here: results of earlier scenarios are kept");
                            return Ok(exit::PREFLIGHT);
                        }
                        // Interrupted: the loop below sees it and stops.
                        None => break 'points,
                        Some(Ok(())) => {}
                    }
                }
                // The round-trip floor, before the load (servers only).
                let rtt = match info.needs {
                    Needs::Servers { .. } | Needs::Service { .. } => tokio::select! {
                        r = run::calibrate::floor(&prepared.backend) => r,
                        _ = signals::interrupted() => None,
                    },
                    Needs::Embedded => None,
                };
                let bar = progress_bar(s, &label(info.name));
                let r =
                    run::run_backend(s, prepared.backend.clone(), &prepared.env, prepared.servers.clone(), &bar).await;
                bar.0.finish_and_clear();
                // Locks that could not be taken to hold beside the load: this pair
                // did not run (said, and in the summary), the others go on.
                let mut r = match r {
                    Err(e) if let Some(why) = run::held::is_fill_failure(&e) => {
                        println!("{}: not run on {}: {why}", s.name, label(info.name));
                        skipped.push(report::Skipped { backend: label(info.name), reason: why });
                        continue;
                    }
                    r => r.with_context(|| format!("{} on {}", s.name, label(info.name)))?,
                };
                // Pushed with the run it belongs to (every per-run list stays in
                // step with `runs`).
                rtts.push(rtt);
                if r.interrupted && !r.history.has_invoke() {
                    eprintln!(
                        "{} on {}: interrupted before any operation: nothing to check or write",
                        s.name, info.name
                    );
                    all_ran = false;
                    break 'points;
                }
                // A sweep's runs are told apart by their point.
                r.backend = label(info.name);
                rss.push(prepared.servers.as_ref().and_then(|sv| sv.rss_bytes()));
                at_point.push(*point);
                let version = if INTERRUPTED.load(Ordering::Relaxed) {
                    // After a signal, ask briefly: the server may be the one that does not answer.
                    tokio::time::timeout(Duration::from_secs(1), server_version(&prepared))
                        .await
                        .unwrap_or_else(|_| prepared.version.clone())
                } else {
                    server_version(&prepared).await
                };
                drop(prepared);
                versions.push(version);
                runs.push(r);
                // --repeat: the same scenario and seed again on fresh servers, for the
                // spread of each figure; only the figures are kept.
                let mut again = Vec::new();
                for n in 2..=args.repeat {
                    if INTERRUPTED.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(Ok(p)) = prepare(info, s, &providers) else { break };
                    let bar = progress_bar(s, &format!("{} (run {n} of {})", label(info.name), args.repeat));
                    let r = run::run_backend(s, p.backend.clone(), &p.env, p.servers.clone(), &bar)
                        .await
                        .with_context(|| format!("{} on {}: recording the history", s.name, info.name))?;
                    bar.0.finish_and_clear();
                    if r.interrupted {
                        break;
                    }
                    let f = report::summary::figures_of(&r)
                        .with_context(|| format!("{} on {}: reading back the history", s.name, info.name))?;
                    // The harness's own failure in a repeat is as much an error as in
                    // the kept run (exit 6), and said here: that run is not kept.
                    for e in &f.harness_errors {
                        eprintln!("{} on {} (run {n} of {}): {e}", s.name, info.name, args.repeat);
                        harness_failed = true;
                    }
                    again.push(f);
                }
                repeats.push(again);
            }
        }
        if runs.is_empty() {
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
            let why: Vec<String> = skipped.iter().map(|k| format!("{}: {}", k.backend, k.reason)).collect();
            ran_nothing.push(format!("{} ({})", s.name, why.join("; ")));
            continue;
        }
        let Some(claim) = claim.take() else { continue };
        let meta = Summary {
            schema_version: report::summary::SCHEMA_VERSION,
            lockbench_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: format!("{stamp}-{}-{:08x}", s.name, rand::random::<u32>()),
            scenario: s.name.clone(),
            description: s.description.clone(),
            scenario_toml: s.to_toml(),
            seed: s.seed,
            started_at: started_at.clone(),
            command: reproduce(s, &names, &args, &providers),
            interrupted: !all_ran,
            machine: Machine::here(),
            backends: Vec::new(),
            skipped,
            history_events: None,
            history: args.history,
            sweep: sw
                .as_ref()
                .map(|sw| report::summary::SweepInfo { field: sw.field.clone(), values: sw.values.clone() }),
            ratios: Vec::new(),
        };
        // Test hook (harness/tests/signals.rs): a pause between the load and the
        // checking, so that a signal can land there.
        if let Some(ms) = std::env::var("LOCKBENCH_TEST_PAUSE_BEFORE_CHECK_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("checking {} ({} backend(s))...", s.name, runs.len());
        }
        let mut checked = report::summarize(meta, &runs)?;
        checked.summary.history_events = Some(report::history_events(args.history, &runs, &checked.evidence));
        let summary = &mut checked.summary;
        let expected = expected_for(s);
        for (((((b, v), rtt), again), mem), point) in
            summary.backends.iter_mut().zip(versions).zip(rtts).zip(&repeats).zip(rss).zip(at_point)
        {
            b.server_version = v;
            b.server_rss_bytes = mem;
            b.sweep_value = point;
            if !again.is_empty() {
                let all: Vec<&report::BackendSummary> = std::iter::once(&*b).chain(again).collect();
                b.repeats = Some(report::noise::Repeats::of(&all));
            }
            b.set_rtt(rtt);
            // A sweep's runs are held to their backend's row.
            b.expected = expected.get(b.name.split('@').next().unwrap_or(&b.name)).cloned();
            if *s.load.model.get_ref() == crate::scenario::LoadModel::Open {
                b.offered_per_s = s.load.rate.as_ref().map(|r| *r.get_ref());
            }
        }
        let pairs: Vec<(String, String)> =
            s.ratios.iter().filter_map(|r| crate::scenario::ratio_pair(r.get_ref()).ok()).collect();
        summary.set_ratios(&pairs);
        // The figures first: a write that fails (a full disk) does not lose them.
        println!("{}:", s.name);
        for b in &summary.backends {
            worst.add(b.verdict);
            println!(
                "  {:<14} {:>8} grants  {:>9.0}/s  acquire p50 {:>9} {:>9}  p99 {:>9}  {}",
                b.name,
                b.grants,
                b.grants_per_s,
                report::html::us(b.acquire_latency_us.p50),
                b.p50_rtt.as_ref().and_then(|r| r.acquire).map_or("(— RTT)".to_owned(), |a| format!("({a:.1} RTT)")),
                report::html::us(b.acquire_latency_us.p99),
                verdict_line(b)
            );
            if let Some(r) = &b.rtt_us {
                println!(
                    "  {:<14} round trip to the server: p50 {:.0} µs, p99 {:.0} µs ({} pings){}",
                    "",
                    r.p50_us,
                    r.p99_us,
                    r.pings,
                    b.p50_rtt
                        .as_ref()
                        .and_then(|x| x.release)
                        .map_or(String::new(), |x| format!("; release p50 {x:.1} RTT"))
                );
            }
            if let Some(r) = &b.repeats {
                // A repeat's verdict counts like the kept run's (--fail-on-violation),
                // and one that differs is said: its history is not kept.
                for (n, v) in r.verdicts.iter().enumerate().skip(1) {
                    worst.add(*v);
                    if *v != b.verdict {
                        println!(
                            "  {:<14} run {} of {} read {} (the kept run: {}); only its figures are kept",
                            "",
                            n + 1,
                            r.runs,
                            v.to_string().to_uppercase(),
                            b.verdict
                        );
                    }
                }
                let spread = |f: &str| {
                    r.spread(f).map_or("–".to_owned(), |x| {
                        if x.is_infinite() { "from 0".to_owned() } else { format!("±{:.1}%", x * 100.0) }
                    })
                };
                println!(
                    "  {:<14} spread over {} runs (same seed): grants/s {}, acquire p50 {}, p99 {} (summary.json: repeats)",
                    "",
                    r.runs,
                    spread("grants/s"),
                    spread("acquire p50"),
                    spread("acquire p99")
                );
            }
            if let Some(r) = &b.requests_per_op {
                let each: Vec<String> = [("acquire", r.acquire), ("release", r.release), ("renew", r.renew)]
                    .into_iter()
                    .filter_map(|(op, m)| m.map(|m| format!("{op} {m:.1}")))
                    .collect();
                let per_grant = b.requests_per_grant.map_or(String::new(), |g| format!("; per granted lock {g:.1}"));
                println!("  {:<14} requests sent per operation: {}{per_grant}", "", each.join(", "));
            }
            for line in notes(s, b) {
                println!("  {:<14} {line}", "");
            }
            harness_failed |= !b.harness_errors.is_empty();
        }
        for r in &summary.ratios {
            println!("  acquire latency {} / {}: p50 {:.1}×, p99 {:.1}×", r.of, r.to, r.p50, r.p99);
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("writing {}...", claim.partial.display());
        }
        let out = report::write(claim, &checked, &runs)?;
        println!("  → {}", out.join("report.html").display());
        if checked.summary.interrupted { &mut cut_short } else { &mut whole }.push(out.display().to_string());
        if args.out.is_none() {
            if let Err(e) = report::write_index(&args.results) {
                // The run is written: a page that lists runs is no reason to stop.
                eprintln!("warning: results index not updated: {e:#}");
            }
        }
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        // Say what summary.json says: `interrupted` only where the load was cut short.
        if !cut_short.is_empty() {
            eprintln!(
                "interrupted: written and marked `interrupted` (the load was cut short): {}",
                cut_short.join(", ")
            );
        }
        if !whole.is_empty() {
            eprintln!(
                "interrupted: written whole, not marked `interrupted` (its load had ended): {}",
                whole.join(", ")
            );
        }
        let missing = scenarios.len() - cut_short.len() - whole.len();
        if missing > 0 {
            eprintln!("interrupted: {missing} scenario(s) not run or nothing recorded, nothing written for them");
        }
        return Ok(signals::exit_status());
    }
    // Nothing measured is never a quiet success: a command in which no pair ran,
    // or a scenario the user named whose pairs all were skipped, fails. (The
    // default suite lists its skipped pairs and carries on.)
    let named = !args.scenarios.is_empty();
    if !ran_nothing.is_empty() && (named || ran_nothing.len() == scenarios.len()) {
        eprintln!("error: nothing ran for {}", ran_nothing.join(", "));
        return Ok(exit::ERROR);
    }
    if harness_failed {
        eprintln!(
            "error: the harness itself failed during the run (see harness_errors in summary.json); the verdicts \
             above do not count those failures against the backends"
        );
        return Ok(exit::HARNESS);
    }
    Ok(if args.fail_on_violation { worst.status() } else { exit::OK })
}

/// What the terminal line alone would hide: the harness's own failures, faults that
/// hit nothing, and time spent past the scenario's duration.
fn notes(s: &Scenario, b: &report::BackendSummary) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(offered) = b.offered_per_s {
        let w = &b.wait_us;
        v.push(format!(
            "open load: offered {offered:.0}/s, achieved {:.0}/s; latency from the intended start p50 {} p99 {} \
             (service time p50 {} p99 {}); schedule started after {:.2} s of session set-up (excluded)",
            b.attempts_per_s,
            report::html::us(w.p50),
            report::html::us(w.p99),
            report::html::us(b.acquire_latency_us.p50),
            report::html::us(b.acquire_latency_us.p99),
            b.warm_up_s
        ));
    }
    if b.unexpected() == Some(true) {
        v.push(format!(
            "UNEXPECTED: scenarios/expected.toml says {} for this scenario on {}",
            b.expected.as_deref().unwrap_or("?"),
            b.name
        ));
    }
    if let Some(first) = b.harness_errors.first() {
        v.push(format!("HARNESS ERROR ×{}: {first}", b.harness_errors.len()));
    }
    if let (Some(n), Some(t)) = (b.held_locks, b.held_fill_s) {
        v.push(format!("{n} locks held beside the load (keys.held), taken in {t:.1} s before it"));
    }
    if let (Some(r), Some(_)) = (b.server_rss_bytes, b.held_locks) {
        v.push(format!("servers' memory after the load: {:.0} MB (resident, every member)", r as f64 / 1e6));
    }
    if !b.crash_to_next_grant_ms.is_empty() {
        let mut t = b.crash_to_next_grant_ms.clone();
        t.sort_by(f64::total_cmp);
        v.push(format!(
            "from a crashed holder to the next grant of its key: median {:.0} ms, max {:.0} ms ({} crashes)",
            t[t.len() / 2],
            t[t.len() - 1],
            t.len()
        ));
    }
    if b.faults_missed > 0 {
        v.push(format!(
            "{} of {} fault(s) hit nothing (no holder at the time, or not applied): see the report",
            b.faults_missed,
            b.faults.len()
        ));
    }
    if let Some(d) = s.duration() {
        let past = b.duration_s - d.as_secs_f64();
        if past > 0.1 {
            v.push(format!("ran {past:.1} s past the {} duration, letting holds and requests finish", Dur(d)));
        }
    }
    v
}

/// The worst verdicts seen in a command, for `--fail-on-violation`.
#[derive(Default)]
struct Worst {
    violation: bool,
    inconclusive: bool,
}

impl Worst {
    fn add(&mut self, l: Level) {
        self.violation |= l.is_violation();
        self.inconclusive |= l == Level::Inconclusive;
    }
    /// 3 for broken or data-lost anywhere, else 4 for inconclusive anywhere. fenced
    /// does not fail: the lock did its job with fencing.
    fn status(&self) -> i32 {
        if self.violation {
            exit::VIOLATION
        } else if self.inconclusive {
            exit::INCONCLUSIVE
        } else {
            exit::OK
        }
    }
}

/// The verdict word and what it rests on, for the terminal.
pub fn verdict_line(b: &report::BackendSummary) -> String {
    let mut o = match b.verdict {
        Level::Safe => "safe".to_owned(),
        Level::Inconclusive if b.grants == 0 => "INCONCLUSIVE: no grants".to_owned(),
        Level::Inconclusive => format!(
            "INCONCLUSIVE: no answer from the server in {:.1} of {:.1} seconds",
            b.unavailable_seconds, b.load_seconds
        ),
        l => {
            let mut o = format!(
                "{}: {} of {} holds overlapped (pairs: {} within both leases, {} after expiry), {} of {} increments lost{}, {} token regressions",
                l.word().to_uppercase(),
                b.holds_overlapped,
                b.grants,
                b.violations.within_lease,
                b.violations.after_expiry,
                b.increments_lost,
                b.writes_acknowledged,
                report::lost_share(b),
                b.token_regressions
            );
            if l == Level::Fenced {
                o.push_str(&if b.stale_writes_refused > 0 {
                    format!(" (fencing refused {} stale writes)", b.stale_writes_refused)
                } else {
                    " (no stale write was refused: luck, not fencing)".to_owned()
                });
            }
            o
        }
    };
    let e = &b.errors;
    if e.total() > 0 || b.unavailable_seconds > 0.0 {
        o.push_str(&format!(
            "  · errors: {} refused, {} rejected, {} unknown outcome, {} harness limits; unavailable {:.1} of {:.1} s",
            e.refused, e.rejected, e.unknown, e.resource, b.unavailable_seconds, b.load_seconds
        ));
    }
    o
}

/// The exit statuses of `lockbench` (also in the README and `--help`).
pub mod exit {
    pub const OK: i32 = 0;
    /// An error, or bad input (a scenario that does not load, an unknown backend).
    pub const ERROR: i32 = 1;
    /// Bad command-line usage (clap's own status).
    pub const USAGE: i32 = 2;
    /// A backend's verdict was broken or data-lost (with --fail-on-violation).
    pub const VIOLATION: i32 = 3;
    /// A backend's verdict was inconclusive (with --fail-on-violation).
    pub const INCONCLUSIVE: i32 = 4;
    /// A server did not answer the preflight probe.
    pub const PREFLIGHT: i32 = 5;
    /// The harness itself failed.
    pub const HARNESS: i32 = 6;
    pub const SIGINT: i32 = 130;
    pub const SIGTERM: i32 = 143;
}

fn progress_bar(s: &Scenario, backend: &str) -> Bar {
    let total = s.duration();
    let pb = match total {
        Some(d) => ProgressBar::new(d.as_millis() as u64),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template("{prefix:>32} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("{} on {}", s.name, backend));
    Bar(pb, total)
}

/// The command that reproduces a scenario's run. Servers given with `--endpoints`
/// stay in it, each password replaced by its variable for a shell to expand.
fn reproduce(s: &Scenario, backends: &[String], a: &RunArgs, p: &Providers) -> String {
    let mut c = format!("lockbench run {} --backend {} --seed {}", s.path.display(), backends.join(","), s.seed);
    if let Some(sw) = &a.sweep {
        c.push_str(&format!(" --sweep {sw}"));
    }
    if a.no_nodes {
        c.push_str(" --no-nodes");
    }
    if a.nodes {
        c.push_str(" --nodes");
    }
    if let Some(d) = a.duration {
        c.push_str(&format!(" --duration {}", Dur(d)));
    }
    if let Some(n) = a.clients {
        c.push_str(&format!(" --clients {n}"));
    }
    if let Some(d) = a.drain {
        c.push_str(&format!(" --drain {}", Dur(d)));
    }
    if a.repeat > 1 {
        c.push_str(&format!(" --repeat {}", a.repeat));
    }
    let mut kinds: Vec<&ServerKind> = p.external.keys().collect();
    kinds.sort_by_key(|k| k.name());
    for k in kinds {
        let list: Vec<String> = p.external[k].endpoints.iter().map(|e| e.reproducible(*k)).collect();
        c.push_str(&format!(" --endpoints \"{}={}\"", k.name(), list.join(",")));
    }
    c
}

#[cfg(test)]
mod tests {
    #[test]
    fn fail_on_violation_fails_on_broken_and_data_lost_then_inconclusive_never_fenced() {
        use super::{Level, Worst, exit};
        let status = |ls: &[Level]| {
            let mut w = Worst::default();
            ls.iter().for_each(|l| w.add(*l));
            w.status()
        };
        assert_eq!(status(&[Level::Safe, Level::Fenced]), exit::OK);
        assert_eq!(status(&[Level::Safe, Level::Inconclusive]), exit::INCONCLUSIVE);
        assert_eq!(status(&[Level::Inconclusive, Level::DataLost]), exit::VIOLATION);
        assert_eq!(status(&[Level::Broken]), exit::VIOLATION);
    }

    #[test]
    fn no_subcommand_runs_with_the_same_defaults_as_run() {
        let a = super::default_run();
        assert_eq!(a.results, std::path::PathBuf::from("results"));
        assert!(a.out.is_none() && a.backend.is_empty());
    }
}
