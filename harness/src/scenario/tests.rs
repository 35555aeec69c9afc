use super::*;

fn parse(src: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(src, Path::new("scenarios/t.toml"), "t")
}

const GOOD: &str = r#"
clients = 4
duration = "5s"
[keys]
count = 10
[lock]
lease = "100ms"
"#;

#[test]
fn a_minimal_scenario_loads_with_defaults() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.clients(), 4);
    assert_eq!(s.seed, 1);
    assert_eq!(s.lock.wait.0, Duration::from_secs(1));
    assert_eq!(*s.load.model.get_ref(), LoadModel::Closed);
    assert!(s.fencing);
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let e = parse(&GOOD.replace("[lock]", "[lock]\nleese = \"1s\"")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("scenarios/t.toml:7:1: "), "{msg}");
    assert!(msg.contains("unknown field `leese`"), "{msg}");
}

#[test]
fn a_bad_value_is_named_with_its_line_and_field() {
    let e = parse(&GOOD.replace("count = 10", "count = 0")).unwrap_err().to_string();
    assert!(e.starts_with("scenarios/t.toml:5:"), "{e}");
    assert!(e.contains("field `keys.count`: must be at least 1"), "{e}");
    let e = parse(&GOOD.replace("\"100ms\"", "\"100 parsecs\"")).unwrap_err().to_string();
    assert!(e.contains(":7:") && e.contains("unknown unit"), "{e}");
    assert!(e.contains("lease = \"100 parsecs\""), "{e}");
}

#[test]
fn cross_field_rules_are_enforced() {
    let e = parse(&GOOD.replace("duration = \"5s\"", "")).unwrap_err().to_string();
    assert!(e.contains("one of `duration` and `ops`"), "{e}");
    let e = parse(&format!("{GOOD}[load]\nmodel = \"open\"\n")).unwrap_err().to_string();
    assert!(e.contains("field `load.rate`") && e.contains(":9:"), "{e}");
    let e = parse(&GOOD.replace("count = 10", "count = 10\ndistribution = \"zipf\"")).unwrap_err().to_string();
    assert!(e.contains("zipf needs zipf_s"), "{e}");
    let e = parse(&GOOD.replace("lease = \"100ms\"", "lease = \"100ms\"\nrenew_every = \"200ms\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("field `lock.renew_every`") && e.contains(":8:"), "{e}");
}

#[test]
fn faults_are_checked() {
    let ok = format!("{GOOD}[[faults]]\nkind = \"crash-holder\"\nat = \"100ms\"\n");
    assert_eq!(parse(&ok).unwrap().faults.len(), 1);
    let e =
        parse(&format!("{GOOD}[[faults]]\nkind = \"crash-holder\"\nat = \"1s\"\ncount = 9\n")).unwrap_err().to_string();
    assert!(e.contains("`count` must be between 1 and clients (4)"), "{e}");
    let e = parse(&format!("{GOOD}[[faults]]\nkind = \"meteor\"\nat = \"1s\"\n")).unwrap_err().to_string();
    assert!(e.contains("meteor"), "{e}");
    let e = parse(&format!("{GOOD}[[faults]]\nkind = \"pause-holder\"\nat = \"1s\"\npause = \"1s\"\nextra = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("extra"), "{e}");
}

#[test]
fn overrides_apply_and_bad_ones_name_the_flag() {
    let mut s = parse(GOOD).unwrap();
    s.apply_overrides(&Overrides {
        clients: Some(2),
        duration: Some(Duration::from_millis(300)),
        seed: Some(9),
        drain: None,
    })
    .unwrap();
    assert_eq!((s.clients(), s.duration(), s.seed), (2, Some(Duration::from_millis(300)), 9));
    let e = s.apply_overrides(&Overrides { clients: Some(0), ..Default::default() }).unwrap_err();
    assert!(e.contains("--clients"), "{e}");
    // Overrides meet the file's own limits, so that scenario.toml always loads again.
    let mut s = parse(GOOD).unwrap();
    let e = s.apply_overrides(&Overrides { clients: Some(100_000), ..Default::default() }).unwrap_err();
    assert!(e.contains("--clients 100000") && e.contains("at most 10000"), "{e}");
}

#[test]
fn a_fault_at_or_after_the_end_is_refused_with_the_fault_and_duration_named() {
    let late = format!("{GOOD}[[faults]]\nkind = \"crash-holder\"\nat = \"5s\"\n");
    let e = parse(&late).unwrap_err().to_string();
    assert!(e.contains("crash-holder: `at` = 5s falls at or after the end of the run (duration 5s)"), "{e}");
    assert!(e.contains("t.toml:8:"), "{e}");
    let mut s = parse(&late.replace("at = \"5s\"", "at = \"500ms\"")).unwrap();
    let e =
        s.apply_overrides(&Overrides { duration: Some(Duration::from_millis(400)), ..Default::default() }).unwrap_err();
    assert!(e.contains("--duration 400ms") && e.contains("crash-holder: `at` = 500ms falls at or after"), "{e}");
}

#[test]
fn a_server_clock_skew_is_checked() {
    let s = parse(&format!("{GOOD}[servers]\nfaketime = \"+0 x1.5\"\n")).unwrap();
    assert_eq!(s.servers.faketime.as_ref().map(|f| f.get_ref().as_str()), Some("+0 x1.5"));
    let e = parse(&format!("{GOOD}[servers]\nfaketime = \"x1.5\"\n")).unwrap_err().to_string();
    assert!(e.contains(":9:") && e.contains("field `servers.faketime`"), "{e}");
}

#[test]
fn network_and_clock_faults_are_checked_with_their_line() {
    let with = |f: &str| parse(&format!("{GOOD}\n[[faults]]\n{f}\n"));
    let ok =
        with("kind = \"partition\"\nclients = \"holder\"\nat = \"1s\"\nduration = \"2s\"\nservers = [3, 4]").unwrap();
    assert!(ok.has_network_faults() && !ok.has_client_clock_faults());
    let e =
        with("kind = \"partition\"\nclients = \"everyone\"\nat = \"1s\"\nduration = \"2s\"").unwrap_err().to_string();
    assert!(e.contains("scenarios/t.toml:9:") && e.contains("\"holder\" or client numbers"), "{e}");
    let e =
        with("kind = \"net-delay\"\nclients = \"0,7\"\nat = \"1s\"\nduration = \"2s\"\ndelay = \"5ms\"").unwrap_err();
    assert!(e.to_string().contains("client numbers go from 0 to 3"), "{e}");
    let e = with("kind = \"clock-skew\"\nat = \"1s\"\nrate = 2.0").unwrap_err().to_string();
    assert!(e.contains("either `clients` or `server`"), "{e}");
    let e = with("kind = \"clock-skew\"\nat = \"1s\"\nclients = \"all\"").unwrap_err().to_string();
    assert!(e.contains("give `rate`"), "{e}");
    let e = with("kind = \"clock-skew\"\nat = \"1s\"\nclients = \"all\"\nrate = -1.0").unwrap_err().to_string();
    assert!(e.contains("`rate` must be above 0"), "{e}");
    let ok = with("kind = \"clock-skew\"\nat = \"1s\"\nclients = \"1\"\njump = \"-10s\"").unwrap();
    assert!(ok.has_client_clock_faults());
    match ok.faults[0].get_ref() {
        crate::faults::FaultSpec::ClockSkew { jump: Some(j), .. } => assert_eq!(j.0, -10_000_000_000),
        f => panic!("{f:?}"),
    }
    assert_eq!(crate::faults::faketime_value(Some(3.0), None), "+0 x3");
    assert_eq!(crate::faults::faketime_value(Some(1.5), Some(crate::faults::SignedDur(10_000_000_000))), "+10 x1.5");
}

#[test]
fn a_sweep_names_one_field_and_every_point_is_a_valid_scenario() {
    // The quoted and the dotted form are one sweep.
    for table in [
        "[sweep]\n\"keys.held\" = [10, 20]\n",
        "[sweep]\nkeys.held = [10, 20]\n",
        "sweep = { \"keys.held\" = [10, 20] }\n",
    ] {
        let src = if table.starts_with('[') { format!("{GOOD}{table}") } else { format!("{table}{GOOD}") };
        let s = parse(&src).unwrap_or_else(|e| panic!("{table}: {e}"));
        let sw = s.sweep().unwrap();
        assert_eq!((sw.field.as_str(), sw.values.as_slice()), ("keys.held", &[10u64, 20][..]));
        let p = s.at_point(&sw, 20).unwrap();
        assert_eq!((p.held(), p.sweep.is_none()), (20, true));
        assert_eq!(s.held(), 0, "the scenario itself is left as it was");
    }
    let e = parse(&format!("{GOOD}[sweep]\n\"lock.lease\" = [1, 2]\n")).unwrap_err().to_string();
    assert!(e.contains(":8:") && e.contains("field `sweep`: cannot sweep over `lock.lease`"), "{e}");
    let e = parse(&format!("{GOOD}[sweep]\nclients = [1, 2]\n\"keys.count\" = [3]\n")).unwrap_err().to_string();
    assert!(e.contains("exactly one field"), "{e}");
    let e = parse(&format!("{GOOD}[sweep]\nclients = [1, \"many\"]\n")).unwrap_err().to_string();
    assert!(e.contains("`clients`: `\"many\"` is not a whole number"), "{e}");
    // Each point is validated as the scenario it will run.
    let e = parse(&format!("{GOOD}[sweep]\nclients = [4, 0]\n")).unwrap_err().to_string();
    assert!(e.contains("at clients=0: field `clients`: must be at least 1"), "{e}");
    let e = parse(&format!("{GOOD}[sweep]\n\"keys.held\" = [2000000]\n")).unwrap_err().to_string();
    assert!(e.contains("keys.held") && e.contains("at most 1000000"), "{e}");
}

#[test]
fn the_sweep_flag_replaces_the_files_sweep_and_names_itself_in_errors() {
    let sw = Sweep::parse_flag("keys.count=1_000,10000").unwrap();
    assert_eq!(sw, Sweep { field: "keys.count".into(), values: vec![1000, 10000] });
    for (bad, says) in [
        ("clients=1,8,1", "1 is given twice"),
        ("keys.count", "no `=`"),
        ("keys.count=1,x", "`x` is not a whole number"),
        ("lease=1", "cannot sweep over `lease`"),
        ("clients=", "is not a whole number"),
    ] {
        let e = Sweep::parse_flag(bad).unwrap_err();
        assert!(e.starts_with(&format!("--sweep `{bad}`")) && e.contains(says), "{bad}: {e}");
    }
    let mut s = parse(GOOD).unwrap();
    s.set_sweep(&Sweep::parse_flag("clients=1,8").unwrap()).unwrap();
    assert_eq!(s.sweep().unwrap().values, vec![1, 8]);
    assert!(s.set_sweep(&Sweep::parse_flag("clients=1,0").unwrap()).unwrap_err().contains("at clients=0"));
    // The scenario written into a result folder keeps the sweep.
    assert!(s.to_toml().contains("clients = [1, 8]"), "{}", s.to_toml());
}

#[test]
fn ratios_name_two_backends_and_a_bad_one_is_named_with_its_line() {
    let ok =
        parse(&GOOD.replace("clients = 4", "clients = 4\nratios = [\"cassandra-lwt / cassandra-write\"]")).unwrap();
    assert_eq!(ratio_pair(ok.ratios[0].get_ref()).unwrap(), ("cassandra-lwt".into(), "cassandra-write".into()));
    for (bad, says) in [
        ("\"cassandra-lwt\"", "expected \"A / B\""),
        ("\"redis / redis\"", "two different backend names"),
        ("\"redis / rediss\"", "`rediss` is not a backend"),
    ] {
        let e = parse(&GOOD.replace("clients = 4", &format!("clients = 4\nratios = [{bad}]"))).unwrap_err().to_string();
        assert!(e.starts_with("scenarios/t.toml:3:") && e.contains("field `ratios`") && e.contains(says), "{e}");
    }
}
