//! The reference for scripts/bench-etcd: a plain loop of the `etcd-client` crate
//! doing what lockbench's `etcd` backend does for one uncontended lock cycle (the
//! lock service's `Lock` with a lease, then `Unlock`), on random keys of a million,
//! with one lease granted up front and nothing recorded. Prints cycles per second.
//!
//! Usage: etcd-plain-loop ENDPOINT[,ENDPOINT...] SECONDS

use std::time::{Duration, Instant};

use etcd_client::{Client, LockOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoints), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<f64>().ok())) else {
        eprintln!("usage: etcd-plain-loop ENDPOINT[,ENDPOINT...] SECONDS");
        std::process::exit(2);
    };
    let urls: Vec<String> = endpoints.split(',').map(|e| format!("http://{e}")).collect();
    let mut c = Client::connect(&urls, None).await.expect("connect");
    let lease = c.lease_grant(60, None).await.expect("lease").id();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        // xorshift: a random key of a million, as lockbench's uniform keys.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let name = format!("plain/k{}", x % 1_000_000);
        let r = c.lock(name, Some(LockOptions::new().with_lease(lease))).await.expect("lock");
        c.unlock(r.key().to_vec()).await.expect("unlock");
        n += 1;
    }
    println!("{:.0}", n as f64 / t0.elapsed().as_secs_f64());
}
