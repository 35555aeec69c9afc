//! Helpers for scenario tests: shrink a scenario so it runs in a second or two, and
//! run it through the library on any backend, starting local servers as needed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use lockbench::check::{Verdict, check};
use lockbench::run::{BackendRun, run_backend};
use lockbench::scenario::{Overrides, Scenario};
use lockbench_backends::servers::Servers;
use lockbench_backends::servers::local::LocalCluster;
use lockbench_backends::{BackendEnv, Needs, lookup};

pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

pub fn load(name: &str) -> Scenario {
    Scenario::load(&scenarios_dir().join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"))
}

/// The run lasts `d` (faults scheduled later simply do not fire).
pub fn short(mut s: Scenario, d: Duration) -> Scenario {
    s.apply_overrides(&Overrides { duration: Some(d), ..Default::default() }).expect("override");
    s
}

/// Can `backend` run scenario `s` at all (embedded backends take no server faults;
/// worker processes need a backend shared across processes)?
pub fn can_run(s: &Scenario, backend: &str) -> bool {
    let info = lookup(backend).unwrap_or_else(|| panic!("no backend {backend}"));
    let embedded = info.needs == Needs::Embedded;
    if embedded && s.needs_servers().is_some() {
        return false;
    }
    // A hosted service (Momento): only with its key, and no faults of servers or
    // of the network.
    if let Needs::Service { var } = info.needs {
        let key = std::env::var(var).is_ok_and(|v| !v.is_empty());
        if !key {
            eprintln!("{}: {backend} not run here: {var} is not set", s.name);
        }
        return key && s.needs_servers().is_none() && !s.has_network_faults() && s.servers.faketime.is_none();
    }
    // Peer partitions (and `[servers] nodes`) need the members on network nodes:
    // servers the provider can put on nodes (etcd, ZooKeeper, Redis, Redis
    // Sentinel, Cassandra), as root.
    if s.server_options().nodes {
        let on_nodes = matches!(info.needs, Needs::Servers { kind, n }
            if kind.on_nodes() && (!s.has_peer_partition() || kind.peers(n)));
        let missing = lockbench_backends::servers::nodes::unavailable();
        if let (true, Some(why)) = (on_nodes, &missing) {
            eprintln!("{}: {backend} not run here: {why}", s.name);
        }
        return on_nodes && missing.is_none();
    }
    // inprocess is the only backend that lives in one process's memory.
    !(s.client_mode == lockbench::scenario::ClientMode::Process && backend == "inprocess")
}

/// Run `s` on `backend`, with fresh local servers if it needs them.
pub async fn run_on(s: &Scenario, backend: &str) -> (BackendRun, Verdict) {
    // Worker processes are this workspace's lockbench binary, not the test binary.
    // SAFETY (of set_var): set before any worker is spawned, same value every time.
    unsafe { std::env::set_var("LOCKBENCH_WORKER_EXE", env!("CARGO_BIN_EXE_lockbench")) };
    let dir = tempfile::tempdir().unwrap();
    let info = lookup(backend).unwrap_or_else(|| panic!("no backend {backend}"));
    let (cluster, endpoints) = match info.needs {
        Needs::Embedded | Needs::Service { .. } => (None, Vec::new()),
        // PostgreSQL takes an initdb (~1 s) per server and etcd an election: scenarios
        // that do nothing to the server share one per test binary (advisory locks end
        // with the runs' connections, lease rows and etcd lock keys with their leases).
        Needs::Servers { kind, n }
            if (kind.is_postgres() || kind == lockbench_backends::servers::ServerKind::Etcd)
                && s.needs_servers().is_none()
                && s.server_options() == Default::default() =>
        {
            (None, shared_endpoints(kind, n))
        }
        Needs::Servers { kind, n } => {
            let opts = s.server_options();
            let c = LocalCluster::start(kind, n, opts)
                .unwrap_or_else(|e| panic!("starting {kind} for {backend}: {e} (run scripts/setup)"));
            let e = c.endpoints();
            (Some(Arc::new(c) as Arc<dyn Servers>), e)
        }
    };
    // Servers asked onto network nodes are reached at their nodes' addresses.
    if s.servers.nodes {
        assert!(endpoints.iter().all(|e| !e.starts_with("127.")), "{backend}: not on nodes: {endpoints:?}");
    }
    let env = BackendEnv { dir: dir.path().to_owned(), endpoints, ..Default::default() };
    let b = info.open(&env).expect("open");
    let r = run_backend(s, b, &env, cluster, &()).await.expect("the history is recorded");
    let v = check(&r.history.load().expect("the history reads back"));
    (r, v)
}

/// Endpoints of `n` servers of `kind` started once per test binary and killed when
/// it exits (the local provider's parent-death signal).
pub fn shared_endpoints(kind: lockbench_backends::servers::ServerKind, n: usize) -> Vec<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Shared = HashMap<(lockbench_backends::servers::ServerKind, usize), &'static LocalCluster>;
    static CLUSTERS: OnceLock<Mutex<Shared>> = OnceLock::new();
    let mut m = CLUSTERS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    let c = m.entry((kind, n)).or_insert_with(|| {
        let c = LocalCluster::start(kind, n, Default::default())
            .unwrap_or_else(|e| panic!("starting {n} {kind} server(s): {e} (run scripts/setup)"));
        Box::leak(Box::new(c))
    });
    c.endpoints()
}

/// The lockbench binary of this build.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lockbench")
}

/// Run the binary as a user would, in `cwd`.
pub fn lockbench(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run lockbench")
}

/// A result folder's summary.json.
pub fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Everything a command printed.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The path of a shipped scenario file.
pub fn scenario(name: &str) -> String {
    scenarios_dir().join(format!("{name}.toml")).to_string_lossy().into_owned()
}

/// A process seen in /proc.
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Zombie: dead, not yet reaped.
    pub zombie: bool,
    pub cmdline: String,
}

/// Every process now.
pub fn processes() -> Vec<Proc> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // After the command's closing parenthesis: state, then ppid.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut f = rest.split_whitespace();
        let zombie = f.next() == Some("Z");
        let ppid = f.next().and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        v.push(Proc { pid, ppid, zombie, cmdline: String::from_utf8_lossy(&cmd).replace('\0', " ") });
    }
    v
}

/// A result folder's history file, decompressed.
#[allow(dead_code)]
pub fn history_text(dir: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    lockbench::record::open_history(&dir.join("history.jsonl.zst"))
        .and_then(|mut r| r.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("reading {}/history.jsonl.zst: {e}", dir.display()));
    s
}

/// Write a result folder's history file (compressed, as lockbench writes it).
#[allow(dead_code)]
pub fn write_history_text(dir: &Path, text: &[u8]) {
    std::fs::write(dir.join("history.jsonl.zst"), zstd::stream::encode_all(text, 3).unwrap()).unwrap();
}

/// Every process below `pid` (from /proc), with its command name.
pub fn tree(pid: u32) -> Vec<(u32, String)> {
    let all = processes();
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        let p = pids[i];
        pids.extend(all.iter().filter(|q| q.ppid == p && !q.zombie).map(|q| q.pid));
        i += 1;
    }
    pids.into_iter()
        .skip(1)
        .map(|p| (p, std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim().to_owned()))
        .collect()
}

/// Is `pid` running (not gone, not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Start `lockbench ARGS` twice, wait until its process tree is `ready`, then end
/// it with SIGINT (the first time) and SIGKILL (the second): no process of that
/// tree (servers, their children, workers) may be running 10 s later.
pub fn nothing_outlives(args: &[&str], ready: impl Fn(&[(u32, String)]) -> bool) {
    use std::process::Stdio;
    for sig in [libc::SIGINT, libc::SIGKILL] {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let procs = loop {
            let t = tree(child.id());
            if ready(&t) {
                break t;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "the run's servers did not show up under lockbench: {t:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(500));
        let procs: Vec<(u32, String)> = [procs, tree(child.id())].concat();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let mut child = child;
        let _ = child.wait();
        let t1 = std::time::Instant::now();
        while procs.iter().any(|(p, _)| alive(*p)) && t1.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<&(u32, String)> = procs.iter().filter(|(p, _)| alive(*p)).collect();
        assert!(left.is_empty(), "signal {sig}: outlived lockbench: {left:?} (of {procs:?})");
    }
}
