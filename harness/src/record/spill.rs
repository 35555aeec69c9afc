//! A history on disk while it is being recorded, so that a long run does not keep
//! every event in memory.
//!
//! Each client hands its recorder's events over in chunks of [`CHUNK`]; a writer
//! thread sorts each chunk by time, encodes it compactly (varints, times as
//! deltas) and appends it, zstd-compressed, to that client's own file in a temp
//! folder of this run. A client's events come in its own time order, so each file
//! is sorted, and reading the history back is a k-way merge of the files: memory
//! follows the number of clients, not the number of events. The temp folder goes
//! when the last handle on the history does (and with every other temp folder on a
//! signal).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use lockbench_backends::servers::tempdirs::{self, TempDir};

use super::{Event, History, Kind, Op};

/// Events a client hands over at once.
pub const CHUNK: usize = 8192;

/// The stream that carries the nemesis's fault events (sorted whole at the end).
pub const FAULTS: u32 = u32::MAX;

type Msg = (u32, Vec<Event>);

/// The writing side: give each client a [`Sink`], then [`finish`](Spill::finish).
pub struct Spill {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<io::Result<Tally>>>,
    dir: Arc<TempDir>,
}

/// Where one client's recorder sends its full chunks.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Msg>,
    stream: u32,
}

impl Sink {
    pub fn send(&self, events: Vec<Event>) {
        if !events.is_empty() {
            // The writer only stops after every sender is gone; a send that fails
            // means it died on an I/O error, which `finish` reports.
            let _ = self.tx.send((self.stream, events));
        }
    }
}

#[derive(Default)]
struct Tally {
    streams: Vec<(u32, PathBuf)>,
    events: u64,
    invokes: u64,
    last_t: u64,
}

impl Spill {
    /// A spill in a new temp folder `lockbench-<pid>-<tag>`.
    pub fn start(tag: &str) -> io::Result<Spill> {
        let dir = Arc::new(tempdirs::scratch(tag)?);
        let (tx, rx) = mpsc::channel::<Msg>();
        let path = dir.path().to_owned();
        let thread = std::thread::Builder::new().name("lockbench-spill".into()).spawn(move || {
            let mut files: std::collections::HashMap<u32, (BufWriter<File>, PathBuf)> = Default::default();
            let mut tally = Tally::default();
            let mut raw = Vec::new();
            let mut z = zstd::bulk::Compressor::new(1)?;
            for (stream, mut events) in rx {
                events.sort_by_key(|e| e.t);
                tally.events += events.len() as u64;
                tally.invokes += events.iter().filter(|e| e.kind == Kind::Invoke).count() as u64;
                tally.last_t = tally.last_t.max(events.last().map_or(0, |e| e.t));
                raw.clear();
                encode_chunk(&events, &mut raw);
                let packed = z.compress(&raw)?;
                let (w, _) = match files.entry(stream) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let p = path.join(format!("{stream}.bin"));
                        let f =
                            File::create(&p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                        v.insert((BufWriter::with_capacity(1 << 16, f), p))
                    }
                };
                w.write_all(&(packed.len() as u32).to_le_bytes())?;
                w.write_all(&(raw.len() as u32).to_le_bytes())?;
                w.write_all(&packed)?;
            }
            for (stream, (mut w, p)) in files {
                w.flush().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                tally.streams.push((stream, p));
            }
            tally.streams.sort();
            Ok(tally)
        })?;
        Ok(Spill { tx: Some(tx), thread: Some(thread), dir })
    }

    pub fn sink(&self, stream: u32) -> Sink {
        Sink { tx: self.tx.clone().expect("a spill is open until finished"), stream }
    }

    /// Wait for every chunk to be written (every [`Sink`] must be dropped by now)
    /// and return the history, in the load window `start..end` (`end` moved to the
    /// last event if one came later).
    pub fn finish(mut self, start: u64, end: u64) -> io::Result<Spilled> {
        drop(self.tx.take());
        let tally = self
            .thread
            .take()
            .expect("finished once")
            .join()
            .map_err(|_| io::Error::other("the history writer thread panicked"))??;
        Ok(Spilled {
            dir: self.dir.clone(),
            streams: tally.streams.into_iter().map(|(_, p)| p).collect(),
            events: tally.events,
            invokes: tally.invokes,
            start,
            end: end.max(tally.last_t),
        })
    }
}

/// A recorded history on disk, read back in time order as often as needed.
#[derive(Clone)]
pub struct Spilled {
    dir: Arc<TempDir>,
    streams: Vec<PathBuf>,
    pub events: u64,
    pub invokes: u64,
    pub start: u64,
    pub end: u64,
}

impl Spilled {
    /// Every event, in time order (at equal times, events that end a hold first,
    /// as the checker's sweeps count them).
    pub fn scan(&self, f: &mut dyn FnMut(&Event)) -> io::Result<()> {
        let _keep = &self.dir;
        let mut readers: Vec<ChunkReader> = Vec::with_capacity(self.streams.len());
        for p in &self.streams {
            let file = File::open(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            readers.push(ChunkReader::new(BufReader::with_capacity(1 << 16, file)));
        }
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(e) = r.peek()? {
                heap.push(Reverse((e.t, rank(e), i)));
            }
        }
        while let Some(Reverse((_, _, i))) = heap.pop() {
            let r = &mut readers[i];
            let e = r.take();
            f(&e);
            if let Some(n) = r.peek()? {
                heap.push(Reverse((n.t, rank(n), i)));
            }
        }
        Ok(())
    }

    /// Read it all into memory (tests and small histories).
    pub fn load(&self) -> io::Result<History> {
        let mut events = Vec::with_capacity(self.events as usize);
        self.scan(&mut |e| events.push(e.clone()))?;
        Ok(History { events, start: self.start, end: self.end })
    }
}

/// Events that end a hold sort before others at the same time.
fn rank(e: &Event) -> u8 {
    match (e.op, e.kind) {
        (Op::Release, Kind::Invoke) | (Op::Crash, _) => 0,
        _ => 1,
    }
}

struct ChunkReader {
    r: BufReader<File>,
    z: zstd::bulk::Decompressor<'static>,
    chunk: Vec<Event>,
    next: usize,
    packed: Vec<u8>,
}

impl ChunkReader {
    fn new(r: BufReader<File>) -> ChunkReader {
        ChunkReader {
            r,
            z: zstd::bulk::Decompressor::new().expect("a zstd decompressor"),
            chunk: Vec::new(),
            next: 0,
            packed: Vec::new(),
        }
    }

    fn peek(&mut self) -> io::Result<Option<&Event>> {
        if self.next >= self.chunk.len() {
            let mut head = [0u8; 8];
            match self.r.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let packed = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            let raw = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
            self.packed.resize(packed, 0);
            self.r.read_exact(&mut self.packed)?;
            let bytes = self.z.decompress(&self.packed, raw)?;
            self.chunk.clear();
            self.next = 0;
            decode_chunk(&bytes, &mut self.chunk)?;
        }
        Ok(self.chunk.get(self.next))
    }

    fn take(&mut self) -> Event {
        let e = std::mem::replace(&mut self.chunk[self.next], Event::new(0, 0, Kind::Invoke, Op::Acquire, 0));
        self.next += 1;
        e
    }
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get(b: &[u8], i: &mut usize) -> io::Result<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let Some(&x) = b.get(*i) else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "spilled history: truncated chunk"));
        };
        *i += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "spilled history: bad number"));
        }
    }
}

const KINDS: [Kind; 4] = [Kind::Invoke, Kind::Ok, Kind::Fail, Kind::Info];
const OPS: [Op; 7] = [Op::Acquire, Op::Release, Op::Renew, Op::Read, Op::Write, Op::Crash, Op::Fault];

/// Encode sorted events: times as deltas, every number a varint.
pub fn encode_chunk(events: &[Event], out: &mut Vec<u8>) {
    put(out, events.len() as u64);
    let mut prev = 0u64;
    for e in events {
        put(out, e.t.wrapping_sub(prev));
        prev = e.t;
        let k = KINDS.iter().position(|k| *k == e.kind).expect("every kind is listed") as u8;
        let o = OPS.iter().position(|o| *o == e.op).expect("every op is listed") as u8;
        out.push(k << 4 | o);
        put(out, u64::from(e.client));
        put(out, u64::from(e.key));
        put(out, e.owner);
        put(out, e.token);
        put(out, e.a);
        put(out, e.b);
        put(out, u64::from(e.n));
        match &e.msg {
            None => put(out, 0),
            Some(m) => {
                put(out, m.len() as u64 + 1);
                out.extend_from_slice(m.as_bytes());
            }
        }
    }
}

pub fn decode_chunk(b: &[u8], out: &mut Vec<Event>) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("spilled history: {what}"));
    let mut i = 0;
    let n = get(b, &mut i)? as usize;
    out.reserve(n);
    let mut t = 0u64;
    for _ in 0..n {
        t = t.wrapping_add(get(b, &mut i)?);
        let ko = *b.get(i).ok_or_else(|| bad("truncated chunk"))?;
        i += 1;
        let kind = *KINDS.get(usize::from(ko >> 4)).ok_or_else(|| bad("bad kind"))?;
        let op = *OPS.get(usize::from(ko & 0xf)).ok_or_else(|| bad("bad op"))?;
        let client = get(b, &mut i)? as u32;
        let key = get(b, &mut i)? as u32;
        let mut e = Event::new(t, client, kind, op, key);
        e.owner = get(b, &mut i)?;
        e.token = get(b, &mut i)?;
        e.a = get(b, &mut i)?;
        e.b = get(b, &mut i)?;
        e.n = get(b, &mut i)? as u32;
        let m = get(b, &mut i)? as usize;
        if m > 0 {
            let s = b.get(i..i + m - 1).ok_or_else(|| bad("truncated message"))?;
            e.msg = Some(String::from_utf8_lossy(s).into());
            i += m - 1;
        }
        out.push(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, client: u32, kind: Kind, op: Op) -> Event {
        Event::new(t, client, kind, op, 3)
    }

    #[test]
    fn chunks_round_trip() {
        let mut e = ev(5, 1, Kind::Ok, Op::Acquire);
        (e.owner, e.token, e.a, e.b, e.n) = (9, u64::MAX, 1 << 40, 7, 5);
        let f = ev(u64::MAX, 2, Kind::Fail, Op::Write).with_msg("stale token é");
        let g = ev(u64::MAX, 70_000, Kind::Info, Op::Fault);
        let mut raw = Vec::new();
        encode_chunk(&[e.clone(), f.clone(), g.clone()], &mut raw);
        let mut back = Vec::new();
        decode_chunk(&raw, &mut back).unwrap();
        assert_eq!(back, vec![e, f, g]);
        // A cut chunk is an error, never a panic.
        for cut in 0..raw.len() {
            let mut v = Vec::new();
            assert!(decode_chunk(&raw[..cut], &mut v).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn streams_merge_in_time_order_with_ends_first() {
        let spill = Spill::start("spill-test").unwrap();
        let (a, b) = (spill.sink(0), spill.sink(1));
        // Client 0 in three chunks, client 1 in one; a release invoke of client 1
        // at the same time as client 0's acquire ok comes first.
        let zero: Vec<Event> = (0..3 * CHUNK as u64).map(|i| ev(2 * i, 0, Kind::Ok, Op::Acquire)).collect();
        for c in zero.chunks(CHUNK) {
            a.send(c.to_vec());
        }
        b.send(vec![ev(1, 1, Kind::Invoke, Op::Acquire), ev(4, 1, Kind::Invoke, Op::Release)]);
        drop((a, b));
        let h = spill.finish(0, 100).unwrap();
        assert_eq!(h.events, 3 * CHUNK as u64 + 2);
        assert_eq!(h.invokes, 2);
        let all = h.load().unwrap().events;
        assert_eq!(all.len(), 3 * CHUNK + 2);
        assert!(all.windows(2).all(|w| w[0].t <= w[1].t));
        let at4: Vec<u32> = all.iter().filter(|e| e.t == 4).map(|e| e.client).collect();
        assert_eq!(at4, vec![1, 0]);
        // Read twice: the same.
        assert_eq!(h.load().unwrap().events, all);
    }
}
