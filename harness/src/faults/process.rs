//! Faults on clients: `crash-holder` (kill a holder without releasing: a worker
//! process is SIGKILLed, a task drops its session) and `pause-holder` (stop a holder
//! past its lease, as a GC pause would), and the choice of targets for every fault
//! that names clients. They act only through the [`Crew`] handle.

use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{Applied, Clients, Crew, who};

/// Crash up to `count` holders; each comes back after `restart_after`.
pub(super) async fn crash(
    crew: &dyn Crew,
    name: &str,
    count: u32,
    restart_after: Duration,
    rng: &mut StdRng,
) -> Applied {
    let targets = holders(count, crew, rng).await;
    for &c in &targets {
        crew.crash(c, restart_after);
    }
    described(name, &targets, Duration::ZERO)
}

/// Pause up to `count` holders for `pause`.
pub(super) async fn pause(crew: &dyn Crew, name: &str, count: u32, pause: Duration, rng: &mut StdRng) -> Applied {
    let targets = holders(count, crew, rng).await;
    for &c in &targets {
        crew.pause(c, pause);
    }
    described(name, &targets, pause)
}

fn described(name: &str, targets: &[usize], window: Duration) -> Applied {
    let t0 = mono_ns();
    if targets.is_empty() {
        Applied::missed(format!("{name}: no holder to hit"), t0)
    } else {
        Applied { desc: format!("{name}: {}", who(targets)), t0, window, hit: true }
    }
}

/// The clients a fault names, resolving "holder" to one client that holds a lock now.
pub(super) async fn pick(c: &Clients, crew: &dyn Crew, rng: &mut StdRng) -> Vec<usize> {
    match c {
        Clients::All => (0..crew.count()).collect(),
        Clients::List(v) => v.iter().map(|&c| c as usize).filter(|&c| c < crew.count()).collect(),
        Clients::Holder => holders(1, crew, rng).await,
    }
}

/// Up to `count` clients that hold a lock now, chosen with the seeded RNG.
async fn holders(count: u32, crew: &dyn Crew, rng: &mut StdRng) -> Vec<usize> {
    // Wait briefly for holders to exist: under light load there may be none at the
    // exact instant.
    let mut targets = Vec::new();
    for _ in 0..200 {
        targets = crew.holders();
        if !targets.is_empty() || crew.stopped() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    targets.shuffle(rng);
    targets.truncate(count as usize);
    targets
}
