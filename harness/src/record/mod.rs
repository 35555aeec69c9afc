//! The history: every operation as events, and the latency histograms derived from it.
//!
//! Recording must cost next to nothing, so a client only pushes flat [`Event`]s onto
//! its own vector (no lock, no allocation but the vector's growth); histograms,
//! interval logs and the checker all work on the finished history. Timestamps are
//! CLOCK_MONOTONIC nanoseconds, the true clock shared by every process, never a
//! client's (possibly skewed) clock.

pub mod hist;
pub mod spill;

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What kind of step of an operation an event is (Jepsen's :type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The operation starts.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen (held by another, wait ran out, refused).
    Fail,
    /// Outcome unknown: it may or may not have happened (timeout, lost connection).
    Info,
}

impl Kind {
    /// The word the history uses (`type`).
    pub fn word(self) -> &'static str {
        match self {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        }
    }
}

/// The operation (Jepsen's :f).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Acquire,
    Release,
    Renew,
    /// The holder reads the guarded register.
    Read,
    /// The holder writes the guarded register back.
    Write,
    /// The client crashed (its session dropped, or its process killed) while holding.
    Crash,
    /// A fault window: invoke = it starts, ok = it ends.
    Fault,
}

impl Op {
    /// The word the history uses (`f`).
    pub fn word(self) -> &'static str {
        match self {
            Op::Acquire => "acquire",
            Op::Release => "release",
            Op::Renew => "renew",
            Op::Read => "read",
            Op::Write => "write",
            Op::Crash => "crash",
            Op::Fault => "fault",
        }
    }
}

/// One event. Fields that do not apply to an operation are 0 (tokens and owners
/// start at 1, so 0 never means a real one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// True time, ns on CLOCK_MONOTONIC.
    pub t: u64,
    /// Which client (for faults: the fault's number in the schedule).
    pub client: u32,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(rename = "f")]
    pub op: Op,
    /// The key's index: key `k{key}`.
    #[serde(default)]
    pub key: u32,
    /// Lease owner id (acquire ok, release, renew, crash, register ops).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub owner: u64,
    /// Fencing token of the lease (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub token: u64,
    /// acquire invoke: the intended start (open loop; else = t).
    /// acquire ok: how much of the lease the client believes is left at this
    ///   moment (ns, by its own clock); renew invoke: the extension asked for,
    ///   counted from this invoke.
    /// read ok / write invoke: the register's value; write ok: the value written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub a: u64,
    /// read ok: the register's version; write invoke: the version the holder read;
    /// write ok: the version after the write.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub b: u64,
    /// The answer to an acquire, renew or release: the requests the operation sent
    /// to the servers (every instance's, for Redlock); 0 where they are not counted.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub n: u32,
    /// Why a fail or info happened; for faults, what the fault is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<Box<str>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero32(v: &u32) -> bool {
    *v == 0
}

impl Event {
    #[inline]
    pub fn new(t: u64, client: u32, kind: Kind, op: Op, key: u32) -> Self {
        Event { t, client, kind, op, key, owner: 0, token: 0, a: 0, b: 0, n: 0, msg: None }
    }
    /// Attach a message (an error's text): any password the process knows is
    /// replaced by `***` first, so none reaches a history.
    pub fn with_msg(mut self, msg: impl Into<Box<str>>) -> Self {
        self.msg = Some(lockbench_backends::servers::endpoint::redact_known(msg.into()));
        self
    }
}

/// One backend's finished history: every client's events, in time order.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// True time at which the load started (ns); reports count from here.
    pub start: u64,
    /// True time at which the load ended.
    pub end: u64,
}

impl History {
    /// Merge per-client event vectors into one, in time order (stable: a client's
    /// own order is kept for equal timestamps).
    pub fn merge(parts: Vec<Vec<Event>>, start: u64, end: u64) -> History {
        let mut events: Vec<Event> = parts.into_iter().flatten().collect();
        events.sort_by_key(|e| e.t);
        History { events, start, end }
    }

    /// Write as JSON lines, each with the backend's name.
    pub fn write_jsonl(&self, backend: &str, w: &mut impl Write) -> io::Result<()> {
        write_jsonl(self, backend, w)
    }
}

/// Write every event of `src` as JSON lines, each with the backend's name.
pub fn write_jsonl(src: &(impl Source + ?Sized), backend: &str, w: &mut impl Write) -> io::Result<()> {
    let name = serde_json::to_string(backend)?;
    let mut buf = Vec::with_capacity(256);
    let mut failed = None;
    src.scan(&mut |e| {
        if failed.is_none() {
            buf.clear();
            json_line(&name, e, &mut buf);
            if let Err(x) = w.write_all(&buf) {
                failed = Some(x);
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// One event as a JSON line, the fields in the order serde writes them (a
/// history is written by the hundred million: this is several times faster than
/// serde's flattened struct, and a test holds the two to the same bytes).
fn json_line(backend_json: &str, e: &Event, out: &mut Vec<u8>) {
    let (kind, op) = (e.kind.word(), e.op.word());
    let _ = write!(
        out,
        "{{\"backend\":{backend_json},\"t\":{},\"client\":{},\"type\":\"{kind}\",\"f\":\"{op}\",\"key\":{}",
        e.t, e.client, e.key
    );
    for (name, v) in [("owner", e.owner), ("token", e.token), ("a", e.a), ("b", e.b), ("n", u64::from(e.n))] {
        if v != 0 {
            let _ = write!(out, ",\"{name}\":{v}");
        }
    }
    if let Some(m) = &e.msg {
        out.extend_from_slice(b",\"msg\":");
        let _ = serde_json::to_writer(&mut *out, m);
    }
    out.extend_from_slice(b"}\n");
}

/// A history that can be read in time order, as often as needed: in memory, or
/// spilled to disk while it was recorded.
pub trait Source {
    /// True time at which the load started (ns); reports count from here.
    fn start(&self) -> u64;
    /// True time at which the load ended: holds still open end here.
    fn end(&self) -> u64;
    /// Every event, in time order.
    fn scan(&self, f: &mut dyn FnMut(&Event)) -> std::io::Result<()>;
}

impl Source for History {
    fn start(&self) -> u64 {
        self.start
    }
    fn end(&self) -> u64 {
        self.end
    }
    fn scan(&self, f: &mut dyn FnMut(&Event)) -> std::io::Result<()> {
        self.events.iter().for_each(f);
        Ok(())
    }
}

impl Source for spill::Spilled {
    fn start(&self) -> u64 {
        self.start
    }
    fn end(&self) -> u64 {
        self.end
    }
    fn scan(&self, f: &mut dyn FnMut(&Event)) -> std::io::Result<()> {
        spill::Spilled::scan(self, f)
    }
}

/// A backend's recorded history: spilled to disk as it was recorded (a run), or
/// in memory (read from a file, imported, a test).
#[derive(Clone)]
pub enum Recorded {
    Memory(History),
    Disk(spill::Spilled),
    /// One backend's events in a result folder's history file.
    File(std::sync::Arc<FileSource>, u64),
}

impl Recorded {
    /// How many events.
    pub fn len(&self) -> u64 {
        match self {
            Recorded::Memory(h) => h.events.len() as u64,
            Recorded::Disk(s) => s.events,
            Recorded::File(_, n) => *n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Was any operation begun?
    pub fn has_invoke(&self) -> bool {
        match self {
            Recorded::Memory(h) => h.events.iter().any(|e| e.kind == Kind::Invoke),
            Recorded::Disk(s) => s.invokes > 0,
            Recorded::File(..) => true,
        }
    }
    /// Every event in memory (tests, small histories).
    pub fn load(&self) -> io::Result<History> {
        match self {
            Recorded::Memory(h) => Ok(h.clone()),
            Recorded::Disk(s) => s.load(),
            Recorded::File(f, _) => {
                let mut events = Vec::new();
                f.scan(&mut |e| events.push(e.clone()))?;
                Ok(History { events, start: f.start, end: f.end })
            }
        }
    }
}

impl Source for Recorded {
    fn start(&self) -> u64 {
        match self {
            Recorded::Memory(h) => h.start,
            Recorded::Disk(s) => s.start,
            Recorded::File(f, _) => f.start,
        }
    }
    fn end(&self) -> u64 {
        match self {
            Recorded::Memory(h) => h.end,
            Recorded::Disk(s) => s.end,
            Recorded::File(f, _) => f.end,
        }
    }
    fn scan(&self, f: &mut dyn FnMut(&Event)) -> io::Result<()> {
        match self {
            Recorded::Memory(h) => h.scan(f),
            Recorded::Disk(s) => s.scan(f),
            Recorded::File(src, _) => src.scan(f),
        }
    }
}

/// The first line of a `history.jsonl`: which run it belongs to, so that a report
/// is never rebuilt from another run's history.
pub fn write_header(run_id: &str, w: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &serde_json::json!({ "lockbench_history": 1, "run_id": run_id }))?;
    w.write_all(b"\n")
}

/// Read a `history.jsonl` back: (backend, event) per line.
pub fn read_jsonl(r: impl BufRead) -> io::Result<Vec<(String, Event)>> {
    read_history(r).map(|(_, events)| events)
}

/// Read a `history.jsonl` back: its run id (from the header line, if it has one)
/// and (backend, event) per line. A bad line is named by its number.
pub fn read_history(r: impl BufRead) -> io::Result<(Option<String>, Vec<(String, Event)>)> {
    let mut out = Vec::new();
    let run_id = each_line(r, &mut |b, e| out.push((b.to_owned(), e)))?;
    Ok((run_id, out))
}

/// Call `f` with (backend, event) of each line of a history, in file order;
/// returns the run id of the header line, if there is one.
pub fn each_line(r: impl BufRead, f: &mut dyn FnMut(&str, Event)) -> io::Result<Option<String>> {
    #[derive(Deserialize)]
    struct Line {
        backend: String,
        #[serde(flatten)]
        e: Event,
    }
    #[derive(Deserialize)]
    struct Header {
        #[allow(dead_code)]
        lockbench_history: u32,
        run_id: String,
    }
    let mut run_id = None;
    for (i, line) in r.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if i == 0
            && let Ok(h) = serde_json::from_str::<Header>(&line)
        {
            run_id = Some(h.run_id);
            continue;
        }
        let l: Line = serde_json::from_str(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("history line {}: {e}", i + 1)))?;
        f(&l.backend, l.e);
    }
    Ok(run_id)
}

/// The history file of a result folder: `history.jsonl.zst`, or `history.jsonl`
/// (results written before histories were compressed). The first that exists;
/// else the compressed name.
pub fn history_path(dir: &Path) -> PathBuf {
    let z = dir.join("history.jsonl.zst");
    let plain = dir.join("history.jsonl");
    if !z.exists() && plain.exists() { plain } else { z }
}

/// Open a history file for reading, decompressing a `.zst` one.
pub fn open_history(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path)?;
    if path.extension().is_some_and(|x| x == "zst") {
        Ok(Box::new(io::BufReader::with_capacity(1 << 16, zstd::stream::read::Decoder::new(f)?)))
    } else {
        Ok(Box::new(io::BufReader::with_capacity(1 << 16, f)))
    }
}

/// One backend's events in a history file, read from the file on every scan
/// (in file order, which is time order for files lockbench wrote).
pub struct FileSource {
    pub path: PathBuf,
    pub backend: String,
    pub start: u64,
    pub end: u64,
}

impl Source for FileSource {
    fn start(&self) -> u64 {
        self.start
    }
    fn end(&self) -> u64 {
        self.end
    }
    fn scan(&self, f: &mut dyn FnMut(&Event)) -> io::Result<()> {
        let r = open_history(&self.path)?;
        each_line(r, &mut |b, e| {
            if b == self.backend {
                f(&e)
            }
        })
        .map(|_| ())
    }
}

/// A client's recorder: events pushed in order, nothing else. In a run, every
/// [`spill::CHUNK`] events go to the history on disk (`sink`), so memory does not
/// grow with the run. A worker process streams each event to its parent the moment
/// it happens instead (`stream`), so a SIGKILL loses nothing that the client had
/// already done.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<Event>,
    pub stream: Option<fn(Event)>,
    pub sink: Option<spill::Sink>,
}

impl Recorder {
    pub fn with_capacity(n: usize) -> Self {
        Recorder { events: Vec::with_capacity(n), stream: None, sink: None }
    }
    #[inline]
    pub fn push(&mut self, e: Event) {
        match self.stream {
            None => {
                self.events.push(e);
                if self.events.len() >= spill::CHUNK
                    && let Some(s) = &self.sink
                {
                    s.send(std::mem::replace(&mut self.events, Vec::with_capacity(spill::CHUNK)));
                }
            }
            Some(send) => send(e),
        }
    }
    /// Hand what is left to the sink (at the end of the client).
    pub fn flush(&mut self) {
        if let Some(s) = &self.sink {
            s.send(std::mem::take(&mut self.events));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_jsonl() {
        let mut e = Event::new(5, 1, Kind::Ok, Op::Acquire, 3);
        e.owner = 9;
        e.token = 2;
        e.a = 1000;
        let f = Event::new(7, 2, Kind::Fail, Op::Write, 3).with_msg("stale token");
        let h = History { events: vec![e.clone(), f.clone()], start: 0, end: 10 };
        let mut buf = Vec::new();
        h.write_jsonl("inprocess", &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("\"type\":\"ok\""), "{text}");
        let back = read_jsonl(&buf[..]).unwrap();
        assert_eq!(back, vec![("inprocess".to_string(), e), ("inprocess".to_string(), f)]);
    }

    #[test]
    fn json_lines_are_what_serde_writes() {
        #[derive(Serialize)]
        struct Line<'a> {
            backend: &'a str,
            #[serde(flatten)]
            e: &'a Event,
        }
        let mut all = Vec::new();
        for kind in [Kind::Invoke, Kind::Ok, Kind::Fail, Kind::Info] {
            for op in [Op::Acquire, Op::Release, Op::Renew, Op::Read, Op::Write, Op::Crash, Op::Fault] {
                let mut e = Event::new(u64::MAX, 7, kind, op, 3);
                (e.owner, e.b) = (1 << 50, 9);
                all.push(e.clone());
                e.token = 2;
                e.a = 1;
                e.n = 5;
                all.push(e.clone().with_msg("a \"quoted\" \\ line\nwith é and \u{1}"));
            }
        }
        all.push(Event::new(0, 0, Kind::Ok, Op::Acquire, 0));
        for e in &all {
            let mut mine = Vec::new();
            json_line("\"x\\\"y\"", e, &mut mine);
            let mut theirs = serde_json::to_vec(&Line { backend: "x\"y", e }).unwrap();
            theirs.push(b'\n');
            assert_eq!(String::from_utf8(mine).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn merge_orders_by_time_and_keeps_client_order() {
        let a = vec![Event::new(1, 0, Kind::Invoke, Op::Acquire, 0), Event::new(3, 0, Kind::Ok, Op::Acquire, 0)];
        let b = vec![Event::new(2, 1, Kind::Invoke, Op::Acquire, 0), Event::new(3, 1, Kind::Fail, Op::Acquire, 0)];
        let h = History::merge(vec![a, b], 0, 4);
        let ts: Vec<(u64, u32)> = h.events.iter().map(|e| (e.t, e.client)).collect();
        assert_eq!(ts, vec![(1, 0), (2, 1), (3, 0), (3, 1)]);
    }
}
