//! The round-trip floor: before a server backend's load, sequential pings on one
//! session of the same kind the clients use give what one round trip to that
//! server costs here (p50, p99). Every latency is then also stated in units of that
//! floor, a scale that carries over to another network ("acquire = 1.4 round
//! trips"), not a count of messages. Backends without a server have no floor. It
//! only measures: it never judges, and it records nothing in the history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockbench_backends::LockBackend;
use serde::{Deserialize, Serialize};

/// The floor of one backend's server(s), in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Rtt {
    pub p50_us: f64,
    pub p99_us: f64,
    /// Pings measured.
    pub pings: u64,
}

/// Up to this many pings, or this long, whichever ends first.
pub const PINGS: u64 = 1_000;
pub const BUDGET: Duration = Duration::from_secs(2);

/// Measure the floor; None when the backend cannot be pinged now (the preflight
/// has already said why, and the run will show it).
pub async fn floor(backend: &Arc<dyn LockBackend>) -> Option<Rtt> {
    let mut s = backend.session().await.ok()?;
    // Warm the connection (first-use costs are not a round trip).
    for _ in 0..10 {
        s.ping().await.ok()?;
    }
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).ok()?;
    let start = Instant::now();
    while h.len() < PINGS && start.elapsed() < BUDGET {
        let t = Instant::now();
        s.ping().await.ok()?;
        let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
    }
    if h.is_empty() {
        return None;
    }
    Some(Rtt {
        p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
        pings: h.len(),
    })
}

/// A latency (µs) in round trips of `rtt`.
pub fn in_rtt(us: u64, rtt: &Rtt) -> f64 {
    us as f64 / rtt.p50_us.max(1e-3)
}
