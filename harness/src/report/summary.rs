//! `summary.json`: every figure of the report, machine-readable, versioned.
//!
//! Bump [`SCHEMA_VERSION`] on any change that renames or removes a field; adding a
//! field does not need a bump (the changes are listed in `results/README.md`). Times inside violations are seconds since the load
//! started; the events themselves keep their raw CLOCK_MONOTONIC nanoseconds, as in
//! `history.jsonl`.

use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use crate::check::{Errors, Hold, Level, OverlapClass, Verdict};
use crate::record::hist::{Latencies, Metric, Percentiles};
use crate::record::{Event, Source};
use crate::run::BackendRun;

pub const SCHEMA_VERSION: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub lockbench_version: String,
    pub run_id: String,
    pub scenario: String,
    pub description: String,
    /// The scenario as it ran (overrides applied), as TOML.
    pub scenario_toml: String,
    pub seed: u64,
    /// Wall-clock start, RFC 3339 (UTC).
    pub started_at: String,
    /// The command line that reproduces this run.
    pub command: String,
    pub interrupted: bool,
    pub machine: Machine,
    pub backends: Vec<BackendSummary>,
    /// Backends the scenario could not run on here, with why.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Events written to the history file (every backend's); `report` refuses a
    /// history with another count. None in summaries written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_events: Option<u64>,
    /// How much of the history the result kept (`--history`): full, violations
    /// (the events shown as evidence), none.
    #[serde(default)]
    pub history: super::HistoryMode,
    /// A sweep (`[sweep]`, `--sweep`): the field and its values; `backends` has
    /// one entry per backend and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepInfo>,
    /// The scenario's acquire-latency ratios (`ratios`), for the pairs that both
    /// ran with grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratios: Vec<Ratio>,
}

/// Backend `of`'s acquire latency over backend `to`'s, at p50 and p99.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ratio {
    pub of: String,
    pub to: String,
    pub p50: f64,
    pub p99: f64,
}

impl Summary {
    /// The ratios of these pairs whose backends both ran and granted; in a sweep
    /// (names `backend@value`), one per point, each backend over the other at the
    /// same value.
    pub fn set_ratios(&mut self, pairs: &[(String, String)]) {
        let granted = |n: &str| self.backends.iter().find(|b| b.name == n && b.acquire_latency_us.count > 0);
        let mut out = Vec::new();
        for (a, b) in pairs {
            for x in &self.backends {
                let Some(point) = x.name.strip_prefix(a.as_str()).filter(|p| p.is_empty() || p.starts_with('@')) else {
                    continue;
                };
                let (Some(x), Some(y)) = (granted(&x.name), granted(&format!("{b}{point}"))) else { continue };
                let (p, q) = (&x.acquire_latency_us, &y.acquire_latency_us);
                out.push(Ratio {
                    of: x.name.clone(),
                    to: y.name.clone(),
                    p50: p.p50 as f64 / q.p50.max(1) as f64,
                    p99: p.p99 as f64 / q.p99.max(1) as f64,
                });
            }
        }
        self.ratios = out;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SweepInfo {
    pub field: String,
    pub values: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Skipped {
    pub backend: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
}

impl Machine {
    pub fn here() -> Machine {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            })
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        Machine { cores: std::thread::available_parallelism().map_or(1, |n| n.get()), memory_bytes, os }
    }
}

/// Overlapping *pairs* of holds, by class: a detail (pairs grow with the square of
/// concurrency); `holds_overlapped` and `overlap_episodes` are the figures to read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Violations {
    pub within_lease: u64,
    pub after_expiry: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Capabilities {
    pub lease: bool,
    pub renew: bool,
    pub fencing: bool,
    pub blocking_wait: bool,
    pub multi_process: bool,
    pub naive: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendSummary {
    pub name: String,
    /// The server program's version, where the backend has servers.
    #[serde(default)]
    pub server_version: Option<String>,
    pub capabilities: Capabilities,
    /// The verdict: broken, data-lost, fenced, safe or inconclusive (see
    /// `results/README.md`). Summaries of schema 1 had none and read as inconclusive.
    #[serde(default)]
    pub verdict: Level,
    /// The same as `verdict == "safe"`.
    pub safe: bool,
    pub duration_s: f64,
    /// The load's start and end on CLOCK_MONOTONIC (ns), as in history.jsonl.
    #[serde(default)]
    pub start_ns: u64,
    #[serde(default)]
    pub end_ns: u64,
    pub acquire_attempts: u64,
    pub grants: u64,
    pub grants_per_s: f64,
    pub acquire_latency_us: Percentiles,
    pub acquire_failed_latency_us: Percentiles,
    pub wait_us: Percentiles,
    pub release_latency_us: Percentiles,
    pub renew_latency_us: Percentiles,
    pub hold_us: Percentiles,
    /// Pairs of overlapping holds (a detail).
    pub violations: Violations,
    /// Holds that overlapped another hold of their key (≤ grants).
    #[serde(default)]
    pub holds_overlapped: u64,
    /// Spans of time in which a key had two or more holders.
    #[serde(default)]
    pub overlap_episodes: u64,
    /// The most holders one key had at once.
    #[serde(default)]
    pub max_holders: u64,
    /// Seconds, summed over keys, in which a key had two or more holders.
    #[serde(default)]
    pub overlap_time_s: f64,
    /// Register writes the register acknowledged.
    #[serde(default)]
    pub writes_acknowledged: u64,
    /// Acknowledged writes − the register's final value, summed per key.
    #[serde(default)]
    pub increments_lost: u64,
    /// Writes whose new version is not their read's version + 1 (listed in `lost`).
    #[serde(default)]
    pub clobbering_writes: u64,
    /// Failed or unknown operations by cause.
    #[serde(default)]
    pub errors: Errors,
    /// Seconds of load (the run's length, in tenths).
    #[serde(default)]
    pub load_seconds: f64,
    /// Seconds of load with attempts and no answer from the server (in tenths).
    #[serde(default)]
    pub unavailable_seconds: f64,
    pub stale_writes_refused: u64,
    pub late_writes_accepted: u64,
    pub token_regressions: u64,
    pub unknown_outcomes: u64,
    pub acquire_timeouts: u64,
    /// Try-acquires without a wait that found the key held ("refused (held)").
    #[serde(default)]
    pub acquire_refused: u64,
    pub acquire_errors: u64,
    pub longest_wait_us: u64,
    pub fairness: Option<f64>,
    pub crashes: u64,
    /// ms from each crashed holder to the next grant of its key.
    pub crash_to_next_grant_ms: Vec<f64>,
    /// Grants in each second of the run.
    pub grants_per_second: Vec<u64>,
    /// p99 acquire latency (µs) in each second of the run.
    pub p99_per_second_us: Vec<u64>,
    /// Fault windows, seconds since the load started.
    pub faults: Vec<FaultWindow>,
    /// What `scenarios/expected.toml` says this shipped scenario must show on this
    /// backend (a verdict word, or "any"); None where it says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The round-trip floor to this backend's servers (sequential pings before the
    /// load); None without a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<crate::run::calibrate::Rtt>,
    /// p50 latencies in units of that floor: acquire (granted), release, renew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_rtt: Option<PerOp>,
    /// Mean requests each acquire, release and renew sent to the servers (every
    /// instance's, for Redlock), where the client counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_op: Option<PerOp>,
    /// Every request sent (acquire attempts, renews, releases) per granted lock,
    /// where the client counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_grant: Option<f64>,
    /// Open load: seconds the sessions took to be ready before the schedule
    /// started, excluded from the load window.
    #[serde(default)]
    pub warm_up_s: f64,
    /// Open load: the rate the scenario offered, and the rate of attempts made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_per_s: Option<f64>,
    #[serde(default)]
    pub attempts_per_s: f64,
    /// Grants per client, in client order: who got the lock (starvation shows here).
    #[serde(default)]
    pub grants_per_client: Vec<u64>,
    /// Faults that hit nothing (no holder at the time, no servers, not applied).
    #[serde(default)]
    pub faults_missed: u64,
    /// Failures of the harness during this run (a worker that died outside any
    /// fault): never the backend's violations, but the run is not clean (exit 6).
    #[serde(default)]
    pub harness_errors: Vec<String>,
    /// `run --repeat N`: every compared figure of each of the N runs (this one
    /// first), whose spread `compare` takes as its noise threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<super::noise::Repeats>,
    /// Locks held beside the load (`keys.held`), not part of the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_locks: Option<u32>,
    /// Seconds it took to take them, before the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_fill_s: Option<f64>,
    /// The servers' resident memory after the load, summed over every member
    /// (bytes; local servers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    /// In a sweep: the value of the swept field this run had (its `name` is
    /// `<backend>@<field>=<value>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_value: Option<u64>,
    /// The first violations of each sort, each with the events that prove it.
    pub overlaps: Vec<OverlapReport>,
    pub regressions: Vec<RegressionReport>,
    pub lost: Vec<LostReport>,
}

/// A figure per operation (None: no such operation in the run, or not counted):
/// p50 latencies in round trips, requests per operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PerOp {
    pub acquire: Option<f64>,
    pub release: Option<f64>,
    pub renew: Option<f64>,
}

/// A run's figures alone (a further run of `--repeat`): checked and measured as
/// the kept run is, without its evidence.
pub fn figures_of(run: &BackendRun) -> std::io::Result<BackendSummary> {
    let (v, l) = super::evidence::check_and_measure(&run.history)?;
    let mut b = BackendSummary::new(run, &v, &l, &Evidence::default());
    (b.overlaps, b.regressions, b.lost) = (Vec::new(), Vec::new(), Vec::new());
    Ok(b)
}

impl BackendSummary {
    /// Does the verdict differ from what expected.toml says? None: nothing to
    /// hold it against ("any" or no entry).
    pub fn unexpected(&self) -> Option<bool> {
        match self.expected.as_deref() {
            None | Some("any") => None,
            // `safe|data-lost`: either word is as expected.
            Some(w) => Some(!w.split('|').any(|x| x.trim() == self.verdict.word())),
        }
    }

    /// Set the round-trip floor and state the p50 latencies in its units.
    pub fn set_rtt(&mut self, rtt: Option<crate::run::calibrate::Rtt>) {
        use crate::run::calibrate::in_rtt;
        self.rtt_us = rtt;
        let of = |p: &Percentiles, r: &crate::run::calibrate::Rtt| (p.count > 0).then(|| in_rtt(p.p50, r));
        self.p50_rtt = rtt.map(|r| PerOp {
            acquire: of(&self.acquire_latency_us, &r),
            release: of(&self.release_latency_us, &r),
            renew: of(&self.renew_latency_us, &r),
        });
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultWindow {
    pub start_s: f64,
    pub end_s: f64,
    pub what: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldReport {
    pub client: u32,
    pub owner: u64,
    pub token: u64,
    pub granted_s: f64,
    /// When this holder believed its lease ran out.
    pub lease_until_s: f64,
    pub held_until_s: f64,
    pub ended_by: String,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverlapReport {
    pub key: String,
    pub class: OverlapClass,
    pub from_s: f64,
    pub to_s: f64,
    pub faults: Vec<String>,
    pub first: HoldReport,
    pub second: HoldReport,
    /// Releases of this key by other clients between the two grants: what freed
    /// the key (a late holder's release that checks no owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<Event>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegressionReport {
    pub key: String,
    pub earlier: HoldReport,
    pub later: HoldReport,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LostReport {
    pub key: String,
    pub client: u32,
    pub read_version: u64,
    pub wrote_version: u64,
    pub events: Vec<Event>,
}

fn secs(start: u64, t: u64) -> f64 {
    (t as f64 - start as f64) / 1e9
}

/// A holder with every event of its client from its acquire to the answer to its
/// release (renewals, the guarded read and write, a refused stale write, a renew
/// that timed out), not only the grant and the release: the evidence a reader needs.
fn hold_report(start: u64, x: &Hold, ev: &Evidence) -> HoldReport {
    HoldReport {
        client: x.client,
        owner: x.owner,
        token: x.token,
        granted_s: secs(start, x.start),
        lease_until_s: secs(start, x.expires),
        held_until_s: secs(start, x.end),
        ended_by: x.ended_by.clone(),
        events: ev.holds.get(&x.owner).cloned().unwrap_or_default(),
    }
}

impl BackendSummary {
    pub fn new(run: &BackendRun, v: &Verdict, l: &Latencies, ev: &Evidence) -> BackendSummary {
        let (start, end) = (run.history.start(), run.history.end());
        let c = run.capabilities;
        let duration_s = (end.saturating_sub(start) as f64 / 1e9).max(1e-9);
        let key = |k: u32| format!("k{k}");
        let p99_per_second_us = l
            .per_second
            .get(&Metric::AcquireOk)
            .map(|v| v.iter().map(|h| if h.is_empty() { 0 } else { h.value_at_quantile(0.99) }).collect())
            .unwrap_or_else(|| vec![0; l.seconds]);
        let faults = v
            .faults
            .iter()
            .map(|(s, e, what)| FaultWindow { start_s: secs(start, *s), end_s: secs(start, *e), what: what.clone() })
            .collect();
        BackendSummary {
            name: run.backend.clone(),
            server_version: None,
            capabilities: Capabilities {
                lease: c.lease,
                renew: c.renew,
                fencing: c.fencing,
                blocking_wait: c.blocking_wait,
                multi_process: c.multi_process,
                naive: c.naive,
            },
            verdict: v.level(),
            safe: v.level() == Level::Safe,
            duration_s,
            start_ns: start,
            end_ns: end,
            acquire_attempts: v.acquire_attempts,
            grants: v.grants,
            grants_per_s: v.grants as f64 / duration_s,
            acquire_latency_us: Percentiles::of(l.get(Metric::AcquireOk)),
            acquire_failed_latency_us: Percentiles::of(l.get(Metric::AcquireFailed)),
            wait_us: Percentiles::of(l.get(Metric::Wait)),
            release_latency_us: Percentiles::of(l.get(Metric::Release)),
            renew_latency_us: Percentiles::of(l.get(Metric::Renew)),
            hold_us: Percentiles::of(l.get(Metric::Hold)),
            violations: Violations { within_lease: v.within_lease, after_expiry: v.after_expiry },
            holds_overlapped: v.holds_overlapped,
            overlap_episodes: v.overlap_episodes,
            max_holders: v.max_holders,
            overlap_time_s: v.overlap_ns as f64 / 1e9,
            writes_acknowledged: v.writes_acknowledged,
            increments_lost: v.increments_lost,
            clobbering_writes: v.clobbering_writes,
            errors: v.availability.errors.clone(),
            load_seconds: v.availability.load_seconds,
            unavailable_seconds: v.availability.unavailable_seconds,
            stale_writes_refused: v.stale_writes_refused,
            late_writes_accepted: v.late_writes_accepted,
            token_regressions: v.token_regressions,
            unknown_outcomes: v.unknown_outcomes,
            acquire_timeouts: v.acquire_timeouts,
            acquire_refused: v.acquire_refused,
            acquire_errors: v.acquire_errors,
            longest_wait_us: v.longest_wait_ns / 1_000,
            fairness: v.fairness,
            crashes: v.crashes,
            crash_to_next_grant_ms: v.crash_recovery_ns.iter().map(|n| *n as f64 / 1e6).collect(),
            grants_per_second: l.grants_per_second.clone(),
            p99_per_second_us,
            faults,
            faults_missed: v.faults_missed,
            harness_errors: v.harness_errors.clone(),
            rtt_us: None,
            p50_rtt: None,
            requests_per_op: v.requests_per_op(),
            requests_per_grant: v.requests_per_grant(),
            expected: None,
            warm_up_s: run.warm_up_ns as f64 / 1e9,
            offered_per_s: None,
            repeats: None,
            held_locks: run.held.map(|h| h.0),
            held_fill_s: run.held.map(|h| h.1.as_secs_f64()),
            server_rss_bytes: None,
            sweep_value: None,
            attempts_per_s: v.acquire_attempts as f64 / duration_s,
            grants_per_client: v.grants_per_client.clone(),
            overlaps: v
                .overlaps
                .iter()
                .map(|o| OverlapReport {
                    key: key(o.key),
                    class: o.class,
                    from_s: secs(start, o.from),
                    to_s: secs(start, o.to),
                    faults: o.faults.clone(),
                    first: hold_report(start, &o.first, ev),
                    second: hold_report(start, &o.second, ev),
                    others: ev.others.get(&(o.first.owner, o.second.owner)).cloned().unwrap_or_default(),
                })
                .collect(),
            regressions: v
                .regressions
                .iter()
                .map(|r| RegressionReport {
                    key: key(r.key),
                    earlier: hold_report(start, &r.earlier, ev),
                    later: hold_report(start, &r.later, ev),
                })
                .collect(),
            lost: v
                .lost
                .iter()
                .map(|x| LostReport {
                    key: key(x.key),
                    client: x.client,
                    read_version: x.read_version,
                    wrote_version: x.wrote_version,
                    events: x.events.iter().filter_map(|i| ev.events.get(i).cloned()).collect(),
                })
                .collect(),
        }
    }
}
