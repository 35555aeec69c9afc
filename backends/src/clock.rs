//! The one clock every client reads lease time from.
//!
//! The true time of a run is CLOCK_MONOTONIC: one clock shared by every process on
//! the machine, so events from worker processes line up with the parent's. A
//! [`Clock`] may be skewed (an offset and a rate) to play a client whose clock is
//! wrong; histories are always stamped with [`mono_ns`], the true clock, so the
//! checker is never fooled by the skew it injects.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Nanoseconds on CLOCK_MONOTONIC: the machine-wide true clock of a run.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC exists
    // on every Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A client's view of time. Cheap to clone; the default is the true clock.
#[derive(Clone, Default)]
pub struct Clock {
    skew: Option<Arc<Skew>>,
}

struct Skew {
    /// True time at which the rate starts to apply.
    origin: u64,
    /// How fast this clock runs: 1.5 = 50 % fast.
    rate: f64,
    /// Added to the reading; changed at run time by a clock jump.
    offset_ns: AtomicI64,
}

impl Clock {
    /// The true clock.
    pub fn monotonic() -> Self {
        Clock { skew: None }
    }

    /// A clock that runs at `rate` from now on, shifted by `offset_ns`.
    pub fn skewed(offset_ns: i64, rate: f64) -> Self {
        Clock { skew: Some(Arc::new(Skew { origin: mono_ns(), rate, offset_ns: AtomicI64::new(offset_ns) })) }
    }

    /// Now, on this clock (ns).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        let t = mono_ns();
        match &self.skew {
            None => t,
            Some(s) => {
                let elapsed = (t - s.origin) as f64 * s.rate;
                let v = s.origin as i64 + elapsed as i64 + s.offset_ns.load(Ordering::Relaxed);
                v.max(0) as u64
            }
        }
    }

    /// Jump this clock by `delta_ns` (positive: forward). No effect on the true clock.
    pub fn jump(&self, delta_ns: i64) {
        if let Some(s) = &self.skew {
            s.offset_ns.fetch_add(delta_ns, Ordering::Relaxed);
        }
    }

    pub fn is_skewed(&self) -> bool {
        self.skew.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_clock_is_monotonic() {
        let c = Clock::monotonic();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
    }

    #[test]
    fn fast_clock_runs_fast_and_jumps() {
        let c = Clock::skewed(0, 2.0);
        let t0 = mono_ns();
        let c0 = c.now_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let dt = mono_ns() - t0;
        let dc = c.now_ns() - c0;
        // A 2x clock advances about twice the true elapsed time.
        assert!(dc as f64 > dt as f64 * 1.8, "dc={dc} dt={dt}");
        let before = c.now_ns();
        c.jump(10_000_000_000);
        assert!(c.now_ns() >= before + 10_000_000_000);
    }
}
