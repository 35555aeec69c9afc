//! A recorded history in other tools' forms, so that an independent checker can
//! judge it: Jepsen operations in EDN (`jepsen-edn`, Knossos / elle-cli) and
//! Porcupine operations in JSON (`porcupine`, read by `scripts/porcupine`).
//!
//! Only the lock's own operations go out: acquires and releases (each with its
//! outcome), and fault windows as nemesis operations in EDN. Renewals, crashes and
//! the guarded register stay behind: these formats have no word for them, so export
//! lease-free runs (leases that never run out during a hold) for a like-for-like
//! comparison.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::record::{Event, Kind, Op};

/// EDN, one operation a line: `{:process 3, :type :ok, :f :acquire, :value "k0",
/// :time 123, :index 7}`.
pub fn jepsen_edn(events: &[Event]) -> String {
    let mut o = String::new();
    let mut index = 0u64;
    for e in events {
        let (process, f) = match e.op {
            Op::Acquire => (e.client.to_string(), "acquire"),
            Op::Release => (e.client.to_string(), "release"),
            Op::Fault => (":nemesis".to_owned(), if e.kind == Kind::Invoke { "start" } else { "stop" }),
            _ => continue,
        };
        let kind = match (e.op, e.kind) {
            (Op::Fault, _) => "info",
            (_, Kind::Invoke) => "invoke",
            (_, Kind::Ok) => "ok",
            (_, Kind::Fail) => "fail",
            (_, Kind::Info) => "info",
        };
        let value =
            if e.op == Op::Fault { format!("{:?}", e.msg.as_deref().unwrap_or("")) } else { format!("\"k{}\"", e.key) };
        let _ =
            write!(o, "{{:process {process}, :type :{kind}, :f :{f}, :value {value}, :time {}, :index {index}", e.t);
        if e.kind == Kind::Fail
            && let Some(m) = &e.msg
        {
            let _ = write!(o, ", :error {m:?}");
        }
        o.push_str("}\n");
        index += 1;
    }
    o
}

/// One completed (or unknown) lock operation, as the Porcupine checker reads it.
#[derive(Serialize, Debug, PartialEq)]
pub struct PorcupineOp {
    pub client: u32,
    pub key: String,
    /// "acquire" or "release".
    pub f: &'static str,
    /// "ok"; "fail" (refused: for an acquire, the key was held; for a release, not
    /// this client's); "error" (certainly did nothing); "unknown".
    pub result: &'static str,
    pub call: u64,
    /// None when the outcome is unknown (it may take effect at any later time).
    #[serde(rename = "return")]
    pub ret: Option<u64>,
}

/// Pair each invoke with its completion, per client.
pub fn porcupine(events: &[Event]) -> Vec<PorcupineOp> {
    let mut open: HashMap<u32, &Event> = HashMap::new();
    let mut out = Vec::new();
    for e in events.iter().filter(|e| matches!(e.op, Op::Acquire | Op::Release)) {
        if e.kind == Kind::Invoke {
            open.insert(e.client, e);
            continue;
        }
        let Some(inv) = open.remove(&e.client) else { continue };
        let f = if e.op == Op::Acquire { "acquire" } else { "release" };
        let refused = match (e.op, e.msg.as_deref()) {
            (Op::Acquire, Some("timeout" | "refused" | crate::run::client::REFUSED)) => true,
            (Op::Release, Some(m)) => m.starts_with("not the owner"),
            _ => false,
        };
        let result = match e.kind {
            Kind::Ok => "ok",
            Kind::Fail if refused => "fail",
            Kind::Fail => "error",
            _ => "unknown",
        };
        out.push(PorcupineOp {
            client: e.client,
            key: format!("k{}", e.key),
            f,
            result,
            call: inv.t,
            ret: (result != "unknown").then_some(e.t),
        });
    }
    // Still open at the end: outcome unknown.
    let mut rest: Vec<&Event> = open.into_values().collect();
    rest.sort_by_key(|e| e.t);
    for inv in rest {
        let f = if inv.op == Op::Acquire { "acquire" } else { "release" };
        out.push(PorcupineOp {
            client: inv.client,
            key: format!("k{}", inv.key),
            f,
            result: "unknown",
            call: inv.t,
            ret: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_and_a_refusal_export_to_both_forms() {
        let mut ok = Event::new(20, 1, Kind::Ok, Op::Acquire, 0);
        ok.owner = 9;
        let evs = vec![
            Event::new(10, 1, Kind::Invoke, Op::Acquire, 0),
            Event::new(11, 2, Kind::Invoke, Op::Acquire, 0),
            ok,
            Event::new(25, 2, Kind::Fail, Op::Acquire, 0).with_msg("timeout"),
            Event::new(26, 1, Kind::Invoke, Op::Write, 0),
            Event::new(30, 1, Kind::Invoke, Op::Release, 0),
        ];
        let edn = jepsen_edn(&evs);
        assert_eq!(edn.lines().count(), 5, "{edn}");
        assert!(
            edn.contains(
                "{:process 2, :type :fail, :f :acquire, :value \"k0\", :time 25, :index 3, :error \"timeout\"}"
            )
        );
        let back = crate::check::import::jepsen_edn(&edn).unwrap();
        assert_eq!(back.len(), 5);
        let p = porcupine(&evs);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].f, p[0].result, p[0].call, p[0].ret), ("acquire", "ok", 10, Some(20)));
        assert_eq!((p[1].result, p[1].ret), ("fail", Some(25)));
        assert_eq!((p[2].f, p[2].result, p[2].ret), ("release", "unknown", None));
    }
}
