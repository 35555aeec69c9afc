//! The runner: drives one backend through one scenario and returns its history.
//!
//! Clients are tokio tasks, each with its own session and its own seeded RNG; the
//! nemesis applies the fault schedule beside them. The runner only drives and
//! records: it never judges (that is `check`) and never writes files (`report`).

pub mod client;
pub mod keys;
pub mod register;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::Servers;
use lockbench_backends::{BackendEnv, Capabilities, LockBackend, Wait};

use crate::faults;
use crate::record::History;
use crate::scenario::{ClientMode, LoadModel, Scenario};
use client::{Client, Control, Plan, Progress, Shared};
use keys::{KeyChooser, key_name};

/// Set by the Ctrl-C handler: every running scenario stops early and keeps what it
/// recorded.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One backend's finished run of one scenario.
pub struct BackendRun {
    pub backend: String,
    pub capabilities: Capabilities,
    pub history: History,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
}

/// What the progress display is told while a run goes on.
pub trait Observer: Send + Sync {
    fn tick(&self, _elapsed: Duration, _progress: &Progress) {}
}

impl Observer for () {}

pub fn plan(s: &Scenario, start: u64) -> Plan {
    let key_names = Arc::new((0..s.key_count()).map(key_name).collect());
    let open_interval = match (*s.load.model.get_ref(), &s.load.rate) {
        (LoadModel::Open, Some(rate)) => Some(Duration::from_secs_f64(s.clients() as f64 / *rate.get_ref())),
        _ => None,
    };
    Plan {
        lease: s.lease(),
        wait: Wait {
            max: s.lock.wait.0,
            backoff_min: s.lock.backoff_min.0,
            backoff_max: s.lock.backoff_max.get_ref().0,
        },
        hold: s.hold(),
        think: s.load.think,
        renew_every: s.lock.renew_every.as_ref().map(|r| r.get_ref().0),
        fencing: s.fencing,
        acquire_only: s.work.cycle == crate::scenario::Cycle::AcquireOnly,
        keys: KeyChooser::from_scenario(s),
        key_names,
        seed: s.seed,
        clients: s.clients(),
        open_interval,
        ops: s.ops(),
        start,
        clock: lockbench_backends::Clock::monotonic(),
    }
}

/// Run `s` against `backend`.
pub async fn run_backend(
    s: &Scenario,
    backend: Arc<dyn LockBackend>,
    env: &BackendEnv,
    servers: Option<Arc<dyn Servers>>,
    observer: &dyn Observer,
) -> BackendRun {
    // Give tasks a moment to be spawned before the clock starts, so that client 0
    // does not get a head start over client 63.
    let start = mono_ns() + 5_000_000;
    let plan = Arc::new(plan(s, start));
    let shared =
        Arc::new(Shared { stop: AtomicBool::new(false), progress: Progress::default(), register: Default::default() });
    let controls: Vec<Arc<Control>> = (0..s.clients()).map(|_| Arc::new(Control::default())).collect();

    let mut tasks = Vec::with_capacity(controls.len());
    for (id, control) in controls.iter().enumerate() {
        let id = id as u32;
        let (shared, control) = (shared.clone(), control.clone());
        match s.client_mode {
            ClientMode::Task => {
                let client = Client::new(id, plan.clone(), shared, control);
                let backend = backend.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_nanos(start.saturating_sub(mono_ns()))).await;
                    client.run(|| backend.session()).await.events
                }));
            }
            ClientMode::Process => {
                let spec = worker::WorkerSpec {
                    scenario_toml: s.to_toml(),
                    scenario_name: s.name.clone(),
                    client: id,
                    backend: backend.name().to_owned(),
                    endpoints: env.endpoints.clone(),
                    dir: env.dir.clone(),
                    start,
                };
                tasks.push(tokio::spawn(worker::Supervisor { id, spec, shared, control }.run()));
            }
        }
    }
    let until = s.duration().unwrap_or(Duration::from_secs(86_400));
    // The servers live as long as the run, whatever the nemesis does with its copy.
    let _servers = servers.clone();
    let fault_specs: Vec<_> = s.faults.iter().map(|f| f.get_ref().clone()).collect();
    let fault_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let nemesis = tokio::spawn(faults::nemesis(
        fault_events.clone(),
        fault_specs,
        until,
        start,
        s.seed,
        controls.clone(),
        shared.clone(),
        servers,
    ));

    // Watch the clock, the progress and Ctrl-C until the load is over.
    let deadline = s.duration().map(|d| start + d.as_nanos() as u64);
    let mut interrupted = false;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = mono_ns();
        observer.tick(Duration::from_nanos(now.saturating_sub(start)), &shared.progress);
        if INTERRUPTED.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if deadline.is_some_and(|d| now >= d) || tasks.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    let end = mono_ns();
    shared.stop.store(true, Ordering::Relaxed);
    let mut parts = Vec::with_capacity(tasks.len() + 1);
    for t in tasks {
        // A client task that panicked is a harness bug; its events are lost, which
        // the summary would hide, so fail loudly.
        parts.push(t.await.expect("client task panicked"));
    }
    nemesis.abort();
    let _ = nemesis.await;
    parts.push(std::mem::take(&mut *fault_events.lock().unwrap_or_else(|p| p.into_inner())));
    let end = end.max(parts.iter().flatten().map(|e| e.t).max().unwrap_or(end));
    BackendRun {
        backend: backend.name().to_owned(),
        capabilities: backend.capabilities(),
        history: History::merge(parts, start, end),
        interrupted,
    }
}
