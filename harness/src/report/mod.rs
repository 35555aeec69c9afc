//! Output: the result folder of a run.
//!
//! `results/<run-id>/` holds `summary.json` (every figure, versioned schema),
//! `history.jsonl` (every event of every backend), `<backend>.hlog` (per-second
//! latency histograms), `scenario.toml` (the scenario as it ran) and `report.html`.
//! A folder is written under a `.partial` name and renamed when complete, so a
//! folder that exists is whole; `folder` decides which folders lockbench may write
//! and replace (never a user's files).

pub mod charts;
pub mod evidence;
pub mod export;
pub mod folder;
pub mod html;
pub mod noise;
pub mod recheck;
pub mod summary;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::record::hist::Latencies;
use crate::run::BackendRun;
pub use summary::{BackendSummary, Machine, Skipped, Summary};

/// The lost increments as a share of the acknowledged ones, as Jepsen states
/// lost updates (" (3.2%)"); empty when nothing was lost.
pub fn lost_share(b: &BackendSummary) -> String {
    if b.increments_lost == 0 || b.writes_acknowledged == 0 {
        return String::new();
    }
    format!(" ({:.1}%)", 100.0 * b.increments_lost as f64 / b.writes_acknowledged as f64)
}

/// How much of the history a result keeps (`--history`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryMode {
    /// Every event (`history.jsonl.zst`): the run can be re-checked.
    #[default]
    Full,
    /// Only the events the report shows as evidence (the examples' holders, the
    /// lost updates' writes) and the faults: small, but not re-checkable.
    Violations,
    /// No history file.
    None,
}

/// The history file of a result folder (older results have it uncompressed).
pub const HISTORY_FILE: &str = "history.jsonl.zst";

/// Every backend checked: the summary, and what the files and the page are made of.
pub struct Checked {
    pub summary: Summary,
    pub lats: Vec<Latencies>,
    pub extras: Vec<html::Extras>,
    pub evidence: Vec<evidence::Evidence>,
}

/// Check every backend's history (two passes over each: the checker and the
/// latencies, then the evidence) and assemble the summary.
pub fn summarize(meta: Summary, runs: &[BackendRun]) -> Result<Checked> {
    let mut c = Checked { summary: meta, lats: Vec::new(), extras: Vec::new(), evidence: Vec::new() };
    for r in runs {
        let (v, l, ev) = evidence::check_and_gather(&r.history)
            .with_context(|| format!("reading back the history of {}", r.backend))?;
        let b = BackendSummary::new(r, &v, &l, &ev);
        c.extras.push(html::Extras::new(&b, &l, &ev));
        c.summary.backends.push(b);
        c.summary.interrupted |= r.interrupted;
        c.lats.push(l);
        c.evidence.push(ev);
    }
    Ok(c)
}

/// Write the run's files into `claim`'s `.partial` folder and make it the result.
/// On a write error nothing is thrown away: the message names the file and where
/// the partial result is.
pub fn write(claim: folder::Claim, c: &Checked, runs: &[BackendRun]) -> Result<PathBuf> {
    let mut written = Vec::new();
    let r = write_files(&claim, c, runs, &mut written);
    if let Err(e) = r {
        return Err(e.context(format!(
            "the result is incomplete; what was written is in {} (the figures above are whole)",
            claim.partial.display()
        )));
    }
    claim.commit(&written)
}

/// How many events `mode` writes of these runs (summary.json's `history_events`).
pub fn history_events(mode: HistoryMode, runs: &[BackendRun], evidence: &[evidence::Evidence]) -> u64 {
    match mode {
        HistoryMode::Full => runs.iter().map(|r| r.history.len()).sum(),
        HistoryMode::Violations => evidence.iter().map(|e| e.around_violations().len() as u64).sum(),
        HistoryMode::None => 0,
    }
}

fn write_files(claim: &folder::Claim, c: &Checked, runs: &[BackendRun], written: &mut Vec<String>) -> Result<()> {
    let summary = &c.summary;
    let mut file = |name: &str, body: &mut dyn FnMut(&mut BufWriter<fs::File>) -> std::io::Result<()>| -> Result<()> {
        let p = claim.file(name);
        written.push(name.to_owned());
        let mut w = BufWriter::new(fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?);
        body(&mut w)
            .and_then(|_| w.flush())
            .and_then(|_| w.get_ref().sync_data())
            .with_context(|| format!("writing {}", p.display()))
    };
    file("summary.json", &mut |w| {
        serde_json::to_writer_pretty(&mut *w, summary)?;
        w.write_all(b"\n")
    })?;
    if summary.history != HistoryMode::None {
        file(HISTORY_FILE, &mut |w| {
            // Level 1: on these histories smaller than level 3, and fast. serde
            // writes token by token: a buffer in front of the encoder.
            let mut z = BufWriter::with_capacity(1 << 17, zstd::stream::write::Encoder::new(w, 1)?);
            crate::record::write_header(&summary.run_id, &mut z)?;
            for (r, ev) in runs.iter().zip(&c.evidence) {
                match summary.history {
                    HistoryMode::Violations => {
                        let h = crate::record::History { events: ev.around_violations(), start: 0, end: 0 };
                        h.write_jsonl(&r.backend, &mut z)?;
                    }
                    _ => crate::record::write_jsonl(&r.history, &r.backend, &mut z)?,
                }
            }
            z.into_inner().map_err(|e| e.into_error())?.finish()?;
            Ok(())
        })?;
    }
    for (r, l) in runs.iter().zip(&c.lats) {
        file(&format!("{}.hlog", r.backend), &mut |w| l.write_hlog(w, &r.backend))?;
    }
    file("scenario.toml", &mut |w| w.write_all(summary.scenario_toml.as_bytes()))?;
    let page = html::render(summary, &c.extras);
    file("report.html", &mut |w| w.write_all(page.as_bytes()))
}

/// Read a result folder's summary.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let p = dir.join("summary.json");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a lockbench summary", p.display()))
}

/// Rebuild `report.html` of a finished run from its `summary.json` and
/// `history.jsonl`. Refuses, leaving the existing report as it is, when the
/// history is not the one the summary was made from (another run's id, or fewer or
/// more events than the summary counted).
pub fn rebuild(dir: &Path) -> Result<PathBuf> {
    let summary = read_summary(dir)?;
    if summary.history != HistoryMode::Full {
        bail!(
            "{} kept {} of its history (--history {}): its report cannot be rebuilt from it",
            dir.display(),
            if summary.history == HistoryMode::None { "none" } else { "only the events around violations" },
            if summary.history == HistoryMode::None { "none" } else { "violations" },
        );
    }
    let hp = crate::record::history_path(dir);
    let mut n = 0u64;
    let run_id = crate::record::open_history(&hp)
        .and_then(|r| crate::record::each_line(r, &mut |_, _| n += 1))
        .with_context(|| format!("reading {}", hp.display()))?;
    match summary.history_events {
        Some(want) => {
            match &run_id {
                Some(id) if *id == summary.run_id => {}
                Some(id) => bail!(
                    "{} is from another run (run id {id}; summary.json is run {}): not re-rendering",
                    hp.display(),
                    summary.run_id
                ),
                None => bail!(
                    "{} carries no run id (emptied or replaced?); summary.json is run {}: not re-rendering",
                    hp.display(),
                    summary.run_id
                ),
            }
            if n != want {
                bail!(
                    "{} has {n} events where summary.json counted {want}: it is not the history the summary was made \
                     from; not re-rendering",
                    hp.display(),
                );
            }
        }
        None => eprintln!(
            "warning: {} predates run ids; cannot check that {} belongs to it",
            dir.join("summary.json").display(),
            hp.display()
        ),
    }
    let extras = summary
        .backends
        .iter()
        .map(|b| {
            let src = crate::record::FileSource {
                path: hp.clone(),
                backend: b.name.clone(),
                start: b.start_ns,
                end: b.end_ns,
            };
            let (_, l, ev) = evidence::check_and_gather(&src).with_context(|| format!("reading {}", hp.display()))?;
            Ok(html::Extras::new(b, &l, &ev))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = dir.join("report.html");
    replace_file(&out, html::render(&summary, &extras).as_bytes())?;
    Ok(out)
}

/// Write `path` whole or not at all (a temp file renamed over it).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let r = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.with_context(|| format!("writing {}", path.display()))
}

/// Write an HTML page that lockbench makes (index, compare) at `path`, refusing to
/// write over any file that is not such a page.
fn write_page(path: &Path, page: &str) -> Result<()> {
    if path.exists() {
        let head =
            fs::read(path).map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned()).unwrap_or_default();
        // Pages from before the generator tag carry lockbench's own titles.
        let ours = head.contains("<meta name=\"generator\" content=\"lockbench\">")
            || head.contains("<title>lockbench results</title>")
            || head.contains("<title>lockbench: ");
        if !ours {
            bail!("{} exists and is not a page lockbench wrote: not writing over it", path.display());
        }
    }
    replace_file(path, page.as_bytes())
}

/// Write `index.html` in a folder of result folders, newest first. Folders still
/// being written (`.partial`) are left out.
pub fn write_index(results: &Path) -> Result<PathBuf> {
    let mut runs = Vec::new();
    for e in fs::read_dir(results).with_context(|| format!("reading {}", results.display()))?.flatten() {
        let d = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") || !d.is_dir() {
            continue;
        }
        if let Ok(s) = read_summary(&d) {
            runs.push((name, s));
        }
    }
    runs.sort_by(|a, b| b.1.started_at.cmp(&a.1.started_at).then(b.0.cmp(&a.0)));
    let mut page = html::index(&runs);
    // The comparison pages made here, linked.
    let mut compares: Vec<String> = fs::read_dir(results)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("compare-") && n.ends_with(".html"))
                .collect()
        })
        .unwrap_or_default();
    compares.sort();
    if !compares.is_empty() {
        let links: Vec<String> =
            compares.iter().map(|c| format!("<li><a href=\"{0}\">{0}</a></li>", html::esc(c))).collect();
        page =
            page.replace("</body></html>", &format!("<h2>Comparisons</h2><ul>{}</ul></body></html>", links.concat()));
    }
    let out = results.join("index.html");
    write_page(&out, &page)?;
    Ok(out)
}

/// Write a page comparing two runs; returns warnings (different scenarios, seeds or
/// durations make the comparison weak).
/// Returns the warnings, and which noise rule judged the changes.
pub fn compare(a: &Path, b: &Path, out: &Path) -> Result<(Vec<String>, String)> {
    let (sa, sb) = (read_summary(a)?, read_summary(b)?);
    let mut warnings = Vec::new();
    if sa.scenario != sb.scenario {
        warnings.push(format!("the scenarios differ ({} vs {})", sa.scenario, sb.scenario));
    } else if sa.scenario_toml != sb.scenario_toml {
        warnings.push("the scenario files differ (durations, clients or faults)".to_owned());
    }
    if sa.seed != sb.seed {
        warnings.push(format!("the seeds differ ({} vs {}): the schedules are not the same", sa.seed, sb.seed));
    }
    let dur = |s: &Summary| s.backends.iter().map(|b| b.duration_s).fold(0.0, f64::max);
    let (da, db) = (dur(&sa), dur(&sb));
    if (da - db).abs() > 0.1 * da.max(db) {
        warnings.push(format!("the run lengths differ ({da:.1} s vs {db:.1} s)"));
    }
    // The two reports, as the page will reach them: beside it, or by full path.
    let link = |d: &Path| -> String {
        let report = d.join("report.html");
        match (out.parent(), d.parent()) {
            (Some(o), Some(p)) if o == p => d
                .file_name()
                .map_or_else(|| report.display().to_string(), |n| format!("{}/report.html", n.to_string_lossy())),
            _ => report.canonicalize().unwrap_or(report).display().to_string(),
        }
    };
    let (la, lb) = (link(a), link(b));
    write_page(out, &html::compare(&sa, &sb, &warnings, (&la, &lb)))?;
    let runs = |s: &Summary| s.backends.iter().filter_map(|b| b.repeats.as_ref()).map(|r| r.runs).max();
    let noise = noise::rule(runs(&sa), runs(&sb));
    Ok((warnings, noise))
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
