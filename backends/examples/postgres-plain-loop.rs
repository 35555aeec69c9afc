//! The reference for scripts/bench-postgres: a plain loop of lockbench's own
//! PostgreSQL connection (`pgwire`) running what the `postgres-advisory` backend
//! runs for one uncontended cycle (pg_try_advisory_lock, then pg_advisory_unlock,
//! on a random key of a million, prepared), on one connection opened up front,
//! with nothing recorded. Prints cycles per second. With `--session` the loop goes
//! through the backend's session instead (try_acquire, release: the lock client
//! lockbench runs, without the harness around it).
//!
//! Beside pgbench and lockbench it tells where lockbench's time goes: the
//! connection (this loop against pgbench), the lock client (`--session` against
//! this loop) and the harness (lockbench against `--session`).
//!
//! Usage: postgres-plain-loop HOST:PORT SECONDS [--session]

use std::time::{Duration, Instant};

use lockbench_backends::pgwire::{Conn, INT8, Login, Value};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    // In a task of its own, as lockbench's clients run: the future block_on
    // polls runs on the main thread, and every wake-up would cross threads.
    tokio::spawn(run()).await.expect("the loop panicked");
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let (Some((host, port)), Some(secs)) = (
        args.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?))),
        args.get(2).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: postgres-plain-loop HOST:PORT SECONDS [--session]");
        std::process::exit(2);
    };
    let until = Duration::from_secs_f64(secs);
    let key = || 1 + (rand::random::<u64>() % 1_000_000) as i64;
    let mut n = 0u64;
    let t0;
    if args.get(3).map(String::as_str) == Some("--session") {
        let env = lockbench_backends::BackendEnv { endpoints: vec![format!("{host}:{port}")], ..Default::default() };
        let backend = lockbench_backends::lookup("postgres-advisory").expect("registered").open(&env).expect("open");
        let mut s = backend.session().await.expect("session");
        let names: Vec<String> = (0..1_000_000).map(|k| format!("k{k}")).collect();
        t0 = Instant::now();
        while t0.elapsed() < until {
            let name = &names[key() as usize - 1];
            let lease = s.try_acquire(name, Duration::from_secs(30)).await.expect("lock").expect("granted");
            assert!(s.release(&lease).await.expect("unlock"));
            n += 1;
        }
    } else {
        let login = Login { user: "postgres", password: None, database: "postgres", application: "plain-loop" };
        let mut c = Conn::connect(&host, port, &login).await.expect("connect");
        c.prepare(&[
            ("l", "SELECT pg_try_advisory_lock($1)", &[INT8]),
            ("u", "SELECT pg_advisory_unlock($1)", &[INT8]),
        ])
        .await
        .expect("prepare");
        t0 = Instant::now();
        while t0.elapsed() < until {
            let k = key();
            assert_eq!(c.execute("l", &[Value::Int8(k)]).await.expect("lock").first, Some(1));
            c.execute("u", &[Value::Int8(k)]).await.expect("unlock");
            n += 1;
        }
    }
    println!("{:.0}", n as f64 / t0.elapsed().as_secs_f64());
}
