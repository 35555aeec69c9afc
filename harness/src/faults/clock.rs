//! Client clocks: `clock-skew` with `clients` sets the rate of, or jumps, the
//! [`Clock`] each chosen client times its leases by. It acts only on those clocks,
//! never on the true clock the history is stamped with.

use std::time::Duration;

use lockbench_backends::Clock;
use lockbench_backends::clock::mono_ns;

use super::{Applied, SignedDur, who};

/// Skew the clocks of `targets`; undo it after `duration`, if given.
pub(super) fn skew(
    clocks: &[Clock],
    name: &str,
    targets: &[usize],
    rate: Option<f64>,
    jump: Option<SignedDur>,
    duration: Option<Duration>,
) -> Applied {
    let t0 = mono_ns();
    let clocks: Vec<Clock> = targets.iter().filter_map(|&c| clocks.get(c).cloned()).collect();
    if clocks.is_empty() {
        return Applied::missed(format!("{name}: no client to skew"), t0);
    }
    let set = move |clocks: &[Clock], undo: bool| {
        for c in clocks {
            if let Some(r) = rate {
                c.set_rate(if undo { 1.0 } else { r });
            }
            if let Some(j) = jump {
                c.jump(if undo { -j.0 } else { j.0 });
            }
        }
    };
    set(&clocks, false);
    if let Some(d) = duration {
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            set(&clocks, true);
        });
    }
    let what = match (rate, jump) {
        (Some(r), Some(j)) => format!("clock x{r}, jumped {j}"),
        (Some(r), None) => format!("clock x{r}"),
        (None, Some(j)) => format!("clock jumped {j}"),
        (None, None) => String::new(),
    };
    Applied {
        desc: format!("{name}: {} {what}", who(targets)),
        t0,
        window: duration.unwrap_or(Duration::MAX),
        hit: true,
    }
}
