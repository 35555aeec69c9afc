//! Network nodes (root only): five namespaces on a bridge, each of Jepsen's
//! partition shapes applied as iptables rules, and the reachability matrix read by
//! TCP connects between every pair of nodes, against the shape's definition; then
//! healed, every pair talks again; and nothing of the nodes is left after drop.
//!
//! `#[ignore]`d, so that without root it shows as not run, never as passed:
//! scripts/test runs it when it runs as root (CI does).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lockbench_backends::servers::nodes::{Nodes, Shape, enter_netns, grudge, reachable};

const PORT: u16 = 7400;

/// Five base-36 characters of a pid, as node names carry it.
fn base36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = [b'0'; 5];
    for c in s.iter_mut().rev() {
        *c = digits[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// A listener on node `i`'s address, in its namespace, answering forever. (It
/// keeps the namespace's name, not the nodes: they drop at the test's end.)
fn listen(nodes: &Nodes, i: usize) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (ns, addr) = (nodes.netns(i), nodes.addr(i));
    std::thread::spawn(move || {
        enter_netns(&ns).expect("enter the node");
        let l = TcpListener::bind((addr, PORT)).expect("bind on the node");
        tx.send(()).unwrap();
        for c in l.incoming() {
            drop(c);
        }
    });
    rx.recv().unwrap();
}

/// Can node `a` open a TCP connection to node `b`?
fn connects(nodes: &Arc<Nodes>, a: usize, b: usize) -> bool {
    let n = nodes.clone();
    std::thread::spawn(move || {
        n.enter(a).expect("enter the node");
        let to = SocketAddr::from((n.addr(b), PORT));
        TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_ok()
    })
    .join()
    .unwrap()
}

fn matrix(nodes: &Arc<Nodes>) -> Vec<Vec<bool>> {
    (0..nodes.len()).map(|a| (0..nodes.len()).map(|b| connects(nodes, a, b)).collect()).collect()
}

fn names() -> (String, String) {
    let ns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    let links = String::from_utf8_lossy(&Command::new("ip").args(["-o", "link"]).output().unwrap().stdout).into_owned();
    (ns, links)
}

#[test]
#[ignore = "needs root (network namespaces, iptables): scripts/test runs it as root"]
fn each_partition_shape_cuts_exactly_the_pairs_jepsen_defines() {
    // What a killed run left (its pid is not running): the next create removes it.
    let dead = (4_194_000..4_194_300).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap();
    let stale = format!("lb{}abc0", base36(dead));
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["link", "add", &format!("{stale}br"), "type", "bridge"]);
    ip(&["netns", "add", &format!("{stale}n0")]);
    let nodes = Arc::new(Nodes::create(5).expect("five nodes (root, ip, iptables: scripts/setup)"));
    let (ns, links) = names();
    assert!(!ns.contains(&stale) && !links.contains(&stale), "a dead run's nodes were kept:\n{ns}\n{links}");
    let prefix = nodes.netns(0).trim_end_matches("n0").to_owned();
    for i in 0..5 {
        listen(&nodes, i);
    }
    // The root namespace (the harness's clients) reaches every node.
    for i in 0..5 {
        let to = SocketAddr::from((nodes.addr(i), PORT));
        assert!(TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok(), "root cannot reach node {i}");
    }
    let all = vec![vec![true; 5]; 5];
    assert_eq!(matrix(&nodes), all, "before any cut");
    let order = [3, 0, 4, 1, 2];
    for shape in [Shape::Isolate(2), Shape::Halves, Shape::Bridge, Shape::Ring] {
        let g = grudge(shape, &order);
        nodes.apply(&g).unwrap();
        let want: Vec<Vec<bool>> = (0..5).map(|a| (0..5).map(|b| reachable(&g, a, b)).collect()).collect();
        let got = matrix(&nodes);
        assert_eq!(got, want, "{shape:?}: grudge {g:?}");
        // Something was cut, and not everything.
        let cut: BTreeSet<(usize, usize)> =
            (0..5).flat_map(|a| (0..5).map(move |b| (a, b))).filter(|&(a, b)| !want[a][b]).collect();
        assert!(!cut.is_empty() && cut.len() < 20, "{shape:?}: {cut:?}");
        nodes.heal().unwrap();
        assert_eq!(matrix(&nodes), all, "{shape:?} healed");
        // The check `apply` makes sees a cut that is not in force.
        let e = nodes.check_cut(&g).unwrap_err().to_string();
        assert!(e.contains("the peer partition is not in force"), "{shape:?}: {e}");
    }
    drop(nodes);
    let (ns, links) = names();
    assert!(!ns.contains(&prefix) && !links.contains(&prefix), "left behind:\n{ns}\n{links}");
}
