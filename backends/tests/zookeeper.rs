//! The local ZooKeeper ensemble (three members, a leader found with `srvr`, a new
//! one elected after it is killed) and Curator's recipes as `zookeeper` and
//! `zookeeper-semaphore` write them, checked against the recipes' rules by looking
//! at the znodes with a client of our own.

#![cfg(feature = "zookeeper")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
use lockbench_backends::servers::{ServerFault, ServerKind, Servers};
use lockbench_backends::{BackendEnv, LockBackend, Wait, lookup};
use zookeeper_client::Client;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn backend(name: &str) -> (Arc<dyn LockBackend>, Vec<String>) {
    let endpoints = common::servers::endpoints(ServerKind::Zookeeper, 3, "").await;
    let env = BackendEnv { endpoints: endpoints.clone(), ..Default::default() };
    (lookup(name).unwrap().open(&env).unwrap(), endpoints)
}

/// The children of `dir`, sorted by sequence, through a session of our own.
async fn children(endpoints: &[String], dir: &str) -> Vec<String> {
    let c = Client::connect(&endpoints.join(",")).await.expect("connect");
    let mut v = match c.list_children(dir).await {
        Ok(v) => v,
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => panic!("{dir}: {e}"),
    };
    v.sort_by_key(|n| n.rsplit('-').next().unwrap_or_default().to_owned());
    v
}

#[test]
fn the_leader_is_found_and_a_new_one_is_elected_after_it_is_killed() {
    let c = LocalCluster::start(ServerKind::Zookeeper, 3, ServerOptions::default())
        .expect("start zookeeper (scripts/setup)");
    let within = |d: Duration, not: Option<usize>| {
        let t0 = Instant::now();
        loop {
            if let Some(l) = c.leader().filter(|&l| Some(l) != not) {
                return l;
            }
            assert!(t0.elapsed() < d, "no leader (other than {not:?}) within {d:?}");
            std::thread::sleep(ms(100));
        }
    };
    let first = within(Duration::from_secs(10), None);
    c.fault(first, ServerFault::Kill).unwrap();
    let second = within(Duration::from_secs(15), Some(first));
    assert_ne!(second, first);
    // The killed member comes back and serves again (restart waits until it does).
    c.fault(first, ServerFault::Restart).unwrap();
    assert!(within(Duration::from_secs(15), None) < 3);
    let v = c.version().unwrap();
    assert!(v.starts_with("ZooKeeper 3.") && (v.contains("fsync on") || v.contains("tmpfs")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mutex_queues_waiters_in_order_with_protected_nodes_and_growing_czxid_tokens() {
    let (b, endpoints) = backend("zookeeper").await;
    let key = "queue";
    let mut a = b.session().await.unwrap();
    let first = a.acquire(key, ms(5_000), &Wait::new(ms(1_000))).await.unwrap().expect("free key");
    // Curator's node names: `_c_<uuid>-lock-<sequence>` under /locks/<key>.
    let held = children(&endpoints, "/locks/queue").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].starts_with("_c_") && held[0].contains("-lock-"), "{held:?}");

    // Two waiters, the second queued after the first: the first in line is
    // granted first.
    let waiter = |delay: u64| {
        let b = b.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(delay)).await;
            let mut s = b.session().await.unwrap();
            let l = s.acquire(key, ms(5_000), &Wait::new(ms(5_000))).await.unwrap().expect("granted");
            let at = Instant::now();
            tokio::time::sleep(ms(100)).await;
            assert!(s.release(&l).await.unwrap());
            (at, l.fencing_token.unwrap())
        })
    };
    let (w1, w2) = (waiter(0), waiter(300));
    tokio::time::sleep(ms(600)).await;
    assert_eq!(children(&endpoints, "/locks/queue").await.len(), 3, "both waiters queued");
    assert!(a.release(&first).await.unwrap());
    let ((t1, tok1), (t2, tok2)) = (w1.await.unwrap(), w2.await.unwrap());
    assert!(t1 < t2, "the waiter queued first was granted first");
    let tok0 = first.fencing_token.unwrap();
    assert!(tok0 < tok1 && tok1 < tok2, "czxid tokens grow with each grant: {tok0} {tok1} {tok2}");
    assert!(children(&endpoints, "/locks/queue").await.is_empty(), "released nodes are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_and_a_failed_try_leave_no_node_behind() {
    let (b, endpoints) = backend("zookeeper").await;
    let mut a = b.session().await.unwrap();
    let l = a.acquire("timeout", ms(5_000), &Wait::new(ms(1_000))).await.unwrap().unwrap();
    let mut other = b.session().await.unwrap();
    let t0 = Instant::now();
    assert!(other.acquire("timeout", ms(5_000), &Wait::new(ms(300))).await.unwrap().is_none());
    assert!(t0.elapsed() >= ms(300), "the wait lasted its 300 ms");
    assert!(other.try_acquire("timeout", ms(5_000)).await.unwrap().is_none());
    assert_eq!(children(&endpoints, "/locks/timeout").await.len(), 1, "only the holder's node is left");
    assert!(a.release(&l).await.unwrap());
    assert!(!a.release(&l).await.unwrap(), "a second release finds no node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holders_lock_goes_when_its_session_expires_not_before() {
    let (b, _) = backend("zookeeper").await;
    let mut a = b.session().await.unwrap();
    let lease = ms(1_000);
    let l = a.acquire("crash", lease, &Wait::new(ms(1_000))).await.unwrap().unwrap();
    assert!(l.expires_at - l.granted_at >= lease.as_nanos() as u64, "the lease is the session timeout");
    // A crash: the session is dropped without a release (and without closing it).
    let t0 = Instant::now();
    drop(a);
    let mut next = b.session().await.unwrap();
    let got = next.acquire("crash", lease, &Wait::new(ms(5_000))).await.unwrap();
    assert!(got.is_some(), "the key comes back after the session expires");
    let waited = t0.elapsed();
    assert!(waited >= ms(800), "granted after {waited:?}: the dead session's node must outlive most of its timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_semaphore_keeps_one_lease_node_and_frees_its_internal_lock() {
    let (b, endpoints) = backend("zookeeper-semaphore").await;
    assert!(!b.capabilities().fencing, "Curator's semaphore lease has no token");
    let mut a = b.session().await.unwrap();
    let l = a.acquire("sem", ms(5_000), &Wait::new(ms(1_000))).await.unwrap().unwrap();
    assert_eq!(l.fencing_token, None);
    let leases = children(&endpoints, "/semaphores/sem/leases").await;
    assert!(leases.len() == 1 && leases[0].starts_with("_c_") && leases[0].contains("-lease-"), "{leases:?}");
    assert!(children(&endpoints, "/semaphores/sem/locks").await.is_empty(), "the internal mutex is released");
    // A waiter queues on the internal mutex, and gets the lease once it is freed.
    let b2 = b.clone();
    let w = tokio::spawn(async move {
        let mut s = b2.session().await.unwrap();
        let l = s.acquire("sem", ms(5_000), &Wait::new(ms(5_000))).await.unwrap();
        (l.is_some(), Instant::now())
    });
    tokio::time::sleep(ms(400)).await;
    assert_eq!(children(&endpoints, "/semaphores/sem/leases").await.len(), 2, "the waiter's lease node waits");
    let released = Instant::now();
    assert!(a.release(&l).await.unwrap());
    let (got, at) = w.await.unwrap();
    assert!(got && at >= released);
}
