//! Histories from elsewhere: Jepsen's lock histories (`jepsen-json`, `jepsen-edn`),
//! turned into lockbench events so the same checker reads them.
//!
//! A Jepsen mutex history is a list of operations `{:process P :type
//! :invoke|:ok|:fail|:info :f :acquire|:release :time T}`, optionally with a `:value`
//! naming the lock. It has no owners, tokens or leases, and its model is the lock
//! service's state: a lock is held from a granted acquire until a release the
//! service accepted. So, on import: each grant gets a fresh owner and a lease that
//! never runs out; a release whose outcome is `fail` did nothing (the service kept
//! the lock) and does not end the hold, so it is kept only as a `fail` event for the
//! evidence; nemesis operations (`:process :nemesis`, `:f :start` / `:stop`) become
//! fault windows. This module only converts: it never judges.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::record::{Event, Kind, Op};

/// A lease that never runs out (ns), for histories without leases.
pub const NO_LEASE: u64 = u64::MAX / 4;

/// One operation as Jepsen writes it (keys without their colons).
#[derive(Debug, Clone)]
struct JOp {
    process: Option<i64>,
    nemesis: bool,
    kind: String,
    f: String,
    time: u64,
    value: Option<String>,
    error: Option<String>,
}

/// Read a Jepsen history: a JSON array of operations, or one JSON object a line.
pub fn jepsen_json(text: &str) -> Result<Vec<Event>> {
    let t = text.trim_start();
    let values: Vec<Value> = if t.starts_with('[') {
        serde_json::from_str(t).context("not a JSON array of operations")?
    } else {
        t.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
            .collect::<Result<_>>()?
    };
    let ops = values
        .iter()
        .enumerate()
        .map(|(i, v)| json_op(v).with_context(|| format!("operation {}", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    convert(ops)
}

fn json_op(v: &Value) -> Result<JOp> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(|x| x.trim_start_matches(':').to_owned());
    let (process, nemesis) = match v.get("process") {
        Some(Value::Number(n)) => (n.as_i64(), false),
        Some(Value::String(p)) => (None, p.trim_start_matches(':') == "nemesis"),
        _ => bail!("no :process"),
    };
    Ok(JOp {
        process,
        nemesis,
        kind: s("type").context("no :type")?,
        f: s("f").context("no :f")?,
        time: v.get("time").and_then(Value::as_u64).unwrap_or(0),
        value: v.get("value").filter(|x| !x.is_null()).map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)),
        error: v.get("error").filter(|x| !x.is_null()).map(|x| x.to_string()),
    })
}

/// Read a Jepsen history in EDN: a sequence of maps, one a line or inside a vector.
pub fn jepsen_edn(text: &str) -> Result<Vec<Event>> {
    let mut p = Edn { s: text.as_bytes(), i: 0, line: 1 };
    let mut ops = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None => break,
            Some(b'[') | Some(b'(') | Some(b']') | Some(b')') => {
                p.i += 1;
            }
            Some(b'{') => {
                let line = p.line;
                let v = p.value().with_context(|| format!("EDN line {line}"))?;
                ops.push(json_op(&v).with_context(|| format!("EDN line {line}"))?);
            }
            Some(c) => bail!("EDN line {}: expected a map, found `{}`", p.line, c as char),
        }
    }
    convert(ops)
}

/// Just enough EDN for Jepsen histories: maps, vectors, lists, sets, keywords,
/// strings, numbers, nil and booleans; read as JSON values (keywords as strings).
struct Edn<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Edn<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.i += 1,
                b';' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }
    fn value(&mut self) -> Result<Value> {
        self.skip_ws();
        let Some(c) = self.peek() else { bail!("unexpected end") };
        match c {
            b'{' => {
                self.i += 1;
                let mut m = serde_json::Map::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Value::Object(m));
                    }
                    let k = self.value()?;
                    let v = self.value()?;
                    let k = k.as_str().map_or_else(|| k.to_string(), str::to_owned);
                    m.insert(k, v);
                }
            }
            b'[' | b'(' => {
                let close = if c == b'[' { b']' } else { b')' };
                self.i += 1;
                self.seq(close)
            }
            b'#' if self.s.get(self.i + 1) == Some(&b'{') => {
                self.i += 2;
                self.seq(b'}')
            }
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        b'"' => return Ok(Value::String(String::from_utf8_lossy(&out).into_owned())),
                        b'\\' => {
                            let e = self.peek().context("unfinished string")?;
                            self.i += 1;
                            out.push(match e {
                                b'n' => b'\n',
                                b't' => b'\t',
                                other => other,
                            });
                        }
                        b'\n' => {
                            self.line += 1;
                            out.push(c);
                        }
                        _ => out.push(c),
                    }
                }
                bail!("unfinished string")
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| !b" \t\r\n,{}[]()\"".contains(&c)) {
                    self.i += 1;
                }
                let tok = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                if tok.is_empty() {
                    bail!("unexpected `{}`", c as char);
                }
                Ok(match tok {
                    "nil" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    t if t.starts_with(':') => Value::String(t[1..].to_owned()),
                    t => match t.trim_end_matches('N').parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => t.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::String(t.to_owned())),
                    },
                })
            }
        }
    }
    fn seq(&mut self, close: u8) -> Result<Value> {
        let mut v = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Value::Array(v));
            }
            v.push(self.value()?);
        }
    }
}

/// Jepsen operations to lockbench events (see the module's rules).
fn convert(ops: Vec<JOp>) -> Result<Vec<Event>> {
    // Each invoke's completion: the next operation of the same process.
    let mut completion: HashMap<usize, usize> = HashMap::new();
    let mut open: HashMap<i64, usize> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        let Some(p) = o.process else { continue };
        if o.kind == "invoke" {
            open.insert(p, i);
        } else if let Some(inv) = open.remove(&p) {
            completion.insert(inv, i);
        }
    }
    let mut keys: HashMap<String, u32> = HashMap::new();
    let mut key_of = |v: &Option<String>| -> u32 {
        let name = v.clone().unwrap_or_default();
        let n = keys.len() as u32;
        *keys.entry(name).or_insert(n)
    };
    let mut owner_of: HashMap<i64, u64> = HashMap::new();
    let mut next_owner = 1u64;
    let mut faults = 0u32;
    let mut out = Vec::with_capacity(ops.len());
    // A release invoke whose outcome is `fail` did nothing: skipped, and its
    // failure recorded alone.
    let mut dropped_invokes: std::collections::HashSet<usize> = Default::default();
    for (i, o) in ops.iter().enumerate() {
        if o.nemesis {
            match o.f.as_str() {
                "start" => out.push(Event::new(o.time, faults, Kind::Invoke, Op::Fault, 0).with_msg("nemesis start")),
                "stop" => {
                    out.push(Event::new(o.time, faults, Kind::Ok, Op::Fault, 0).with_msg("nemesis stop"));
                    faults += 1;
                }
                _ => {}
            }
            continue;
        }
        let Some(p) = o.process else { continue };
        let client = u32::try_from(p).context("a negative :process")?;
        let op = match o.f.as_str() {
            "acquire" => Op::Acquire,
            "release" => Op::Release,
            _ => continue,
        };
        let kind = match o.kind.as_str() {
            "invoke" => Kind::Invoke,
            "ok" => Kind::Ok,
            "fail" => Kind::Fail,
            "info" => Kind::Info,
            other => bail!("operation {}: unknown :type {other}", i + 1),
        };
        let key = key_of(&o.value);
        if op == Op::Release && kind == Kind::Invoke {
            let failed = completion.get(&i).is_some_and(|&c| ops[c].kind == "fail");
            if failed {
                dropped_invokes.insert(i);
                continue;
            }
        }
        let mut e = Event::new(o.time, client, kind, op, key);
        match (op, kind) {
            (Op::Acquire, Kind::Ok) => {
                e.owner = next_owner;
                e.a = NO_LEASE;
                owner_of.insert(p, next_owner);
                next_owner += 1;
            }
            (Op::Release, _) => e.owner = owner_of.get(&p).copied().unwrap_or(0),
            _ => {}
        }
        if kind == Kind::Fail && op == Op::Release {
            let inv = ops.iter().take(i).rposition(|x| x.process == Some(p) && x.kind == "invoke");
            if inv.is_some_and(|j| dropped_invokes.contains(&j)) {
                let err = o.error.clone().unwrap_or_default();
                e = e.with_msg(format!("release refused ({err}): the service kept the lock, so the hold goes on"));
                out.push(e);
                continue;
            }
        }
        if let Some(err) = &o.error {
            e = e.with_msg(err.clone());
        } else if kind == Kind::Fail && op == Op::Acquire {
            e = e.with_msg("refused");
        }
        out.push(e);
    }
    if out.is_empty() {
        bail!("no acquire or release operations");
    }
    out.sort_by_key(|e| e.t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_and_json_read_alike() {
        let edn = "{:type :invoke, :f :acquire, :process 0, :time 10, :index 0}\n\
                   {:type :ok, :f :acquire, :process 0, :time 20, :index 1}\n\
                   {:type :info, :f :start, :process :nemesis, :time 25, :value nil}\n\
                   {:type :invoke, :f :release, :process 0, :time 30}\n\
                   {:type :fail, :f :release, :process 0, :time 40, :error [:not-found \"lease gone\"]}\n";
        let json = r#"[{"type":"invoke","f":"acquire","process":0,"time":10},{"type":"ok","f":"acquire","process":0,"time":20},
                      {"type":"info","f":"start","process":"nemesis","time":25},
                      {"type":"invoke","f":"release","process":0,"time":30},{"type":"fail","f":"release","process":0,"time":40,"error":"x"}]"#;
        for evs in [jepsen_edn(edn).unwrap(), jepsen_json(json).unwrap()] {
            let kinds: Vec<(Op, Kind)> = evs.iter().map(|e| (e.op, e.kind)).collect();
            // The failed release's invoke is gone: the hold goes on.
            assert_eq!(
                kinds,
                vec![
                    (Op::Acquire, Kind::Invoke),
                    (Op::Acquire, Kind::Ok),
                    (Op::Fault, Kind::Invoke),
                    (Op::Release, Kind::Fail)
                ]
            );
            assert_eq!(evs[1].a, NO_LEASE);
            assert_eq!(evs[3].owner, evs[1].owner);
        }
    }

    #[test]
    fn bad_input_is_named() {
        assert!(jepsen_edn("{:type :ok :f").unwrap_err().to_string().contains("EDN line 1"));
        let e = jepsen_json("[{\"f\":\"acquire\"}]").unwrap_err();
        assert!(format!("{e:#}").contains("operation 1"), "{e:#}");
    }
}
