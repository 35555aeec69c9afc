//! Faults on servers: `server-kill`, `server-pause`, `server-restart`, and a
//! server's clock (`clock-skew` with `server`: restarted under libfaketime). They
//! act only through the provider's [`Servers`] handle; external servers refuse
//! them, and the description says so.

use std::sync::Arc;
use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::{ServerFault, Servers};

use super::{Applied, SignedDur, faketime_value};

type Cluster = Option<Arc<dyn Servers>>;

/// Apply a fault to server `i` now; the description says what happened (or why not).
fn act(servers: &Cluster, name: &str, i: usize, what: ServerFault) -> Applied {
    let t0 = mono_ns();
    match servers {
        None => Applied::missed(format!("{name}: no servers to act on"), t0),
        // A restart waits for the server to answer again: off the async threads.
        Some(s) => match if what == ServerFault::Restart {
            tokio::task::block_in_place(|| s.fault(i, what))
        } else {
            s.fault(i, what)
        } {
            Ok(()) => Applied { desc: format!("{name}: server {i}"), t0, window: Duration::ZERO, hit: true },
            Err(e) => Applied::missed(format!("{name}: server {i} failed: {e}"), t0),
        },
    }
}

/// SIGKILL server `i`; start it again after `down`, if given.
pub(super) fn kill(servers: &Cluster, name: &str, i: usize, down: Option<Duration>) -> Applied {
    let mut a = act(servers, name, i, ServerFault::Kill);
    if let (Some(down), Some(s), true) = (down, servers.clone(), a.hit) {
        tokio::spawn(async move {
            tokio::time::sleep(down).await;
            let _ = tokio::task::block_in_place(|| s.fault(i, ServerFault::Restart));
        });
        a.window = down;
    }
    a
}

/// SIGSTOP server `i` for `pause`, then SIGCONT.
pub(super) fn pause(servers: &Cluster, name: &str, i: usize, pause: Duration) -> Applied {
    let mut a = act(servers, name, i, ServerFault::Pause);
    if let (Some(s), true) = (servers.clone(), a.hit) {
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let _ = s.fault(i, ServerFault::Resume);
        });
        a.window = pause;
    }
    a
}

/// Restart server `i`: the window is the restart itself, down then back and
/// answering.
pub(super) fn restart(servers: &Cluster, name: &str, i: usize) -> Applied {
    let mut a = act(servers, name, i, ServerFault::Restart);
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
