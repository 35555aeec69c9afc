//! `lockbench check`: the history is the truth. Re-run the checker on a result
//! folder's history and rewrite its summary.json (the old one kept as
//! summary.prev.json) and report.html, stating every figure that changed; or check
//! a history recorded elsewhere (Jepsen's EDN or JSON, or a lockbench history.jsonl)
//! without writing anything.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use lockbench_backends::Capabilities;
use serde_json::Value;

use super::{Summary, html, read_summary, replace_file};
use crate::record::{Event, History, Recorded};
use crate::run::BackendRun;

/// The formats `check --history` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// lockbench's own history.jsonl.
    Lockbench,
    /// Jepsen operations as a JSON array (elle-cli's .json histories) or JSON lines.
    JepsenJson,
    /// Jepsen operations in EDN (Knossos / elle-cli .edn histories).
    JepsenEdn,
}

/// Group events by backend into runs, each with its capabilities (unknown ones:
/// none) and its load window (the summary's, or the events' own).
fn runs_of(events: Vec<(String, Event)>, old: Option<&Summary>) -> Vec<BackendRun> {
    let mut per: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for (b, e) in events {
        per.entry(b).or_default().push(e);
    }
    let mut order: Vec<String> = old.map(|s| s.backends.iter().map(|b| b.name.clone()).collect()).unwrap_or_default();
    order.extend(per.keys().filter(|k| !order.contains(k)).cloned().collect::<Vec<_>>());
    let mut runs = Vec::new();
    for name in order {
        let mut events = per.remove(&name).unwrap_or_default();
        events.sort_by_key(|e| e.t);
        let known = old.and_then(|s| s.backends.iter().find(|b| b.name == name));
        let (start, end) = match known {
            Some(b) => (b.start_ns, b.end_ns),
            None => (events.first().map_or(0, |e| e.t), events.last().map_or(0, |e| e.t)),
        };
        runs.push(BackendRun {
            backend: name,
            capabilities: capabilities(known),
            history: Recorded::Memory(History { events, start, end }),
            interrupted: old.is_some_and(|s| s.interrupted),
            warm_up_ns: known.map_or(0, |b| (b.warm_up_s * 1e9) as u64),
            held: None,
        });
    }
    runs
}

/// A backend's capabilities as its summary states them (unknown: none).
fn capabilities(known: Option<&super::BackendSummary>) -> Capabilities {
    let mut caps = Capabilities::default();
    if let Some(b) = known {
        let c = &b.capabilities;
        (caps.lease, caps.renew, caps.fencing) = (c.lease, c.renew, c.fencing);
        (caps.blocking_wait, caps.multi_process, caps.naive) = (c.blocking_wait, c.multi_process, c.naive);
    }
    caps
}

/// Re-check a result folder; returns the new summary and the figures that changed
/// ("redis: violations.within_lease 0 → 3").
pub fn folder(dir: &Path) -> Result<(Summary, Vec<String>)> {
    // One writer per folder: a run writing it, or another check, is refused.
    let _held = super::folder::hold(dir)?;
    let old = read_summary(dir)?;
    if old.history != super::HistoryMode::Full {
        bail!(
            "{} kept only part of its history (--history violations or none): it cannot be re-checked",
            dir.display()
        );
    }
    let hp = crate::record::history_path(dir);
    // A first pass: the run id, and per backend its events' count, time span and
    // whether they are in time order (a hand-edited history may not be).
    struct Seen {
        n: u64,
        first: u64,
        last: u64,
        sorted: bool,
    }
    let mut seen: Vec<(String, Seen)> = Vec::new();
    let run_id = crate::record::open_history(&hp)
        .and_then(|r| {
            crate::record::each_line(r, &mut |b, e| {
                let i = match seen.iter().position(|(n, _)| n == b) {
                    Some(i) => i,
                    None => {
                        seen.push((b.to_owned(), Seen { n: 0, first: e.t, last: e.t, sorted: true }));
                        seen.len() - 1
                    }
                };
                let s = &mut seen[i].1;
                s.n += 1;
                s.sorted &= e.t >= s.last;
                s.first = s.first.min(e.t);
                s.last = s.last.max(e.t);
            })
        })
        .with_context(|| format!("reading {}", hp.display()))?;
    if let Some(id) = &run_id
        && *id != old.run_id
    {
        eprintln!("warning: {} is run {id}, summary.json was run {}: checking the history", hp.display(), old.run_id);
    }
    let n = seen.iter().map(|(_, s)| s.n).sum();
    // Backends in the summary's order, then any the history adds. Each is read
    // from the file as it is checked; one whose events are out of time order is
    // read into memory and sorted.
    let mut order: Vec<String> = old.backends.iter().map(|b| b.name.clone()).collect();
    order.extend(seen.iter().map(|(b, _)| b.clone()).filter(|b| !order.contains(b)).collect::<Vec<_>>());
    let mut runs = Vec::new();
    for name in order {
        let Some((_, st)) = seen.iter().find(|(b, _)| *b == name) else {
            continue;
        };
        let known = old.backends.iter().find(|b| b.name == name);
        let (start, end) = known.map_or((st.first, st.last), |b| (b.start_ns, b.end_ns));
        let src = crate::record::FileSource { path: hp.clone(), backend: name.clone(), start, end };
        let history = if st.sorted {
            Recorded::File(std::sync::Arc::new(src), st.n)
        } else {
            let mut h = Recorded::File(std::sync::Arc::new(src), st.n).load()?;
            h.events.sort_by_key(|e| e.t);
            Recorded::Memory(h)
        };
        runs.push(BackendRun {
            backend: name,
            capabilities: capabilities(known),
            history,
            interrupted: old.interrupted,
            warm_up_ns: known.map_or(0, |b| (b.warm_up_s * 1e9) as u64),
            held: None,
        });
    }
    let mut meta = old.clone();
    meta.backends.clear();
    meta.interrupted = false;
    meta.history_events = Some(n);
    if let Some(id) = run_id {
        meta.run_id = id;
    }
    let checked = super::summarize(meta, &runs)?;
    let mut new = checked.summary;
    for b in &mut new.backends {
        let was = old.backends.iter().find(|o| o.name == b.name);
        // What was measured or known beside the history is kept: the servers'
        // versions, the repeats' figures, the round-trip floor, the offered rate,
        // the expectation.
        b.server_version = was.and_then(|o| o.server_version.clone());
        b.repeats = was.and_then(|o| o.repeats.clone());
        b.set_rtt(was.and_then(|o| o.rtt_us));
        b.offered_per_s = was.and_then(|o| o.offered_per_s);
        b.expected = was.and_then(|o| o.expected.clone());
        // And the set-up beside the load: held locks, the servers' memory, the
        // sweep point.
        b.held_locks = was.and_then(|o| o.held_locks);
        b.held_fill_s = was.and_then(|o| o.held_fill_s);
        b.server_rss_bytes = was.and_then(|o| o.server_rss_bytes);
        b.sweep_value = was.and_then(|o| o.sweep_value);
    }
    let changes = differences(&old, &new);
    // Keep the summary the run wrote (a later check keeps that one too, never the
    // output of an earlier check), then write the new one and its report whole.
    let sp = dir.join("summary.json");
    let prev = dir.join("summary.prev.json");
    if !prev.exists() {
        fs::copy(&sp, &prev).with_context(|| format!("keeping {} as summary.prev.json", sp.display()))?;
    }
    let mut text = serde_json::to_string_pretty(&new)?;
    text.push('\n');
    replace_file(&sp, text.as_bytes())?;
    replace_file(&dir.join("report.html"), html::render(&new, &checked.extras).as_bytes())?;
    super::folder::note_written(dir, "summary.prev.json")?;
    Ok((new, changes))
}

/// Check a history from elsewhere; nothing is written.
pub fn foreign(path: &Path, format: Format) -> Result<Summary> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "history".into());
    let events: Vec<(String, Event)> = match format {
        Format::Lockbench => {
            crate::record::read_history(text.as_bytes()).with_context(|| format!("{}", path.display()))?.1
        }
        Format::JepsenJson => crate::check::import::jepsen_json(&text)
            .with_context(|| format!("{}", path.display()))?
            .into_iter()
            .map(|e| (name.clone(), e))
            .collect(),
        Format::JepsenEdn => crate::check::import::jepsen_edn(&text)
            .with_context(|| format!("{}", path.display()))?
            .into_iter()
            .map(|e| (name.clone(), e))
            .collect(),
    };
    if events.is_empty() {
        bail!("{}: no events", path.display());
    }
    let n = events.len() as u64;
    let runs = runs_of(events, None);
    let meta = Summary {
        schema_version: super::summary::SCHEMA_VERSION,
        lockbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id: String::new(),
        scenario: name,
        description: format!("checked from {}", path.display()),
        scenario_toml: String::new(),
        seed: 0,
        started_at: String::new(),
        command: String::new(),
        interrupted: false,
        machine: Default::default(),
        backends: Vec::new(),
        skipped: Vec::new(),
        history_events: Some(n),
        history: super::HistoryMode::Full,
        sweep: None,
        ratios: Vec::new(),
    };
    Ok(super::summarize(meta, &runs)?.summary)
}

/// Every scalar figure that differs between two summaries, per backend; lists are
/// compared by length.
fn differences(old: &Summary, new: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for nb in &new.backends {
        let Some(ob) = old.backends.iter().find(|b| b.name == nb.name) else {
            out.push(format!("{}: new in the history", nb.name));
            continue;
        };
        let (a, b) = (serde_json::to_value(ob).unwrap_or_default(), serde_json::to_value(nb).unwrap_or_default());
        walk(&nb.name, "", &a, &b, &mut out);
    }
    out
}

fn walk(backend: &str, path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let join = |k: &str| if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, vb) in y {
                walk(backend, &join(k), x.get(k).unwrap_or(&Value::Null), vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{backend}: {path} {} → {} entries", x.len(), y.len()));
            }
        }
        (x, y) if x != y => out.push(format!("{backend}: {path} {x} → {y}")),
        _ => {}
    }
}
