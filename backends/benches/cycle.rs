//! One uncontended acquire + release per backend: the floor of what each lock costs
//! through lockbench's contract. Server backends are benched when LOCKBENCH_*
//! endpoints are given (see the README); the embedded ones always.

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
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cycle
}
criterion_main!(benches);
