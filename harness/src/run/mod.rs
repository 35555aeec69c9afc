//! The runner: drives one backend through one scenario and returns its history.
//!
//! Clients are tokio tasks, each with its own session and its own seeded RNG; the
//! nemesis applies the fault schedule beside them. The runner only drives and
//! records: it never judges (that is `check`) and never writes files (`report`).

pub mod calibrate;
pub mod client;
pub mod held;
pub mod keys;
pub mod preflight;
pub mod register;
pub mod signals;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::Servers;
use lockbench_backends::{BackendEnv, BackendError, Capabilities, Clock, LockBackend, Wait};

use crate::faults;
use crate::record::Recorded;
use crate::record::spill::{self, Spill};
use crate::scenario::{ClientMode, LoadModel, Scenario};
use client::{Client, Command, Control, Plan, Progress, Shared};
use keys::{KeyChooser, key_name};

/// Set by the first SIGINT or SIGTERM (see [`signals`]): every running scenario
/// stops early and keeps what it recorded.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One backend's finished run of one scenario.
pub struct BackendRun {
    pub backend: String,
    pub capabilities: Capabilities,
    pub history: Recorded,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Open load: the time the sessions took to be ready before the schedule
    /// started (ns); excluded from the history's load window.
    pub warm_up_ns: u64,
    /// Locks held beside the load (`keys.held`) and how long taking them took.
    pub held: Option<(u32, Duration)>,
}

/// What the progress display is told while a run goes on.
pub trait Observer: Send + Sync {
    fn tick(&self, _elapsed: Duration, _progress: &Progress) {}
    /// What the run is doing before its load starts (taking held locks).
    fn note(&self, _what: &str) {}
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

/// Run `s` against `backend`. Fails only when the history cannot be written to
/// the temp folder.
pub async fn run_backend(
    s: &Scenario,
    backend: Arc<dyn LockBackend>,
    env: &BackendEnv,
    servers: Option<Arc<dyn Servers>>,
    observer: &dyn Observer,
) -> std::io::Result<BackendRun> {
    let spill = Spill::start(&format!("{}-{}-history", s.name, backend.name()))?;
    // Locks held beside the load are taken before its clock starts; a signal
    // ends the filling (and the load below then stops at once).
    let held = if s.held() > 0 {
        observer.note(&format!("taking {} locks held beside the load", s.held()));
        tokio::select! {
            r = held::take(&backend, s.held(), s.lease()) => Some(r.map_err(std::io::Error::other)?),
            _ = signals::interrupted() => None,
        }
    } else {
        None
    };
    if s.held() > 0 && held.is_none() {
        // Interrupted while taking the held locks: no load runs beside fewer of
        // them, and nothing is recorded.
        let now = mono_ns();
        return Ok(BackendRun {
            backend: backend.name().to_owned(),
            capabilities: backend.capabilities(),
            history: Recorded::Disk(spill.finish(now, now)?),
            interrupted: true,
            warm_up_ns: 0,
            held: None,
        });
    }
    // The plan before the clock: a million key names take ~0.1 s to build, and
    // set-up must not count as load time (it did: scripts/bench-postgres's rate
    // lost ~3% to it).
    let mut plan = plan(s, 0);
    let mut shared = Shared::new(Default::default());
    if *s.load.model.get_ref() == LoadModel::Open {
        shared = match s.client_mode {
            ClientMode::Task => shared.with_ready(s.clients()),
            ClientMode::Process => shared.with_workers_ready(s.clients()),
        };
    }
    let shared = Arc::new(shared);
    let controls: Vec<Arc<Control>> = (0..s.clients()).map(|_| Arc::new(Control::default())).collect();

    // Network faults need each client behind its own proxies (cutting one holder off
    // must leave the others connected), and skewed client clocks need each client
    // its own clock: then every client opens its own instance of the backend. A
    // backend whose state lives in this process (inprocess) stays shared.
    let (net, net_error) = if s.has_network_faults() && !env.endpoints.is_empty() {
        match faults::Net::start(s.clients(), &env.endpoints).await {
            Ok(n) => (Some(Arc::new(n)), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let clocks: Vec<Clock> = (0..s.clients())
        .map(|_| if s.has_client_clock_faults() { Clock::skewed(0, 1.0) } else { env.clock.clone() })
        .collect();
    let own_instance = backend.capabilities().multi_process && (net.is_some() || s.has_client_clock_faults());
    let client_env = |id: u32| BackendEnv {
        dir: env.dir.clone(),
        endpoints: net.as_ref().map_or_else(|| env.endpoints.clone(), |n| n.endpoints(id)),
        clock: clocks[id as usize].clone(),
        client: Some(id),
    };

    // Give tasks a moment to be spawned before the clock starts, so that client 0
    // does not get a head start over client 63. (The proxies of network faults are
    // up by now: their start is no load time either.)
    let start = mono_ns() + 5_000_000;
    plan.start = start;
    let plan = Arc::new(plan);
    let mut tasks = Vec::with_capacity(controls.len());
    for (id, control) in controls.iter().enumerate() {
        let id = id as u32;
        let (shared, control) = (shared.clone(), control.clone());
        match s.client_mode {
            ClientMode::Task => {
                let mut client = Client::new(id, plan.clone(), shared, control);
                client.rec.sink = Some(spill.sink(id));
                client.clock = clocks[id as usize].clone();
                client.lease_clock = if own_instance { client.clock.clone() } else { env.clock.clone() };
                let backend = if own_instance {
                    lockbench_backends::lookup(backend.name())
                        .ok_or_else(|| BackendError::Config(format!("no backend {}", backend.name())))
                        .and_then(|info| info.open(&client_env(id)))
                        .map_err(|e| e.to_string())
                } else {
                    Ok(backend.clone())
                };
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_nanos(start.saturating_sub(mono_ns()))).await;
                    client
                        .run(|| async {
                            match &backend {
                                // A session being set up gives way to an interrupt.
                                Ok(b) => tokio::select! {
                                    s = b.session() => s,
                                    _ = signals::interrupted() => Err(BackendError::Unavailable(
                                        "interrupted while the session was being set up".into(),
                                    )),
                                },
                                Err(e) => Err(BackendError::Config(e.clone())),
                            }
                        })
                        .await
                        .flush()
                }));
            }
            ClientMode::Process => {
                let spec = worker::WorkerSpec {
                    scenario_toml: s.to_toml(),
                    scenario_name: s.name.clone(),
                    client: id,
                    backend: backend.name().to_owned(),
                    endpoints: client_env(id).endpoints,
                    dir: env.dir.clone(),
                    start,
                };
                let sink = spill.sink(id);
                tasks.push(tokio::spawn(async move {
                    sink.send(worker::Supervisor { id, spec, shared, control }.run().await);
                }));
            }
        }
    }
    let until = s.duration().unwrap_or(Duration::from_secs(86_400));
    // The servers live as long as the run, whatever the nemesis does with its copy.
    let _servers = servers.clone();
    let fault_specs: Vec<_> = s.faults.iter().map(|f| f.get_ref().clone()).collect();
    let fault_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let world = faults::World {
        crew: Arc::new(Crew { controls: controls.clone(), shared: shared.clone() }),
        servers,
        net: net.clone(),
        net_error,
        clocks,
    };
    let nemesis = tokio::spawn(faults::nemesis(fault_events.clone(), fault_specs, until, start, s.seed, world));

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
    // Holds still open may finish within the drain; then they are cut short. After
    // an interrupt the load must stop within 2 s: holds get half a second, and a
    // client still inside a request that does not answer 1.5 s, then it is left out.
    let drain = if interrupted { s.drain.0.min(Duration::from_millis(500)) } else { s.drain.0 };
    // A signal that comes during the drain shortens it the same way: holds get at
    // most half a second more, and a client whose request does not answer is left
    // out 1.5 s after the signal.
    let after_signal = Arc::new(std::sync::OnceLock::new());
    let drainer = {
        let (shared, after_signal) = (shared.clone(), after_signal.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = signals::interrupted() => {
                    let _ = after_signal.set(tokio::time::Instant::now() + Duration::from_millis(1500));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            shared.end_drain();
            // Still needed when the drain ran out first and the signal comes later.
            signals::interrupted().await;
            let _ = after_signal.set(tokio::time::Instant::now() + Duration::from_millis(1500));
        })
    };
    // A client that has not ended well after the drain is stuck in the harness.
    let hard_stop = tokio::time::Instant::now()
        + if interrupted { Duration::from_millis(1500) } else { s.drain.0 + Duration::from_secs(15) };
    let signal_stop = || {
        let after_signal = after_signal.clone();
        async move {
            loop {
                match after_signal.get() {
                    Some(&at) => break tokio::time::sleep_until(at).await,
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    };
    for (id, mut t) in tasks.into_iter().enumerate() {
        let joined = tokio::select! {
            // A client that has ended counts as ended, whatever else is due.
            biased;
            r = &mut t => Some(r),
            _ = tokio::time::sleep_until(hard_stop) => None,
            _ = signal_stop() => None,
        };
        match joined {
            Some(Ok(())) => {}
            // A client task that panicked is a harness bug; its events are lost,
            // which the summary would hide, so fail loudly.
            Some(Err(e)) => panic!("client task {id} failed: {e}"),
            None => {
                t.abort();
                // The harness's failure, recorded as one: the events are lost.
                let msg = if INTERRUPTED.load(Ordering::Relaxed) {
                    format!(
                        "harness error: client {id} did not stop within 1.5 s of the interrupt (a request without \
                         an answer): its events are left out of this interrupted run's history"
                    )
                } else {
                    format!("harness error: client {id} did not end 15 s after the drain; its events are lost")
                };
                eprintln!("{msg}");
                let e = crate::record::Event::new(
                    mono_ns(),
                    id as u32,
                    crate::record::Kind::Fail,
                    crate::record::Op::Crash,
                    0,
                );
                spill.sink(id as u32).send(vec![e.with_msg(msg)]);
            }
        }
    }
    drainer.abort();
    nemesis.abort();
    let _ = nemesis.await;
    // The proxies close with the run.
    drop(net);
    let mut faults = std::mem::take(&mut *fault_events.lock().unwrap_or_else(|p| p.into_inner()));
    faults.sort_by_key(|e| e.t);
    spill.sink(spill::FAULTS).send(faults);
    // Held locks on servers the user runs go back; local servers and embedded
    // backends go with the run.
    let held = match held {
        Some(h) if _servers.as_ref().is_some_and(|s| !s.can_fault()) => {
            let figures = (h.count, h.took);
            h.release().await;
            Some(figures)
        }
        h => h.map(|h| (h.count, h.took)),
    };
    let mut history = spill.finish(start, end)?;
    // Open load: the load window starts with the schedule, after the sessions'
    // set-up (warm-up, excluded and said).
    let load_start = shared.load_start.get().copied().unwrap_or(start).clamp(start, history.end);
    history.start = load_start;
    Ok(BackendRun {
        backend: backend.name().to_owned(),
        capabilities: backend.capabilities(),
        history: Recorded::Disk(history),
        interrupted,
        warm_up_ns: load_start - start,
        held,
    })
}

/// The nemesis's handle on this run's clients: what a fault may do to them, and no
/// more.
struct Crew {
    controls: Vec<Arc<Control>>,
    shared: Arc<Shared>,
}

impl faults::Crew for Crew {
    fn count(&self) -> usize {
        self.controls.len()
    }
    fn holders(&self) -> Vec<usize> {
        (0..self.controls.len()).filter(|&i| self.controls[i].holding.load(Ordering::Relaxed) != 0).collect()
    }
    fn crash(&self, c: usize, restart_after: Duration) {
        self.controls[c].send(Command::Crash { restart_after });
    }
    fn pause(&self, c: usize, d: Duration) {
        self.controls[c].send(Command::Pause(d));
    }
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}
