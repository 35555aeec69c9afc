//! The one clock every client reads lease time from.
//!
//! The true time of a run is CLOCK_MONOTONIC: one clock shared by every process on
//! the machine, so events from worker processes line up with the parent's. A
//! [`Clock`] may be skewed (an offset and a rate) to play a client whose clock is
//! wrong; histories are always stamped with [`mono_ns`], the true clock, so the
//! checker is never fooled by the skew it injects.

use std::sync::{Arc, Mutex};

/// Nanoseconds on CLOCK_MONOTONIC: the machine-wide true clock of a run.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC exists
    // on every Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A client's view of time. Cheap to clone (clones share one skew, so the nemesis
/// can change a clock that a backend already holds); the default is the true clock.
#[derive(Clone, Default)]
pub struct Clock {
    skew: Option<Arc<Mutex<Skew>>>,
}

/// The clock reads `at_clock + (true - at_true) * rate`: a line through an anchor,
/// re-anchored whenever the rate changes so the reading never jumps by itself.
#[derive(Clone, Copy)]
struct Skew {
    at_true: u64,
    at_clock: i64,
    rate: f64,
}

impl Skew {
    fn read(&self, t: u64) -> i64 {
        self.at_clock + ((t as i64 - self.at_true as i64) as f64 * self.rate) as i64
    }
}

impl Clock {
    /// The true clock.
    pub fn monotonic() -> Self {
        Clock { skew: None }
    }

    /// A clock that runs at `rate` from now on, shifted by `offset_ns`. A skewed
    /// clock can be changed later ([`Clock::set_rate`], [`Clock::jump`]).
    pub fn skewed(offset_ns: i64, rate: f64) -> Self {
        let t = mono_ns();
        let s = Skew { at_true: t, at_clock: t as i64 + offset_ns, rate };
        Clock { skew: Some(Arc::new(Mutex::new(s))) }
    }

    fn skew(&self) -> Option<Skew> {
        self.skew.as_ref().map(|s| *s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Now, on this clock (ns).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        let t = mono_ns();
        match self.skew() {
            None => t,
            Some(s) => s.read(t).max(0) as u64,
        }
    }

    /// Jump this clock by `delta_ns` (positive: forward). No effect on the true
    /// clock, nor on the true clock's copy (`Clock::monotonic`).
    pub fn jump(&self, delta_ns: i64) {
        if let Some(s) = &self.skew {
            s.lock().unwrap_or_else(|p| p.into_inner()).at_clock += delta_ns;
        }
    }

    /// Run at `rate` from now on (1.0: true speed), without a jump in the reading.
    pub fn set_rate(&self, rate: f64) {
        if let Some(s) = &self.skew {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            let t = mono_ns();
            *s = Skew { at_true: t, at_clock: s.read(t), rate };
        }
    }

    /// How fast this clock runs now (1.0 for the true clock).
    pub fn rate(&self) -> f64 {
        self.skew().map_or(1.0, |s| s.rate)
    }

    /// How long, in true time, this clock takes to advance by `d` at its current
    /// rate: what a client sleeps to wait `d` by its own clock.
    pub fn true_duration(&self, d: std::time::Duration) -> std::time::Duration {
        let r = self.rate();
        if r > 0.0 { d.div_f64(r) } else { d }
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

    #[test]
    fn rate_changes_do_not_jump_and_clones_share_them() {
        let c = Clock::skewed(0, 1.0);
        let shared = c.clone();
        let before = c.now_ns();
        c.set_rate(3.0);
        let after = shared.now_ns();
        // Re-anchored: the reading carries on from where it was.
        assert!(after >= before && after - before < 50_000_000, "jumped by {}", after - before);
        assert_eq!(shared.rate(), 3.0);
        let (t0, c0) = (mono_ns(), shared.now_ns());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (dt, dc) = (mono_ns() - t0, shared.now_ns() - c0);
        assert!(dc as f64 > dt as f64 * 2.5, "dc={dc} dt={dt}");
        assert_eq!(shared.true_duration(std::time::Duration::from_millis(300)), std::time::Duration::from_millis(100));
        // The true clock ignores all of it.
        let m = Clock::monotonic();
        m.jump(1_000_000_000);
        m.set_rate(2.0);
        assert_eq!(m.rate(), 1.0);
    }
}
