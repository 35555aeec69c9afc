//! One uncontended acquire + release per backend: the floor of what each lock costs
//! through lockbench's contract. The embedded backends always; `redis` against a
//! local redis-server that the bench starts (the local provider), when
//! redis-server is installed (scripts/setup): one session's full cycle, the path
//! a single client waits on, to set beside redis-benchmark's two-script floor
//! (scripts/bench-redis).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lockbench_backends::{BackendEnv, registry};

fn cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("acquire+release");
    for info in registry().into_iter().filter(|b| b.compiled && b.is_embedded()) {
        let env = BackendEnv { dir: dir.path().to_owned(), ..Default::default() };
        let backend = info.open(&env).unwrap();
        let mut session = rt.block_on(backend.session()).unwrap();
        g.bench_function(info.name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        let l = session.try_acquire("bench", Duration::from_secs(10)).await.unwrap().unwrap();
                        session.release(&l).await.unwrap();
                    }
                    t0.elapsed()
                })
            })
        });
    }
    #[cfg(feature = "redis")]
    redis(&rt, &mut g);
    g.finish();
}

#[cfg(feature = "redis")]
fn redis(rt: &tokio::runtime::Runtime, g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use lockbench_backends::servers::local::{LocalCluster, ServerOptions};
    use lockbench_backends::servers::{ServerKind, Servers};
    let cluster = match LocalCluster::start(ServerKind::Redis, 1, ServerOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("redis not benched: no local redis-server ({e}); run scripts/setup");
            return;
        }
    };
    let env = BackendEnv { endpoints: cluster.endpoints(), ..Default::default() };
    let backend = lockbench_backends::lookup("redis").expect("redis is compiled in").open(&env).unwrap();
    let mut session = rt.block_on(backend.session()).unwrap();
    let mut n = 0u64;
    g.bench_function("redis (local server)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    // A fresh key each time, as a million random keys would be.
                    n += 1;
                    let key = format!("bench-{n}");
                    let l = session.try_acquire(&key, Duration::from_secs(10)).await.unwrap().unwrap();
                    session.release(&l).await.unwrap();
                }
                t0.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cycle
}
criterion_main!(benches);
