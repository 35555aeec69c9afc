//! Holder processes: clients in child processes (`lockbench worker`), so that the
//! nemesis can SIGKILL or SIGSTOP a real process that holds a lock.
//!
//! The parent keeps what must survive a kill: the guarded register and the history.
//! A worker streams every event to the parent the moment it happens (one JSON line
//! on stdout) and reaches the register through the same pipe; the parent answers
//! on the worker's stdin. Timestamps are CLOCK_MONOTONIC, shared by both processes.
//!
//! Up (worker → parent):  {"ev": Event} | {"read": key} | {"write": [key, value, token]}
//!                         | "ready" (open load: its session is ready)
//! Down (parent → worker): first a [`WorkerSpec`] line, then {"read": [value, version]}
//!                         | {"written": {"Ok": version} or {"Err": seen}} | "stop"
//!                         | {"go": ns} (open load: the schedule's start, once every
//!                           worker is ready, as task mode's barrier does)

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use lockbench_backends::clock::mono_ns;
use lockbench_backends::servers::local::{forget, spawn_guarded};
use lockbench_backends::{BackendEnv, LockBackend};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc};

use super::client::{Client, Command, Control, Shared};
use super::register::{Guarded, StaleToken};
use crate::record::{Event, Kind, Op};
use crate::scenario::Scenario;

/// Everything a worker needs to be one client of a run.
#[derive(Serialize, Deserialize)]
pub struct WorkerSpec {
    pub scenario_toml: String,
    pub scenario_name: String,
    pub client: u32,
    pub backend: String,
    pub endpoints: Vec<String>,
    pub dir: PathBuf,
    /// The run's start on CLOCK_MONOTONIC (the open-loop schedule counts from it).
    pub start: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Up {
    Ev(Event),
    Read(u32),
    Write(u32, u64, u64),
    Ready,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Down {
    Read(u64, u64),
    Written(std::result::Result<u64, u64>),
    Stop,
    Go(u64),
}

/// The program to run as `lockbench worker`: this binary, unless
/// LOCKBENCH_WORKER_EXE names another (tests run from a test binary).
fn exe() -> Result<PathBuf> {
    match std::env::var_os("LOCKBENCH_WORKER_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().context("finding the lockbench binary for worker processes"),
    }
}

// ---- worker side ----

fn send_up(u: &Up) {
    let mut out = std::io::stdout().lock();
    // A parent that is gone cannot be told anything more: stop.
    if serde_json::to_writer(&mut out, u).is_err() || out.write_all(b"\n").is_err() || out.flush().is_err() {
        std::process::exit(0);
    }
}

fn stream_event(e: Event) {
    send_up(&Up::Ev(e));
}

/// The register in the parent, seen from a worker.
pub struct RemoteRegister {
    replies: Mutex<mpsc::UnboundedReceiver<Down>>,
}

impl RemoteRegister {
    async fn ask(&self, u: Up) -> Down {
        let mut r = self.replies.lock().await;
        send_up(&u);
        // No reply: the parent is gone; a worker has nothing to do without it.
        r.recv().await.unwrap_or_else(|| std::process::exit(0))
    }
    pub async fn read(&self, key: u32) -> (u64, u64) {
        match self.ask(Up::Read(key)).await {
            Down::Read(v, ver) => (v, ver),
            _ => std::process::exit(2),
        }
    }
    pub async fn write(&self, key: u32, value: u64, token: Option<u64>) -> std::result::Result<u64, StaleToken> {
        match self.ask(Up::Write(key, value, token.unwrap_or(0))).await {
            Down::Written(r) => r.map_err(|seen| StaleToken { seen }),
            _ => std::process::exit(2),
        }
    }
}

/// `lockbench worker`: read the spec from stdin, run one client until told to stop.
pub async fn worker_main() -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin.read_line(&mut line).await.context("reading the worker spec")?;
    let spec: WorkerSpec = serde_json::from_str(&line).context("parsing the worker spec")?;
    let scenario = Scenario::parse(&spec.scenario_toml, std::path::Path::new("<parent>"), &spec.scenario_name)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = lockbench_backends::lookup(&spec.backend).context("unknown backend")?;
    let backend: Arc<dyn LockBackend> = info.open(&BackendEnv {
        dir: spec.dir.clone(),
        endpoints: spec.endpoints.clone(),
        client: Some(spec.client),
        ..Default::default()
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut shared = Shared::new(Guarded::Remote(RemoteRegister { replies: Mutex::new(rx) }));
    if *scenario.load.model.get_ref() == crate::scenario::LoadModel::Open {
        shared = shared.with_parent_ready(|| send_up(&Up::Ready));
    }
    let shared = Arc::new(shared);
    // Everything after the spec on stdin: register replies, or "stop".
    let s2 = shared.clone();
    tokio::spawn(async move {
        let mut lines = stdin.lines();
        while let Ok(Some(l)) = lines.next_line().await {
            match serde_json::from_str::<Down>(&l) {
                // Stop starting new operations; a hold in progress still needs
                // its register replies, so keep reading.
                Ok(Down::Stop) => s2.stop.store(true, Ordering::Relaxed),
                Ok(Down::Go(base)) => s2.set_start(base),
                Ok(d) => {
                    let _ = tx.send(d);
                }
                Err(_) => break,
            }
        }
        // The parent closed our stdin: it is gone.
        s2.stop.store(true, Ordering::Relaxed);
    });
    let plan = Arc::new(super::plan(&scenario, spec.start));
    let mut client = Client::new(spec.client, plan, shared, Arc::new(Control::default()));
    client.rec.stream = Some(stream_event);
    client.run(|| backend.session()).await;
    let _ = std::io::stdout().flush();
    // Done. Exit now: the stdin reader sits in a blocking read that would keep the
    // runtime from shutting down.
    std::process::exit(0)
}

// ---- parent side ----

/// What the supervisor of one worker needs from the run.
pub struct Supervisor {
    pub id: u32,
    pub spec: WorkerSpec,
    pub shared: Arc<Shared>,
    pub control: Arc<Control>,
}

impl Supervisor {
    /// Run the worker (again after each crash) until the run stops; returns the
    /// events it streamed, and the crashes the nemesis caused.
    pub async fn run(self) -> Vec<Event> {
        let mut events = Vec::new();
        let spec_line = match serde_json::to_string(&self.spec) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("harness error: cannot describe the worker: {e}");
                events.push(Event::new(mono_ns(), self.id, Kind::Fail, Op::Crash, 0).with_msg(msg));
                return events;
            }
        };
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.incarnation(&spec_line, &mut events).await {
                Ok(Some(restart_after)) => tokio::time::sleep(restart_after).await,
                Ok(None) => break,
                Err(e) => {
                    let msg = format!("harness error: worker process: {e:#}");
                    events.push(Event::new(mono_ns(), self.id, Kind::Fail, Op::Crash, 0).with_msg(msg));
                    break;
                }
            }
        }
        events
    }

    /// One worker process from start to exit. `Some(delay)`: it was crashed on
    /// purpose and comes back after `delay`. A worker that dies on its own (not a
    /// scheduled fault) is a failure of the harness, not of the backend: its death
    /// is recorded with its cause, the hold it had ends there, a request it had in
    /// flight is closed as unknown, and it is not started again.
    async fn incarnation(&self, spec_line: &str, events: &mut Vec<Event>) -> Result<Option<Duration>> {
        let mut cmd = std::process::Command::new(exe()?);
        cmd.arg("worker").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = spawn_guarded(cmd).context("starting a worker process")?;
        let pid = child.id();
        let mut stdin = tokio::process::ChildStdin::from_std(child.stdin.take().context("worker stdin")?)?;
        let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().context("worker stdout")?)?;
        if let Err(e) = stdin.write_all(format!("{spec_line}\n").as_bytes()).await {
            // It cannot be told what to do: it must not live on.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            forget(pid);
            return Err(e).context("sending the worker its spec");
        }
        let mut lines = BufReader::new(stdout).lines();
        // A pipe that cannot be read (not the worker's end): the worker is killed
        // and this is the harness's failure.
        let mut pipe_error: Option<String> = None;
        let mut state = Seen::default();
        // After "stop", a worker finishes its hold within the run's drain; past it,
        // it is killed and its hold ends there, so that a run always ends.
        let mut stopping = false;
        // Set when the nemesis crashed it: (when, restart after).
        let mut crashed: Option<(u64, Duration)> = None;
        let mut held_reads = false;
        // Killed because it did not stop within the drain (when): not a death.
        let mut stuck: Option<u64> = None;
        // Open load: when it said its session was ready, until it is told the start.
        let mut ready_at: Option<u64> = None;
        loop {
            tokio::select! {
                line = lines.next_line(), if !held_reads => {
                    let line = match line {
                        Ok(l) => l,
                        Err(e) => {
                            // SAFETY: kill(2) on our own child.
                            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                            pipe_error = Some(e.to_string());
                            break;
                        }
                    };
                    let Some(line) = line else { break };
                    let Ok(up) = serde_json::from_str::<Up>(&line) else { continue };
                    match up {
                        Up::Ev(e) => {
                            state.see(&e);
                            self.track(&e);
                            events.push(e);
                        }
                        Up::Read(k) => {
                            let (v, ver) = self.shared.register.read(k).await;
                            reply(&mut stdin, &Down::Read(v, ver)).await;
                        }
                        Up::Write(k, v, t) => {
                            let r = self.shared.register.write(k, v, (t != 0).then_some(t)).await;
                            reply(&mut stdin, &Down::Written(r.map_err(|s| s.seen))).await;
                            held_reads = crashed.is_none() && HOLD_READS_AFTER_WRITE.swap(false, Ordering::Relaxed);
                        }
                        Up::Ready => {
                            ready_at = Some(mono_ns());
                            self.shared.worker_ready();
                        }
                    }
                }
                base = self.shared.started(ready_at.unwrap_or(0)), if ready_at.is_some() && crashed.is_none() => {
                    ready_at = None;
                    reply(&mut stdin, &Down::Go(base)).await;
                }
                cmd = self.control.next_command(), if crashed.is_none() => match cmd {
                    Command::Crash { restart_after } => {
                        // The hold ends when the kill is sent, stamped before it: once
                        // the signal is out, the worker's connections may close and
                        // the server re-grant its lock while this thread is not yet
                        // scheduled again (seen on a loaded machine: a crash stamped
                        // after the next holder's grant, read as two holders). Lines
                        // it wrote before dying still count: `died` never ends the
                        // hold before its last event.
                        let t = mono_ns();
                        // SAFETY: kill(2) on our own child.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        crashed = Some((t, restart_after));
                        self.control.holding.store(0, Ordering::Relaxed);
                        // What it did before it died may still be in the pipe: the
                        // crash is recorded against the hold it really had, after
                        // every line is read.
                        held_reads = false;
                    }
                    Command::Pause(d) => {
                        // SAFETY: as above.
                        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                        tokio::time::sleep(d).await;
                        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(20)), if !stopping => {
                    if self.shared.stop.load(Ordering::Relaxed) {
                        stopping = true;
                        held_reads = false;
                        reply(&mut stdin, &Down::Stop).await;
                    }
                }
                _ = self.shared.drained(), if stopping && stuck.is_none() => {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    stuck = Some(mono_ns());
                }
            }
        }
        // Its stdout closed: it exited or was killed. Reap it.
        let status = tokio::task::spawn_blocking(move || child.wait()).await.ok().and_then(|r| r.ok());
        forget(pid);
        self.control.holding.store(0, Ordering::Relaxed);
        if let Some(e) = pipe_error {
            let why = format!("harness error: reading worker process {pid}'s pipe failed ({e}); it was killed");
            events.extend(state.died(self.id, mono_ns(), Death::Unscheduled(why)));
            return Ok(None);
        }
        match (crashed, stuck) {
            (Some((t, restart_after)), _) => {
                // Every event it wrote is in: end the hold it had then, if any.
                events.extend(state.died(self.id, t, Death::Crashed));
                Ok(Some(restart_after))
            }
            (None, Some(t)) => {
                events.extend(state.died(self.id, t, Death::Drained));
                Ok(None)
            }
            // A clean exit is the worker's own end: told to stop, or its share of
            // `ops` done. Anything it left open ends here.
            (None, None) if status.is_some_and(|s| s.success()) => {
                events.extend(state.died(self.id, mono_ns(), Death::Exited));
                Ok(None)
            }
            (None, None) => {
                let cause = match status {
                    Some(s) => describe_exit(s),
                    None => "its exit status could not be read".to_owned(),
                };
                let why = format!(
                    "harness error: worker process {pid} (client {}) died outside any fault: {cause}; its hold ends \
                     here, it is not restarted, and this is not the backend's doing",
                    self.id
                );
                events.extend(state.died(self.id, mono_ns(), Death::Unscheduled(why)));
                Ok(None)
            }
        }
    }

    fn track(&self, e: &Event) {
        let p = &self.shared.progress;
        match (e.op, e.kind) {
            (Op::Acquire, Kind::Invoke) => {
                p.attempts.fetch_add(1, Ordering::Relaxed);
            }
            (Op::Acquire, Kind::Ok) => {
                p.grants.fetch_add(1, Ordering::Relaxed);
                self.control.holding.store(e.owner, Ordering::Relaxed);
            }
            (Op::Release, Kind::Invoke) => {
                self.control.holding.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A test hook: after answering a register write, the supervisor stops reading
/// the worker's pipe until a crash command arrives, so that the worker's release
/// and its next grant are queued, unread, when the crash comes (the race a loaded
/// machine produces now and then). Off unless a test sets it; it fires once.
pub static HOLD_READS_AFTER_WRITE: AtomicBool = AtomicBool::new(false);

/// What the parent has seen of one worker: the hold it has and the request it has
/// in flight.
#[derive(Default)]
struct Seen {
    /// (key, owner, token) of the hold, from its grant to its release's invoke.
    holding: Option<(u32, u64, u64)>,
    /// The last invoke without its completion.
    in_flight: Option<Event>,
    /// The time of the last event it wrote.
    last_t: u64,
}

impl Seen {
    fn see(&mut self, e: &Event) {
        self.last_t = self.last_t.max(e.t);
        match e.kind {
            Kind::Invoke if e.op != Op::Fault => self.in_flight = Some(e.clone()),
            _ if self.in_flight.as_ref().is_some_and(|i| i.op == e.op) => self.in_flight = None,
            _ => {}
        }
        match (e.op, e.kind) {
            (Op::Acquire, Kind::Ok) => self.holding = Some((e.key, e.owner, e.token)),
            (Op::Release, Kind::Invoke) => self.holding = None,
            _ => {}
        }
    }

    /// The events that end this worker at `t`: a request in flight closed as
    /// unknown, and its hold ended by the nemesis's crash (`ok`), by the end of the
    /// run's drain (`info`), or by a death outside any fault (`fail`: a harness
    /// error). Never before the last event it wrote.
    fn died(&mut self, client: u32, t: u64, death: Death) -> Vec<Event> {
        let t = t.max(self.last_t + 1);
        let mut out = Vec::new();
        if let Some(inv) = self.in_flight.take() {
            let mut e = Event::new(t, client, Kind::Info, inv.op, inv.key)
                .with_msg("the worker died with this request in flight");
            e.owner = inv.owner;
            e.token = inv.token;
            out.push(e);
        }
        let hold = self.holding.take();
        let e = match (death, hold) {
            (Death::Crashed, Some((key, ..))) => Some(Event::new(t, client, Kind::Ok, Op::Crash, key)),
            (Death::Drained, Some((key, ..))) => Some(
                Event::new(t, client, Kind::Info, Op::Crash, key)
                    .with_msg("the worker was still holding when the run's drain ended: killed"),
            ),
            (Death::Exited, Some((key, ..))) => {
                Some(Event::new(t, client, Kind::Info, Op::Crash, key).with_msg("the worker exited with a hold open"))
            }
            (Death::Crashed | Death::Drained | Death::Exited, None) => None,
            (Death::Unscheduled(why), hold) => {
                Some(Event::new(t, client, Kind::Fail, Op::Crash, hold.map_or(0, |h| h.0)).with_msg(why))
            }
        };
        if let Some(mut e) = e {
            if let Some((_, owner, token)) = hold {
                e.owner = owner;
                e.token = token;
            }
            out.push(e);
        }
        out
    }
}

/// How a worker's process ended.
enum Death {
    /// The nemesis's crash-holder.
    Crashed,
    /// Killed because it was still running when the run's drain ended.
    Drained,
    /// Exited by itself with status 0 (stopped, or its ops done).
    Exited,
    /// On its own, outside any fault: a harness error (the reason).
    Unscheduled(String),
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("it exited with status {c}"),
        (None, Some(sig)) => {
            format!("it was killed by signal {sig}{}", if sig == libc::SIGKILL { " (SIGKILL)" } else { "" })
        }
        _ => format!("{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, kind: Kind, op: Op, owner: u64) -> Event {
        let mut e = Event::new(t, 0, kind, op, 3);
        e.owner = owner;
        e
    }

    #[test]
    fn a_crash_is_recorded_against_the_hold_the_worker_really_had() {
        // Read before the kill: grant 1. Read after it (still in the pipe): its
        // release, and grant 2.
        let mut s = Seen::default();
        for e in [
            ev(10, Kind::Invoke, Op::Acquire, 0),
            ev(11, Kind::Ok, Op::Acquire, 1),
            ev(20, Kind::Invoke, Op::Release, 1),
            ev(21, Kind::Ok, Op::Release, 1),
            ev(22, Kind::Invoke, Op::Acquire, 0),
            ev(23, Kind::Ok, Op::Acquire, 2),
        ] {
            s.see(&e);
        }
        let out = s.died(0, 15, Death::Crashed);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].op, out[0].kind, out[0].owner), (Op::Crash, Kind::Ok, 2));
        assert!(out[0].t > 23, "never before what it wrote");
    }

    #[test]
    fn a_death_outside_a_fault_ends_its_hold_and_closes_its_request_as_unknown() {
        let mut s = Seen::default();
        for e in [ev(11, Kind::Ok, Op::Acquire, 7), ev(12, Kind::Invoke, Op::Renew, 7)] {
            s.see(&e);
        }
        let out = s.died(0, 50, Death::Unscheduled("harness error: died".into()));
        assert_eq!((out[0].op, out[0].kind), (Op::Renew, Kind::Info));
        assert_eq!((out[1].op, out[1].kind, out[1].owner), (Op::Crash, Kind::Fail, 7));
        // A crash of a worker that held nothing by then records nothing.
        let mut s = Seen::default();
        s.see(&ev(1, Kind::Ok, Op::Acquire, 1));
        s.see(&ev(2, Kind::Invoke, Op::Release, 1));
        s.see(&ev(3, Kind::Ok, Op::Release, 1));
        assert!(s.died(0, 5, Death::Crashed).is_empty());
    }
}

async fn reply(stdin: &mut tokio::process::ChildStdin, d: &Down) {
    if let Ok(mut s) = serde_json::to_string(d) {
        s.push('\n');
        // A dead worker cannot read: its stdout will close and end the loop.
        let _ = stdin.write_all(s.as_bytes()).await;
    }
}
