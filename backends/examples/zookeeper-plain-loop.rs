//! The reference for scripts/bench-zookeeper: a plain loop of the
//! `zookeeper-client` crate sending what lockbench's `zookeeper` backend sends for
//! one uncontended lock cycle on one key (Curator's InterProcessMutex: create a
//! protected EPHEMERAL_SEQUENTIAL node, list the children; release: delete it),
//! with one session opened up front and nothing recorded. Prints cycles per second.
//!
//! Usage: zookeeper-plain-loop HOST:PORT[,HOST:PORT...] SECONDS

use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoints), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<f64>().ok())) else {
        eprintln!("usage: zookeeper-plain-loop HOST:PORT[,HOST:PORT...] SECONDS");
        std::process::exit(2);
    };
    let c =
        Client::connector().with_session_timeout(Duration::from_secs(30)).connect(endpoints).await.expect("connect");
    let dir = "/plain/k0";
    c.mkdir(dir, &CreateMode::Container.with_acls(Acls::anyone_all())).await.expect("mkdir");
    let node = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        let path = format!("{dir}/_c_{:032x}-lock-", rand::random::<u128>());
        let (_, seq) = c.create(&path, b"", &node).await.expect("create");
        let children = c.list_children(dir).await.expect("list");
        assert!(!children.is_empty());
        c.delete(&format!("{path}{seq}"), None).await.expect("delete");
        n += 1;
    }
    println!("{:.0}", n as f64 / t0.elapsed().as_secs_f64());
}
