//! Faults on servers: `server-kill`, `server-pause`, `server-restart`, and a
//! server's clock (`clock-skew` with `server`: restarted under libfaketime). They
//! act only through the provider's [`Servers`] handle; external servers refuse
//! them, and the description says so.

use std::sync::Arc;
use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::{ServerFault, Servers};

use lockbench_backends::servers::nodes::{self, Shape};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::spec::{PeerShape, ServerRef};
use super::{Applied, SignedDur, faketime_value};

type Cluster = Option<Arc<dyn Servers>>;

/// The server `r` names now: "leader" and "follower" ask the cluster which
/// member leads (a member that is down or paused does not answer, and is no
/// leader). Also how to name it in the fault's description.
fn resolve(servers: &dyn Servers, r: ServerRef) -> Result<(usize, String), String> {
    match r {
        ServerRef::Index(i) => Ok((i, format!("server {i}"))),
        ServerRef::First => Ok((0, "server 0".into())),
        ServerRef::Leader | ServerRef::Follower => {
            let leader = tokio::task::block_in_place(|| servers.leader())
                .ok_or_else(|| format!("no {r} to act on: no member answered with a leader"))?;
            if r == ServerRef::Leader {
                return Ok((leader, format!("server {leader} (the leader)")));
            }
            let n = servers.endpoints().len();
            let f = (0..n).find(|&i| i != leader).ok_or_else(|| format!("no follower: {n} server(s)"))?;
            Ok((f, format!("server {f} (a follower)")))
        }
    }
}

/// Apply a fault to server `r` now; the description says what happened (or why
/// not). The server it acted on, if it did.
fn act(servers: &Cluster, name: &str, r: ServerRef, what: ServerFault) -> (Applied, Option<usize>) {
    let t0 = mono_ns();
    let (i, who) = match servers.as_ref().map(|s| resolve(s.as_ref(), r)) {
        None => return (Applied::missed(format!("{name}: no servers to act on"), t0), None),
        Some(Err(why)) => return (Applied::missed(format!("{name}: {why}"), t0), None),
        Some(Ok(x)) => x,
    };
    let a = match servers {
        None => Applied::missed(format!("{name}: no servers to act on"), t0),
        // A restart waits for the server to answer again: off the async threads.
        Some(s) => match if what == ServerFault::Restart {
            tokio::task::block_in_place(|| s.fault(i, what))
        } else {
            s.fault(i, what)
        } {
            Ok(()) => Applied { desc: format!("{name}: {who}"), t0, window: Duration::ZERO, hit: true },
            Err(e) => Applied::missed(format!("{name}: {who} failed: {e}"), t0),
        },
    };
    let hit = a.hit.then_some(i);
    (a, hit)
}

/// SIGKILL server `r`; start it again after `down`, if given.
pub(super) fn kill(servers: &Cluster, name: &str, r: ServerRef, down: Option<Duration>) -> Applied {
    let (mut a, i) = act(servers, name, r, ServerFault::Kill);
    if let (Some(down), Some(s), Some(i)) = (down, servers.clone(), i) {
        tokio::spawn(async move {
            tokio::time::sleep(down).await;
            let _ = tokio::task::block_in_place(|| s.fault(i, ServerFault::Restart));
        });
        a.window = down;
    }
    a
}

/// SIGSTOP server `r` for `pause`, then SIGCONT.
pub(super) fn pause(servers: &Cluster, name: &str, r: ServerRef, pause: Duration) -> Applied {
    let (mut a, i) = act(servers, name, r, ServerFault::Pause);
    if let (Some(s), Some(i)) = (servers.clone(), i) {
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let _ = s.fault(i, ServerFault::Resume);
        });
        a.window = pause;
    }
    a
}

/// Restart server `r`: the window is the restart itself, down then back and
/// answering.
pub(super) fn restart(servers: &Cluster, name: &str, r: ServerRef) -> Applied {
    let (mut a, _) = act(servers, name, r, ServerFault::Restart);
    a.window = Duration::from_nanos(mono_ns() - a.t0);
    a
}

/// Restart server `i` under libfaketime (`rate`, `jump`); put its clock right after
/// `duration`, if given.
pub(super) fn skew(
    servers: &Cluster,
    name: &str,
    i: usize,
    rate: Option<f64>,
    jump: Option<SignedDur>,
    duration: Option<Duration>,
) -> Applied {
    let t0 = mono_ns();
    let ft = faketime_value(rate, jump);
    let Some(s) = servers else {
        return Applied::missed(format!("{name}: no servers to act on"), t0);
    };
    if let Err(e) = tokio::task::block_in_place(|| s.set_clock(i, Some(&ft))) {
        return Applied::missed(format!("{name}: server {i} failed: {e}"), t0);
    }
    if let Some(d) = duration {
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tokio::task::block_in_place(|| s.set_clock(i, None));
        });
    }
    Applied {
        desc: format!("{name}: server {i} restarted with FAKETIME=\"{ft}\""),
        t0,
        window: duration.unwrap_or(Duration::MAX),
        hit: true,
    }
}

/// How often a peer partition's watcher asks who leads.
const LEADER_POLL: Duration = Duration::from_millis(100);

/// Cut the cluster's members apart in `shape` for `duration` (iptables rules in
/// their network nodes), then heal. The members are taken in an order shuffled by
/// the run's seeded RNG, as Jepsen shuffles its nodes; `isolate` cuts `target`.
pub(super) fn peer_partition(
    servers: &Cluster,
    name: &str,
    shape: PeerShape,
    target: ServerRef,
    duration: Duration,
    rng: &mut StdRng,
    note: super::Note,
) -> Applied {
    let t0 = mono_ns();
    let Some(s) = servers else {
        return Applied::missed(format!("{name}: no servers to act on"), t0);
    };
    let n = s.endpoints().len();
    // Who leads before the cut (None for clusters that elect none), to see the
    // election (Sentinel's promotion) the cut brings about.
    let before = tokio::task::block_in_place(|| s.leader());
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let (shape, who) = match shape {
        PeerShape::Isolate => match resolve(s.as_ref(), target) {
            Ok((i, who)) => (Shape::Isolate(i), format!("{who} cut off from the other members")),
            Err(why) => return Applied::missed(format!("{name}: {why}"), t0),
        },
        PeerShape::Halves => (Shape::Halves, "halves".to_owned()),
        PeerShape::Bridge => (Shape::Bridge, "two halves bridged by one member".to_owned()),
        PeerShape::Ring if n < 5 => {
            return Applied::missed(format!("{name}: a ring needs 5 members or more, there are {n}"), t0);
        }
        PeerShape::Ring => (Shape::Ring, "a ring of overlapping majorities".to_owned()),
    };
    let g = nodes::grudge(shape, &order);
    let cuts: Vec<String> = g
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_empty())
        .map(|(i, d)| format!("{i} drops {}", d.iter().map(|j| j.to_string()).collect::<Vec<_>>().join(",")))
        .collect();
    if let Err(e) = tokio::task::block_in_place(|| s.partition(&g)) {
        let _ = s.heal();
        return Applied::missed(format!("{name}: {e}"), t0);
    }
    // The window starts once the cut is in force (the rules applied and probed).
    let t0 = mono_ns();
    let s = s.clone();
    let watched = name.to_owned();
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + duration;
        // The watcher never holds up the heal: a question still out at the
        // window's end is left to finish on its own.
        let watch = async {
            if let Some(was) = before {
                loop {
                    tokio::time::sleep(LEADER_POLL).await;
                    let s = s.clone();
                    let now = tokio::task::spawn_blocking(move || s.leader()).await.ok().flatten();
                    if let Some(l) = now.filter(|&l| l != was) {
                        let t = mono_ns();
                        let after = (t - t0) as f64 / 1e9;
                        note(
                            t,
                            format!("{watched}: server {l} leads now (server {was} did), {after:.1} s after the cut"),
                        );
                        break;
                    }
                }
            }
        };
        // Seen or not, the cut lasts its whole window.
        let _ = tokio::time::timeout_at(end, watch).await;
        tokio::time::sleep_until(end).await;
        if let Err(e) = tokio::task::block_in_place(|| s.heal()) {
            // The cluster is dropped (and its nodes with their rules) at the run's
            // end whatever happens; say it now, as nothing else will.
            eprintln!("warning: healing a peer partition failed: {e}");
        }
    });
    Applied { desc: format!("{name}: {who} ({})", cuts.join("; ")), t0, window: duration, hit: true }
}
