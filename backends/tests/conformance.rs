//! One behaviour suite that every backend must pass, against the real thing.
//!
//! Each behaviour runs on every backend that is available here and claims the
//! capability it needs; `*-naive` backends are left out on purpose (they exist to
//! fail). Server backends come from the local provider (servers installed by
//! `scripts/setup`); when a server program is missing the test fails: a backend
//! that was not tested is never counted as passing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Target, targets};
use lockbench_backends::{Lease, LockBackend, Wait};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Run `f` on every non-naive backend that has the capability `want` asks for.
async fn each<F, Fut>(want: fn(&lockbench_backends::Capabilities) -> bool, f: F)
where
    F: Fn(Arc<dyn LockBackend>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let ts: Vec<Target> = targets().await;
    let mut ran = 0;
    for t in ts {
        let caps = t.backend.capabilities();
        if caps.naive || !want(&caps) {
            continue;
        }
        eprintln!("-- {}", t.backend.name());
        f(t.backend.clone()).await;
        ran += 1;
    }
    assert!(ran > 0, "no backend ran this behaviour");
}

/// Unknown outcomes a Cassandra ring may give in the exclusion test (24 of its
/// 200 cycles in a run here) before the test fails.
const UNKNOWN_ON_A_RING: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_under_concurrency() {
    each(
        |_| true,
        |b| async move {
            let inside = Arc::new(AtomicBool::new(false));
            let counter = Arc::new(AtomicU64::new(0));
            let unknown = Arc::new(AtomicU64::new(0));
            let ring = b.name().ends_with("-rf3");
            // A ring's contended Paxos keeps both cores busy: fewer cycles there, so
            // that the other backends' timed tests beside it are not starved.
            let cycles = if ring { 10 } else { 25 };
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (b, inside, counter, unknown) = (b.clone(), inside.clone(), counter.clone(), unknown.clone());
                tasks.push(tokio::spawn(async move {
                    let mut s = b.session().await.expect("session");
                    let mut done = 0;
                    while done < cycles {
                        // On a Cassandra ring (the -rf3 backends), Paxos rounds of
                        // eight clients preempt each other and some time out: an
                        // acquire whose outcome is unknown is no grant, and is tried
                        // again (at most UNKNOWN_ON_A_RING in all). Any other error,
                        // and any unknown outcome elsewhere, fails the test.
                        let l = match s.acquire("mx", ms(5_000), &Wait::new(ms(5_000))).await {
                            Ok(Some(l)) => l,
                            Ok(None) => continue,
                            Err(e) if e.is_indeterminate() && ring => {
                                let n = unknown.fetch_add(1, Ordering::SeqCst) + 1;
                                assert!(n <= UNKNOWN_ON_A_RING, "{}: {n} unknown outcomes: {e}", b.name());
                                continue;
                            }
                            Err(e) => panic!("{}: acquire: {e}", b.name()),
                        };
                        assert!(!inside.swap(true, Ordering::SeqCst), "{}: two holders at once", b.name());
                        // A non-atomic read-modify-write with a yield in the middle: only
                        // the lock keeps it whole.
                        let v = counter.load(Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        counter.store(v + 1, Ordering::SeqCst);
                        inside.store(false, Ordering::SeqCst);
                        match s.release(&l).await {
                            Ok(released) => assert!(released, "{}: release of a held lock", b.name()),
                            // Not known to be released: the key may stay taken until
                            // its lease runs out, and the others wait for it.
                            Err(e) if e.is_indeterminate() && ring => {
                                let n = unknown.fetch_add(1, Ordering::SeqCst) + 1;
                                assert!(n <= UNKNOWN_ON_A_RING, "{}: {n} unknown outcomes: {e}", b.name());
                            }
                            Err(e) => panic!("{}: release: {e}", b.name()),
                        }
                        done += 1;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("client task");
            }
            assert_eq!(counter.load(Ordering::SeqCst), 8 * cycles, "{}: lost increments", b.name());
            let unknown = unknown.load(Ordering::SeqCst);
            if unknown > 0 {
                eprintln!("-- {}: {unknown} acquires or releases ended with their outcome unknown", b.name());
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_key_is_refused_and_expiry_frees_it() {
    each(
        |c| c.lease,
        |b| async move {
            let (mut a, mut c) = (b.session().await.unwrap(), b.session().await.unwrap());
            let l = a.try_acquire("exp", ms(400)).await.unwrap().expect("free key is granted");
            assert!(l.expires_at > l.granted_at);
            assert!(c.try_acquire("exp", ms(400)).await.unwrap().is_none(), "{}: held key granted twice", b.name());
            // Never released: the lease must run out by itself (allowing for expiry
            // that rounds up to whole seconds). Where a live session keeps its
            // locks (ZooKeeper's pings, as a live Curator client does), the
            // holder dies instead: its session dropped, nothing sent.
            if b.capabilities().live_session_holds {
                drop(a);
            }
            tokio::time::sleep(ms(700) + b.capabilities().expiry_slack).await;
            let l2 = c.try_acquire("exp", ms(400)).await.unwrap();
            assert!(l2.is_some(), "{}: an expired lease still blocks the key", b.name());
            assert_ne!(l2.unwrap().owner, l.owner);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_releases_or_renews() {
    each(
        |_| true,
        |b| async move {
            let (mut a, mut c) = (b.session().await.unwrap(), b.session().await.unwrap());
            let l = a.try_acquire("own", ms(5_000)).await.unwrap().expect("granted");
            let forged = Lease { owner: l.owner ^ 0xdead_beef, ..l.clone() };
            assert!(!c.release(&forged).await.unwrap(), "{}: a stranger released the lock", b.name());
            if b.capabilities().renew {
                assert!(!c.renew(&forged, ms(5_000)).await.unwrap(), "{}: a stranger renewed the lock", b.name());
            }
            assert!(c.try_acquire("own", ms(5_000)).await.unwrap().is_none(), "{}: key freed by a stranger", b.name());
            assert!(a.release(&l).await.unwrap());
            assert!(!a.release(&l).await.unwrap(), "{}: released twice", b.name());
            assert!(c.try_acquire("own", ms(5_000)).await.unwrap().is_some(), "{}: released key not free", b.name());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_extends_the_lease() {
    each(
        |c| c.renew && c.lease,
        |b| async move {
            let (mut a, mut c) = (b.session().await.unwrap(), b.session().await.unwrap());
            // A lease of 1 s: long enough that a stall of the machine (a Cassandra
            // ring beside the test on two cores) does not end it between two calls.
            let l = a.try_acquire("renew", ms(1_000)).await.unwrap().expect("granted");
            // Seen held at once: a lock client that takes over a lock it watched
            // stay unchanged for a whole lease would take it at 1.2 s, had the
            // renew changed nothing.
            assert!(c.try_acquire("renew", ms(1_000)).await.unwrap().is_none(), "{}: held key granted", b.name());
            tokio::time::sleep(ms(100)).await;
            assert!(a.renew(&l, ms(4_000)).await.unwrap(), "{}: renew of a live lease refused", b.name());
            tokio::time::sleep(ms(1_100)).await;
            // Past the first lease, inside the renewed one.
            assert!(c.try_acquire("renew", ms(1_000)).await.unwrap().is_none(), "{}: renew did not extend", b.name());
            assert!(a.release(&l).await.unwrap());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_grow() {
    each(
        |c| c.fencing,
        |b| async move {
            let mut s = b.session().await.unwrap();
            let mut last = 0;
            for _ in 0..20 {
                let l = s.try_acquire("fence", ms(5_000)).await.unwrap().expect("granted");
                let t = l.fencing_token.expect("a fencing backend gives tokens");
                assert!(t > last, "{}: token {t} after {last}", b.name());
                last = t;
                assert!(s.release(&l).await.unwrap());
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_waits_for_a_release_and_gives_up_after_its_wait() {
    each(
        |_| true,
        |b| async move {
            let (mut a, mut c) = (b.session().await.unwrap(), b.session().await.unwrap());
            let l = a.try_acquire("wait", ms(10_000)).await.unwrap().expect("granted");
            let t0 = std::time::Instant::now();
            assert!(c.acquire("wait", ms(10_000), &Wait::new(ms(150))).await.unwrap().is_none());
            assert!(t0.elapsed() >= ms(150), "{}: gave up before its wait", b.name());
            let waiter = tokio::spawn(async move { c.acquire("wait", ms(10_000), &Wait::new(ms(5_000))).await });
            tokio::time::sleep(ms(100)).await;
            assert!(a.release(&l).await.unwrap());
            let got = waiter.await.unwrap().unwrap();
            assert!(got.is_some(), "{}: waiter never got the released key", b.name());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_shares_state_names_its_servers_own_version() {
    // Backends shared across processes have a server (or a SQLite library) to ask;
    // the in-process table has none.
    each(
        |c| c.multi_process,
        |b| async move {
            let mut s = b.session().await.expect("session");
            let v = s.server_version().await.expect("server_version");
            // The DynamoDB API and Momento have no call that names the server's
            // version: these answer none (the report shows the provider's: dynalite's).
            if b.name().starts_with("dynamodb-") || b.name() == "momento" {
                assert_eq!(v, None, "{}", b.name());
                return;
            }
            let v = v.unwrap_or_default();
            let own = ["Redis ", "Cassandra ", "SQLite ", "PostgreSQL ", "etcd ", "ZooKeeper "]
                .iter()
                .any(|p| v.starts_with(p));
            assert!(own && v.chars().any(|c| c.is_ascii_digit()), "{}: `{v}`", b.name());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_on_a_live_backend_and_changes_nothing() {
    // Every backend, naive ones included: a probe must not lie for any of them.
    let mut ran = 0;
    for t in targets().await {
        let b = t.backend.clone();
        eprintln!("-- {}", b.name());
        let mut s = b.session().await.unwrap_or_else(|e| panic!("{}: session: {e}", b.name()));
        s.ping().await.unwrap_or_else(|e| panic!("{}: ping: {e}", b.name()));
        // Nothing was taken: the key is free for another session at once.
        let l = s.try_acquire("ping", ms(2_000)).await.expect("try_acquire").expect("a free key after a ping");
        s.ping().await.unwrap_or_else(|e| panic!("{}: ping while holding: {e}", b.name()));
        let mut other = b.session().await.expect("session");
        let taken = other.try_acquire("ping", ms(2_000)).await.expect("try_acquire");
        // cassandra-write is no lock at all: it grants everyone.
        assert!(taken.is_none() || b.capabilities().naive, "{}: a ping freed a held key", b.name());
        assert!(s.release(&l).await.expect("release") || b.capabilities().naive, "{}", b.name());
        ran += 1;
    }
    assert!(ran > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_of_a_closed_port_is_an_error_that_says_nothing_happened() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let mut ran = 0;
    for info in lockbench_backends::registry() {
        let lockbench_backends::Needs::Servers { n, .. } = info.needs else { continue };
        if !info.compiled {
            continue;
        }
        let env = lockbench_backends::BackendEnv { endpoints: vec!["127.0.0.1:1".into(); n], ..Default::default() };
        let b = info.open(&env).expect("open");
        let r = match b.session().await {
            Ok(mut s) => s.ping().await,
            Err(e) => Err(e),
        };
        let e = r.err().unwrap_or_else(|| panic!("{}: ping of a closed port answered", info.name));
        eprintln!("-- {}: {e}", info.name);
        assert!(!e.is_indeterminate(), "{}: a refused connection sent nothing: {e}", info.name);
        ran += 1;
    }
    assert!(ran > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_never_answers_gives_an_error_not_a_hang() {
    // A listener that accepts every connection and never says a word: session
    // set-up and ping must run into their own deadlines (Redis: 1 s per command;
    // Cassandra: 5 s for the connection and the first metadata fetch).
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    let mut ran = 0;
    for info in lockbench_backends::registry() {
        let lockbench_backends::Needs::Servers { n, .. } = info.needs else { continue };
        if !info.compiled {
            continue;
        }
        let env = lockbench_backends::BackendEnv { endpoints: vec![at.clone(); n], ..Default::default() };
        let b = info.open(&env).expect("open");
        let probe = async {
            let mut s = b.session().await?;
            s.ping().await
        };
        // The outer bound only catches a hang; the backend's own deadline must end it.
        let r = tokio::time::timeout(Duration::from_secs(60), probe)
            .await
            .unwrap_or_else(|_| panic!("{}: no deadline on a silent server", info.name));
        let e = r.err().unwrap_or_else(|| panic!("{}: a silent server answered", info.name));
        eprintln!("-- {}: {e}", info.name);
        ran += 1;
    }
    assert!(ran > 0);
}

/// Momento has no local server: the suite runs on it only where MOMENTO_API_KEY
/// is set (there: `cargo test -p lockbench-backends --test conformance --
/// --include-ignored`). Ignored elsewhere, so that it reads "ignored", never
/// "passed", on a machine without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MOMENTO_API_KEY (a hosted Momento cache)"]
async fn a_hosted_service_runs_the_suite_with_its_key() {
    assert!(std::env::var("MOMENTO_API_KEY").is_ok_and(|v| !v.is_empty()), "set MOMENTO_API_KEY");
    let names: Vec<String> = targets().await.iter().map(|t| t.backend.name().to_owned()).collect();
    assert!(names.iter().any(|n| n == "momento"), "{names:?}");
}
