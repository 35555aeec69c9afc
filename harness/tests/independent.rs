//! Verdicts that can be checked by someone else: `lockbench check` re-judges an
//! edited history; histories from Jepsen are read and judged; and an independent
//! checker (Porcupine, through `scripts/porcupine`, a Go program that shares no
//! code with lockbench) agrees with lockbench on every run it checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{lockbench, summary, text};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jepsen").join(name).to_string_lossy().into_owned()
}

/// The history as (header, events).
fn read(dir: &Path) -> (String, Vec<Value>) {
    let t = common::history_text(dir);
    let mut lines = t.lines();
    let header = lines.next().unwrap().to_owned();
    (header, lines.map(|l| serde_json::from_str(l).unwrap()).collect())
}

fn write(dir: &Path, header: &str, events: &[Value]) {
    let mut t = format!("{header}\n");
    for e in events {
        t.push_str(&e.to_string());
        t.push('\n');
    }
    common::write_history_text(dir, t.as_bytes());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn is(e: &Value, f: &str, kind: &str) -> bool {
    e["f"] == f && e["type"] == kind
}

#[test]
fn check_reports_each_hand_made_violation_in_an_edited_history() {
    let d = tempfile::tempdir().unwrap();
    let clean = d.path().join("clean");
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/contention-storm.toml");
    let o = lockbench(
        &[
            "run",
            storm.to_str().unwrap(),
            "-b",
            "inprocess",
            "--clients",
            "4",
            "--duration",
            "400ms",
            "--out",
            clean.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let written = std::fs::read(clean.join("summary.json")).unwrap();
    let o = lockbench(&["check", clean.to_str().unwrap()], d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("same figures"), "an untouched history re-checks the same: {}", text(&o));
    // Checked twice: the summary the run wrote is still the one kept.
    let o = lockbench(&["check", clean.to_str().unwrap()], d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(clean.join("summary.prev.json")).unwrap(), written, "the run's own summary is kept");
    assert!(!d.path().join("clean.lockbench-lock").exists(), "the folder's lock is gone after the check");
    assert_eq!(summary(&clean)["backends"][0]["safe"], true);
    let (header, events) = read(&clean);
    let grants: Vec<usize> = (0..events.len()).filter(|&i| is(&events[i], "acquire", "ok")).collect();
    assert!(grants.len() > 10);

    // 1. Two holds made to overlap within the lease: a holder's release is moved
    //    after the next grant of its key.
    let (g1, g2) = (grants[3], grants[4]);
    let owner = events[g1]["owner"].clone();
    let rel = (g1..g2).find(|&i| is(&events[i], "release", "invoke") && events[i]["owner"] == owner).unwrap();
    let mut ev = events.clone();
    ev[rel]["t"] = Value::from(events[g2]["t"].as_u64().unwrap() + 1_000);
    let dir = d.path().join("overlap");
    copy_dir(&clean, &dir);
    write(&dir, &header, &ev);
    let o = lockbench(&["check", dir.to_str().unwrap(), "--fail-on-violation"], d.path());
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let b = &summary(&dir)["backends"][0];
    assert!(b["violations"]["within_lease"].as_u64().unwrap() >= 1, "{b}");
    assert!(text(&o).contains("violations.within_lease 0 → "), "{}", text(&o));
    assert!(dir.join("summary.prev.json").is_file(), "the old summary is kept");
    assert_eq!(summary(&clean)["backends"][0]["safe"], true, "only the edited copy changed");

    // 2. Two tokens swapped between consecutive grants, the second asked for after
    //    the first was granted (acquires that wait side by side are not ordered, so
    //    a swap between them is no regression).
    let invoked_after = |a: usize, b: usize| {
        let c = &events[b]["client"];
        (0..b).rev().find(|&i| events[i]["client"] == *c && is(&events[i], "acquire", "invoke")).is_some_and(|i| i > a)
    };
    let k = (0..grants.len() - 1).find(|&k| invoked_after(grants[k], grants[k + 1])).expect("a grant asked for later");
    let (g1, g2) = (grants[k], grants[k + 1]);
    let mut ev = events.clone();
    let (t1, t2) = (ev[g1]["token"].clone(), ev[g2]["token"].clone());
    assert_ne!(t1, t2);
    ev[g1]["token"] = t2;
    ev[g2]["token"] = t1;
    let dir = d.path().join("tokens");
    copy_dir(&clean, &dir);
    write(&dir, &header, &ev);
    let o = lockbench(&["check", dir.to_str().unwrap(), "--fail-on-violation"], d.path());
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(summary(&dir)["backends"][0]["token_regressions"].as_u64().unwrap() >= 1);

    // 3. A write made to overwrite its predecessor: it claims the read (version and
    //    value) that the previous write on its key started from.
    let writes: Vec<usize> = (0..events.len()).filter(|&i| is(&events[i], "write", "invoke")).collect();
    let (w1, w2) = (writes[2], writes[3]);
    assert_eq!(events[w1]["key"], events[w2]["key"]);
    let mut ev = events.clone();
    ev[w2]["b"] = events[w1]["b"].clone();
    ev[w2]["a"] = events[w1]["a"].clone();
    let dir = d.path().join("clobber");
    copy_dir(&clean, &dir);
    write(&dir, &header, &ev);
    let o = lockbench(&["check", dir.to_str().unwrap(), "--fail-on-violation"], d.path());
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let b = &summary(&dir)["backends"][0];
    let clobbered = b.get("clobbering_writes").or_else(|| b.get("lost_updates")).and_then(Value::as_u64);
    assert!(clobbered.unwrap_or(0) >= 1, "{b}");
}

#[test]
fn jepsen_histories_are_read_and_judged() {
    let d = tempfile::tempdir().unwrap();
    // A release the service refused (its lease was gone) does not end the hold: the
    // next grant is a second holder.
    let o = lockbench(
        &["check", "--history", &fixture("lost-lease.edn"), "--format", "jepsen-edn", "--fail-on-violation"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("BROKEN") && text(&o).contains("1 within both leases"), "{}", text(&o));
    let o = lockbench(
        &["check", "--history", &fixture("clean.edn"), "--format", "jepsen-edn", "--fail-on-violation"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("safe"), "{}", text(&o));
    // JSON, one object a line, reads the same.
    let json: String = lockbench_json_lines(&std::fs::read_to_string(fixture("lost-lease.edn")).unwrap());
    let jf = d.path().join("lost-lease.json");
    std::fs::write(&jf, json).unwrap();
    let o = lockbench(&["check", "--history", jf.to_str().unwrap(), "--format", "jepsen-json"], d.path());
    assert!(text(&o).contains("BROKEN") && text(&o).contains("1 within both leases"), "{}", text(&o));
}

/// The EDN fixture as Jepsen JSON lines (a test-side converter, independent of the
/// importer).
fn lockbench_json_lines(edn: &str) -> String {
    let mut out = String::new();
    for line in edn.lines().filter(|l| l.starts_with('{')) {
        let mut o = serde_json::Map::new();
        let body = line.trim().trim_start_matches('{').trim_end_matches('}');
        for part in body.split(", :") {
            let part = part.trim_start_matches(':');
            let (k, v) = part.split_once(' ').unwrap();
            let v = v.trim();
            let val = if let Ok(n) = v.parse::<i64>() {
                Value::from(n)
            } else if v == "nil" {
                Value::Null
            } else {
                Value::from(v.trim_start_matches(':').trim_matches('"'))
            };
            o.insert(k.to_owned(), val);
        }
        out.push_str(&Value::Object(o).to_string());
        out.push('\n');
    }
    out
}

/// Build the Go checker once (scripts/setup fetched its module).
fn porcupine_checker(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/porcupine");
    let exe = dir.join("porcupine-check");
    let o = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(&src)
        .output()
        .expect("go (run scripts/setup; Go is needed for the independent checker)");
    assert!(o.status.success(), "go build: {}", text(&o));
    exe
}

#[test]
fn porcupine_and_lockbench_agree_on_lease_free_runs() {
    let d = tempfile::tempdir().unwrap();
    let checker = porcupine_checker(d.path());
    // Leases far longer than any hold or wait: nothing expires, so a plain mutex
    // is the whole specification.
    let scen = d.path().join("mutex.toml");
    std::fs::write(
        &scen,
        "description = \"lease-free mutex\"\nclients = 4\nduration = \"800ms\"\n[keys]\ncount = 2\n[lock]\n\
         lease = \"30s\"\nwait = \"200ms\"\n[work]\nhold = \"uniform(0ms, 2ms)\"\n",
    )
    .unwrap();
    let mut unsafe_seen = 0;
    for backend in ["sqlite", "sqlite-naive", "redis", "redis-naive"] {
        let out = d.path().join(backend);
        let o = lockbench(&["run", scen.to_str().unwrap(), "-b", backend, "--out", out.to_str().unwrap()], d.path());
        assert!(o.status.success(), "{backend}: {}", text(&o));
        let b = &summary(&out)["backends"][0];
        assert!(b["grants"].as_u64().unwrap() > 20, "{backend}: {b}");
        let ours_safe = b["safe"].as_bool().unwrap();
        let ops = d.path().join(format!("{backend}.json"));
        let o = lockbench(
            &["export", out.to_str().unwrap(), "--format", "porcupine", "--out", ops.to_str().unwrap()],
            d.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let p = Command::new(&checker).arg(&ops).output().unwrap();
        let verdict = String::from_utf8_lossy(&p.stdout).trim().to_owned();
        assert!(matches!(p.status.code(), Some(0 | 1)), "{backend}: porcupine: {}", text(&p));
        let theirs_safe = p.status.code() == Some(0);
        eprintln!("{backend:<13} lockbench safe: {ours_safe:<5}  porcupine: {verdict}");
        assert_eq!(ours_safe, theirs_safe, "{backend}: lockbench and Porcupine disagree ({verdict}): {b}");
        unsafe_seen += usize::from(!ours_safe);
    }
    // Not a vacuous agreement: the check-then-insert recipe breaks under this load.
    assert!(unsafe_seen >= 1, "sqlite-naive showed no violation");
    // And the round trip: lockbench's own history, exported as Jepsen EDN and read
    // back, gives the same verdict.
    for backend in ["sqlite", "sqlite-naive"] {
        let edn = d.path().join(format!("{backend}.edn"));
        let out = d.path().join(backend);
        let o = lockbench(
            &["export", out.to_str().unwrap(), "--format", "jepsen-edn", "--out", edn.to_str().unwrap()],
            d.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = lockbench(&["check", "--history", edn.to_str().unwrap(), "--format", "jepsen-edn"], d.path());
        let safe = summary(&out)["backends"][0]["safe"].as_bool().unwrap();
        assert_eq!(text(&o).contains(" safe"), safe, "{backend}: {}", text(&o));
    }
}
