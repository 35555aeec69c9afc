//! Noise: how far a figure moves between runs of the same scenario, seed and
//! machine, and the rule `compare` judges a change by.
//!
//! Criterion's way: repeated samples give a spread, and a change is one that is
//! bigger than the spread. `lockbench run --repeat N` runs each backend N times
//! with the same seed (so the schedule, keys and faults are the same; what moves is
//! the machine and the backend) and keeps every figure of every run in
//! summary.json (`repeats`); the result folder's history, figures and report are
//! the first run's. A figure's spread is (max − min) / median over the runs: two
//! single runs of an unchanged system differ by up to that much. `compare` takes
//! the larger spread of the two runs' (or the one that has repeats) as the
//! threshold, never below 1 % (criterion's default noise threshold), and falls
//! back to a fixed ±10 % for a figure neither run repeated; it says which it used.
//! This module only computes: it never runs anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::summary::BackendSummary;

/// Changes within this share are noise when no run was repeated: one run of a
/// scenario on this kind of machine moves by about that much from noise alone.
pub const FIXED: f64 = 0.10;

/// A measured threshold is never below this (criterion's default noise threshold).
pub const FLOOR: f64 = 0.01;

/// How a compared figure is written.
#[derive(Clone, Copy)]
pub enum Unit {
    Us,
    Count,
    Rate,
    Secs,
    Ratio,
}

/// A figure `compare` sets side by side.
pub struct Figure {
    pub name: &'static str,
    pub value: fn(&BackendSummary) -> f64,
    pub lower_is_better: bool,
    pub unit: Unit,
}

const fn fig(name: &'static str, value: fn(&BackendSummary) -> f64, lower_is_better: bool, unit: Unit) -> Figure {
    Figure { name, value, lower_is_better, unit }
}

/// Every figure `compare` shows and `--repeat` records, in the page's order.
pub const FIGURES: [Figure; 16] = [
    fig("grants/s", |x| x.grants_per_s, false, Unit::Rate),
    fig("acquire p50", |x| x.acquire_latency_us.p50 as f64, true, Unit::Us),
    fig("acquire p99", |x| x.acquire_latency_us.p99 as f64, true, Unit::Us),
    fig("acquire p99.9", |x| x.acquire_latency_us.p999 as f64, true, Unit::Us),
    fig("acquire max", |x| x.acquire_latency_us.max as f64, true, Unit::Us),
    fig("release p99", |x| x.release_latency_us.p99 as f64, true, Unit::Us),
    fig("timeouts", |x| x.acquire_timeouts as f64, true, Unit::Count),
    fig("unknown outcomes", |x| x.unknown_outcomes as f64, true, Unit::Count),
    fig("holds overlapped", |x| x.holds_overlapped as f64, true, Unit::Count),
    fig("overlap pairs within lease", |x| x.violations.within_lease as f64, true, Unit::Count),
    fig("overlap pairs after expiry", |x| x.violations.after_expiry as f64, true, Unit::Count),
    fig("increments lost", |x| x.increments_lost as f64, true, Unit::Count),
    fig("clobbering writes", |x| x.clobbering_writes as f64, true, Unit::Count),
    fig("token regressions", |x| x.token_regressions as f64, true, Unit::Count),
    fig("unavailable seconds", |x| x.unavailable_seconds, true, Unit::Secs),
    fig("fairness (Jain)", |x| x.fairness.unwrap_or(0.0), false, Unit::Ratio),
];

/// Every figure of every run of a backend under `run --repeat N`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Repeats {
    /// How many runs (the kept one first).
    pub runs: u32,
    /// Each run's verdict: a repeat can find what the kept run did not.
    #[serde(default)]
    pub verdicts: Vec<crate::check::Level>,
    /// Each figure's value in each run, by the figure's name.
    pub figures: BTreeMap<String, Vec<f64>>,
}

impl Repeats {
    /// The figures of `runs`, the kept run first.
    pub fn of(runs: &[&BackendSummary]) -> Repeats {
        let figures =
            FIGURES.iter().map(|f| (f.name.to_owned(), runs.iter().map(|b| (f.value)(b)).collect())).collect();
        Repeats { runs: runs.len() as u32, verdicts: runs.iter().map(|b| b.verdict).collect(), figures }
    }

    /// A figure's spread: (max − min) / |median|; 0 when every run agrees, infinite
    /// when the median is 0 and they do not (no share of 0 covers it).
    pub fn spread(&self, figure: &str) -> Option<f64> {
        let mut v: Vec<f64> = self.figures.get(figure)?.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        let range = v[n - 1] - v[0];
        Some(if range == 0.0 {
            0.0
        } else if median == 0.0 {
            f64::INFINITY
        } else {
            range / median.abs()
        })
    }
}

/// Where a threshold came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// The spread of repeated runs (how many runs A and B each had; 0: none).
    Measured { a: u32, b: u32 },
    /// Neither run repeated: the fixed [`FIXED`].
    Fixed,
}

/// The share of change in `figure` that is noise, for runs A and B, and where it
/// came from.
pub fn threshold(a: Option<&Repeats>, b: Option<&Repeats>, figure: &str) -> (f64, Source) {
    let sa = a.and_then(|r| r.spread(figure));
    let sb = b.and_then(|r| r.spread(figure));
    let runs = |r: Option<&Repeats>, s: Option<f64>| if s.is_some() { r.map_or(0, |r| r.runs) } else { 0 };
    match (sa, sb) {
        (None, None) => (FIXED, Source::Fixed),
        _ => {
            let t = sa.unwrap_or(0.0).max(sb.unwrap_or(0.0)).max(FLOOR);
            (t, Source::Measured { a: runs(a, sa), b: runs(b, sb) })
        }
    }
}

/// The threshold as the page and the terminal write it.
pub fn describe(t: f64, src: Source) -> String {
    let share = if t.is_infinite() { "any".to_owned() } else { format!("±{:.1}%", t * 100.0) };
    match src {
        Source::Fixed => format!("{share} (fixed)"),
        Source::Measured { a, b } => {
            let runs: Vec<String> =
                [("A", a), ("B", b)].iter().filter(|(_, n)| *n > 0).map(|(w, n)| format!("{w}: {n} runs")).collect();
            format!("{share} (measured, {})", runs.join(", "))
        }
    }
}

/// Which rule judges a comparison, given how many runs A and B repeated (None:
/// not repeated), as the page and the terminal say it.
pub fn rule(a: Option<u32>, b: Option<u32>) -> String {
    let runs = |r: Option<u32>| r.map_or("not repeated".to_owned(), |n| format!("{n} runs"));
    match (a, b) {
        (None, None) => format!(
            "fixed ±{:.0}% for every figure: neither run was repeated (a single run moves about that much on this \
             kind of machine; `lockbench run --repeat N` measures the spread instead)",
            FIXED * 100.0
        ),
        (a, b) => format!(
            "measured from repeated runs (A: {}, B: {}, same seed each): a figure's threshold is the larger spread \
             (max − min over the median) of its runs, at least {:.0}%; fixed ±{:.0}% where neither repeated it",
            runs(a),
            runs(b),
            FLOOR * 100.0,
            FIXED * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reps(runs: u32, figure: &str, v: &[f64]) -> Repeats {
        Repeats { runs, verdicts: Vec::new(), figures: [(figure.to_owned(), v.to_vec())].into_iter().collect() }
    }

    #[test]
    fn the_spread_is_the_range_over_the_median() {
        assert_eq!(reps(3, "x", &[10.0, 12.0, 11.0]).spread("x"), Some(2.0 / 11.0));
        assert_eq!(reps(4, "x", &[10.0, 10.0, 14.0, 12.0]).spread("x"), Some(4.0 / 11.0));
        assert_eq!(reps(3, "x", &[5.0, 5.0, 5.0]).spread("x"), Some(0.0));
        assert_eq!(reps(3, "x", &[0.0, 0.0, 3.0]).spread("x"), Some(f64::INFINITY));
        assert_eq!(reps(1, "x", &[5.0]).spread("x"), None, "one run has no spread");
        assert_eq!(reps(3, "x", &[1.0, 2.0, 3.0]).spread("y"), None);
    }

    #[test]
    fn the_threshold_is_the_larger_spread_then_the_fixed_rule() {
        let a = reps(3, "x", &[100.0, 104.0, 102.0]);
        let b = reps(5, "x", &[100.0, 110.0, 105.0, 101.0, 99.0]);
        let (t, src) = threshold(Some(&a), Some(&b), "x");
        assert!((t - 11.0 / 101.0).abs() < 1e-12, "{t}");
        assert_eq!(src, Source::Measured { a: 3, b: 5 });
        assert_eq!(threshold(Some(&a), None, "x"), (4.0 / 102.0, Source::Measured { a: 3, b: 0 }));
        assert_eq!(threshold(None, None, "x"), (FIXED, Source::Fixed));
        assert_eq!(threshold(Some(&a), None, "unknown"), (FIXED, Source::Fixed));
        // Runs that all agree still leave criterion's 1 %.
        let same = reps(3, "x", &[7.0, 7.0, 7.0]);
        assert_eq!(threshold(Some(&same), None, "x").0, FLOOR);
        assert_eq!(describe(0.041, Source::Measured { a: 3, b: 0 }), "±4.1% (measured, A: 3 runs)");
        assert_eq!(describe(FIXED, Source::Fixed), "±10.0% (fixed)");
    }
}
