//! Latency histograms (HdrHistogram) derived from a finished history, whole-run and
//! per second, and their interval logs (`.hlog`, V2 deflate, as HdrHistogram's own
//! tools read them).
//!
//! Values are microseconds, 3 significant digits, from 1 µs to 1 hour.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::{Event, History, Kind, Op};

/// The latencies lockbench keeps, one histogram each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// invoke → ok of a granted acquire.
    AcquireOk,
    /// invoke → fail or info of an acquire (held, wait ran out, error).
    AcquireFailed,
    /// Intended start → grant: in the open model this counts the time an operation
    /// waited for its turn (coordinated-omission correction); closed: = AcquireOk.
    Wait,
    Release,
    Renew,
    /// Grant → release invoke (or crash): how long the lock was held.
    Hold,
}

impl Metric {
    pub const ALL: [Metric; 6] =
        [Metric::AcquireOk, Metric::AcquireFailed, Metric::Wait, Metric::Release, Metric::Renew, Metric::Hold];
    pub fn name(self) -> &'static str {
        match self {
            Metric::AcquireOk => "acquire-ok",
            Metric::AcquireFailed => "acquire-failed",
            Metric::Wait => "wait",
            Metric::Release => "release",
            Metric::Renew => "renew",
            Metric::Hold => "hold",
        }
    }
}

pub fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: ~ 30 kB, ample for any lock latency.
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid");
    h.auto(true);
    h
}

/// A histogram for one second: the same precision, but it starts small and grows
/// to the largest value it is given (a 10-minute run keeps thousands of these).
pub fn second_hist() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits are valid");
    h.auto(true);
    h
}

/// Whole-run and per-second histograms of one backend's run.
pub struct Latencies {
    pub total: HashMap<Metric, Histogram<u64>>,
    /// Index = second since the load started.
    pub per_second: HashMap<Metric, Vec<Histogram<u64>>>,
    /// Grants per second.
    pub grants_per_second: Vec<u64>,
    pub seconds: usize,
}

/// [`Latencies`] one event at a time, in time order.
pub struct LatencyBuilder {
    l: Latencies,
    start: u64,
    /// Each client has at most one operation in flight: its last invoke (time,
    /// intended start).
    open: HashMap<u32, (u64, u64)>,
    /// Holds not yet ended: owner → grant time.
    granted: HashMap<u64, u64>,
}

impl LatencyBuilder {
    pub fn new(start: u64, end: u64) -> LatencyBuilder {
        let seconds = (end.saturating_sub(start).div_ceil(1_000_000_000) as usize).max(1);
        LatencyBuilder {
            l: Latencies {
                total: Metric::ALL.iter().map(|m| (*m, new_hist())).collect(),
                per_second: HashMap::new(),
                grants_per_second: vec![0; seconds],
                seconds,
            },
            start,
            open: HashMap::new(),
            granted: HashMap::new(),
        }
    }

    pub fn event(&mut self, e: &Event) {
        let (l, start) = (&mut self.l, self.start);
        if matches!(e.op, Op::Fault | Op::Crash | Op::Read | Op::Write) {
            if e.op == Op::Crash
                && let Some(g) = self.granted.remove(&e.owner)
            {
                l.record(Metric::Hold, start, e.t, e.t.saturating_sub(g));
            }
            return;
        }
        if e.kind == Kind::Invoke {
            if e.op == Op::Release
                && let Some(g) = self.granted.remove(&e.owner)
            {
                l.record(Metric::Hold, start, e.t, e.t.saturating_sub(g));
            }
            self.open.insert(e.client, (e.t, e.a));
            return;
        }
        let Some((inv_t, inv_a)) = self.open.remove(&e.client) else {
            return;
        };
        let took = e.t.saturating_sub(inv_t);
        match (e.op, e.kind) {
            (Op::Acquire, Kind::Ok) => {
                l.record(Metric::AcquireOk, start, e.t, took);
                let intended = if inv_a != 0 { inv_a } else { inv_t };
                l.record(Metric::Wait, start, e.t, e.t.saturating_sub(intended));
                let s = (e.t.saturating_sub(start) / 1_000_000_000) as usize;
                if let Some(c) = l.grants_per_second.get_mut(s) {
                    *c += 1;
                }
                self.granted.insert(e.owner, e.t);
            }
            (Op::Acquire, _) => l.record(Metric::AcquireFailed, start, e.t, took),
            (Op::Release, _) => l.record(Metric::Release, start, e.t, took),
            (Op::Renew, _) => l.record(Metric::Renew, start, e.t, took),
            _ => {}
        }
    }

    pub fn finish(self) -> Latencies {
        self.l
    }
}

impl Latencies {
    pub fn from_history(h: &History) -> Latencies {
        let mut b = LatencyBuilder::new(h.start, h.end);
        for e in &h.events {
            b.event(e);
        }
        b.finish()
    }

    fn record(&mut self, m: Metric, start: u64, at: u64, ns: u64) {
        let us = (ns / 1_000).max(1);
        self.total.get_mut(&m).expect("every metric has a histogram").saturating_record(us);
        let s = (at.saturating_sub(start) / 1_000_000_000) as usize;
        let seconds = self.seconds;
        let v = self.per_second.entry(m).or_insert_with(|| (0..seconds).map(|_| second_hist()).collect());
        if let Some(h) = v.get_mut(s.min(seconds - 1)) {
            h.saturating_record(us);
        }
    }

    pub fn get(&self, m: Metric) -> &Histogram<u64> {
        &self.total[&m]
    }

    /// Write the per-second histograms as one interval log, a tag per metric.
    pub fn write_hlog(&self, w: &mut impl Write, backend: &str) -> std::io::Result<()> {
        let mut ser = V2DeflateSerializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&format!("lockbench {} latencies of backend {backend}", env!("CARGO_PKG_VERSION")))
            .add_comment("values in microseconds; one interval per second since the load started; tag = metric")
            .with_start_time(std::time::SystemTime::now())
            .begin_log_with(w, &mut ser)?;
        for m in Metric::ALL {
            let Some(v) = self.per_second.get(&m) else {
                continue;
            };
            let tag = Tag::new(m.name());
            for (i, h) in v.iter().enumerate() {
                if h.is_empty() {
                    continue;
                }
                log.write_histogram(h, Duration::from_secs(i as u64), Duration::from_secs(1), tag)
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
        Ok(())
    }
}

/// p50, p99, p999 and max of a histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, c: u32, k: Kind, op: Op) -> Event {
        Event::new(t, c, k, op, 0)
    }

    #[test]
    fn latencies_pair_invokes_with_completions() {
        let ms = 1_000_000;
        let mut ok = ev(3 * ms, 0, Kind::Ok, Op::Acquire);
        ok.owner = 1;
        let mut rel = ev(10 * ms, 0, Kind::Invoke, Op::Release);
        rel.owner = 1;
        let h = History {
            start: 0,
            end: 2_000 * ms,
            events: vec![
                ev(ms, 0, Kind::Invoke, Op::Acquire),
                ev(2 * ms, 1, Kind::Invoke, Op::Acquire),
                ok,
                ev(1_500 * ms, 1, Kind::Fail, Op::Acquire),
                rel,
                ev(11 * ms, 0, Kind::Ok, Op::Release),
            ],
        };
        let l = Latencies::from_history(&h);
        assert_eq!(l.get(Metric::AcquireOk).len(), 1);
        assert_eq!(l.get(Metric::AcquireOk).max(), l.get(Metric::AcquireOk).highest_equivalent(2_000));
        assert_eq!(l.get(Metric::AcquireFailed).len(), 1);
        assert!(l.get(Metric::AcquireFailed).min() >= 1_497_000);
        assert_eq!(l.get(Metric::Hold).len(), 1);
        assert_eq!(l.grants_per_second, vec![1, 0]);
        let mut buf = Vec::new();
        l.write_hlog(&mut buf, "t").unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("Tag=acquire-ok,"), "{text}");
        assert!(text.contains("#[StartTime:"), "{text}");
    }
}
