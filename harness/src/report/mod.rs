//! Output: the result folder of a run.
//!
//! `results/<run-id>/` holds `summary.json` (every figure, versioned schema),
//! `history.jsonl` (every event of every backend), `<backend>.hlog` (per-second
//! latency histograms), `scenario.toml` (the scenario as it ran) and `report.html`.
//! A folder is written under a `.partial` name and renamed when complete, so a
//! folder that exists is whole; `folder` decides which folders lockbench may write
//! and replace (never a user's files).

pub mod charts;
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

/// Write the run's files into `claim`'s `.partial` folder and make it the result.
/// On a write error nothing is thrown away: the message names the file and where
/// the partial result is.
pub fn write(claim: folder::Claim, summary: &Summary, runs: &[BackendRun], lats: &[Latencies]) -> Result<PathBuf> {
    let mut written = Vec::new();
    let r = write_files(&claim, summary, runs, lats, &mut written);
    if let Err(e) = r {
        return Err(e.context(format!(
            "the result is incomplete; what was written is in {} (the figures above are whole)",
            claim.partial.display()
        )));
    }
    claim.commit(&written)
}

fn write_files(
    claim: &folder::Claim,
    summary: &Summary,
    runs: &[BackendRun],
    lats: &[Latencies],
    written: &mut Vec<String>,
) -> Result<()> {
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
    file("history.jsonl", &mut |w| {
        crate::record::write_header(&summary.run_id, w)?;
        for r in runs {
            r.history.write_jsonl(&r.backend, w)?;
        }
        Ok(())
    })?;
    for (r, l) in runs.iter().zip(lats) {
        file(&format!("{}.hlog", r.backend), &mut |w| l.write_hlog(w, &r.backend))?;
    }
    file("scenario.toml", &mut |w| w.write_all(summary.scenario_toml.as_bytes()))?;
    let extras: Vec<html::Extras> = summary
        .backends
        .iter()
        .zip(runs)
        .zip(lats)
        .map(|((b, r), l)| html::Extras::from_history(b, &r.history, l))
        .collect();
    let page = html::render(summary, &extras);
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
    let hp = dir.join("history.jsonl");
    let f = fs::File::open(&hp).with_context(|| format!("reading {}", hp.display()))?;
    let (run_id, events) =
        crate::record::read_history(std::io::BufReader::new(f)).with_context(|| format!("{}", hp.display()))?;
    match summary.history_events {
        Some(n) => {
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
            if events.len() as u64 != n {
                bail!(
                    "{} has {} events where summary.json counted {n}: it is not the history the summary was made \
                     from; not re-rendering",
                    hp.display(),
                    events.len()
                );
            }
        }
        None => eprintln!(
            "warning: {} predates run ids; cannot check that {} belongs to it",
            dir.join("summary.json").display(),
            hp.display()
        ),
    }
    let mut per: std::collections::HashMap<String, Vec<crate::record::Event>> = std::collections::HashMap::new();
    for (b, e) in events {
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
