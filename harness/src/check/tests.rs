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
