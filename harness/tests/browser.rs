//! The report in a real browser: headless Chromium (Debian's, installed by
//! scripts/setup) loads generated pages offline; the page's script must run to the
//! end without an error, every chart must be there, every violation link must have
//! its target in the timeline. Screenshots are saved in the test's temp folder.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lockbench(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_lockbench")).args(args).output().expect("run lockbench");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "lockbench {args:?} failed:\n{text}");
    text
}

fn chromium(args: &[&str], page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed by scripts/setup");
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn check_page(page: &Path, shot: &Path) {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") || only_svg_namespace(&html),
        "the page reaches out to the network"
    );
    let (dom, log) = chromium(&["--dump-dom", "--window-size=1400,1000"], page);
    // At 1400 px every column of every table is on the page (no sideways scroll).
    assert!(dom.contains("data-tables-fit=\"1\""), "a table is wider than 1400 px");
    assert!(dom.contains("data-labels-overlap=\"0\""), "fault labels overlap");
    assert!(dom.contains("data-ready=\"1\""), "the page's script did not run to the end:\n{log}");
    assert!(!dom.contains("data-errors="), "the page raised an error");
    for l in log.lines() {
        assert!(!(l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("rror"))), "console error: {l}");
    }
    for id in ["comparison-table", "chart-percentiles", "chart-throughput", "chart-p99", "chart-safety"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id} missing from the rendered page");
    }
    assert!(dom.contains("class=\"chart timeline\""), "no holder timeline");
    assert_eq!(dom.matches("<polyline").count() >= 3, true, "chart lines missing");
    // Every link into the timeline has its target.
    for href in html.split("href=\"#tl-").skip(1) {
        let id = &href[..href.find('"').unwrap()];
        assert!(html.contains(&format!("id=\"tl-{id}\"")), "link #tl-{id} has no target in the timeline");
    }
    assert!(html.len() < 2 * 1024 * 1024, "page is {} bytes", html.len());
    let (_, _) = chromium(&["--window-size=1400,3000", &format!("--screenshot={}", shot.display())], page);
    assert!(std::fs::metadata(shot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot at {}", shot.display());
}

/// The only URL a self-contained page may carry is the SVG namespace.
fn only_svg_namespace(html: &str) -> bool {
    html.replace("http://www.w3.org/2000/svg", "").find("http").is_none()
}

#[test]
fn reports_render_in_headless_chromium_with_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let storm = scenarios.join("contention-storm.toml");
    let pause = scenarios.join("holder-pause.toml");
    lockbench(&[
        "run",
        storm.to_str().unwrap(),
        pause.to_str().unwrap(),
        "--backend",
        "inprocess,sqlite,sqlite-naive",
        "--duration",
        "1500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for name in ["contention-storm", "holder-pause"] {
        let page = out.join(name).join("report.html");
        let html = std::fs::read_to_string(&page).unwrap();
        // sqlite-naive is unsafe in both: its violations link into the timeline.
        assert!(html.contains("href=\"#tl-sqlite_naive-"), "{name}: no violation link into the timeline");
        check_page(&page, &shots.join(format!("report-{name}.png")));
        if name == "holder-pause" {
            // Each backend's lane holds exactly its own fault windows (two charts).
            let s: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(name).join("summary.json")).unwrap()).unwrap();
            for b in s["backends"].as_array().unwrap() {
                let n = b["name"].as_str().unwrap();
                let lane = format!("<g class=\"lane\" data-backend=\"{n}\">");
                let windows: usize = html
                    .split(&lane)
                    .skip(1)
                    .map(|l| l.split("</g>").next().unwrap().matches("lane-window").count())
                    .sum();
                assert_eq!(windows, 2 * b["faults"].as_array().unwrap().len(), "{n}'s lanes");
            }
            // The evidence holds the deciding event: the paused holder's late write,
            // refused by fencing.
            let violations = html.split("id=\"violations\"").nth(1).unwrap();
            assert!(violations.contains("Write fail") && violations.contains("stale token"), "no refused write");
        }
        if name == "contention-storm" {
            // One client re-taking a free lock is starvation, not speed: said so.
            for b in ["inprocess", "sqlite"] {
                assert!(html.contains(&format!("Starvation on {b}:")), "no starvation warning for {b}");
            }
            assert!(!html.contains("Starvation on sqlite-naive"), "sqlite-naive shares its grants");
            assert_eq!(html.matches("class=\"chart clients\"").count(), 3, "grants per client, per backend");
        }
        eprintln!("screenshot: {}", shots.join(format!("report-{name}.png")).display());
    }
    // A violation's link zooms its timeline: the bars scale in x only, the time axis
    // is redrawn for the range shown, and no text is stretched.
    let page = out.join("holder-pause").join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("preserveAspectRatio=\"none\""), "nothing may stretch text");
    let id = html.split("href=\"#tl-sqlite_naive-").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let zoomed = PathBuf::from(format!("{}#tl-sqlite_naive-{id}", page.display()));
    let (dom, _) = chromium(&["--dump-dom"], &zoomed);
    let svg = dom.split("data-zoomed=\"").nth(1).expect("the linked timeline is zoomed");
    let (t0, t1) = svg.split('"').next().unwrap().split_once(' ').unwrap();
    let (t0, t1): (f64, f64) = (t0.parse().unwrap(), t1.parse().unwrap());
    assert!(t1 > t0 && t1 - t0 < 1.5, "zoomed in on the hold: {t0}..{t1}");
    let bars = svg.split("class=\"bars\"").nth(1).unwrap();
    let k: f64 = bars.split("scale(").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(k > 1.0, "the bars are scaled in x: {k}");
    let axis = svg.split("class=\"xticks\"").nth(1).unwrap().split("</g>").next().unwrap();
    let first_tick: f64 =
        axis.split("text-anchor=\"middle\">").nth(1).unwrap().split('s').next().unwrap().parse().unwrap();
    assert!(first_tick >= t0 && first_tick <= t1, "the axis shows the zoomed range: {axis}");
    // Rebuilt from the folder, the page is the same size give or take the stamp.
    let page = out.join("holder-pause").join("report.html");
    let before = std::fs::read_to_string(&page).unwrap();
    lockbench(&["report", out.join("holder-pause").to_str().unwrap()]);
    let after = std::fs::read_to_string(&page).unwrap();
    assert_eq!(before, after, "a rebuilt report differs from the original");
    // The index and the comparison page render too.
    lockbench(&["index", out.to_str().unwrap()]);
    let index = out.join("index.html");
    assert!(std::fs::read_to_string(&index).unwrap().contains("holder-pause/report.html"));
    let cmp = out.join("cmp.html");
    lockbench(&[
        "compare",
        out.join("contention-storm").to_str().unwrap(),
        out.join("holder-pause").to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    let c = std::fs::read_to_string(&cmp).unwrap();
    assert!(c.contains("grants/s") && c.contains("sqlite-naive") && c.contains('%'), "{c}");
    let (dom, _) = chromium(&["--dump-dom"], &cmp);
    assert!(dom.contains("<table"), "comparison page did not render");
}
