//! Network nodes: each a network namespace with its own address on a host-only
//! bridge that this process creates (no uplink, no NAT, no forwarding), so that
//! cluster members can be cut off from each other in both directions, as Jepsen
//! cuts its nodes (a loopback proxy cannot stop what a member sends).
//!
//! What is here: making and removing nodes (and removing what a killed run left),
//! a thread entering a node ([`Nodes::enter`], for a listener or a probe), and
//! Jepsen's partition shapes as *grudges* (node → the nodes whose packets it
//! drops), computed by pure functions and applied as iptables rules inside the
//! nodes' namespaces, healed by flushing them. The local provider starts etcd
//! members on nodes for the `peer-partition` fault.
//!
//! Names carry the owning process's pid and start time in fixed-width fields and
//! fit IFNAMSIZ (15 characters): `lb`, the pid (5 base-36 characters), its start
//! tag (3), the cluster's number in the process (1), then `br` (the bridge),
//! `v<i>` (a node's veth end on the bridge) or `n<i>` (its namespace).
//! [`remove_stale`] removes the ones whose owner is gone, never a live process's
//! nor a name of any other form.
//!
//! Needs CAP_NET_ADMIN (root), `ip` (iproute2) and `iptables`; without them
//! [`Nodes::create`] says which is missing.

use std::collections::BTreeSet;
use std::process::Command;

use crate::{BackendError, Result};

/// The nodes of one cluster.
pub struct Nodes {
    prefix: String,
    /// The /24 the bridge and the nodes live on: `a.b.c.0/24`.
    net: [u8; 3],
    n: usize,
}

/// Run `ip` or `iptables` (in the root namespace, or in node `ns`); its error
/// names the command and what it printed.
fn run(ns: Option<&str>, program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    let out = cmd.args(args).output().map_err(|e| BackendError::Config(format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(BackendError::Config(format!(
            "{}{program} {}: {}",
            ns.map(|n| format!("(in {n}) ")).unwrap_or_default(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// This process's start time in clock ticks after boot (field 22 of
/// /proc/self/stat), which with the pid names one process for good.
/// None for a process that is gone or a zombie (dead, not yet reaped).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat.rsplit_once(')')?.1;
    if fields.split_whitespace().next() == Some("Z") {
        return None;
    }
    fields.split_whitespace().nth(19)?.parse().ok()
}

/// `n` base-36 characters of `v` (its low digits).
fn base36(mut v: u64, n: usize) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = vec![b'0'; n];
    for c in s.iter_mut().rev() {
        *c = digits[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Three base-36 characters of a start time.
fn start_tag(ticks: u64) -> String {
    base36(ticks, 3)
}

/// The name prefix of process `pid`'s `k`-th cluster of nodes: `lb`, the pid (5
/// base-36 characters: pid_max is at most 2^22), its start tag (3) and `k` (1),
/// 11 characters in all, so that `<prefix>v249` fits IFNAMSIZ.
fn prefix_of(pid: u32, k: u32) -> Option<String> {
    Some(format!("lb{}{}{}", base36(pid as u64, 5), start_tag(start_ticks(pid)?), base36(k as u64, 1)))
}

/// `(pid, start tag)` of a name made here (`<prefix>br`, `<prefix>v<i>`,
/// `<prefix>n<i>`), or None for any other name.
fn owner_of(name: &str) -> Option<(u32, String)> {
    let rest = name.strip_prefix("lb")?;
    if rest.len() < 11 || !rest.is_char_boundary(9) {
        return None;
    }
    let (body, suffix) = rest.split_at(9);
    if !body.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return None;
    }
    let ok_suffix = suffix == "br"
        || suffix
            .strip_prefix(['v', 'n'])
            .is_some_and(|i| !i.is_empty() && i.len() <= 3 && i.bytes().all(|b| b.is_ascii_digit()));
    if !ok_suffix {
        return None;
    }
    let pid = u32::from_str_radix(&body[..5], 36).ok()?;
    Some((pid, body[5..8].to_owned()))
}

/// Remove the bridges and namespaces of runs that are gone (their pid is dead or
/// now names a process with another start time). Never a live run's.
pub fn remove_stale() {
    let gone = |name: &str| match owner_of(name) {
        None => false,
        Some((pid, tag)) => start_ticks(pid).map(start_tag).as_deref() != Some(tag.as_str()),
    };
    if let Ok(list) = run(None, "ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| gone(n)) {
            let _ = run(None, "ip", &["netns", "del", ns]);
        }
    }
    for kind in ["veth", "bridge"] {
        if let Ok(list) = run(None, "ip", &["-o", "link", "show", "type", kind]) {
            // `17: lb5eb6dp1v0@if2: <...`: the name before any `@`.
            let names = list.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n));
            for link in names.filter(|n| gone(n)) {
                let _ = run(None, "ip", &["link", "del", link]);
            }
        }
    }
}

/// The error of a peer partition asked of servers that are not on nodes.
pub fn not_on_nodes() -> BackendError {
    BackendError::Config("these servers are not on network nodes: no peer partition".into())
}

/// Set by `--no-nodes`: no namespace, link or rule is made or touched; scenarios
/// that need nodes are not run, and say why.
pub static TURNED_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn network nodes off for this process (`--no-nodes`).
pub fn turn_off() {
    TURNED_OFF.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Can this process make nodes? (Root, `ip` and `iptables`.) The reason if not.
pub fn unavailable() -> Option<String> {
    if TURNED_OFF.load(std::sync::atomic::Ordering::Relaxed) {
        return Some("network nodes are turned off (--no-nodes)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network nodes need CAP_NET_ADMIN: run as root".into());
    }
    for p in ["ip", "iptables"] {
        if super::local::which(p).is_none() {
            return Some(format!("network nodes need `{p}`: run scripts/setup (Debian packages iproute2, iptables)"));
        }
    }
    None
}

/// A /24 in 10.0.0.0/8 that no route of this machine touches, chosen from `seed`.
fn free_net(seed: u32) -> Result<[u8; 3]> {
    let routes = run(None, "ip", &["-4", "route", "show", "table", "all"]).unwrap_or_default();
    let taken = |b: u8, c: u8| {
        routes.split_whitespace().any(|w| {
            let w = w.split('/').next().unwrap_or(w);
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 4
                && p[0] == "10"
                && (p[1] == b.to_string() || p[1] == "0")
                && (p[2] == c.to_string() || p[2] == "0")
        })
    };
    for k in 0..4096u32 {
        let v = seed.wrapping_add(k.wrapping_mul(2_654_435_761));
        let (b, c) = (200 + (v % 50) as u8, (v >> 8) as u8);
        if !taken(b, c) {
            return Ok([10, b, c]);
        }
    }
    Err(BackendError::Config("no free /24 in 10.200.0.0-10.249.255.0 for network nodes".into()))
}

impl Nodes {
    /// Make `n` nodes on a new bridge. Removes what killed runs left first.
    pub fn create(n: usize) -> Result<Nodes> {
        if let Some(why) = unavailable() {
            return Err(BackendError::Config(why));
        }
        if n == 0 || n > 250 {
            return Err(BackendError::Config(format!("{n} network nodes: give 1 to 250")));
        }
        remove_stale();
        let pid = std::process::id();
        // Several clusters of one process: the prefix counts them (the count wraps
        // at 36; clusters of one run never live that long together).
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 36;
        let prefix = prefix_of(pid, k).ok_or_else(|| BackendError::Config("cannot read /proc/self/stat".into()))?;
        let nodes = Nodes { net: free_net(pid ^ k.rotate_left(16))?, prefix, n };
        live(&nodes.prefix, n, nodes.net, true);
        // From here on a failure drops `nodes`, which removes what was made.
        nodes.build()?;
        Ok(nodes)
    }

    fn build(&self) -> Result<()> {
        let br = self.bridge();
        run(None, "ip", &["link", "add", &br, "type", "bridge"])?;
        run(None, "ip", &["addr", "add", &format!("{}/24", self.host_addr()), "dev", &br])?;
        run(None, "ip", &["link", "set", &br, "up"])?;
        for i in 0..self.n {
            let (ns, veth) = (self.netns(i), format!("{}v{i}", self.prefix));
            run(None, "ip", &["netns", "add", &ns])?;
            run(None, "ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run(None, "ip", &["link", "set", &veth, "master", &br, "up"])?;
            run(None, "ip", &["-n", &ns, "addr", "add", &format!("{}/24", self.addr(i)), "dev", "eth0"])?;
            run(None, "ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run(None, "ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Node `i`'s namespace (as `ip netns` names it).
    pub fn netns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// Node `i`'s address on the bridge.
    pub fn addr(&self, i: usize) -> std::net::Ipv4Addr {
        let [a, b, c] = self.net;
        std::net::Ipv4Addr::new(a, b, c, 2 + i as u8)
    }

    /// The root namespace's address on the bridge (where the harness's clients
    /// come from).
    pub fn host_addr(&self) -> std::net::Ipv4Addr {
        let [a, b, c] = self.net;
        std::net::Ipv4Addr::new(a, b, c, 1)
    }

    /// Move the calling thread into node `i`'s network namespace (for good: use a
    /// thread of its own). Sockets it opens from then on are the node's.
    pub fn enter(&self, i: usize) -> std::io::Result<()> {
        enter_netns(&self.netns(i))
    }

    /// Apply a grudge: node `i` drops every packet from the nodes in `g[i]`
    /// (iptables INPUT rules in its namespace, tagged with this run's prefix), then
    /// check that the cut is in force: a TCP probe per cut pair, from the dropped
    /// node to a listener on the dropping one, must not connect.
    pub fn apply(&self, g: &Grudge) -> Result<()> {
        for (i, drops) in g.iter().enumerate() {
            for &j in drops {
                let src = self.addr(j).to_string();
                let tag = format!("lockbench {}", self.prefix);
                run(
                    Some(&self.netns(i)),
                    "iptables",
                    &["-A", "INPUT", "-s", &src, "-j", "DROP", "-m", "comment", "--comment", &tag],
                )?;
            }
        }
        self.check_cut(g)
    }

    /// The probes of [`Nodes::apply`], all at once (each waits out its 150 ms).
    pub fn check_cut(&self, g: &Grudge) -> Result<()> {
        let io = |e: std::io::Error| BackendError::Config(format!("probing a peer partition: {e}"));
        let mut probes = Vec::new();
        // A listener on each dropping node's address, made in its namespace (a
        // socket stays in the namespace it was made in; the kernel completes a
        // handshake on it without an accept).
        let mut listeners = Vec::new();
        for (i, drops) in g.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
            let (ns, addr) = (self.netns(i), self.addr(i));
            let l = std::thread::spawn(move || {
                enter_netns(&ns)?;
                std::net::TcpListener::bind((addr, 0))
            })
            .join()
            .map_err(|_| BackendError::Config("probing a peer partition: a listener thread panicked".into()))?
            .map_err(io)?;
            let to = l.local_addr().map_err(io)?;
            listeners.push(l);
            for &j in drops {
                let ns = self.netns(j);
                probes.push((
                    i,
                    j,
                    std::thread::spawn(move || {
                        enter_netns(&ns)?;
                        Ok::<_, std::io::Error>(
                            std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(150)).is_ok(),
                        )
                    }),
                ));
            }
        }
        for (i, j, p) in probes {
            let through = p
                .join()
                .map_err(|_| BackendError::Config("probing a peer partition: a probe thread panicked".into()))?
                .map_err(io)?;
            if through {
                return Err(BackendError::Config(format!(
                    "the peer partition is not in force: node {j} still reaches node {i} after the rules"
                )));
            }
        }
        drop(listeners);
        Ok(())
    }

    /// Remove every cut (flush INPUT in every node; every node is tried, and the
    /// first failure is returned).
    pub fn heal(&self) -> Result<()> {
        let mut first = Ok(());
        for i in 0..self.n {
            if let Err(e) = run(Some(&self.netns(i)), "iptables", &["-F", "INPUT"])
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

/// Prefixes, node counts and /24s of the nodes this process has made and not
/// removed.
static LIVE: std::sync::Mutex<Vec<(String, usize, [u8; 3])>> = std::sync::Mutex::new(Vec::new());

fn live(prefix: &str, n: usize, net: [u8; 3], add: bool) {
    let mut l = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if add {
        l.push((prefix.to_owned(), n, net));
    } else {
        l.retain(|(p, _, _)| p != prefix);
    }
}

/// Is `ip` the address of a node this process made and still has (where a
/// fault proxy may forward to, besides loopback)? Per process: the proxies run
/// in the process that made the nodes (worker processes are given the proxies'
/// loopback addresses).
pub fn is_node_addr(ip: std::net::IpAddr) -> bool {
    let std::net::IpAddr::V4(v4) = ip else { return false };
    let [a, b, c, d] = v4.octets();
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(_, n, net)| *net == [a, b, c] && (2..2 + *n as u32).contains(&(d as u32)))
}

fn remove(prefix: &str, n: usize) {
    // A namespace takes its iptables rules with it, and its veth end once no
    // process is left in it; deleting our end removes the pair at once.
    for i in 0..n {
        let _ = run(None, "ip", &["link", "del", &format!("{prefix}v{i}")]);
        let _ = run(None, "ip", &["netns", "del", &format!("{prefix}n{i}")]);
    }
    let _ = run(None, "ip", &["link", "del", &format!("{prefix}br")]);
}

/// Remove every node this process made, for exits that skip destructors (a
/// second signal, a panic): what [`super::local::kill_all`] is for processes.
pub fn remove_all() {
    let all = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for (prefix, n, _) in all {
        remove(&prefix, n);
    }
}

/// Move the calling thread into the network namespace `ip netns` calls `name`.
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns on an open namespace file; affects only this thread.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Nodes {
    fn drop(&mut self) {
        remove(&self.prefix, self.n);
        live(&self.prefix, self.n, self.net, false);
    }
}

/// For each node, the nodes whose packets it drops.
pub type Grudge = Vec<BTreeSet<usize>>;

/// Jepsen's partition shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One node cut off from all others (`isolate` = Jepsen's `split-one`).
    Isolate(usize),
    /// A majority and a minority (Jepsen's `bisect`: the first ⌊n/2⌋ nodes of
    /// `order`, and the rest).
    Halves,
    /// Two halves that share one node, which sees everyone (Jepsen's `bridge`).
    Bridge,
    /// Every node sees a majority (itself and its ⌊n/2⌋ nearest ring neighbours),
    /// and no two see the same one (Jepsen's `majorities-ring`). Needs 5 nodes or
    /// more: on 3, each node drops its successor and no pair can talk both ways.
    Ring,
}

/// Every node of `a` drops every node of `b` and the other way round.
fn cut(g: &mut Grudge, a: &[usize], b: &[usize]) {
    for &x in a {
        for &y in b {
            if x != y {
                g[x].insert(y);
                g[y].insert(x);
            }
        }
    }
}

/// The grudge of `shape` over nodes taken in `order` (a permutation of 0..n,
/// shuffled by the caller's seeded RNG; Jepsen shuffles too).
pub fn grudge(shape: Shape, order: &[usize]) -> Grudge {
    let n = order.len();
    let mut g: Grudge = vec![BTreeSet::new(); n];
    match shape {
        Shape::Isolate(i) => {
            let rest: Vec<usize> = (0..n).filter(|&x| x != i).collect();
            cut(&mut g, &[i], &rest);
        }
        Shape::Halves => {
            let (a, b) = order.split_at(n / 2);
            cut(&mut g, a, b);
        }
        Shape::Bridge => {
            // The bridge is the first node of the second half: in both halves.
            let (a, b) = order.split_at(n / 2);
            if let Some((_, rest)) = b.split_first() {
                cut(&mut g, a, rest);
            }
        }
        Shape::Ring => {
            // Window of m consecutive ring nodes around each node: it drops all the
            // others (one direction: the node's own INPUT).
            let m = n / 2 + 1;
            for (k, &node) in order.iter().enumerate() {
                let start = k + n - m / 2;
                let window: BTreeSet<usize> = (0..m).map(|d| order[(start + d) % n]).collect();
                g[node] = (0..n).filter(|x| !window.contains(x)).collect();
            }
        }
    }
    g
}

/// Can `a` and `b` talk (TCP needs both directions): neither drops the other.
pub fn reachable(g: &Grudge, a: usize, b: usize) -> bool {
    a == b || (!g[a].contains(&b) && !g[b].contains(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_name_their_owner() {
        for k in [0, 1, 35] {
            let p = prefix_of(std::process::id(), k).unwrap();
            for suffix in ["br", "v0", "n9", "v249"] {
                let name = format!("{p}{suffix}");
                assert!(name.len() <= 15, "{name} is longer than IFNAMSIZ - 1");
                let (pid, tag) = owner_of(&name).unwrap();
                assert_eq!(pid, std::process::id());
                assert_eq!(tag, p[7..10]);
            }
        }
        // The largest pid Linux allows (2^22) still fits five characters.
        assert_eq!(owner_of(&format!("lb{}abc0br", base36(4_194_304, 5))).unwrap().0, 4_194_304);
        for other in ["eth0", "lbxyz", "docker0", "lbcache0br", "lbaas-br", "lb12345abc0vx", "lbABCDEabc0br"] {
            assert_eq!(owner_of(other), None, "{other}");
        }
    }

    #[test]
    fn shapes_follow_jepsens_definitions_on_five_nodes() {
        let order = [3, 0, 4, 1, 2];
        let r =
            |g: &Grudge| -> Vec<Vec<bool>> { (0..5).map(|a| (0..5).map(|b| reachable(g, a, b)).collect()).collect() };

        let g = grudge(Shape::Isolate(2), &order);
        for a in 0..5 {
            for b in 0..5 {
                assert_eq!(r(&g)[a][b], a == b || (a != 2 && b != 2), "isolate {a}-{b}");
            }
        }

        // Halves: {3, 0} and {4, 1, 2}: talk within, not across.
        let g = grudge(Shape::Halves, &order);
        let side = |x: usize| [3, 0].contains(&x);
        for a in 0..5 {
            for b in 0..5 {
                assert_eq!(r(&g)[a][b], side(a) == side(b), "halves {a}-{b}");
            }
        }

        // Bridge: {3, 0} and {1, 2}, and 4 sees everyone.
        let g = grudge(Shape::Bridge, &order);
        for a in 0..5 {
            for b in 0..5 {
                let want = a == 4 || b == 4 || side(a) == side(b);
                assert_eq!(r(&g)[a][b], want, "bridge {a}-{b}");
            }
        }

        // Ring: each node reaches exactly a majority (itself included), and no two
        // nodes' majorities are the same.
        let g = grudge(Shape::Ring, &order);
        let views: Vec<BTreeSet<usize>> = (0..5).map(|a| (0..5).filter(|&b| !g[a].contains(&b)).collect()).collect();
        for v in &views {
            assert_eq!(v.len(), 3, "{views:?}");
        }
        let distinct: BTreeSet<&BTreeSet<usize>> = views.iter().collect();
        assert_eq!(distinct.len(), 5, "{views:?}");
        // Neighbours on the ring see each other.
        for k in 0..5 {
            assert!(reachable(&g, order[k], order[(k + 1) % 5]));
        }
    }
}
