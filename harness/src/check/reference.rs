//! The checker as it was before it streamed: every hold in memory, sorted sweeps.
//! Kept for the tests only, as a second opinion: the streaming checker must agree
//! with it on every figure (`stream_agrees_with_the_reference`).
#![allow(dead_code)]

use std::collections::HashMap;

use super::{
    Hold, LostUpdate, MAX_EXAMPLES, Overlap, OverlapClass, Spread, TokenRegression, Verdict, availability, jain,
};
use crate::record::{Event, History, Kind, Op};

/// The verdict as the old checker computed it (examples aside).
pub fn check(h: &History) -> Verdict {
    let mut v = Verdict::default();
    let holds = holds(h);
    v.grants = holds.len() as u64;
    mutual_exclusion(h, &holds, &mut v);
    concurrency(&holds, &mut v);
    fencing(&holds, &mut v);
    register(h, &holds, &mut v);
    liveness(h, &mut v);
    v.availability = availability::availability(h);
    v
}

/// Reconstruct every grant's hold from the history.
pub fn holds(h: &History) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    let mut by_owner: HashMap<u64, usize> = HashMap::new();
    let mut last_invoke: HashMap<u32, usize> = HashMap::new();
    for (i, e) in h.events.iter().enumerate() {
        match (e.op, e.kind) {
            (Op::Fault, _) => {}
            (_, Kind::Invoke) => {
                last_invoke.insert(e.client, i);
                if let Some(&hi) = by_owner.get(&e.owner)
                    && e.op == Op::Release
                    && out[hi].ended_by.is_empty()
                {
                    out[hi].end = e.t;
                    out[hi].ended_by = "release".into();
                    out[hi].events.push(i);
                }
            }
            (Op::Acquire, Kind::Ok) => {
                let inv = last_invoke.get(&e.client).map(|&j| (j, &h.events[j]));
                let (inv_i, inv_t) = match inv {
                    Some((j, ie)) if ie.op == Op::Acquire => (Some(j), ie.t),
                    _ => (None, e.t),
                };
                by_owner.insert(e.owner, out.len());
                out.push(Hold {
                    key: e.key,
                    client: e.client,
                    owner: e.owner,
                    token: e.token,
                    invoked: inv_t,
                    start: e.t,
                    end: 0,
                    // `a` is what was left of the lease at the grant.
                    expires: e.t + e.a,
                    ended_by: String::new(),
                    events: inv_i.into_iter().chain([i]).collect(),
                });
            }
            (Op::Renew, Kind::Ok) => {
                if let (Some(&hi), Some(&j)) = (by_owner.get(&e.owner), last_invoke.get(&e.client)) {
                    let inv = &h.events[j];
                    // Renewed: valid for `a` from the renew's invoke.
                    out[hi].expires = out[hi].expires.max(inv.t + inv.a);
                }
            }
            (Op::Crash, _) => {
                if let Some(&hi) = by_owner.get(&e.owner)
                    && out[hi].ended_by.is_empty()
                {
                    out[hi].end = e.t;
                    out[hi].ended_by = "crash".into();
                    out[hi].events.push(i);
                }
            }
            _ => {}
        }
    }
    for hold in &mut out {
        if hold.ended_by.is_empty() {
            hold.end = h.end.max(hold.start);
            hold.ended_by = "run-end".into();
        }
    }
    out
}

/// Fault windows: (start, end, description), in the order they end; a window
/// still open at the end of the history ends there.
pub fn fault_windows(h: &History) -> Vec<(u64, u64, String)> {
    let mut open: HashMap<u32, (u64, String)> = HashMap::new();
    let mut out = Vec::new();
    for e in h.events.iter().filter(|e| e.op == Op::Fault) {
        let desc = e.msg.as_deref().unwrap_or("fault").to_owned();
        match e.kind {
            Kind::Invoke => {
                open.insert(e.client, (e.t, desc));
            }
            _ => {
                if let Some((s, d)) = open.remove(&e.client) {
                    out.push((s, e.t, d));
                }
            }
        }
    }
    out.extend(open.into_values().map(|(s, d)| (s, h.end, d)));
    out
}

/// Per key, a sweep over hold starts and ends: which holds overlapped another,
/// the spans with two or more holders, and the most holders at once. A hold that
/// ends exactly when another starts does not overlap it (ends sort first).
fn concurrency(holds: &[Hold], v: &mut Verdict) {
    for hs in by_key(holds).into_values() {
        // (time, 0 = end / 1 = start, index into hs)
        let mut edges: Vec<(u64, u8, usize)> = Vec::with_capacity(hs.len() * 2);
        for (i, x) in hs.iter().enumerate() {
            if x.end > x.start {
                edges.push((x.start, 1, i));
                edges.push((x.end, 0, i));
            }
        }
        edges.sort_unstable();
        let mut active: Vec<usize> = Vec::new();
        let mut overlapped = vec![false; hs.len()];
        let mut episode_start = 0u64;
        for (t, what, i) in edges {
            if what == 0 {
                active.retain(|&a| a != i);
                if active.len() == 1 {
                    v.overlap_ns += t - episode_start;
                }
                continue;
            }
            active.push(i);
            v.max_holders = v.max_holders.max(active.len() as u64);
            if active.len() == 2 {
                v.overlap_episodes += 1;
                episode_start = t;
            }
            if active.len() >= 2 {
                for &a in &active {
                    overlapped[a] = true;
                }
            }
        }
        v.holds_overlapped += overlapped.iter().filter(|&&o| o).count() as u64;
        // Zero-length holds (granted as the run ended) still count as holders.
        if !hs.is_empty() {
            v.max_holders = v.max_holders.max(1);
        }
    }
}

fn by_key(holds: &[Hold]) -> HashMap<u32, Vec<&Hold>> {
    let mut m: HashMap<u32, Vec<&Hold>> = HashMap::new();
    for hd in holds {
        m.entry(hd.key).or_default().push(hd);
    }
    m
}

fn mutual_exclusion(h: &History, holds: &[Hold], v: &mut Verdict) {
    let faults = fault_windows(h);
    // Examples of each class, spread over the whole run.
    let mut within = Spread::new(MAX_EXAMPLES / 2);
    let mut after = Spread::new(MAX_EXAMPLES / 2);
    let mut keys: Vec<(u32, Vec<&Hold>)> = by_key(holds).into_iter().collect();
    keys.sort_by_key(|(k, _)| *k);
    for (key, mut hs) in keys {
        hs.sort_by_key(|x| (x.start, x.owner));
        // Sweep: `active` holds those that may still overlap later starts.
        let mut active: Vec<&Hold> = Vec::new();
        for cur in hs {
            active.retain(|a| a.end > cur.start);
            for a in &active {
                if a.owner == cur.owner {
                    continue;
                }
                let from = cur.start;
                let to = a.end.min(cur.end);
                let class = if from < a.expires.min(cur.expires) {
                    OverlapClass::WithinLease
                } else {
                    OverlapClass::AfterExpiry
                };
                match class {
                    OverlapClass::WithinLease => v.within_lease += 1,
                    OverlapClass::AfterExpiry => v.after_expiry += 1,
                }
                let sample = if class == OverlapClass::WithinLease { &mut within } else { &mut after };
                sample.offer(|| {
                    let fs =
                        faults.iter().filter(|(s, e, _)| *s <= from && *e >= a.start).map(|f| f.2.clone()).collect();
                    Overlap { key, class, first: (*a).clone(), second: cur.clone(), from, to, faults: fs }
                });
            }
            active.push(cur);
        }
    }
    let mut examples = within.into_vec();
    examples.extend(after.into_vec());
    examples.sort_by_key(|o| (o.from, o.key));
    v.overlaps = examples;
}

/// Tokens per key must grow: a grant that began after another grant had finished
/// (its ok) must carry a larger token. Grants that overlap in real time may come in
/// either order and are not compared.
fn fencing(holds: &[Hold], v: &mut Verdict) {
    for (key, hs) in by_key(holds) {
        let mut done: Vec<&Hold> = hs.iter().copied().filter(|x| x.token != 0).collect();
        done.sort_by_key(|x| x.start);
        let mut begun = done.clone();
        begun.sort_by_key(|x| x.invoked);
        let mut best: Option<&Hold> = None;
        let mut i = 0;
        for cur in begun {
            while i < done.len() && done[i].start < cur.invoked {
                if best.is_none_or(|b| done[i].token > b.token) {
                    best = Some(done[i]);
                }
                i += 1;
            }
            if let Some(b) = best
                && cur.token <= b.token
            {
                v.token_regressions += 1;
                if v.regressions.len() < MAX_EXAMPLES {
                    v.regressions.push(TokenRegression { key, earlier: b.clone(), later: cur.clone() });
                }
            }
        }
    }
    v.regressions.sort_by_key(|r| (r.key, r.later.start));
}

fn register(h: &History, holds: &[Hold], v: &mut Verdict) {
    let expires: HashMap<u64, u64> = holds.iter().map(|x| (x.owner, x.expires)).collect();
    let mut last_write: HashMap<u32, usize> = HashMap::new();
    // Per key: acknowledged writes, and (version, value) of the newest write.
    let mut per_key: HashMap<u32, (u64, u64, u64)> = HashMap::new();
    for (i, e) in h.events.iter().enumerate() {
        if e.op != Op::Write {
            continue;
        }
        match e.kind {
            Kind::Invoke => {
                last_write.insert(e.client, i);
            }
            Kind::Ok => {
                let Some(&j) = last_write.get(&e.client) else {
                    continue;
                };
                let inv = &h.events[j];
                if expires.get(&e.owner).is_some_and(|&x| inv.t >= x) {
                    v.late_writes_accepted += 1;
                }
                // The register's version counts accepted writes: anything but
                // read + 1 means another write landed in between and was overwritten.
                v.writes_acknowledged += 1;
                let k = per_key.entry(e.key).or_insert((0, 0, 0));
                k.0 += 1;
                if e.b >= k.1 {
                    (k.1, k.2) = (e.b, e.a);
                }
                if e.b != inv.b + 1 {
                    v.clobbering_writes += 1;
                    if v.lost.len() < MAX_EXAMPLES {
                        v.lost.push(LostUpdate {
                            key: e.key,
                            client: e.client,
                            owner: e.owner,
                            read_version: inv.b,
                            wrote_version: e.b,
                            events: vec![j, i],
                        });
                    }
                }
            }
            Kind::Fail if e.msg.as_deref().is_some_and(|m| m.starts_with("stale token")) => {
                v.stale_writes_refused += 1;
            }
            _ => {}
        }
    }
    // The register only ever gets value read + 1: its final value is the number of
    // increments that survived.
    v.increments_lost = per_key.values().map(|&(writes, _, value)| writes.saturating_sub(value)).sum();
}

fn liveness(h: &History, v: &mut Verdict) {
    let mut grants_by_client: HashMap<u32, u64> = HashMap::new();
    let mut last_invoke: HashMap<u32, &Event> = HashMap::new();
    let mut crashes: Vec<(u64, u32)> = Vec::new();
    let mut grants_by_key: HashMap<u32, Vec<u64>> = HashMap::new();
    for e in &h.events {
        if e.kind == Kind::Info {
            v.unknown_outcomes += 1;
        }
        match (e.op, e.kind) {
            (Op::Acquire, Kind::Invoke) => {
                v.acquire_attempts += 1;
                grants_by_client.entry(e.client).or_insert(0);
                last_invoke.insert(e.client, e);
            }
            (Op::Acquire, Kind::Ok) => {
                *grants_by_client.entry(e.client).or_insert(0) += 1;
                grants_by_key.entry(e.key).or_default().push(e.t);
                if let Some(inv) = last_invoke.get(&e.client) {
                    let from = if inv.a != 0 { inv.a } else { inv.t };
                    v.longest_wait_ns = v.longest_wait_ns.max(e.t.saturating_sub(from));
                }
            }
            (Op::Acquire, Kind::Fail) if e.msg.as_deref() == Some("timeout") => v.acquire_timeouts += 1,
            (Op::Acquire, Kind::Fail) if e.msg.as_deref() == Some(crate::run::client::REFUSED) => {
                v.acquire_refused += 1
            }
            (Op::Acquire, Kind::Fail) => v.acquire_errors += 1,
            (Op::Crash, Kind::Ok) => crashes.push((e.t, e.key)),
            _ => {}
        }
    }
    v.crashes = crashes.len() as u64;
    for (t, key) in crashes {
        // Grants of a key are in time order: the first one after the crash.
        if let Some(g) = grants_by_key.get(&key).and_then(|g| g.iter().find(|&&g| g > t)) {
            v.crash_recovery_ns.push(g - t);
        }
    }
    v.fairness = jain(grants_by_client.values().copied());
}
