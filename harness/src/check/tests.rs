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
    assert_eq!(v.lost_updates, 0);
    assert_eq!(v.token_regressions, 0);
    assert_eq!(v.acquire_timeouts, 1);
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
    assert_eq!(v.lost_updates, 0);
    assert_eq!(v.token_regressions, 0);
}

#[test]
fn a_token_below_an_earlier_grant_is_a_regression() {
    let v = check(&fx!("token-regression"));
    assert_eq!(v.token_regressions, 1, "{v:#?}");
    assert_eq!(v.regressions[0].earlier.token, 5);
    assert_eq!(v.regressions[0].later.token, 3);
    assert_eq!(v.violations(), 0);
}

#[test]
fn a_write_over_an_unread_version_is_a_lost_update() {
    let v = check(&fx!("lost-update"));
    assert_eq!(v.lost_updates, 1, "{v:#?}");
    assert_eq!((v.lost[0].owner, v.lost[0].read_version, v.lost[0].wrote_version), (51, 0, 2));
    assert_eq!(v.lost[0].events, vec![10, 11]);
    assert_eq!(v.within_lease, 1);
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
