//! The race behind an occasional false UNSAFE on `crashed-holders`: the nemesis
//! picks a holder from what the supervisor has read of its worker's pipe, while the
//! worker has already released and taken its next grant (still unread in the pipe).
//! A test hook holds the supervisor's reads after a register write, so that the
//! release and the next grant are queued when the crash arrives, every time. The
//! crash must be recorded against the hold the worker really had when it died, and
//! no hold may stay open. (Its own test binary: the hook is process-wide.)

mod common;

use std::sync::atomic::Ordering;

use lockbench::check::holds;
use lockbench::record::{Kind, Op};
use lockbench::scenario::Scenario;

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_recorded_against_the_hold_the_worker_really_had() {
    let src = "client_mode = \"process\"\nclients = 1\nduration = \"1500ms\"\n[keys]\ncount = 1\n[lock]\n\
               lease = \"5s\"\n[work]\nhold = \"1ms\"\n[[faults]]\nkind = \"crash-holder\"\nat = \"700ms\"\n\
               restart_after = \"50ms\"\n";
    let s = Scenario::parse(src, std::path::Path::new("race.toml"), "race").unwrap();
    lockbench::run::worker::HOLD_READS_AFTER_WRITE.store(true, Ordering::Relaxed);
    let (r, v) = common::run_on(&s, "sqlite").await;
    let h = &r.history.load().unwrap();
    let crashes: Vec<_> = h.events.iter().filter(|e| e.op == Op::Crash).collect();
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    let c = crashes[0];
    assert_eq!(c.kind, Kind::Ok);
    // The worker had released the hold the supervisor last saw and taken the next:
    // the crash ends the newer one.
    let grants: Vec<_> = h.events.iter().filter(|e| e.op == Op::Acquire && e.kind == Kind::Ok && e.t < c.t).collect();
    assert!(grants.len() >= 2, "the release and the next grant were queued when the crash came: {grants:?}");
    assert_eq!(c.owner, grants.last().unwrap().owner, "the crash ends the grant the worker really had");
    let hs = holds(h);
    let ended_by_crash: Vec<_> = hs.iter().filter(|x| x.ended_by == "crash").collect();
    assert_eq!(ended_by_crash.len(), 1);
    assert!(hs.iter().all(|x| x.ended_by != "run-end"), "no hold stays open: {hs:?}");
    assert!(v.is_safe() && v.after_expiry == 0 && v.within_lease == 0, "{v:?}");
    assert_eq!(v.crashes, 1);
}
