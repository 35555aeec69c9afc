//! Nothing of the user's lost or leaked: `--out` folders, concurrent runs,
//! unwritable and full places, re-rendering that checks what it reads, and
//! passwords that never reach an output. Real runs of the `lockbench` binary.
//!
//! Tests that mount file systems need root; they are `#[ignore]`d so that without
//! root they show as not run (never as passed). `scripts/test` runs them when it
//! runs as root (CI does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, lockbench, scenario, text};

/// A short run of contention-storm on inprocess into `out`.
fn quick(out: &Path, cwd: &Path, extra: &[&str]) -> Output {
    let storm = scenario("contention-storm");
    let mut a = vec!["run", &storm, "-b", "inprocess", "--duration", "300ms", "--out", out.to_str().unwrap()];
    a.extend_from_slice(extra);
    lockbench(&a, cwd)
}

/// Every file under `d`, with its bytes.
fn snapshot(d: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![d.to_owned()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let q = e.path();
            if q.is_dir() {
                stack.push(q);
            } else {
                m.insert(q.strip_prefix(d).unwrap().to_owned(), std::fs::read(&q).unwrap());
            }
        }
    }
    m
}

fn user_folder(d: &Path) -> PathBuf {
    let f = d.join("thesis");
    std::fs::create_dir_all(f.join("src")).unwrap();
    std::fs::create_dir_all(f.join(".git")).unwrap();
    std::fs::write(f.join("src/a.rs"), "fn main() {}\n").unwrap();
    std::fs::write(f.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(f.join("thesis.tex"), "\\chapter{Locks}\n").unwrap();
    f
}

#[test]
fn a_folder_that_is_not_a_result_is_refused_before_the_run_and_left_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let f = user_folder(d.path());
    let before = snapshot(d.path());
    for extra in [&[][..], &["--force"][..]] {
        let o = quick(&f, d.path(), extra);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("holds files lockbench did not write"), "{t}");
        assert!(!t.contains("grants"), "refused before the run: {t}");
        assert_eq!(snapshot(d.path()), before, "nothing changed, nothing added beside it");
    }
}

#[test]
fn dot_dotdot_and_the_current_folder_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("d/sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(d.path().join("d/keep.txt"), "mine").unwrap();
    let before = snapshot(d.path());
    for out in [".", "..", "d/sub/..", "d/sub/.", "./"] {
        let o = quick(Path::new(out), d.path(), &["--force"]);
        assert_eq!(o.status.code(), Some(1), "--out {out}: {}", text(&o));
        assert!(text(&o).contains("--out"), "{}", text(&o));
    }
    // The current folder and its parent, named by path.
    let o = quick(&sub, &sub, &["--force"]);
    assert!(text(&o).contains("current folder"), "{}", text(&o));
    let o = quick(&d.path().join("d"), &sub, &["--force"]);
    assert!(text(&o).contains("current folder"), "{}", text(&o));
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn a_result_is_replaced_only_with_force_and_only_its_own_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    assert!(quick(&out, d.path(), &[]).status.success());
    std::fs::write(out.join("notes.md"), "my notes").unwrap();
    let first = std::fs::read(out.join("summary.json")).unwrap();
    let o = quick(&out, d.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), first, "refused: untouched");
    let o = quick(&out, d.path(), &["--force", "--seed", "99"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(out.join("notes.md")).unwrap(), "my notes");
    assert!(std::fs::read_to_string(out.join("summary.json")).unwrap().contains("\"seed\": 99"));
    assert!(!d.path().join("r.partial").exists() && !d.path().join("r.lockbench-lock").exists());
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_at_start_and_the_first_finishes_intact() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("busy");
    let storm = scenario("contention-storm");
    let first = Command::new(bin())
        .args(["run", &storm, "-b", "inprocess", "--duration", "2s", "--out", out.to_str().unwrap()])
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !d.path().join("busy.lockbench-lock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the first run never claimed its folder");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = quick(&out, d.path(), &["--force"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("another lockbench run (pid {})", first.id())), "{t}");
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["scenario"], "contention-storm");
    assert!(out.join("report.html").is_file() && out.join("history.jsonl.zst").is_file());
    // The history belongs to that summary: the report rebuilds.
    assert!(lockbench(&["report", out.to_str().unwrap()], d.path()).status.success());
}

#[test]
fn same_named_scenarios_get_two_folders() {
    let d = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(scenario("contention-storm")).unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
        std::fs::write(d.path().join(sub).join("dup.toml"), &body).unwrap();
    }
    let args = ["run", "a/dup.toml", "b/dup.toml", "-b", "inprocess", "--duration", "200ms"];
    let o = lockbench(&args, d.path());
    assert!(o.status.success(), "{}", text(&o));
    let runs: Vec<String> = std::fs::read_dir(d.path().join("results"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("summary.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    // And with --out: one folder of results, a subfolder each.
    let mut a = args.to_vec();
    a.extend(["--out", "many"]);
    let o = lockbench(&a, d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.path().join("many/dup/summary.json").is_file() && d.path().join("many/dup-2/summary.json").is_file());
}

#[test]
fn a_regular_file_and_a_name_over_name_max_are_refused_before_the_run() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("afile");
    std::fs::write(&f, "data").unwrap();
    let o = quick(&f, d.path(), &["--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is a file"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
    let long = d.path().join("x".repeat(300));
    let o = quick(&long, d.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("File name too long"), "{}", text(&o));
    assert!(!text(&o).contains("grants"), "refused before the run: {}", text(&o));
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, opts: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(at).output().unwrap();
        assert!(o.status.success(), "mount: {}", text(&o));
        Mount(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (mounts a read-only tmpfs); scripts/test runs it as root"]
fn a_read_only_mount_is_refused_before_the_run() {
    let d = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(&d.path().join("ro"), "ro,size=1m");
    let o = quick(&m.0.join("r"), d.path(), &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("Read-only file system"), "{t}");
    assert!(t.contains(&m.0.join("r").display().to_string()), "names the path: {t}");
    assert!(!t.contains("grants"), "refused before the run: {t}");
}

#[test]
#[ignore = "needs root (mounts a small tmpfs); scripts/test runs it as root"]
fn a_full_disk_names_the_file_and_the_partial_folder_and_keeps_the_figures() {
    let d = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(&d.path().join("small"), "size=64k");
    let out = m.0.join("r");
    let storm = scenario("contention-storm");
    let o =
        lockbench(&["run", &storm, "-b", "inprocess", "--duration", "500ms", "--out", out.to_str().unwrap()], d.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    let partial = m.0.join("r.partial");
    assert!(t.contains(&partial.display().to_string()), "names the partial folder: {t}");
    assert!(t.contains("grants") && t.contains("inprocess"), "the figures are printed: {t}");
    assert!(partial.is_dir(), "what was written is kept");
    assert!(!out.exists(), "no folder pretends to be whole");
}

fn two_runs(d: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (d.join("a"), d.join("b"));
    assert!(quick(&a, d, &["--seed", "1"]).status.success());
    assert!(quick(&b, d, &["--seed", "2"]).status.success());
    (a, b)
}

#[test]
fn report_refuses_an_emptied_or_foreign_history_and_keeps_the_report() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(d.path());
    let page = std::fs::read(a.join("report.html")).unwrap();
    let history = common::history_text(&a).into_bytes();

    common::write_history_text(&a, b"");
    let o = lockbench(&["report", a.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not re-rendering"), "{}", text(&o));
    assert_eq!(std::fs::read(a.join("report.html")).unwrap(), page);

    std::fs::copy(b.join("history.jsonl.zst"), a.join("history.jsonl.zst")).unwrap();
    let o = lockbench(&["report", a.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("from another run"), "{}", text(&o));
    assert_eq!(std::fs::read(a.join("report.html")).unwrap(), page);

    // Half of the right history is still refused.
    let lines: Vec<&[u8]> = history.split(|&c| c == b'\n').collect();
    common::write_history_text(&a, &lines[..lines.len() / 2].join(&b'\n'));
    let o = lockbench(&["report", a.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(a.join("report.html")).unwrap(), page);

    common::write_history_text(&a, &history);
    assert!(lockbench(&["report", a.to_str().unwrap()], d.path()).status.success());
}

#[test]
fn compare_warns_on_different_seeds_and_writes_only_over_its_own_pages() {
    let d = tempfile::tempdir().unwrap();
    let (_, b) = two_runs(d.path());
    let summary = std::fs::read(b.join("summary.json")).unwrap();
    let o = lockbench(&["compare", "a", "b", "--out", "b/summary.json"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a page lockbench wrote"), "{}", text(&o));
    assert_eq!(std::fs::read(b.join("summary.json")).unwrap(), summary);
    let o = lockbench(&["compare", "a", "b", "--out", "cmp.html"], d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("seeds differ"), "{}", text(&o));
    let page = std::fs::read_to_string(d.path().join("cmp.html")).unwrap();
    assert!(page.contains("<b>verdict</b>") && page.contains("href=\"a/report.html\""), "verdict row, links");
    assert!(page.contains("/s</td>") && page.contains("not coloured"), "formatted values, the noise rule said");
    assert!(page.contains("id=\"cmp-inprocess\""), "both percentile curves on one chart");
    // Its own page it may write again.
    assert!(lockbench(&["compare", "a", "b", "--out", "cmp.html"], d.path()).status.success());
}

#[test]
fn index_leaves_out_folders_still_being_written() {
    let d = tempfile::tempdir().unwrap();
    let results = d.path().join("results");
    let storm = scenario("contention-storm");
    let o = lockbench(&["run", &storm, "-b", "inprocess", "--duration", "200ms"], d.path());
    assert!(o.status.success(), "{}", text(&o));
    let done: Vec<PathBuf> =
        std::fs::read_dir(&results).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    assert_eq!(done.len(), 1);
    // A copy posing as an unfinished run.
    let partial = results.join("20000101-000000-x.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(done[0].join("summary.json"), partial.join("summary.json")).unwrap();
    assert!(lockbench(&["index", "results"], d.path()).status.success());
    let index = std::fs::read_to_string(results.join("index.html")).unwrap();
    assert!(!index.contains(".partial"), "{index}");
    // An index written before pages carried lockbench's generator tag is still
    // lockbench's: a run replaces it and does not stop.
    std::fs::write(
        results.join("index.html"),
        "<!doctype html><html><head><title>lockbench results</title></head></html>",
    )
    .unwrap();
    let o = lockbench(&["run", &storm, "-b", "inprocess", "--duration", "200ms"], d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(results.join("index.html")).unwrap().contains("generator"));
    // A user's own index.html is never written over.
    let mine = d.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("index.html"), "<p>my page</p>").unwrap();
    let o = lockbench(&["index", "mine"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(mine.join("index.html")).unwrap(), "<p>my page</p>");
}
