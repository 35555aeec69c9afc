//! Output: the result folder of a run.
//!
//! `results/<run-id>/` holds `summary.json` (every figure, versioned schema),
//! `history.jsonl` (every event of every backend), `<backend>.hlog` (per-second
//! latency histograms), `scenario.toml` (the scenario as it ran) and `report.html`.
//! A folder is written under a `.partial` name and renamed when complete, so a
//! folder that exists is whole.

pub mod charts;
pub mod html;
pub mod summary;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::check;
use crate::record::hist::Latencies;
use crate::run::BackendRun;
pub use summary::{BackendSummary, Machine, Skipped, Summary};

/// Check every backend's history and assemble the summary.
pub fn summarize(meta: Summary, runs: &[BackendRun]) -> (Summary, Vec<Latencies>) {
    let mut s = meta;
    let mut lats = Vec::new();
    for r in runs {
        let v = check::check(&r.history);
        let l = Latencies::from_history(&r.history);
        s.backends.push(BackendSummary::new(r, &v, &l));
        s.interrupted |= r.interrupted;
        lats.push(l);
    }
    (s, lats)
}

/// Write the result folder at `dir` (which must not exist yet).
pub fn write(dir: &Path, summary: &Summary, runs: &[BackendRun], lats: &[Latencies]) -> Result<()> {
    let partial = partial_name(dir);
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("removing a stale {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let file = |name: &str| -> Result<BufWriter<fs::File>> {
        let p = partial.join(name);
        Ok(BufWriter::new(fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?))
    };
    let mut w = file("summary.json")?;
    serde_json::to_writer_pretty(&mut w, summary)?;
    w.write_all(b"\n")?;
    w.flush()?;
    let mut w = file("history.jsonl")?;
    for r in runs {
        r.history.write_jsonl(&r.backend, &mut w)?;
    }
    w.flush()?;
    for (r, l) in runs.iter().zip(lats) {
        let mut w = file(&format!("{}.hlog", r.backend))?;
        l.write_hlog(&mut w, &r.backend)?;
        w.flush()?;
    }
    fs::write(partial.join("scenario.toml"), &summary.scenario_toml)?;
    let extras: Vec<html::Extras> = summary
        .backends
        .iter()
        .zip(runs)
        .zip(lats)
        .map(|((b, r), l)| html::Extras::from_history(b, &r.history, l))
        .collect();
    fs::write(partial.join("report.html"), html::render(summary, &extras))?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    fs::rename(&partial, dir).with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))?;
    Ok(())
}

fn partial_name(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Read a result folder's summary.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let p = dir.join("summary.json");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a lockbench summary", p.display()))
}

/// Rebuild `report.html` of a finished run from its `summary.json` and
/// `history.jsonl`.
pub fn rebuild(dir: &Path) -> Result<PathBuf> {
    let summary = read_summary(dir)?;
    let hp = dir.join("history.jsonl");
    let f = fs::File::open(&hp).with_context(|| format!("reading {}", hp.display()))?;
    let mut per: std::collections::HashMap<String, Vec<crate::record::Event>> = std::collections::HashMap::new();
    for (b, e) in crate::record::read_jsonl(std::io::BufReader::new(f)).with_context(|| format!("{}", hp.display()))? {
        per.entry(b).or_default().push(e);
    }
    let extras: Vec<html::Extras> = summary
        .backends
        .iter()
        .map(|b| {
            let h = crate::record::History {
                events: per.remove(&b.name).unwrap_or_default(),
                start: b.start_ns,
                end: b.end_ns,
            };
            html::Extras::from_history(b, &h, &Latencies::from_history(&h))
        })
        .collect();
    let out = dir.join("report.html");
    fs::write(&out, html::render(&summary, &extras)).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Write `index.html` in a folder of result folders, newest first.
pub fn write_index(results: &Path) -> Result<PathBuf> {
    let mut runs = Vec::new();
    for e in fs::read_dir(results).with_context(|| format!("reading {}", results.display()))?.flatten() {
        let d = e.path();
        if let Ok(s) = read_summary(&d) {
            runs.push((e.file_name().to_string_lossy().into_owned(), s));
        }
    }
    runs.sort_by(|a, b| b.1.started_at.cmp(&a.1.started_at).then(b.0.cmp(&a.0)));
    let out = results.join("index.html");
    fs::write(&out, html::index(&runs)).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Write a page comparing two runs.
pub fn compare(a: &Path, b: &Path, out: &Path) -> Result<()> {
    let (sa, sb) = (read_summary(a)?, read_summary(b)?);
    fs::write(out, html::compare(&sa, &sb)).with_context(|| format!("writing {}", out.display()))
}

/// Now as RFC 3339 UTC, and as a compact id (`20261123-014502`).
pub fn now_stamps() -> (String, String) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"), format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"))
}
