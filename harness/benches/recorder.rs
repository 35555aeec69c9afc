//! The harness's own cost, so that it is never what lockbench measures.
//!
//! - `recorder/push`: one event onto a client's recorder.
//! - `cycle/inprocess`: the full recorded cycle of a client on the inprocess
//!   backend: acquire (invoke + ok events), the guarded read and write (4 events),
//!   release (2 events). Target: ≤ 1 µs. The recorder is cleared every 4096 cycles
//!   inside the timing, so its growth and its drop are counted, amortised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lockbench::record::{Event, Kind, Op, Recorder};
use lockbench::run::client::{Client, Control, Shared};
use lockbench::scenario::Scenario;
use lockbench_backends::clock::mono_ns;
use lockbench_backends::{BackendEnv, lookup};

fn push(c: &mut Criterion) {
    c.bench_function("recorder/push", |b| {
        let mut r = Recorder::with_capacity(1 << 16);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            if r.events.len() == r.events.capacity() {
                r.events.clear();
            }
            let mut e = Event::new(mono_ns(), 3, Kind::Ok, Op::Acquire, 7);
            e.owner = i;
            r.push(e);
        })
    });
}

fn cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = Scenario::parse(
        "clients = 1\nduration = \"1s\"\n[keys]\ncount = 1\n[lock]\nlease = \"10s\"\n",
        std::path::Path::new("bench.toml"),
        "bench",
    )
    .unwrap();
    let plan = Arc::new(lockbench::run::plan(&s, mono_ns()));
    let shared = Arc::new(Shared::new(Default::default()));
    let backend = lookup("inprocess").unwrap().open(&BackendEnv::default()).unwrap();
    let mut session = rt.block_on(backend.session()).unwrap();
    let mut client = Client::new(0, plan, shared, Arc::new(Control::default()));
    c.bench_function("cycle/inprocess", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for i in 0..iters {
                    client.cycle(&mut *session, 0, Duration::ZERO, 0).await;
                    if i % 4096 == 4095 {
                        client.rec.events.clear();
                    }
                }
                t0.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = push, cycle
}
criterion_main!(benches);
