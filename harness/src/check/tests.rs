//! The checker against hand-written histories with known answers
//! (`harness/tests/fixtures/*.jsonl`).

use super::*;
use crate::record::read_jsonl;

fn fixture(text: &str) -> History {
    let events: Vec<Event> = read_jsonl(text.as_bytes()).expect("fixture parses").into_iter().map(|(_, e)| e).collect();
    let end = events.iter().map(|e| e.t).max().unwrap_or(0) + 1;
    History { events, start: 0, end }
}

macro_rules! fx {
    ($name:literal) => {
        fixture(include_str!(concat!("../../tests/fixtures/", $name, ".jsonl")))
    };
}

#[test]
fn a_clean_history_has_no_violation() {
    let v = check(&fx!("no-violation"));
    assert!(v.is_safe(), "{v:#?}");
    assert_eq!(v.grants, 2);
    assert_eq!(v.violations(), 0);
    assert_eq!((v.increments_lost, v.clobbering_writes), (0, 0));
    assert_eq!(v.token_regressions, 0);
    assert_eq!(v.acquire_timeouts, 1);
    assert_eq!(v.level(), Level::Safe);
    assert_eq!(v.acquire_attempts, 3);
    assert_eq!(v.unknown_outcomes, 0);
    // Client 0: 1 grant, client 1: 1 grant.
    assert_eq!(v.fairness, Some(1.0));
}

#[test]
fn an_overlap_inside_both_leases_is_within_lease() {
    let v = check(&fx!("overlap-within-lease"));
    assert_eq!((v.within_lease, v.after_expiry), (1, 0), "{v:#?}");
    let o = &v.overlaps[0];
    assert_eq!(o.class, OverlapClass::WithinLease);
    assert_eq!((o.key, o.from, o.to), (3, 20, 50));
    assert_eq!((o.first.owner, o.second.owner), (21, 22));
    // The proof: each holder's acquire invoke, acquire ok and release invoke.
    assert_eq!(o.first.events, vec![0, 1, 4]);
    assert_eq!(o.second.events, vec![2, 3, 6]);
    assert!(!v.is_safe());
    assert_eq!(v.level(), Level::Broken);
    assert_eq!((v.holds_overlapped, v.overlap_episodes, v.max_holders), (2, 1, 2));
    assert_eq!(v.overlap_ns, 30);
}

#[test]
fn an_overlap_after_the_lease_ran_out_is_after_expiry_and_fencing_refuses_the_write() {
    let v = check(&fx!("overlap-after-expiry"));
    assert_eq!((v.within_lease, v.after_expiry), (0, 1), "{v:#?}");
    let o = &v.overlaps[0];
    assert_eq!(o.class, OverlapClass::AfterExpiry);
    assert_eq!((o.from, o.to), (20, 25));
    assert_eq!(o.faults, vec!["pause-holder: client 0".to_string()]);
    assert_eq!(v.stale_writes_refused, 1);
    assert_eq!((v.increments_lost, v.clobbering_writes), (0, 0));
    assert_eq!(v.token_regressions, 0);
    // The lock did its job; fencing kept the data: fenced, not broken (issue 10).
    assert_eq!(v.level(), Level::Fenced);
    assert!(!v.level().is_violation());
}

#[test]
fn a_token_below_an_earlier_grant_is_a_regression() {
    let v = check(&fx!("token-regression"));
    assert_eq!(v.token_regressions, 1, "{v:#?}");
    assert_eq!(v.regressions[0].earlier.token, 5);
    assert_eq!(v.regressions[0].later.token, 3);
    assert_eq!(v.violations(), 0);
    assert_eq!(v.level(), Level::Broken);
}

#[test]
fn a_write_over_an_unread_version_is_a_lost_update() {
    let v = check(&fx!("lost-update"));
    // Two acknowledged increments, the register ends at 1: one lost, by one
    // clobbering write.
    assert_eq!((v.writes_acknowledged, v.increments_lost, v.clobbering_writes), (2, 1, 1), "{v:#?}");
    assert_eq!(v.lost.len(), 1);
    assert_eq!((v.lost[0].owner, v.lost[0].read_version, v.lost[0].wrote_version), (51, 0, 2));
    assert_eq!(v.lost[0].events, vec![10, 11]);
    assert_eq!(v.within_lease, 1);
    assert_eq!(v.level(), Level::Broken);
}

/// A history of `n` holders of key 0 that all read version 0 and then write, each
/// hold `[10 + i, 100 + i]` on a lease of `lease` ns, without tokens.
fn pile_up(n: u32, lease: u64) -> String {
    let mut t = String::new();
    for i in 0..n {
        let o = 100 + i;
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{},\"client\":{i},\"type\":\"invoke\",\"f\":\"acquire\",\"key\":0}}\n",
            i
        );
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{},\"client\":{i},\"type\":\"ok\",\"f\":\"acquire\",\"key\":0,\"owner\":{o},\"a\":{lease}}}\n",
            10 + i
        );
    }
    for i in 0..n {
        let o = 100 + i;
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{},\"client\":{i},\"type\":\"invoke\",\"f\":\"write\",\"key\":0,\"owner\":{o},\"a\":1}}\n",
            50 + 2 * i
        );
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{},\"client\":{i},\"type\":\"ok\",\"f\":\"write\",\"key\":0,\"owner\":{o},\"a\":1,\"b\":{}}}\n",
            51 + 2 * i,
            i + 1
        );
    }
    for i in 0..n {
        let o = 100 + i;
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{},\"client\":{i},\"type\":\"invoke\",\"f\":\"release\",\"key\":0,\"owner\":{o}}}\n",
            100 + i
        );
    }
    t
}

#[test]
fn holds_and_increments_are_counted_once_each_however_many_pairs() {
    // Eight holders at once: 28 overlapping pairs, but 8 holds, one episode, and of
    // 8 acknowledged increments (all read version 0) 7 are lost, by 7 clobbering
    // writes (the first wrote version 0 + 1).
    let v = check(&fixture(&pile_up(8, 1_000)));
    assert_eq!(v.grants, 8);
    assert_eq!(v.within_lease, 28, "the pair count stays as a detail");
    assert_eq!((v.holds_overlapped, v.overlap_episodes, v.max_holders), (8, 1, 8));
    // From the second grant (11) to the second-to-last end (106).
    assert_eq!(v.overlap_ns, 106 - 11);
    assert_eq!((v.writes_acknowledged, v.increments_lost, v.clobbering_writes), (8, 7, 7));
    assert!(v.increments_lost <= v.writes_acknowledged && v.holds_overlapped <= v.grants);
    assert_eq!(v.lost.len(), 7, "the examples are exactly the clobbering writes");
    assert_eq!(v.level(), Level::Broken);
}

#[test]
fn an_overlap_after_expiry_that_loses_an_increment_is_data_lost() {
    // Leases of 1 ns: every overlap begins after the first holder's lease ran out,
    // and without tokens the late writes land over each other.
    let v = check(&fixture(&pile_up(2, 1)));
    assert_eq!((v.within_lease, v.after_expiry), (0, 1), "{v:#?}");
    assert_eq!(v.increments_lost, 1);
    assert_eq!(v.level(), Level::DataLost);
    assert!(v.level().is_violation());
}

#[test]
fn separate_episodes_are_counted_apart() {
    // Key 0: holds [1, 10] and [5, 20] overlap; then [30, 40] and [35, 50].
    let mut t = String::new();
    for (c, (s, e)) in [(1u64, 10u64), (5, 20), (30, 40), (35, 50)].into_iter().enumerate() {
        let o = c + 1;
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{s},\"client\":{c},\"type\":\"ok\",\"f\":\"acquire\",\"key\":0,\"owner\":{o},\"a\":100}}\n"
        );
        t += &format!(
            "{{\"backend\":\"x\",\"t\":{e},\"client\":{c},\"type\":\"invoke\",\"f\":\"release\",\"key\":0,\"owner\":{o}}}\n"
        );
    }
    let mut h = fixture(&t);
    h.events.sort_by_key(|e| e.t);
    let v = check(&h);
    assert_eq!((v.holds_overlapped, v.overlap_episodes, v.max_holders, v.overlap_ns), (4, 2, 2, 5 + 5));
}

#[test]
fn a_run_without_grants_is_inconclusive_never_safe() {
    let text = r#"{"backend":"x","t":0,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":1,"client":0,"type":"fail","f":"acquire","key":0,"msg":"unavailable: Connection refused (os error 111)"}
{"backend":"x","t":2,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":3,"client":0,"type":"info","f":"acquire","key":0,"msg":"outcome unknown: timed out"}
{"backend":"x","t":4,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":5,"client":0,"type":"fail","f":"acquire","key":0,"msg":"no session: unavailable: Too many open files (os error 24)"}
{"backend":"x","t":6,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":7,"client":0,"type":"fail","f":"acquire","key":0,"msg":"rejected: NOSCRIPT"}"#;
    let v = check(&fixture(text));
    assert!(v.is_safe());
    assert_eq!(v.level(), Level::Inconclusive);
    let e = &v.availability.errors;
    assert_eq!((e.refused, e.unknown, e.resource, e.rejected), (1, 1, 1, 1));
    // The one second of load had an answer (the rejection): not unavailable.
    assert_eq!((v.availability.load_slots, v.availability.unavailable_slots), (1, 0));
}

#[test]
fn a_backend_that_stops_answering_for_most_of_the_run_is_inconclusive() {
    const S: u64 = 1_000_000_000;
    let mut t = String::new();
    // Second 0: a grant and a release. Seconds 1 and 2: only refusals and timeouts.
    t += r#"{"backend":"x","t":0,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":10,"client":0,"type":"ok","f":"acquire","key":0,"owner":1,"a":1000}
{"backend":"x","t":20,"client":0,"type":"invoke","f":"release","key":0,"owner":1}
"#;
    let ends = [
        (1, r#""fail","f":"acquire","key":0,"msg":"unavailable: Connection refused""#),
        (2, r#""info","f":"acquire","key":0,"msg":"outcome unknown: timed out""#),
    ];
    for (i, end) in ends {
        t += &format!(r#"{{"backend":"x","t":{},"client":0,"type":"invoke","f":"acquire","key":0}}"#, i * S + 1);
        t += &format!("\n{{\"backend\":\"x\",\"t\":{},\"client\":0,\"type\":{end}}}\n", i * S + 2);
    }
    // An answer again at 2.5 s: the client went unanswered from 1 s to 2.5 s
    // (its failures and the backoff between them), 15 slots of 30: not more than
    // half.
    let mut answered_again = t.clone();
    answered_again += &format!(
        "{{\"backend\":\"x\",\"t\":{},\"client\":0,\"type\":\"invoke\",\"f\":\"acquire\",\"key\":0}}\n\
         {{\"backend\":\"x\",\"t\":{},\"client\":0,\"type\":\"ok\",\"f\":\"acquire\",\"key\":0,\"owner\":2,\"a\":1000}}\n",
        5 * S / 2,
        5 * S / 2 + 1
    );
    let mut h = fixture(&answered_again);
    h.end = 3 * S;
    let v = check(&h);
    assert_eq!((v.availability.load_slots, v.availability.unavailable_slots), (30, 15), "{:?}", v.availability);
    assert!(!v.availability.mostly_unavailable());
    assert_eq!(v.level(), Level::Safe);
    // Never answered again after 1 s: 20 slots of 30.
    let mut h = fixture(&t);
    h.end = 3 * S;
    let v = check(&h);
    assert_eq!((v.availability.load_slots, v.availability.unavailable_slots), (30, 20), "{:?}", v.availability);
    assert_eq!(v.level(), Level::Inconclusive);
    // The same errors spread over every slot from 1 s on: 20 of 30 slots.
    for slot in 10..30u64 {
        let mut inv = Event::new(slot * S / 10 + 1, 1, Kind::Invoke, Op::Acquire, 0);
        inv.key = 0;
        h.events.push(inv);
        h.events.push(Event::new(slot * S / 10 + 2, 1, Kind::Fail, Op::Acquire, 0).with_msg("unavailable: refused"));
    }
    h.events.sort_by_key(|e| e.t);
    let v = check(&h);
    assert_eq!((v.availability.load_slots, v.availability.unavailable_slots), (30, 20), "{:?}", v.availability);
    assert!((v.availability.unavailable_seconds - 2.0).abs() < 1e-9);
    assert_eq!(v.level(), Level::Inconclusive);
    assert_eq!(v.level(), Level::Inconclusive);
    // A violation keeps its word, whatever the availability.
    let mut broken = v.clone();
    broken.within_lease = 1;
    assert_eq!(broken.level(), Level::Broken);
}

#[test]
fn protocol_answers_are_not_errors_and_harness_limits_are_their_own_class() {
    use crate::check::availability::classify;
    let ev = |kind, msg: &str| Event::new(0, 0, kind, Op::Acquire, 0).with_msg(msg);
    assert_eq!(classify(&ev(Kind::Fail, "timeout")), None);
    assert_eq!(classify(&ev(Kind::Fail, "stale token: register has seen 2")), None);
    assert_eq!(classify(&ev(Kind::Fail, "unavailable: NOAUTH Authentication required.")), Some(ErrorClass::Refused));
    assert_eq!(classify(&ev(Kind::Info, "outcome unknown: timed out")), Some(ErrorClass::Unknown));
    assert_eq!(classify(&ev(Kind::Fail, "unavailable: Too many open files (os error 24)")), Some(ErrorClass::Resource));
    assert_eq!(classify(&Event::new(0, 0, Kind::Ok, Op::Acquire, 0)), None);
}

#[test]
fn verdict_words_read_back() {
    for l in Level::ALL {
        assert_eq!(l.word().parse::<Level>(), Ok(l));
        assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{}\"", l.word()));
    }
    assert!("unsafe".parse::<Level>().is_err());
}

#[test]
fn crashes_recover_and_concurrent_grants_may_come_in_any_token_order() {
    let v = check(&fx!("crash-and-concurrent-tokens"));
    assert!(v.is_safe(), "{v:#?}");
    assert_eq!(v.crashes, 1);
    assert_eq!(v.crash_recovery_ns, vec![100]);
    assert_eq!(v.unknown_outcomes, 2);
    let hs = holds(&fx!("crash-and-concurrent-tokens"));
    assert_eq!(hs[0].ended_by, "crash");
    assert_eq!(hs[0].end, 20);
}

#[test]
fn a_hold_that_ends_as_the_next_begins_is_no_overlap() {
    let text = r#"{"backend":"x","t":0,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":1,"client":0,"type":"ok","f":"acquire","key":0,"owner":1,"token":1,"a":5}
{"backend":"x","t":2,"client":1,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":9,"client":0,"type":"invoke","f":"release","key":0,"owner":1,"token":1}
{"backend":"x","t":9,"client":1,"type":"ok","f":"acquire","key":0,"owner":2,"token":2,"a":5}"#;
    let v = check(&fixture(text));
    assert!(v.is_safe(), "{v:#?}");
    // The run ended while client 1 held: its hold runs to the end of the history.
    assert_eq!(holds(&fixture(text))[1].ended_by, "run-end");
}

#[test]
fn renewals_move_the_lease_estimate() {
    let text = r#"{"backend":"x","t":0,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":1,"client":0,"type":"ok","f":"acquire","key":0,"owner":1,"a":10}
{"backend":"x","t":8,"client":0,"type":"invoke","f":"renew","key":0,"owner":1,"a":10}
{"backend":"x","t":9,"client":0,"type":"ok","f":"renew","key":0,"owner":1}
{"backend":"x","t":12,"client":1,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":13,"client":1,"type":"ok","f":"acquire","key":0,"owner":2,"a":10}
{"backend":"x","t":15,"client":0,"type":"invoke","f":"release","key":0,"owner":1}"#;
    let v = check(&fixture(text));
    // Renewed to 18 at t=8: the overlap at 13 is inside both leases.
    assert_eq!(v.within_lease, 1, "{v:#?}");
}

#[test]
fn jain_index_is_one_for_equal_shares_and_one_over_n_for_a_monopoly() {
    assert_eq!(jain([5, 5, 5, 5].into_iter()), Some(1.0));
    assert_eq!(jain([8, 0, 0, 0].into_iter()), Some(0.25));
    assert_eq!(jain([0, 0].into_iter()), None);
}

#[test]
fn a_try_acquire_that_finds_the_key_held_is_a_refusal_not_an_error() {
    let t = r#"{"backend":"x","t":0,"client":0,"type":"invoke","f":"acquire","key":0}
{"backend":"x","t":10,"client":0,"type":"fail","f":"acquire","key":0,"msg":"refused (held)"}
"#;
    let v = check(&fixture(t));
    assert_eq!((v.acquire_refused, v.acquire_timeouts, v.acquire_errors), (1, 0, 0));
    assert_eq!(v.availability.errors.total(), 0, "the server answered");
}

#[test]
fn examples_are_spread_over_the_run_not_its_first_n() {
    let mut s = crate::check::Spread::new(10);
    for i in 0..1000u32 {
        s.offer(|| i);
    }
    let v = s.into_vec();
    assert!(v.len() < 10 && v.len() >= 4, "{v:?}");
    assert_eq!(v[0], 0);
    assert!(*v.last().unwrap() >= 500, "the later half is represented: {v:?}");
}

/// A random history of a lock that sometimes grants a held key, hands out old
/// tokens, loses clients and answers late: every kind of event the checker reads.
fn random_history(seed: u64) -> History {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clients = rng.random_range(2..6u32);
    let keys = rng.random_range(1..4u32);
    let mut t = 0u64;
    let mut events = Vec::new();
    let mut next_token = vec![1u64; keys as usize];
    let mut register = vec![(0u64, 0u64); keys as usize];
    let mut holder: Vec<Option<(u32, u64)>> = vec![None; keys as usize];
    let mut owner = 0u64;
    // Each client: idle, or holding (key, owner, token, lease end), with the
    // version it read.
    let mut holds: Vec<Option<(u32, u64, u64, u64, Option<(u64, u64)>)>> = vec![None; clients as usize];
    let mut fault_open: Option<u32> = None;
    let mut faults = 0u32;
    let ev = |t: u64, c: u32, k: Kind, op: Op, key: u32| Event::new(t, c, k, op, key);
    for _ in 0..rng.random_range(20..400) {
        t += rng.random_range(1..50);
        if rng.random_bool(0.03) {
            match fault_open.take() {
                Some(f) => events.push(ev(t, f, Kind::Ok, Op::Fault, 0).with_msg("pause-holder: client 0")),
                None => {
                    let mut e = ev(t, faults, Kind::Invoke, Op::Fault, 0).with_msg("pause-holder: client 0");
                    e.b = if rng.random_bool(0.2) { crate::faults::MISSED } else { 0 };
                    events.push(e);
                    fault_open = Some(faults);
                    faults += 1;
                }
            }
            continue;
        }
        let c = rng.random_range(0..clients);
        t += 1;
        match holds[c as usize] {
            None => {
                let key = rng.random_range(0..keys);
                let mut inv = ev(t, c, Kind::Invoke, Op::Acquire, key);
                if rng.random_bool(0.3) {
                    inv.a = t.saturating_sub(rng.random_range(0..40));
                }
                events.push(inv);
                t += rng.random_range(1..30);
                let held = holder[key as usize].is_some();
                let r = rng.random_range(0..100);
                if (!held && r < 80) || (held && r < 15) {
                    owner += 1;
                    let mut token = next_token[key as usize];
                    next_token[key as usize] += 1;
                    if rng.random_bool(0.05) {
                        token = token.saturating_sub(rng.random_range(1..4)).max(1);
                    }
                    let lease = rng.random_range(10..200);
                    let mut ok = ev(t, c, Kind::Ok, Op::Acquire, key);
                    (ok.owner, ok.token, ok.a) = (owner, token, lease);
                    events.push(ok);
                    holder[key as usize] = Some((c, owner));
                    holds[c as usize] = Some((key, owner, token, t + lease, None));
                } else {
                    let (k, msg) = match rng.random_range(0..5) {
                        0 => (Kind::Fail, "timeout"),
                        1 => (Kind::Fail, crate::run::client::REFUSED),
                        2 => (Kind::Fail, "unavailable: refused"),
                        3 => (Kind::Info, "outcome unknown: timed out"),
                        _ => (Kind::Fail, "rejected: no"),
                    };
                    events.push(ev(t, c, k, Op::Acquire, key).with_msg(msg));
                }
            }
            Some((key, own, token, _, read)) => {
                let stamp = |mut e: Event| {
                    (e.owner, e.token) = (own, token);
                    e
                };
                match (rng.random_range(0..10), read) {
                    (0, _) => {
                        // Crash while holding.
                        events.push(stamp(ev(t, c, Kind::Ok, Op::Crash, key)));
                        holds[c as usize] = None;
                        if holder[key as usize].is_some_and(|h| h.1 == own) {
                            holder[key as usize] = None;
                        }
                    }
                    (1 | 2, None) => {
                        // Renew.
                        let mut inv = stamp(ev(t, c, Kind::Invoke, Op::Renew, key));
                        inv.a = rng.random_range(10..200);
                        events.push(inv.clone());
                        t += rng.random_range(1..10);
                        if rng.random_bool(0.8) {
                            events.push(stamp(ev(t, c, Kind::Ok, Op::Renew, key)));
                            holds[c as usize] = Some((key, own, token, inv.t + inv.a, None));
                        } else {
                            events.push(stamp(ev(t, c, Kind::Fail, Op::Renew, key)).with_msg("lease lost"));
                        }
                    }
                    (3..=5, None) => {
                        events.push(stamp(ev(t, c, Kind::Invoke, Op::Read, key)));
                        t += 1;
                        let (ver, val) = register[key as usize];
                        let mut ok = stamp(ev(t, c, Kind::Ok, Op::Read, key));
                        (ok.a, ok.b) = (val, ver);
                        events.push(ok);
                        holds[c as usize] = Some((key, own, token, holds[c as usize].unwrap().3, Some((ver, val))));
                    }
                    (3..=6, Some((ver, val))) => {
                        let mut inv = stamp(ev(t, c, Kind::Invoke, Op::Write, key));
                        (inv.a, inv.b) = (val + 1, ver);
                        events.push(inv);
                        t += 1;
                        if rng.random_bool(0.15) {
                            events.push(stamp(ev(t, c, Kind::Fail, Op::Write, key)).with_msg("stale token 1 < 2"));
                        } else {
                            let now = register[key as usize].0 + 1;
                            register[key as usize] = (now, val + 1);
                            let mut ok = stamp(ev(t, c, Kind::Ok, Op::Write, key));
                            (ok.a, ok.b) = (val + 1, now);
                            events.push(ok);
                        }
                        holds[c as usize] = Some((key, own, token, holds[c as usize].unwrap().3, None));
                    }
                    _ => {
                        events.push(stamp(ev(t, c, Kind::Invoke, Op::Release, key)));
                        t += rng.random_range(1..10);
                        events.push(stamp(ev(t, c, Kind::Ok, Op::Release, key)));
                        holds[c as usize] = None;
                        if holder[key as usize].is_some_and(|h| h.1 == own) {
                            holder[key as usize] = None;
                        }
                    }
                }
            }
        }
    }
    if rng.random_bool(0.2) {
        t += 1;
        events.push(Event::new(t, 0, Kind::Fail, Op::Crash, 0).with_msg("harness error: test"));
    }
    // A recorded history ends at its last event or later.
    let end = t + rng.random_range(0..100);
    History { events, start: 0, end }
}

/// The streaming checker agrees with the old one (every hold in memory, sorted
/// sweeps) on every figure, over many random histories with every kind of event.
#[test]
fn stream_agrees_with_the_reference() {
    let mut seen = [0u64; 6];
    for seed in 0..2000 {
        let h = random_history(seed);
        let (a, b) = (check(&h), reference::check(&h));
        let figures = |v: &Verdict| {
            (
                (v.grants, v.acquire_attempts, v.within_lease, v.after_expiry, v.holds_overlapped, v.overlap_episodes),
                (v.max_holders, v.overlap_ns, v.token_regressions, v.writes_acknowledged, v.increments_lost),
                (v.clobbering_writes, v.stale_writes_refused, v.unknown_outcomes, v.acquire_timeouts),
                (v.acquire_refused, v.acquire_errors, v.longest_wait_ns, v.fairness, v.crashes),
                (v.availability.clone(), v.lost.clone(), v.regressions.len()),
            )
        };
        assert_eq!(figures(&a), figures(&b), "seed {seed}");
        let mut ra = a.crash_recovery_ns.clone();
        let mut rb = b.crash_recovery_ns.clone();
        ra.sort_unstable();
        rb.sort_unstable();
        assert_eq!(ra, rb, "seed {seed}");
        assert_eq!(a.faults, reference::fault_windows(&h), "seed {seed}");
        assert_eq!(
            a.harness_errors.len(),
            h.events.iter().filter(|e| e.op == Op::Crash && e.kind == Kind::Fail).count()
        );
        // Every example is a real one, of the class the reference gives it.
        for o in &a.overlaps {
            assert!(o.first.end > o.second.start && o.first.owner != o.second.owner, "seed {seed}: {o:?}");
        }
        for (i, x) in
            [a.within_lease, a.after_expiry, a.token_regressions, a.increments_lost, a.late_writes_accepted, a.crashes]
                .into_iter()
                .enumerate()
        {
            seen[i] += u64::from(x > 0);
        }
        // Holds are the same, in the order they were granted.
        let ha: Vec<_> = holds(&h).into_iter().map(|x| (x.start, x.owner, x.end, x.expires, x.ended_by)).collect();
        let mut hb: Vec<_> =
            reference::holds(&h).into_iter().map(|x| (x.start, x.owner, x.end, x.expires, x.ended_by)).collect();
        hb.sort_by_key(|x| (x.0, x.1));
        assert_eq!(ha, hb, "seed {seed}");
    }
    // The histories exercised every finding.
    assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
}
