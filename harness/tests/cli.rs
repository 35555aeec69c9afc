//! The `lockbench` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn lockbench(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockbench")).args(args).current_dir(cwd).output().expect("run lockbench")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scenarios() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn a_malformed_scenario_exits_non_zero_naming_file_line_and_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "clients = 4\nduration = \"1s\"\n[keys]\ncount = 3\n[lock]\nlease = \"1s\"\nwiat = \"2s\"\n")
        .unwrap();
    let out_dir = dir.path().join("out");
    let o = lockbench(&["run", bad.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("bad.toml:7:1:"), "{t}");
    assert!(t.contains("unknown field `wiat`"), "{t}");
    assert!(!out_dir.exists(), "a refused run wrote output");

    std::fs::write(&bad, "clients = 0\nduration = \"1s\"\n[keys]\ncount = 3\n[lock]\nlease = \"1s\"\n").unwrap();
    let t = text(&lockbench(&["run", bad.to_str().unwrap()], dir.path()));
    assert!(t.contains("bad.toml:1:11: field `clients`: must be at least 1"), "{t}");
    assert!(!dir.path().join("results").exists(), "a refused run wrote output");
}

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let storm = scenarios().join("contention-storm.toml");
    let o = lockbench(&["run", storm.to_str().unwrap(), "--backend", "zookeepr"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown backend `zookeepr`"), "{}", text(&o));
    let o = lockbench(&["run", storm.to_str().unwrap(), "--duration", "5 fortnights"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("--duration"), "{}", text(&o));
    let o = lockbench(&["run", "no-such-scenario"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("no-such-scenario.toml"), "{}", text(&o));
    assert!(!dir.path().join("results").exists());
}

#[test]
fn a_run_writes_a_whole_result_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run1");
    let storm = scenarios().join("lease-too-short.toml");
    let o = lockbench(
        &[
            "run",
            storm.to_str().unwrap(),
            "--backend",
            "inprocess,sqlite",
            "--duration",
            "400ms",
            "--seed",
            "7",
            "--out",
            out.to_str().unwrap(),
            "--fail-on-violation",
        ],
        dir.path(),
    );
    // lease-too-short must show violations, so --fail-on-violation says so.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    for f in ["summary.json", "history.jsonl.zst", "inprocess.hlog", "sqlite.hlog", "report.html", "scenario.toml"] {
        assert!(out.join(f).is_file(), "{f} missing: {}", text(&o));
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["schema_version"], 2);
    assert_eq!(s["scenario"], "lease-too-short");
    assert_eq!(s["seed"], 7);
    let b = &s["backends"][0];
    assert_eq!(b["name"], "inprocess");
    // Exit 3 means a verdict of broken or data-lost somewhere.
    let words: Vec<&str> = s["backends"].as_array().unwrap().iter().map(|b| b["verdict"].as_str().unwrap()).collect();
    assert!(words.iter().any(|w| *w == "broken" || *w == "data-lost"), "{words:?}");
    for k in [
        "grants",
        "acquire_latency_us",
        "violations",
        "verdict",
        "writes_acknowledged",
        "increments_lost",
        "clobbering_writes",
        "holds_overlapped",
        "overlap_episodes",
        "max_holders",
        "errors",
        "unavailable_seconds",
        "stale_writes_refused",
        "token_regressions",
        "unknown_outcomes",
        "acquire_timeouts",
        "fairness",
    ] {
        assert!(!b[k].is_null(), "summary lacks {k}");
    }
    for p in ["p50", "p99", "p999", "max"] {
        assert!(b["acquire_latency_us"][p].as_u64().is_some(), "acquire_latency_us.{p}");
    }
    assert!(b["grants"].as_u64().unwrap() > 0);
    assert!(b["violations"]["after_expiry"].as_u64().unwrap() > 0);
    assert_eq!(b["violations"]["within_lease"], 0);
    // Each violation names its events.
    let ov = &b["overlaps"][0];
    assert!(ov["first"]["events"].as_array().unwrap().len() >= 2, "{ov}");
    assert!(ov["second"]["events"].as_array().unwrap().len() >= 2, "{ov}");
    assert!(s["command"].as_str().unwrap().contains("--seed 7"));
    let hlog = std::fs::read_to_string(out.join("inprocess.hlog")).unwrap();
    assert!(hlog.contains("Tag=acquire-ok"), "{hlog}");
    let history = history_text(&out);
    assert!(history.lines().count() > 10);
    assert!(!dir.path().join("run1.partial").exists());
    // The report can be rebuilt from the folder.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let o = lockbench(&["report", out.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("inprocess") && html.contains("after a lease expired"));
}

#[test]
fn list_names_scenarios_and_backends() {
    let o = lockbench(&["list"], Path::new(env!("CARGO_MANIFEST_DIR")).join("..").as_path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for w in ["contention-storm", "many-keys", "lease-too-short", "inprocess", "sqlite-naive", "available (embedded)"] {
        assert!(t.contains(w), "list lacks {w}: {t}");
    }
}

#[test]
fn every_backend_is_compiled_into_the_default_build_and_momento_says_it_needs_its_key() {
    // The binary under test is the default build: nothing may read "not compiled in".
    let o = Command::new(env!("CARGO_BIN_EXE_lockbench"))
        .arg("list")
        .env_remove("MOMENTO_API_KEY")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run lockbench");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for b in lockbench_backends::registry() {
        let line = t
            .lines()
            .find(|l| l.split_whitespace().next() == Some(b.name))
            .unwrap_or_else(|| panic!("{} is not listed: {t}", b.name));
        // etcd's client needs protoc at build time: its own feature (scripts/setup).
        if !b.name.starts_with("etcd") {
            assert!(!line.contains("not compiled in"), "{}: {line}", b.name);
        }
    }
    let line = t.lines().find(|l| l.trim_start().starts_with("momento ")).expect("momento is listed");
    assert!(line.contains("needs MOMENTO_API_KEY (a hosted service: no local server)"), "{t}");
    let line = t.lines().find(|l| l.trim_start().starts_with("dynamodb-cas ")).expect("dynamodb-cas is listed");
    assert!(line.contains("available (1 local dynamodb server(s))"), "{t}");
}

#[test]
fn server_backends_state_their_round_trip_floor_and_latencies_in_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rtt");
    let storm = scenarios().join("contention-storm.toml");
    let o = lockbench(
        &[
            "run",
            storm.to_str().unwrap(),
            "--backend",
            "redis,sqlite",
            "--duration",
            "500ms",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("round trip to the server: p50"), "{t}");
    assert!(t.contains(" RTT)") && t.contains("(— RTT)"), "redis in round trips, sqlite without: {t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let redis = &s["backends"][0];
    assert_eq!(redis["name"], "redis");
    assert!(redis["rtt_us"]["p50_us"].as_f64().unwrap() > 0.0, "{redis}");
    assert!(redis["rtt_us"]["pings"].as_u64().unwrap() >= 100, "{redis}");
    assert!(redis["p50_rtt"]["acquire"].as_f64().unwrap() > 0.0, "{redis}");
    assert!(s["backends"][1]["rtt_us"].is_null(), "sqlite has no server");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("RTT") && html.contains("no server: — RTT"), "the report states it too");
}

#[test]
fn verdicts_are_held_against_the_expected_table_in_the_report_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let pause = scenarios().join("holder-pause.toml");
    let o = lockbench(
        &[
            "run",
            pause.to_str().unwrap(),
            "--backend",
            "inprocess,sqlite-naive",
            "--duration",
            "1500ms",
            "--results",
            results.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let run = std::fs::read_dir(&results).unwrap().flatten().find(|e| e.path().is_dir()).unwrap().path();
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["backends"][0]["expected"], "fenced");
    assert_eq!(s["backends"][1]["expected"], "broken");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert_eq!(html.matches("as expected").count(), 2, "both pairs as expected");
    let index = std::fs::read_to_string(results.join("index.html")).unwrap();
    assert!(index.contains("as expected (2 of 2)"), "a deliberately unsafe backend is not a red run: {index}");
    assert!(!index.contains("UNEXPECTED"));
}

#[test]
fn an_open_load_starts_on_schedule_and_reports_corrected_latency_and_rates() {
    open_load_starts_on_schedule("task");
}

/// Worker processes take longer to be ready than tasks (a process to start, a
/// backend to open): the schedule still starts when the last one is.
#[test]
fn an_open_load_of_worker_processes_starts_when_every_worker_is_ready() {
    open_load_starts_on_schedule("process");
}

fn open_load_starts_on_schedule(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scen = dir.path().join("open.toml");
    std::fs::write(
        &scen,
        format!(
            "clients = 8\nduration = \"2s\"\nclient_mode = \"{mode}\"\n[keys]\ncount = 1000\n[lock]\nlease = \"1s\"\n\
             wait = \"0s\"\n[work]\nhold = \"1ms\"\n[load]\nmodel = \"open\"\nrate = 200\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("o");
    let o =
        lockbench(&["run", scen.to_str().unwrap(), "--backend", "sqlite", "--out", out.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("open load: offered 200/s"), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let b = &s["backends"][0];
    assert_eq!(b["offered_per_s"], 200.0);
    let start = b["start_ns"].as_u64().unwrap();
    // The first second issues requests at the offered rate (±20 %): no silent
    // start followed by a catch-up burst.
    let first_second = history_text(&out)
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["f"] == "acquire" && e["type"] == "invoke")
        .filter(|e| e["t"].as_u64().unwrap().saturating_sub(start) < 1_000_000_000)
        .count();
    assert!((160..=240).contains(&first_second), "{first_second} requests in the first second for 200/s");
    if mode == "process" {
        // The schedule waited for the workers (a process to start, a backend to
        // open each): that set-up is the warm-up, outside the load window.
        assert!(b["warm_up_s"].as_f64().unwrap() > 0.0, "the schedule did not wait for the workers: {b}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"open-load\"") && html.contains("corrected p99"), "corrected latency first");
}

#[test]
fn repeated_runs_record_their_spread_and_compare_judges_changes_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let storm = scenarios().join("contention-storm.toml");
    for name in ["a", "b"] {
        let out = dir.path().join(name);
        let o = lockbench(
            &[
                "run",
                storm.to_str().unwrap(),
                "--backend",
                "sqlite",
                "--clients",
                "4",
                "--duration",
                "400ms",
                "--repeat",
                "3",
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("spread over 3 runs (same seed)"), "{t}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let b = &s["backends"][0];
        assert_eq!(b["repeats"]["runs"], 3);
        assert_eq!(b["repeats"]["verdicts"], serde_json::json!(["safe", "safe", "safe"]), "each run's verdict");
        let grants = b["repeats"]["figures"]["grants/s"].as_array().unwrap();
        assert_eq!(grants.len(), 3, "one value per run");
        assert_eq!(grants[0], b["grants_per_s"], "the kept run is the first");
        assert!(s["command"].as_str().unwrap().contains("--repeat 3"), "the command that reproduces it: {s}");
        assert!(grants.iter().all(|g| g.as_f64().unwrap() > 0.0), "every run granted: {grants:?}");
    }
    let cmp = dir.path().join("cmp.html");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let o =
        lockbench(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--out", cmp.to_str().unwrap()], dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("noise: measured from repeated runs (A: 3 runs, B: 3 runs"), "{t}");
    let page = std::fs::read_to_string(&cmp).unwrap();
    assert!(page.contains("(measured, A: 3 runs, B: 3 runs)"), "each figure's threshold and its source: {page}");
    // A run compared with itself: nothing is coloured, every threshold measured.
    let o =
        lockbench(&["compare", a.to_str().unwrap(), a.to_str().unwrap(), "--out", cmp.to_str().unwrap()], dir.path());
    assert!(o.status.success());
    let page = std::fs::read_to_string(&cmp).unwrap();
    assert!(!page.contains("class=\"worse\"") && !page.contains("class=\"better\""), "{page}");
    assert!(!page.contains("(fixed)"), "{page}");
}

/// A result folder's history file, decompressed.
fn history_text(dir: &std::path::Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    lockbench::record::open_history(&dir.join("history.jsonl.zst")).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn history_violations_keeps_only_the_evidence_and_none_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storm = scenarios().join("contention-storm.toml");
    let run = |name: &str, mode: &str| {
        let out = dir.path().join(name);
        let o = lockbench(
            &["run", storm.to_str().unwrap(), "-b", "sqlite-naive", "--duration", "1s", "--history", mode, "--out"]
                .into_iter()
                .chain([out.to_str().unwrap()])
                .collect::<Vec<_>>(),
            dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        (out, s)
    };
    let (full, sf) = run("full", "full");
    let (viol, sv) = run("violations", "violations");
    let (none, sn) = run("none", "none");
    assert_eq!(
        (sf["history"].as_str(), sv["history"].as_str(), sn["history"].as_str()),
        (Some("full"), Some("violations"), Some("none"))
    );
    // The same verdicts whatever is kept.
    assert_eq!(sv["backends"][0]["verdict"], sf["backends"][0]["verdict"]);
    assert_eq!(sf["backends"][0]["verdict"], "broken", "sqlite-naive breaks under the storm");
    // The evidence: fewer events than the whole history, and each example's events.
    let kept = history_text(&viol).lines().count() as u64 - 1;
    assert_eq!(kept, sv["history_events"].as_u64().unwrap());
    assert!(kept > 0 && kept < sf["history_events"].as_u64().unwrap() / 2, "{kept} of {}", sf["history_events"]);
    let ov = &sv["backends"][0]["overlaps"][0];
    let first = ov["first"]["events"][0]["t"].as_u64().unwrap();
    assert!(history_text(&viol).contains(&format!("\"t\":{first},")), "an example's event is kept");
    assert!(!none.join("history.jsonl.zst").exists() && sn["history_events"] == 0);
    // Neither can be re-checked or re-rendered: said, and nothing changed.
    for d in [&viol, &none] {
        let page = std::fs::read(d.join("report.html")).unwrap();
        for cmd in ["check", "report"] {
            let o = lockbench(&[cmd, d.to_str().unwrap()], dir.path());
            assert_eq!(o.status.code(), Some(1), "{cmd}: {}", text(&o));
            assert!(text(&o).contains("--history"), "{cmd}: {}", text(&o));
        }
        assert_eq!(std::fs::read(d.join("report.html")).unwrap(), page);
    }
    assert!(lockbench(&["report", full.to_str().unwrap()], dir.path()).status.success());
}

#[test]
fn a_sweep_runs_every_backend_at_every_point_and_charts_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let many = scenarios().join("many-locks.toml");
    let args = [
        "run",
        many.to_str().unwrap(),
        "--backend",
        "inprocess,sqlite",
        "--sweep",
        "keys.held=10,300",
        "--duration",
        "300ms",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = lockbench(&args, dir.path());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("300 locks held beside the load (keys.held)"), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["sweep"], serde_json::json!({"field": "keys.held", "values": [10, 300]}));
    let names: Vec<&str> = s["backends"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["inprocess@keys.held=10", "sqlite@keys.held=10", "inprocess@keys.held=300", "sqlite@keys.held=300"]
    );
    for b in s["backends"].as_array().unwrap() {
        assert_eq!(b["sweep_value"], b["held_locks"], "{b}");
        // Held to its backend's row of scenarios/expected.toml.
        assert_eq!(b["expected"], "safe", "{b}");
        assert!(b["grants"].as_u64().unwrap() > 0 && b["verdict"] == "safe", "{b}");
    }
    assert!(s["command"].as_str().unwrap().contains("--sweep keys.held=10,300"), "{}", s["command"]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in ["id=\"sweep\"", "id=\"sweep-p50\"", "id=\"sweep-p99\"", "id=\"sweep-rate\"", "<table class=\"sweep\">"] {
        assert!(html.contains(id), "the report lacks {id}");
    }
    // A re-check keeps the points and what was measured beside the history.
    let o = lockbench(&["check", out.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["backends"][3]["sweep_value"], 300);
    assert_eq!(s["backends"][3]["held_locks"], 300);
    // A bad sweep is refused before anything runs, naming the flag.
    let o =
        lockbench(&["run", many.to_str().unwrap(), "--backend", "inprocess", "--sweep", "lock.lease=1,2"], dir.path());
    assert!(!o.status.success() && text(&o).contains("--sweep `lock.lease=1,2`: cannot sweep over"), "{}", text(&o));
    assert!(!dir.path().join("results").exists());
}

#[test]
fn no_nodes_keeps_every_server_on_loopback_and_says_which_scenarios_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let netns =
        || std::process::Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    let before = netns();
    // A peer partition needs nodes: with --no-nodes the pair is not run (never
    // run without its cut), and a command in which nothing ran fails.
    let pp = scenarios().join("peer-partition.toml");
    let o = lockbench(&["run", pp.to_str().unwrap(), "-b", "zookeeper", "--no-nodes"], dir.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("not run on zookeeper: peer-partition: network nodes are turned off (--no-nodes)"), "{t}");
    assert!(t.contains("error: nothing ran for peer-partition"), "{t}");
    assert_eq!(netns(), before, "no namespace was made");
    let o = lockbench(&["list", "--no-nodes"], dir.path());
    let t = text(&o);
    let line = t.lines().find(|l| l.trim_start().starts_with("peer-partition")).unwrap_or_default();
    assert!(line.contains("[NOT RUNNABLE HERE: network nodes are turned off (--no-nodes)]"), "{t}");
    let line = t.lines().find(|l| l.trim_start().starts_with("leader-kill")).unwrap_or_default();
    assert!(!line.contains("NOT RUNNABLE"), "leader-kill needs no nodes: {t}");
    // Servers that do not talk to each other have nothing to cut apart: Redlock's
    // five are not run (said why), root or not, and nothing is made for them.
    let o = lockbench(&["run", pp.to_str().unwrap(), "-b", "redlock"], dir.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("not run on redlock: peer-partition cuts cluster members apart: 5 redis server(s)"), "{t}");
    assert_eq!(netns(), before, "no namespace was made");
    // --nodes and --no-nodes contradict each other.
    let o = lockbench(&["run", pp.to_str().unwrap(), "-b", "redis", "--nodes", "--no-nodes"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn ratios_pair_the_backends_of_each_sweep_point_and_leave_out_pairs_that_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.toml");
    std::fs::write(
        &f,
        "clients = 2\nduration = \"500ms\"\nratios = [\"sqlite / inprocess\", \"redis / inprocess\"]\n\
         [keys]\ncount = 100\n[lock]\nlease = \"2s\"\nwait = \"0s\"\n[work]\ncycle = \"acquire-only\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = lockbench(
        &[
            "run",
            f.to_str().unwrap(),
            "-b",
            "sqlite,inprocess",
            "--sweep",
            "clients=1,2",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let pairs: Vec<(&str, &str)> = s["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["of"].as_str().unwrap(), r["to"].as_str().unwrap()))
        .collect();
    // One ratio per point, each over the other backend at the same point; redis
    // did not run, so its pair is not shown.
    assert_eq!(
        pairs,
        vec![("sqlite@clients=1", "inprocess@clients=1"), ("sqlite@clients=2", "inprocess@clients=2")],
        "{s}"
    );
    assert!(t.contains("acquire latency sqlite@clients=2 / inprocess@clients=2: p50 "), "{t}");
}
