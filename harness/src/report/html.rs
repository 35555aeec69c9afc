//! `report.html`: one self-contained page (no network) built from a summary.
//!
//! The page's frame is a template kept as a file (`report.html.tt`); this module
//! only fills it. Everything is escaped: scenario descriptions and error messages
//! come from outside.

use std::fmt::Write;

use super::summary::{BackendSummary, HoldReport, Summary};
use crate::check::OverlapClass;

const TEMPLATE: &str = include_str!("report.html.tt");

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

fn count(v: u64) -> String {
    if v == 0 { "0".into() } else { format!("<span class=\"bad\">{v}</span>") }
}

pub fn render(s: &Summary) -> String {
    let title = format!("lockbench — {}", s.scenario);
    let mut header = String::new();
    let _ = write!(
        header,
        "<p class=\"meta\">{desc}<br>seed {seed} · started {at} · {cores} cores, {mem:.1} GiB, {os} · lockbench {v}{int}</p>\
         <p class=\"meta\">Reproduce: <code>{cmd}</code></p>",
        desc = esc(&s.description),
        seed = s.seed,
        at = esc(&s.started_at),
        cores = s.machine.cores,
        mem = s.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        os = esc(&s.machine.os),
        v = esc(&s.lockbench_version),
        int = if s.interrupted { " · <span class=\"bad\">interrupted</span>" } else { "" },
        cmd = esc(&s.command),
    );
    for sk in &s.skipped {
        let _ = write!(header, "<p class=\"meta\">Not run on <b>{}</b>: {}</p>", esc(&sk.backend), esc(&sk.reason));
    }
    let unsafe_ones: Vec<&str> = s.backends.iter().filter(|b| !b.safe).map(|b| b.name.as_str()).collect();
    let verdict = if unsafe_ones.is_empty() {
        "<div class=\"verdict good\">No safety violation on any backend: no overlapping holds, no fencing token going backwards, no lost update.</div>".to_owned()
    } else {
        format!("<div class=\"verdict bad\">Unsafe: {}. Details below.</div>", esc(&unsafe_ones.join(", ")))
    };
    TEMPLATE
        .replace("{{title}}", &esc(&title))
        .replace("{{header}}", &header)
        .replace("{{verdict}}", &verdict)
        .replace("{{table}}", &table(&s.backends))
        .replace("{{violations}}", &violations(&s.backends))
        .replace("{{scenario}}", &esc(&s.scenario_toml))
}

fn table(bs: &[BackendSummary]) -> String {
    let mut t = String::from(
        "<table><thead><tr><th>backend</th><th>grants/s</th><th>acquire p50</th><th>p90</th><th>p99</th>\
         <th>p99.9</th><th>max</th><th>release p99</th><th>timeouts</th><th>unknown</th>\
         <th>overlaps within lease</th><th>after expiry</th><th>lost updates</th><th>stale writes refused</th>\
         <th>token regressions</th><th>crash → next grant</th><th>fairness</th></tr></thead><tbody>",
    );
    for b in bs {
        let a = &b.acquire_latency_us;
        let crash = if b.crash_to_next_grant_ms.is_empty() {
            "–".to_owned()
        } else {
            let mut v = b.crash_to_next_grant_ms.clone();
            v.sort_by(f64::total_cmp);
            format!("{:.0} ms (max {:.0})", v[v.len() / 2], v[v.len() - 1])
        };
        let _ = write!(
            t,
            "<tr><td><b>{name}</b>{naive}</td><td>{gps:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{crash}</td><td>{fair}</td></tr>",
            us(a.p50),
            us(a.p90),
            us(a.p99),
            us(a.p999),
            us(a.max),
            us(b.release_latency_us.p99),
            b.acquire_timeouts,
            b.unknown_outcomes,
            count(b.violations.within_lease),
            count(b.violations.after_expiry),
            count(b.lost_updates),
            b.stale_writes_refused,
            count(b.token_regressions),
            name = esc(&b.name),
            naive = if b.capabilities.naive { " <small>(naive)</small>" } else { "" },
            gps = b.grants_per_s,
            fair = b.fairness.map_or("–".into(), |f| format!("{f:.3}")),
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn hold(h: &HoldReport) -> String {
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
    s.push_str("<pre>");
    for e in &h.events {
        s.push_str(&esc(&serde_json::to_string(e).unwrap_or_default()));
        s.push('\n');
    }
    s.push_str("</pre>");
    s
}

fn violations(bs: &[BackendSummary]) -> String {
    let mut o = String::new();
    for b in bs {
        if b.safe {
            let _ = write!(o, "<p><b>{}</b>: <span class=\"good\">no violation</span>.</p>", esc(&b.name));
            continue;
        }
        let _ = write!(
            o,
            "<h3 id=\"v-{n}\">{n}</h3><p>{} overlaps within lease, {} after expiry, {} token regressions, {} lost updates. \
             The first {} overlaps:</p>",
            b.violations.within_lease,
            b.violations.after_expiry,
            b.token_regressions,
            b.lost_updates,
            b.overlaps.len(),
            n = esc(&b.name),
        );
        for (i, v) in b.overlaps.iter().enumerate() {
            let class = match v.class {
                OverlapClass::WithinLease => "within both leases",
                OverlapClass::AfterExpiry => "after a lease expired",
            };
            let faults =
                if v.faults.is_empty() { String::new() } else { format!(" · faults: {}", esc(&v.faults.join("; "))) };
            let _ = write!(
                o,
                "<details id=\"v-{n}-{i}\"{open}><summary>key {k}: overlap {class} from {:.6} s to {:.6} s{faults}</summary>\
                 <p>First: {}</p><p>Second: {}</p></details>",
                v.from_s,
                v.to_s,
                hold(&v.first),
                hold(&v.second),
                n = esc(&b.name),
                k = esc(&v.key),
                open = if i == 0 { " open" } else { "" },
            );
        }
        for r in &b.regressions {
            let _ = write!(
                o,
                "<details><summary>key {}: token {} granted after token {}</summary><p>Earlier: {}</p><p>Later: {}</p></details>",
                esc(&r.key),
                r.later.token,
                r.earlier.token,
                hold(&r.earlier),
                hold(&r.later)
            );
        }
        for l in &b.lost {
            let _ = write!(
                o,
                "<details><summary>key {}: client {} read version {} but its write made version {}</summary><pre>{}</pre></details>",
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
    }
    o
}
