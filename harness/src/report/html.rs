//! `report.html`: one self-contained page (no network) built from a summary and the
//! per-backend figures drawn from the history ([`Extras`]).
//!
//! The page's frame is a template kept as a file (`report.html.tt`); this module
//! fills it. Everything from outside (descriptions, error messages, names) is
//! escaped. The page stays small however long the run: the timeline shows a bounded
//! sample of holds (every violating hold, then evenly spaced others), while every
//! figure comes whole from the summary.

use std::fmt::Write;

use super::charts::{self, Band, Bar, Series};
use super::evidence::{Evidence, TIMELINE_KEYS};
use super::noise;
use super::summary::{BackendSummary, HoldReport, Summary};
use crate::check::{Level, OverlapClass};
use crate::record::hist::{Latencies, Metric};
use crate::record::{Event, Kind, Op};

const TEMPLATE: &str = include_str!("report.html.tt");

/// Violations per backend drawn as a lane view, at most (an even spread).
const LANE_VIEWS: usize = 24;

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Microseconds as a short human figure.
pub fn us(v: u64) -> String {
    match v {
        0 => "–".into(),
        v if v < 1_000 => format!("{v} µs"),
        v if v < 1_000_000 => format!("{:.2} ms", v as f64 / 1e3),
        v => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// What the page draws from a backend's history beyond the summary's figures.
pub struct Extras {
    /// (quantile, µs) of granted acquires.
    pub percentiles: Vec<(f64, f64)>,
    /// How many granted acquires those percentiles are of.
    pub samples: u64,
    /// Per busiest key: (key, clients, bars).
    pub timelines: Vec<(u32, u32, Vec<Bar>)>,
    /// Holds drawn / holds in those keys.
    pub drawn: (usize, usize),
}

/// The id of the timeline bar of the hold with this owner, in backend `b`.
pub fn anchor(b: &str, owner: u64) -> String {
    format!("tl-{}-{owner}", b.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

impl Extras {
    /// `l` are the latencies of the history, `ev` its evidence (timelines).
    pub fn new(b: &BackendSummary, l: &Latencies, ev: &Evidence) -> Extras {
        let hist = l.get(Metric::AcquireOk);
        let percentiles = if hist.is_empty() {
            Vec::new()
        } else {
            let mut v: Vec<(f64, f64)> =
                [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999]
                    .iter()
                    .map(|q| (*q, hist.value_at_quantile(*q) as f64))
                    .collect();
            v.push((0.999_999, hist.max() as f64));
            v
        };
        let samples = hist.len();
        // The holds that listed violations name: drawn red, with an id.
        let marked: std::collections::HashSet<u64> =
            b.overlaps.iter().flat_map(|o| [o.first.owner, o.second.owner]).collect();
        let clients = (b.grants_per_client.len() as u32).max(1);
        let secs = |t: u64| (t as f64 - b.start_ns as f64) / 1e9;
        let (mut drawn, mut total) = (0, 0);
        let timelines = ev
            .timelines
            .iter()
            .map(|(k, n, holds)| {
                total += n;
                drawn += holds.len();
                let bars = holds
                    .iter()
                    .map(|x| Bar {
                        client: x.client,
                        from: secs(x.start),
                        to: secs(x.end),
                        lease_until: secs(x.expires),
                        anchor: marked.contains(&x.owner).then(|| anchor(&b.name, x.owner)),
                    })
                    .collect();
                (*k, clients, bars)
            })
            .collect();
        Extras { percentiles, samples, timelines, drawn: (drawn, total) }
    }
}

pub fn render(s: &Summary, extras: &[Extras]) -> String {
    let title = format!("lockbench — {}", s.scenario);
    let duration = s.backends.iter().map(|b| b.duration_s).fold(0.0f64, f64::max);
    let mut header = String::new();
    let _ = write!(
        header,
        "<p class=\"meta\">{desc}</p><p class=\"meta\">seed {seed} · {duration:.1} s · started {at} · {cores} cores, {mem:.1} GiB, {os} · lockbench {v}{int}</p>",
        desc = esc(&s.description),
        seed = s.seed,
        at = esc(&s.started_at),
        cores = s.machine.cores,
        mem = s.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        os = esc(&s.machine.os),
        v = esc(&s.lockbench_version),
        int = if s.interrupted { " · <span class=\"bad\">interrupted</span>" } else { "" },
    );
    let versions: Vec<String> = s
        .backends
        .iter()
        .filter_map(|b| b.server_version.as_ref().map(|v| format!("{}: {}", esc(&b.name), esc(v))))
        .collect();
    if !versions.is_empty() {
        let _ = write!(header, "<p class=\"meta\">Servers: {}</p>", versions.join(" · "));
    }
    let _ = write!(header, "<p class=\"meta\">Reproduce: <code>{}</code></p>", esc(&s.command));
    for sk in &s.skipped {
        let _ = write!(header, "<p class=\"meta\">Not run on <b>{}</b>: {}</p>", esc(&sk.backend), esc(&sk.reason));
    }
    let verdict = banner(&s.backends);
    let toggles: String = s
        .backends
        .iter()
        .map(|b| format!("<label><input type=\"checkbox\" checked data-toggle=\"{n}\"> {n}</label>", n = esc(&b.name)))
        .collect();
    TEMPLATE
        .replace("{{title}}", &esc(&title))
        .replace("{{header}}", &header)
        .replace("{{verdict}}", &verdict)
        .replace("{{toggles}}", &toggles)
        .replace("{{table}}", &(ratios(s) + &open_load(&s.backends) + &table(&s.backends)))
        .replace("{{charts}}", &(sweep_section(s) + &charts_of(s, extras)))
        .replace("{{fairness}}", &fairness(s))
        .replace("{{timelines}}", &timelines(s, extras))
        .replace("{{violations}}", &violations(&s.backends))
        .replace("{{scenario}}", &esc(&s.scenario_toml))
}

/// A sweep's figures against the swept value: acquire p50 and p99, grants per
/// second, and the servers' memory where it was measured, one line per backend,
/// then the same figures as a table.
fn sweep_section(s: &Summary) -> String {
    let Some(sw) = &s.sweep else { return String::new() };
    // Backends in their first appearance's order; each point's run is named
    // `<backend>@<field>=<value>`.
    let base = |b: &BackendSummary| b.name.split('@').next().unwrap_or_default().to_owned();
    let mut names: Vec<String> = Vec::new();
    for b in &s.backends {
        if !names.contains(&base(b)) {
            names.push(base(b));
        }
    }
    let chart = |id: &str, title: &str, y: &str, fmt: &str, f: &dyn Fn(&BackendSummary) -> Option<f64>| {
        let series: Vec<Series<'_>> = names
            .iter()
            .map(|n| Series {
                name: n,
                points: s
                    .backends
                    .iter()
                    .filter(|b| base(b) == *n)
                    .filter_map(|b| Some((b.sweep_value? as f64, f(b)?)))
                    .collect(),
                count: None,
            })
            .collect();
        if series.iter().all(|s| s.points.is_empty()) {
            return String::new();
        }
        charts::sweep_chart(id, title, &sw.field, y, &series, fmt)
    };
    let mut o = format!(
        "<h2 id=\"sweep\">How the cost grows with {f}</h2><p class=\"meta\">The scenario ran once per value of \
         <code>{f}</code> ({v}), each backend on fresh servers. Every point is a full run below, named \
         <code>backend@{f}=value</code>.</p>",
        f = esc(&sw.field),
        v = sw.values.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    let lat = |b: &BackendSummary, q: fn(&crate::record::hist::Percentiles) -> u64| {
        (b.acquire_latency_us.count > 0).then(|| q(&b.acquire_latency_us) as f64)
    };
    o += &chart("sweep-p50", "Acquire latency p50", "latency (log)", "us", &|b| lat(b, |l| l.p50));
    o += &chart("sweep-p99", "Acquire latency p99", "latency (log)", "us", &|b| lat(b, |l| l.p99));
    o += &chart("sweep-rate", "Grants per second", "grants/s (log)", "n", &|b| Some(b.grants_per_s));
    o += &chart("sweep-rss", "Servers' memory after the load (all members)", "MB (log)", "n", &|b| {
        b.server_rss_bytes.map(|r| r as f64 / 1e6)
    });
    o.push_str(
        "<table class=\"sweep\"><tr><th>backend</th><th>value</th><th>verdict</th><th>acquire p50</th><th>p99</th>\
         <th>grants/s</th><th>held locks (taken in)</th><th>servers' memory</th></tr>",
    );
    for b in s.backends.iter().filter(|b| b.sweep_value.is_some()) {
        let _ = write!(
            o,
            "<tr><td>{n}</td><td>{v}</td><td>{verdict}</td><td>{p50}</td><td>{p99}</td><td>{r:.0}</td><td>{held}</td><td>{rss}</td></tr>",
            n = esc(&base(b)),
            v = b.sweep_value.unwrap_or(0),
            verdict = b.verdict,
            p50 = us(b.acquire_latency_us.p50),
            p99 = us(b.acquire_latency_us.p99),
            r = b.grants_per_s,
            held = match (b.held_locks, b.held_fill_s) {
                (Some(n), Some(t)) => format!("{n} ({t:.1} s)"),
                _ => "–".into(),
            },
            rss = b.server_rss_bytes.map_or("–".into(), |r| format!("{:.0} MB", r as f64 / 1e6)),
        );
    }
    o.push_str("</table>");
    o
}

/// Below this Jain index a backend is flagged as starving its clients.
pub const STARVATION: f64 = 0.5;

/// Who got the lock: a warning where the grants went to a few clients (a fast
/// p50 that is one client re-taking a free lock is not speed), and grants per
/// client as small bars.
fn fairness(s: &Summary) -> String {
    let mut o = String::from("<h3>Grants per client</h3>");
    for (i, b) in s.backends.iter().enumerate() {
        let total: u64 = b.grants_per_client.iter().sum();
        let _ = write!(o, "<div class=\"fairness\" data-backend=\"{n}\">", n = esc(&b.name));
        if let Some(f) = b.fairness
            && f < STARVATION
            && b.grants_per_client.len() > 1
            && total > 0
        {
            let top = b.grants_per_client.iter().copied().max().unwrap_or(0);
            let who = b.grants_per_client.iter().position(|&g| g == top).unwrap_or(0);
            let _ = write!(
                o,
                "<p class=\"starvation bad\">Starvation on {n}: client {who} took {pct:.0}% of {total} grants \
                 (Jain's fairness {f:.3} over {k} clients); its latency figures are mostly one client re-taking a free \
                 lock, not speed.</p>",
                n = esc(&b.name),
                pct = top as f64 * 100.0 / total as f64,
                k = b.grants_per_client.len(),
            );
        }
        o.push_str(&charts::client_bars(&b.name, i, &b.grants_per_client));
        o.push_str("</div>");
    }
    o
}

/// The verdict of each backend in one line, the worst first.
fn banner(bs: &[BackendSummary]) -> String {
    if bs.iter().all(|b| b.verdict == Level::Safe) {
        return "<div class=\"verdict good\">Safe on every backend: no overlapping holds, no fencing token going backwards, no increment lost, and the servers answered.</div>".to_owned();
    }
    let mut parts = Vec::new();
    for level in Level::ALL {
        let names: Vec<&str> = bs.iter().filter(|b| b.verdict == level).map(|b| b.name.as_str()).collect();
        if !names.is_empty() {
            parts.push(format!("<b>{}</b>: {}", level, esc(&names.join(", "))));
        }
    }
    let class = if bs.iter().any(|b| b.verdict.is_violation()) { "bad" } else { "warn" };
    format!(
        "<div class=\"verdict {class}\">{}. <a href=\"#violations\">Details below.</a> {}</div>",
        parts.join(" · "),
        LEVELS_EXPLAINED
    )
}

/// What each verdict word means, for the page.
pub const LEVELS_EXPLAINED: &str = "<small>broken: an overlap within both leases or a fencing token going backwards · \
data-lost: overlaps only after a lease expired, and increments lost · fenced: overlaps only after expiry, nothing lost · \
inconclusive: no grants, or the servers did not answer for more than half of the run</small>";

/// The verdict word as a table cell (sorts by severity).
fn verdict_cell(b: &BackendSummary) -> String {
    let class = match b.verdict {
        Level::Safe => "good",
        Level::Broken | Level::DataLost => "bad",
        Level::Fenced | Level::Inconclusive => "warn",
    };
    let sort = Level::ALL.iter().position(|l| *l == b.verdict).unwrap_or(0);
    // Held against scenarios/expected.toml, where it names this pair.
    let against = match (b.unexpected(), b.expected.as_deref()) {
        (Some(false), _) => "<br><small class=\"good\">as expected</small>".to_owned(),
        (Some(true), Some(w)) => format!("<br><small class=\"bad\">UNEXPECTED (expected {})</small>", esc(w)),
        _ => String::new(),
    };
    format!("<td data-v=\"{sort}\"><span class=\"{class}\">{}</span>{against}</td>", b.verdict)
}

fn charts_of(s: &Summary, extras: &[Extras]) -> String {
    let names: Vec<&str> = s.backends.iter().map(|b| b.name.as_str()).collect();
    let pct: Vec<Series> = names
        .iter()
        .zip(extras)
        .map(|(n, e)| Series { name: n, points: e.percentiles.clone(), count: Some(e.samples) })
        .collect();
    // One point per second, at its middle; the last second is usually partial: its
    // point sits at the middle of what was run, and a rate is scaled to a full
    // second (else every chart would end in a false collapse).
    let per_sec = |f: &dyn Fn(&BackendSummary) -> Vec<f64>, rate: bool| -> Vec<Series> {
        s.backends
            .iter()
            .map(|b| {
                let v = f(b);
                let n = v.len();
                let last = (b.duration_s - (n.saturating_sub(1)) as f64).clamp(0.05, 1.0);
                let points = v
                    .into_iter()
                    .enumerate()
                    .map(|(i, y)| match i + 1 == n {
                        true => (i as f64 + last / 2.0, if rate { y / last } else { y }),
                        false => (i as f64 + 0.5, y),
                    })
                    .collect();
                Series { name: &b.name, points, count: None }
            })
            .collect()
    };
    // Each backend's own fault windows.
    let bands: Vec<Band> = s
        .backends
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            b.faults.iter().map(move |f| Band { backend: i, from: f.start_s, to: f.end_s, label: &f.what })
        })
        .collect();
    let thr = per_sec(&|b| b.grants_per_second.iter().map(|v| *v as f64).collect(), true);
    // A second without a grant has no p99: a gap, not a zero.
    let p99 =
        per_sec(&|b| b.p99_per_second_us.iter().map(|&v| if v == 0 { f64::NAN } else { v as f64 }).collect(), false);
    let points: Vec<(&str, f64, f64)> = s
        .backends
        .iter()
        .map(|b| {
            let v = b.holds_overlapped as f64;
            (b.name.as_str(), b.acquire_latency_us.p99.max(1) as f64, v * 1e6 / (b.grants.max(1) as f64))
        })
        .collect();
    [
        charts::percentile_plot(
            "chart-percentiles",
            &pct,
            s.backends.iter().find_map(|b| b.rtt_us.map(|r| (b.name.as_str(), r.p50_us))),
        ),
        charts::time_chart(
            "chart-throughput",
            "Grants per second (faults shaded)",
            "grants/s",
            &thr,
            &bands,
            &|v| format!("{v:.0}"),
            "n",
        ),
        charts::time_chart(
            "chart-p99",
            "p99 acquire latency per second (faults shaded)",
            "p99",
            &p99,
            &bands,
            &charts::us_label,
            "us",
        ),
        charts::safety_speed("chart-safety", &points),
    ]
    .join("\n")
}

fn timelines(s: &Summary, extras: &[Extras]) -> String {
    let mut o = String::new();
    for (b, e) in s.backends.iter().zip(extras) {
        let _ = write!(o, "<section data-backend=\"{n}\"><h3>{n}</h3>", n = esc(&b.name));
        if e.timelines.is_empty() {
            o.push_str("<p class=\"meta\">No holds.</p></section>");
            continue;
        }
        if e.drawn.0 < e.drawn.1 {
            let _ = write!(
                o,
                "<p class=\"meta\">Showing {} of {} holds on these keys: every hold a listed violation names, and an even sample of the rest on the first {TIMELINE_KEYS} keys.</p>",
                e.drawn.0, e.drawn.1
            );
        }
        for (k, clients, bars) in &e.timelines {
            let id = format!("timeline-{}-k{k}", b.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            o.push_str(&charts::timeline(&id, &format!("{}: key k{k}", b.name), *clients, b.duration_s, bars));
        }
        o.push_str("</section>");
    }
    o
}

fn cell(v: impl std::fmt::Display, sort: f64) -> String {
    format!("<td data-v=\"{sort}\">{v}</td>")
}

fn bad_cell(v: u64, link: Option<&str>) -> String {
    match (v, link) {
        (0, _) => cell(0, 0.0),
        (v, Some(l)) => format!("<td data-v=\"{v}\"><a class=\"bad\" href=\"{l}\">{v}</a></td>"),
        (v, None) => format!("<td data-v=\"{v}\"><span class=\"bad\">{v}</span></td>"),
    }
}

/// The scenario's acquire-latency ratios (lwt-cost: an LWT over a plain write).
fn ratios(s: &Summary) -> String {
    if s.ratios.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "<table id=\"ratios\"><caption>Acquire latency, one backend over another (the scenario's <code>ratios</code>)\
         </caption><thead><tr><th>backend</th><th>over</th><th>p50</th><th>p99</th></tr></thead><tbody>",
    );
    for r in &s.ratios {
        let _ = write!(
            t,
            "<tr><td><b>{}</b></td><td>{}</td><td>{:.1}×</td><td>{:.1}×</td></tr>",
            esc(&r.of),
            esc(&r.to),
            r.p50,
            r.p99
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// Open load first (wrk2's way): the offered and achieved rates, and the latency
/// from each request's intended start (coordinated omission corrected) beside the
/// service time. Nothing for a closed load.
fn open_load(bs: &[BackendSummary]) -> String {
    if bs.iter().all(|b| b.offered_per_s.is_none()) {
        return String::new();
    }
    let mut t = String::from(
        "<table id=\"open-load\"><caption>Open load: latency from the intended start (corrected), then service time\
         </caption><thead><tr><th>backend</th><th>offered</th><th>achieved</th><th>corrected p50</th><th>corrected p99</th>\
         <th>corrected max</th><th>service p50</th><th>service p99</th><th>warm-up (excluded)</th></tr></thead><tbody>",
    );
    for b in bs {
        let (w, a) = (&b.wait_us, &b.acquire_latency_us);
        let _ = write!(
            t,
            "<tr data-backend=\"{n}\"><td><b>{n}</b></td><td>{}</td><td>{:.0}/s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.2} s</td></tr>",
            b.offered_per_s.map_or("–".to_owned(), |o| format!("{o:.0}/s")),
            b.attempts_per_s,
            us(w.p50),
            us(w.p99),
            us(w.max),
            us(a.p50),
            us(a.p99),
            b.warm_up_s,
            n = esc(&b.name),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// The comparison, as two sortable tables that fit a page: verdict and speed
/// first, then safety, errors and liveness. Each row leads with the backend's name.
fn table(bs: &[BackendSummary]) -> String {
    type Col<'a> = (&'static str, &'static str, Box<dyn Fn(&BackendSummary) -> String + 'a>);
    let speed: Vec<Col> = vec![
        ("verdict", "the verdict, and whether scenarios/expected.toml expects it", Box::new(verdict_cell)),
        ("grants/s", "grants per second of load", Box::new(|b| cell(format!("{:.0}", b.grants_per_s), b.grants_per_s))),
        (
            "failed %",
            "acquire attempts that got no grant (timed out, refused, errors, unknown)",
            Box::new(|b| {
                let f = if b.acquire_attempts == 0 {
                    0.0
                } else {
                    100.0 * b.acquire_attempts.saturating_sub(b.grants) as f64 / b.acquire_attempts as f64
                };
                cell(format!("{f:.1}%"), f)
            }),
        ),
        (
            "acquire p50",
            "granted acquires; in round trips of the server where it has one",
            Box::new(|b| {
                let a = &b.acquire_latency_us;
                cell(
                    match b.p50_rtt.as_ref().and_then(|r| r.acquire) {
                        Some(x) => format!("{}<br><small>{x:.1} RTT</small>", us(a.p50)),
                        None => format!("{}<br><small>— RTT</small>", us(a.p50)),
                    },
                    a.p50 as f64,
                )
            }),
        ),
        ("p99", "", Box::new(|b| cell(us(b.acquire_latency_us.p99), b.acquire_latency_us.p99 as f64))),
        ("p99.9", "", Box::new(|b| cell(us(b.acquire_latency_us.p999), b.acquire_latency_us.p999 as f64))),
        ("max", "", Box::new(|b| cell(us(b.acquire_latency_us.max), b.acquire_latency_us.max as f64))),
        ("release p99", "", Box::new(|b| cell(us(b.release_latency_us.p99), b.release_latency_us.p99 as f64))),
        (
            "timeouts",
            "waits that ran out; and try-acquires that found the key held",
            Box::new(|b| {
                cell(
                    if b.acquire_refused > 0 {
                        format!("{}<br><small>{} refused (held)</small>", b.acquire_timeouts, b.acquire_refused)
                    } else {
                        b.acquire_timeouts.to_string()
                    },
                    b.acquire_timeouts as f64,
                )
            }),
        ),
        (
            "fairness",
            "Jain's index over clients' grants (1: equal shares)",
            Box::new(|b| cell(b.fairness.map_or("–".into(), |f| format!("{f:.3}")), b.fairness.unwrap_or(-1.0))),
        ),
    ];
    let first = |b: &BackendSummary, c: OverlapClass| {
        b.overlaps.iter().find(|o| o.class == c).map(|o| format!("#{}", anchor(&b.name, o.second.owner)))
    };
    let safety: Vec<Col> = vec![
        (
            "holds overlapped",
            "holds that overlapped another hold of their key",
            Box::new(|b| bad_cell(b.holds_overlapped, None)),
        ),
        (
            "pairs within lease",
            "overlapping pairs inside both leases (the lock broke its promise)",
            Box::new(move |b| bad_cell(b.violations.within_lease, first(b, OverlapClass::WithinLease).as_deref())),
        ),
        (
            "pairs after expiry",
            "overlapping pairs after a lease ran out (only fencing helps)",
            Box::new(move |b| bad_cell(b.violations.after_expiry, first(b, OverlapClass::AfterExpiry).as_deref())),
        ),
        (
            "increments lost",
            "acknowledged writes minus the register's final value",
            Box::new(|b| bad_cell(b.increments_lost, None)),
        ),
        (
            "clobbering writes",
            "writes whose version was not their read's + 1",
            Box::new(|b| bad_cell(b.clobbering_writes, None)),
        ),
        (
            "stale refused",
            "late writes the register refused by fencing token",
            Box::new(|b| cell(b.stale_writes_refused, b.stale_writes_refused as f64)),
        ),
        ("token regressions", "", Box::new(|b| bad_cell(b.token_regressions, None))),
        (
            "refused",
            "certainly not done: nothing reached the server (connection refused, no session, auth), or it answered unavailable (too few replicas alive)",
            Box::new(|b| bad_cell(b.errors.refused, None)),
        ),
        ("rejected", "", Box::new(|b| bad_cell(b.errors.rejected, None))),
        (
            "unknown",
            "sent and not answered: outcome unknown",
            Box::new(|b| cell(b.errors.unknown, b.errors.unknown as f64)),
        ),
        ("limits", "the harness's own resource limits (open files)", Box::new(|b| bad_cell(b.errors.resource, None))),
        (
            "unavailable s",
            "seconds of load in which no attempt got an answer, of all",
            Box::new(|b| cell(format!("{:.1} of {:.1}", b.unavailable_seconds, b.load_seconds), b.unavailable_seconds)),
        ),
        (
            "crash → grant",
            "from a crashed holder to the next grant of its key: median (max)",
            Box::new(|b| {
                if b.crash_to_next_grant_ms.is_empty() {
                    cell("–", -1.0)
                } else {
                    let mut v = b.crash_to_next_grant_ms.clone();
                    v.sort_by(f64::total_cmp);
                    cell(format!("{:.0} ms ({:.0})", v[v.len() / 2], v[v.len() - 1]), v[v.len() / 2])
                }
            }),
        ),
    ];
    let mut t = String::new();
    for (id, caption, cols) in
        [("comparison-table", "Verdict and speed", &speed), ("safety-table", "Safety, errors and liveness", &safety)]
    {
        let _ =
            write!(t, "<table class=\"sortable\" id=\"{id}\"><caption>{caption}</caption><thead><tr><th>backend</th>");
        for (h, title, _) in cols.iter() {
            let _ = write!(t, "<th title=\"{}\">{h}</th>", esc(title));
        }
        t.push_str("</tr></thead><tbody>");
        for b in bs {
            let _ = write!(
                t,
                "<tr data-backend=\"{name}\"><td data-v=\"{name}\"><b>{name}</b>{naive}<br><small>{rtt}</small></td>",
                name = esc(&b.name),
                naive = if b.capabilities.naive { " <small>(naive)</small>" } else { "" },
                rtt = b
                    .rtt_us
                    .map_or("no server: — RTT".to_owned(), |r| format!("RTT {}", us(r.p50_us.round() as u64)))
                    + &b.requests_per_op
                        .as_ref()
                        .and_then(|r| r.acquire)
                        .map_or(String::new(), |a| format!(" · {a:.1} requests/acquire"))
                    + &b.requests_per_grant.map_or(String::new(), |g| format!("<br>{g:.1} requests/granted lock")),
            );
            for (_, _, f) in cols.iter() {
                t.push_str(&f(b));
            }
            t.push_str("</tr>");
        }
        t.push_str("</tbody></table>");
    }
    t
}

/// A holder and its events, as a small table: time since the load started (the
/// raw CLOCK_MONOTONIC ns on hover), what happened, and what it said.
fn hold(h: &HoldReport, start_ns: u64) -> String {
    let mut s = format!(
        "client {} (owner {}, token {}): granted at {:.6} s, lease believed valid until {:.6} s, held until {:.6} s ({})",
        h.client,
        h.owner,
        if h.token == 0 { "none".to_owned() } else { h.token.to_string() },
        h.granted_s,
        h.lease_until_s,
        h.held_until_s,
        esc(&h.ended_by)
    );
    s.push_str(&events_table(&h.events, start_ns));
    s
}

/// Events as a table: time since the run's start (raw ns on hover), client,
/// operation and outcome, and what the event carries.
fn events_table(events: &[Event], start_ns: u64) -> String {
    let mut s = String::from(
        "<table class=\"events\"><thead><tr><th>t (s)</th><th>client</th><th>event</th><th>detail</th></tr></thead><tbody>",
    );
    for e in events {
        let rel = (e.t as f64 - start_ns as f64) / 1e9;
        let kind = match e.kind {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "unknown",
        };
        let mut detail = Vec::new();
        if e.token != 0 {
            detail.push(format!("token {}", e.token));
        }
        if matches!(e.op, Op::Read | Op::Write) {
            detail.push(format!("value {} version {}", e.a, e.b));
        }
        if let Some(m) = &e.msg {
            detail.push(esc(m));
        }
        let bad = matches!(e.kind, Kind::Fail | Kind::Info);
        let _ = write!(
            s,
            "<tr{cls}><td title=\"{t} ns\">{rel:.6}</td><td>{c}</td><td>{f:?} {kind}</td><td>{d}</td></tr>",
            cls = if bad { " class=\"warn\"" } else { "" },
            t = e.t,
            c = e.client,
            f = e.op,
            d = detail.join(" · ")
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// A violation's lane view: one lane per involved client (and one for the
/// backend's faults in the window), each of their operations from invoke to
/// answer, their holds behind, and the overlap shaded.
fn lane_view(b: &BackendSummary, i: usize, holders: [&HoldReport; 2], overlap: (f64, f64)) -> String {
    use charts::{LaneOp, LaneSpan};
    let rel = |t: u64| (t as f64 - b.start_ns as f64) / 1e9;
    let mut clients: Vec<u32> = holders.iter().map(|h| h.client).collect();
    clients.dedup();
    let mut names: Vec<String> = clients.iter().map(|c| format!("client {c}")).collect();
    let events: Vec<&crate::record::Event> = holders.iter().flat_map(|h| h.events.iter()).collect();
    let (mut t0, mut t1) = (overlap.0, overlap.1);
    for h in holders {
        t0 = t0.min(h.granted_s);
        t1 = t1.max(h.held_until_s);
    }
    for e in &events {
        t0 = t0.min(rel(e.t));
        t1 = t1.max(rel(e.t));
    }
    let mut spans: Vec<LaneSpan> = holders
        .iter()
        .map(|h| LaneSpan {
            lane: clients.iter().position(|c| *c == h.client).unwrap_or(0),
            from: h.granted_s,
            to: h.held_until_s,
            class: "held",
            title: format!(
                "client {} held (owner {}, token {}) from {:.6} s to {:.6} s; lease until {:.6} s",
                h.client, h.owner, h.token, h.granted_s, h.held_until_s, h.lease_until_s
            ),
            lease_until: (h.lease_until_s < h.held_until_s).then_some(h.lease_until_s),
        })
        .collect();
    let faults: Vec<_> = b.faults.iter().filter(|f| f.start_s <= t1 && f.end_s >= t0).collect();
    if !faults.is_empty() {
        names.push("faults".to_owned());
        for f in faults {
            spans.push(LaneSpan {
                lane: clients.len(),
                from: f.start_s.max(t0),
                to: f.end_s.min(t1),
                class: "fault",
                title: format!("{} ({:.6} s to {:.6} s)", f.what, f.start_s, f.end_s),
                lease_until: None,
            });
        }
    }
    let mut ops: Vec<LaneOp> = Vec::new();
    for (lane, c) in clients.iter().enumerate() {
        let mut mine: Vec<&crate::record::Event> = events.iter().copied().filter(|e| e.client == *c).collect();
        mine.sort_by_key(|e| e.t);
        mine.dedup_by_key(|e| (e.t, e.kind as u8, e.op as u8));
        let mut open: Vec<&crate::record::Event> = Vec::new();
        for e in mine {
            if e.kind == Kind::Invoke {
                open.push(e);
                continue;
            }
            let start = open.iter().rposition(|x| x.op == e.op).map(|p| open.remove(p));
            let from = start.map_or(e.t, |x| x.t);
            let outcome = match e.kind {
                Kind::Ok => "ok",
                Kind::Fail => "fail",
                _ => "info",
            };
            let said = e.msg.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            ops.push(LaneOp {
                lane,
                from: rel(from),
                to: rel(e.t),
                outcome,
                op: Op::word(e.op),
                title: format!(
                    "client {c} {} {}{said} · invoked {:.6} s ({from} ns), answered {:.6} s ({} ns)",
                    Op::word(e.op),
                    if outcome == "info" { "unknown" } else { outcome },
                    rel(from),
                    rel(e.t),
                    e.t
                ),
            });
        }
        for x in open {
            ops.push(LaneOp {
                lane,
                from: rel(x.t),
                to: t1,
                outcome: "open",
                op: Op::word(x.op),
                title: format!(
                    "client {c} {} invoked {:.6} s ({} ns), no answer in this window",
                    Op::word(x.op),
                    rel(x.t),
                    x.t
                ),
            });
        }
    }
    let id = format!("lanes-{}-{i}", b.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    format!(
        "{}<p class=\"meta\">Bars: an operation from its invoke to its answer (A acquire, N renew, r read, w write, \
         R release, X crash); blue ok, red failed, orange outcome unknown, grey unanswered; pale: the hold, \
         with a tick where its lease ran out; grey lane: faults; red shade: the overlap. Hover for the raw ns.</p>",
        charts::lanes(&id, &names, (t0, t1), overlap, &ops, &spans)
    )
}

fn violations(bs: &[BackendSummary]) -> String {
    let mut o = String::new();
    for b in bs {
        if matches!(b.verdict, Level::Safe | Level::Inconclusive) {
            let what = if b.verdict == Level::Safe {
                "<span class=\"good\">safe</span>: no violation".to_owned()
            } else {
                format!(
                    "<span class=\"warn\">inconclusive</span>: no violation seen, but no evidence either ({} grants; no answer from the server in {:.1} of {:.1} seconds; {} refused, {} timed out, {} hit the harness's limits)",
                    b.grants,
                    b.unavailable_seconds,
                    b.load_seconds,
                    b.errors.refused,
                    b.errors.unknown,
                    b.errors.resource
                )
            };
            let _ = write!(o, "<p data-backend=\"{n}\"><b>{n}</b>: {what}.</p>", n = esc(&b.name));
            continue;
        }
        let _ = write!(
            o,
            "<section data-backend=\"{n}\"><h3 id=\"v-{n}\">{n}: {}</h3><p>{} of {} holds overlapped another ({} episodes, at most {} holders at once, {:.3} s with two or more); \
             {} overlapping pairs within both leases, {} after expiry; {} token regressions; {} of {} acknowledged increments lost{}, {} clobbering writes, {} stale writes refused. \
             {} overlaps follow, a sample spread over the run (of each class), each with its holders' events.</p>",
            b.verdict,
            b.holds_overlapped,
            b.grants,
            b.overlap_episodes,
            b.max_holders,
            b.overlap_time_s,
            b.violations.within_lease,
            b.violations.after_expiry,
            b.token_regressions,
            b.increments_lost,
            b.writes_acknowledged,
            super::lost_share(b),
            b.clobbering_writes,
            b.stale_writes_refused,
            b.overlaps.len(),
            n = esc(&b.name),
        );
        // Lane views for an even spread of the examples (the first always): each
        // is a few kB, and the page must stay small for five unsafe backends.
        let stride = b.overlaps.len().div_ceil(LANE_VIEWS).max(1);
        if b.overlaps.len() > LANE_VIEWS {
            let _ = write!(
                o,
                "<p class=\"meta\">A lane view is drawn for {} of the {} examples, spread evenly; every example lists its events.</p>",
                b.overlaps.len().div_ceil(stride),
                b.overlaps.len()
            );
        }
        for (i, v) in b.overlaps.iter().enumerate() {
            let class = match v.class {
                OverlapClass::WithinLease => "within both leases",
                OverlapClass::AfterExpiry => "after a lease expired",
            };
            let faults = if v.faults.is_empty() {
                " · no fault active".to_owned()
            } else {
                format!(" · fault: {}", esc(&v.faults.join("; ")))
            };
            let _ = write!(
                o,
                "<details{open}><summary>key {k}: overlap {class} from {:.6} s to {:.6} s{faults} · <a class=\"tl\" href=\"#{a}\">timeline</a></summary>\
                 {lanes}<p>First holder: {}</p><p>Second holder: {}</p>{others}</details>",
                v.from_s,
                v.to_s,
                hold(&v.first, b.start_ns),
                hold(&v.second, b.start_ns),
                others = if v.others.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<p>Between the two grants, other clients released this key (what freed it):</p>{}",
                        events_table(&v.others, b.start_ns)
                    )
                },
                k = esc(&v.key),
                a = anchor(&b.name, v.second.owner),
                open = if i == 0 { " open" } else { "" },
                lanes = if i % stride == 0 {
                    lane_view(b, i, [&v.first, &v.second], (v.from_s, v.to_s))
                } else {
                    String::new()
                },
            );
        }
        for r in &b.regressions {
            let _ = write!(
                o,
                "<details><summary>key {}: token {} granted after token {} had been</summary><p>Earlier: {}</p><p>Later: {}</p></details>",
                esc(&r.key),
                r.later.token,
                r.earlier.token,
                hold(&r.earlier, b.start_ns),
                hold(&r.later, b.start_ns)
            );
        }
        for l in &b.lost {
            let _ = write!(
                o,
                "<details><summary>key {}: client {} read version {} but its write made version {}: an update was lost</summary><pre>{}</pre></details>",
                esc(&l.key),
                l.client,
                l.read_version,
                l.wrote_version,
                esc(&l
                    .events
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n"))
            );
        }
        o.push_str("</section>");
    }
    o
}

const PAGE_HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"lockbench\"><title>{{t}}</title><style>\
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em}\
table{border-collapse:collapse}th,td{padding:.3em .6em;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}\
td:first-child,th:first-child{text-align:left}.bad{color:#b00020;font-weight:600}.good{color:#137333;font-weight:600}\
.warn{color:#a05a00;font-weight:600}.worse{color:#b00020}.better{color:#137333}</style></head><body>";

/// `results/index.html`: every run in a results folder, newest first.
pub fn index(runs: &[(String, Summary)]) -> String {
    let mut o = PAGE_HEAD.replace("{{t}}", "lockbench results");
    o.push_str(
        "<h1>lockbench results</h1><p>Each run's verdicts, held against <code>scenarios/expected.toml</code> where it \
         names the pair (a deliberately unsafe backend that shows its flaw is as expected). Two runs side by side: \
         <code>lockbench compare results/A results/B</code>.</p><table><thead><tr><th>run</th><th>scenario</th>\
         <th>started</th><th>seed</th><th>duration</th><th>against expected</th><th>verdicts</th><th>grants/s</th></tr>\
         </thead><tbody>",
    );
    for (dir, s) in runs {
        let verdict = s
            .backends
            .iter()
            .map(|b| {
                let class = match (b.unexpected(), b.verdict) {
                    (Some(true), _) => "bad",
                    (Some(false), _) | (None, Level::Safe) => "good",
                    (None, Level::Broken | Level::DataLost) => "bad",
                    (None, _) => "warn",
                };
                format!("{}: <span class=\"{class}\">{}</span>", esc(&b.name), b.verdict)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let unexpected: Vec<&str> =
            s.backends.iter().filter(|b| b.unexpected() == Some(true)).map(|b| b.name.as_str()).collect();
        let held = s.backends.iter().filter(|b| b.unexpected().is_some()).count();
        let against = match (unexpected.is_empty(), held) {
            (_, 0) => "<span class=\"meta\">no expectation</span>".to_owned(),
            (true, n) => format!("<span class=\"good\">as expected ({n} of {})</span>", s.backends.len()),
            (false, _) => format!("<span class=\"bad\">UNEXPECTED: {}</span>", esc(&unexpected.join(", "))),
        };
        let rates = s.backends.iter().map(|b| format!("{:.0}", b.grants_per_s)).collect::<Vec<_>>().join(" / ");
        let dur = s.backends.iter().map(|b| b.duration_s).fold(0.0, f64::max);
        let _ = write!(
            o,
            "<tr><td><a href=\"{d}/report.html\">{d}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{dur:.1} s</td>\
             <td>{against}{int}</td><td>{verdict}</td><td>{rates}</td></tr>",
            esc(&s.scenario),
            esc(&s.started_at),
            s.seed,
            d = esc(dir),
            int = if s.interrupted { " (interrupted)" } else { "" },
        );
    }
    o.push_str("</tbody></table></body></html>\n");
    o
}

fn fmt_unit(v: f64, u: noise::Unit) -> String {
    use noise::Unit;
    match u {
        Unit::Us => us(v.round() as u64),
        Unit::Count => format!("{}", v.round() as i64),
        Unit::Rate => format!("{v:.0}/s"),
        Unit::Secs => format!("{v:.1} s"),
        Unit::Ratio => format!("{v:.3}"),
    }
}

/// A backend's acquire latency percentiles from its summary, as a curve.
fn summary_curve(b: &BackendSummary) -> Vec<(f64, f64)> {
    let p = &b.acquire_latency_us;
    if p.count == 0 {
        return Vec::new();
    }
    vec![
        (0.5, p.p50 as f64),
        (0.9, p.p90 as f64),
        (0.99, p.p99 as f64),
        (0.999, p.p999 as f64),
        (0.999_999, p.max as f64),
    ]
}

/// A page that sets two runs side by side: verdicts, every figure with its change
/// (coloured only beyond its noise threshold, see [`noise`]), and both percentile
/// curves on one chart.
/// `links` are the two reports, as the page can reach them.
pub fn compare(a: &Summary, b: &Summary, warnings: &[String], links: (&str, &str)) -> String {
    let mut o = PAGE_HEAD.replace("{{t}}", &esc(&format!("lockbench: {} vs {}", a.run_id, b.run_id)));
    let _ = write!(
        o,
        "<h1>{} → {}</h1><p>A: <a href=\"{la}\">{}</a> ({}, seed {}) · B: <a href=\"{lb}\">{}</a> ({}, seed {})</p>",
        esc(&a.scenario),
        esc(&b.scenario),
        esc(&a.run_id),
        esc(&a.started_at),
        a.seed,
        esc(&b.run_id),
        esc(&b.started_at),
        b.seed,
        la = esc(links.0),
        lb = esc(links.1),
    );
    for w in warnings {
        let _ = write!(o, "<p class=\"bad\">Warning: {}</p>", esc(w));
    }
    // Which rule judged the changes: the spread of repeated runs where either run
    // was repeated (`run --repeat N`), else the fixed share.
    let repeated = |s: &Summary| s.backends.iter().filter_map(|b| b.repeats.as_ref()).map(|r| r.runs).max();
    let _ = write!(
        o,
        "<p class=\"meta\" id=\"noise\">Noise: {}. A change within its figure's noise threshold (the column \
         \"noise\") is not coloured.</p>",
        esc(&noise::rule(repeated(a), repeated(b)))
    );
    for ba in &a.backends {
        let Some(bb) = b.backends.iter().find(|x| x.name == ba.name) else {
            let _ = write!(o, "<h2>{}</h2><p>only in A</p>", esc(&ba.name));
            continue;
        };
        let vclass = if ba.verdict == bb.verdict { "" } else { "worse" };
        let _ = write!(
            o,
            "<h2>{}</h2><table><thead><tr><th>figure</th><th>A</th><th>B</th><th>change</th><th>noise</th></tr></thead><tbody>\
             <tr><td><b>verdict</b></td><td>{}</td><td>{}</td><td class=\"{vclass}\">{}</td><td></td></tr>",
            esc(&ba.name),
            ba.verdict,
            bb.verdict,
            if ba.verdict == bb.verdict { "=" } else { "changed" }
        );
        for f in &noise::FIGURES {
            let (va, vb) = ((f.value)(ba), (f.value)(bb));
            let rel = if va == 0.0 { None } else { Some((vb - va) / va) };
            let change = match rel {
                _ if va == vb => "=".to_owned(),
                None => "new".to_owned(),
                Some(r) => format!("{:+.1}%", r * 100.0),
            };
            let (noise, source) = noise::threshold(ba.repeats.as_ref(), bb.repeats.as_ref(), f.name);
            // From zero, a change is a change unless the repeats saw that figure move.
            let beyond_noise = rel.map_or(noise.is_finite(), |r| r.abs() > noise);
            let class = if va == vb || !beyond_noise {
                ""
            } else if (vb < va) == f.lower_is_better {
                "better"
            } else {
                "worse"
            };
            let _ = write!(
                o,
                "<tr><td>{name}</td><td>{}</td><td>{}</td><td class=\"{class}\">{change}</td><td class=\"meta\">{}</td></tr>",
                fmt_unit(va, f.unit),
                fmt_unit(vb, f.unit),
                esc(&noise::describe(noise, source)),
                name = f.name,
            );
        }
        o.push_str("</tbody></table>");
        let (na, nb) = (format!("{} A", ba.name), format!("{} B", bb.name));
        let curves = [
            super::charts::Series { name: &na, points: summary_curve(ba), count: Some(ba.acquire_latency_us.count) },
            super::charts::Series { name: &nb, points: summary_curve(bb), count: Some(bb.acquire_latency_us.count) },
        ];
        o.push_str(&super::charts::percentile_plot(&format!("cmp-{}", ba.name), &curves, None));
    }
    for bb in b.backends.iter().filter(|x| !a.backends.iter().any(|y| y.name == x.name)) {
        let _ = write!(o, "<h2>{}</h2><p>only in B</p>", esc(&bb.name));
    }
    o.push_str("</body></html>\n");
    o
}
