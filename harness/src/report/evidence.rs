//! The second pass over a checked history: the events behind each example the
//! checker kept, and the holds the timelines draw. The checker keeps only figures
//! and a bounded sample of holds; this pass reads the history once more and keeps
//! only what the report shows, so memory stays bounded however long the run.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::check::{Checker, Hold, Spread, Verdict};
use crate::record::{Event, Op, Source};

/// Keys per backend shown in the timeline, and holds drawn per key at most.
pub const TIMELINE_KEYS: usize = 3;
pub const TIMELINE_BARS: usize = 400;
/// Events of one holder shown at most.
const HOLD_EVENTS: usize = 64;

/// What the report shows of a history beyond its figures.
#[derive(Default)]
pub struct Evidence {
    /// Per example hold (by owner): every event of its client from its acquire
    /// to the answer to its release.
    pub holds: HashMap<u64, Vec<Event>>,
    /// Events named by index (a lost update's write invoke and ok).
    pub events: HashMap<usize, Event>,
    /// Timeline keys, in display order: (key, holds of the key, holds drawn).
    pub timelines: Vec<(u32, usize, Vec<Hold>)>,
    /// The fault events (every one: they are few).
    pub faults: Vec<Event>,
    /// Per example overlap (first owner, second owner): releases of its key by
    /// other clients between the two grants. What freed the key when the first
    /// holder did not (a late holder's release that checks no owner deletes
    /// whoever's lock is there).
    pub others: HashMap<(u64, u64), Vec<Event>>,
}

/// Other clients' release events kept per example overlap, at most.
const OTHER_EVENTS: usize = 8;

impl Evidence {
    /// The events around the violations, in time order: what `--history
    /// violations` keeps.
    pub fn around_violations(&self) -> Vec<Event> {
        let mut seen = HashSet::new();
        let mut out: Vec<Event> = Vec::new();
        let others = self.others.values().flatten();
        for e in self.holds.values().flatten().chain(self.events.values()).chain(&self.faults).chain(others) {
            if seen.insert((e.t, e.client, e.kind as u8, e.op as u8, e.owner)) {
                out.push(e.clone());
            }
        }
        out.sort_by_key(|e| e.t);
        out
    }
}

/// One holder whose events are wanted.
struct Want {
    owner: u64,
    invoked: u64,
    end: u64,
    done: bool,
}

/// Read `h` once more for the examples of `v`.
pub fn gather(h: &(impl Source + ?Sized), v: &Verdict) -> io::Result<Evidence> {
    let mut wants: HashMap<u32, Vec<Want>> = HashMap::new();
    let example_holds = v
        .overlaps
        .iter()
        .flat_map(|o| [&o.first, &o.second])
        .chain(v.regressions.iter().flat_map(|r| [&r.earlier, &r.later]));
    let mut asked = HashSet::new();
    for x in example_holds {
        if asked.insert(x.owner) {
            wants.entry(x.client).or_default().push(Want {
                owner: x.owner,
                invoked: x.invoked,
                end: x.end,
                done: false,
            });
        }
    }
    let by_index: HashSet<usize> = v.lost.iter().flat_map(|l| l.events.iter().copied()).collect();
    // Per key: the window between each example overlap's two grants, and who held.
    // (from, to, the two holders' clients, their owners)
    type Window = (u64, u64, [u32; 2], (u64, u64));
    let mut windows: HashMap<u32, Vec<Window>> = HashMap::new();
    for o in &v.overlaps {
        windows.entry(o.key).or_default().push((
            o.first.start.min(o.second.start),
            o.first.start.max(o.second.start),
            [o.first.client, o.second.client],
            (o.first.owner, o.second.owner),
        ));
    }

    // Timelines: keys with violations first, then the busiest.
    let marked: HashSet<u64> = v.overlaps.iter().flat_map(|o| [o.first.owner, o.second.owner]).collect();
    let mut keys: Vec<u32> = v.overlaps.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    for &(k, _) in &v.busiest_keys {
        if keys.len() >= TIMELINE_KEYS {
            break;
        }
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let order: HashMap<u32, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    // Per key: holds seen, the marked ones, and an even sample of the others (the
    // first few keys only).
    type Lane = (usize, Vec<Hold>, Spread<Hold>);
    let lanes: std::rc::Rc<std::cell::RefCell<Vec<Lane>>> = std::rc::Rc::new(std::cell::RefCell::new(
        keys.iter().map(|_| (0, Vec::new(), Spread::new(TIMELINE_BARS))).collect(),
    ));
    let mut tl = Checker::new(h.start(), h.end());
    {
        let (lanes, order, marked) = (lanes.clone(), order.clone(), marked.clone());
        tl.on_hold = Some(Box::new(move |x: &Hold| {
            let Some(&i) = order.get(&x.key) else { return };
            let lane = &mut lanes.borrow_mut()[i];
            lane.0 += 1;
            if marked.contains(&x.owner) {
                lane.1.push(x.clone());
            } else if i < TIMELINE_KEYS {
                lane.2.offer(|| x.clone());
            }
        }));
    }

    let mut ev = Evidence::default();
    let mut seq = 0usize;
    h.scan(&mut |e| {
        let i = seq;
        seq += 1;
        if e.op == Op::Fault {
            ev.faults.push(e.clone());
            return;
        }
        if order.contains_key(&e.key) || matches!(e.op, Op::Crash) {
            tl.event(e);
        }
        if by_index.contains(&i) {
            ev.events.insert(i, e.clone());
        }
        if e.op == Op::Release
            && let Some(ws) = windows.get(&e.key)
        {
            for (from, to, holders, id) in ws {
                if e.t >= *from && e.t <= *to && !holders.contains(&e.client) {
                    let v = ev.others.entry(*id).or_default();
                    if v.len() < OTHER_EVENTS {
                        v.push(e.clone());
                    }
                }
            }
        }
        let Some(ws) = wants.get_mut(&e.client) else { return };
        for w in ws.iter_mut().filter(|w| !w.done && e.t >= w.invoked) {
            let out = ev.holds.entry(w.owner).or_default();
            if e.t > w.end {
                // The release's answer, then stop.
                if e.op == Op::Release && e.kind != crate::record::Kind::Invoke {
                    out.push(e.clone());
                }
                w.done = true;
            } else if out.len() < HOLD_EVENTS {
                out.push(e.clone());
            }
        }
    })?;
    tl.finish();
    let lanes = std::mem::take(&mut *lanes.borrow_mut());
    ev.timelines = keys
        .into_iter()
        .zip(lanes)
        .map(|(k, (total, mut pick, sample))| {
            let room = TIMELINE_BARS.saturating_sub(pick.len());
            pick.extend(sample.into_vec().into_iter().take(room));
            pick.sort_by_key(|x| (x.start, x.owner));
            (k, total, pick)
        })
        .collect();
    Ok(ev)
}

/// Check a history and measure its latencies, in one pass.
pub fn check_and_measure(h: &(impl Source + ?Sized)) -> io::Result<(Verdict, crate::record::hist::Latencies)> {
    let mut c = Checker::new(h.start(), h.end());
    let mut l = crate::record::hist::LatencyBuilder::new(h.start(), h.end());
    h.scan(&mut |e| {
        c.event(e);
        l.event(e);
    })?;
    Ok((c.finish(), l.finish()))
}

/// Check a history and gather its evidence: the two passes.
pub fn check_and_gather(h: &(impl Source + ?Sized)) -> io::Result<(Verdict, crate::record::hist::Latencies, Evidence)> {
    let (v, l) = check_and_measure(h)?;
    let ev = gather(h, &v)?;
    Ok((v, l, ev))
}
