//! SIGINT, SIGTERM and SIGHUP during `lockbench run`: the first stops the load and
//! lets the run check and write what it recorded; the second aborts at once.
//! SIGHUP (the terminal went away) also points stdout and stderr at /dev/null
//! first: printing to a terminal that is gone fails, and must not lose the result.
//!
//! The signals are watched on a thread of their own with its own small runtime,
//! so that they are seen while the runner's threads are busy (a server starting,
//! a checker working). The first signal sets [`INTERRUPTED`] and the local
//! provider's [`CANCEL`]; every phase polls these and ends within its own bound.
//! The second kills every server and worker, writes [`INCOMPLETE`] into each
//! claimed `.partial` result folder, removes lockbench's temp folders and exits.
//! Either way the exit status is the first signal's: 130 for SIGINT, 143 for
//! SIGTERM, 129 for SIGHUP. This module never writes a result file and never removes anything
//! but the temp folders this process made.

use std::sync::atomic::{AtomicI32, Ordering};

use lockbench_backends::servers::local::{CANCEL, kill_all};
use lockbench_backends::servers::tempdirs;
use tokio::signal::unix::{SignalKind, signal};

use super::INTERRUPTED;
use crate::report::folder::{INCOMPLETE, partial_dirs};

/// The first signal received (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);

/// The name of a signal we handle.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "SIGINT",
    }
}

/// The first signal received, if any.
pub fn first() -> Option<i32> {
    Some(FIRST.load(Ordering::Relaxed)).filter(|s| *s != 0)
}

/// The exit status of a run stopped by a signal: 128 + the first signal (130
/// when it was stopped some other way).
pub fn exit_status() -> i32 {
    128 + first().unwrap_or(libc::SIGINT)
}

/// Returns once the run is interrupted: race any wait that has no deadline of its
/// own within 2 s (a server start, a session, a preflight probe) against this.
pub async fn interrupted() {
    while !INTERRUPTED.load(Ordering::Relaxed) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Start watching SIGINT, SIGTERM and SIGHUP. From here on none kills the process
/// by itself.
pub fn install() -> std::io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("lockbench-signals".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let watch =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()));
            let (mut int, mut term, mut hup) = match watch {
                (Ok(i), Ok(t), Ok(h)) => (i, t, h),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                    _ = hup.recv() => libc::SIGHUP,
                };
                if sig == libc::SIGHUP {
                    away_from_the_terminal();
                }
                if FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    on_first(sig);
                } else {
                    abort(sig);
                }
            }
        });
    })?;
    ready_rx.recv().map_err(std::io::Error::other)?
}

/// The terminal hung up: what is printed from here on goes to /dev/null, where a
/// write cannot fail (a `println!` to a vanished terminal would panic mid-write).
/// Output that goes to a file or a pipe is left alone.
fn away_from_the_terminal() {
    // SAFETY: open and dup2 on descriptors this process owns; isatty only reads.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null < 0 {
            return;
        }
        for fd in [1, 2] {
            if libc::isatty(fd) == 1 {
                libc::dup2(null, fd);
            }
        }
        libc::close(null);
    }
}

fn on_first(sig: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    CANCEL.store(true, Ordering::SeqCst);
    eprintln!(
        "\ninterrupted by {}: stopping the load, then checking and writing what was recorded (a second \
         Ctrl-C, SIGTERM or SIGHUP aborts at once)",
        name(sig)
    );
}

/// The second signal: stop everything now, leave each unfinished result folder
/// marked, and exit.
fn abort(sig: i32) -> ! {
    // Servers and workers first: they may be writing in the temp folders.
    kill_all();
    let why = format!(
        "This result was not finished: lockbench (pid {}) was aborted by a second signal ({}, after {}) before \
         it wrote its result. Nothing here is a result. Delete this folder, or run again with the same --out, \
         which takes it over.\n",
        std::process::id(),
        name(sig),
        first().map_or("?", name),
    );
    let mut marked = Vec::new();
    for p in partial_dirs() {
        if std::fs::write(p.join(INCOMPLETE), &why).is_ok() {
            marked.push(p.display().to_string());
        }
    }
    tempdirs::remove_all();
    lockbench_backends::servers::nodes::remove_all();
    if marked.is_empty() {
        eprintln!("\naborted by a second {}: servers stopped, temp folders removed", name(sig));
    } else {
        eprintln!(
            "\naborted by a second {}: servers stopped, temp folders removed; unfinished, marked {INCOMPLETE}: {}",
            name(sig),
            marked.join(", ")
        );
    }
    std::process::exit(exit_status())
}

/// On a panic of the main thread (which ends the process), stop the servers and
/// remove the temp folders before anything else can go wrong. A panic on another
/// thread is caught (tokio tasks) or reaches the main thread as its own panic.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if std::thread::current().name() == Some("main") {
            kill_all();
            tempdirs::remove_all();
            lockbench_backends::servers::nodes::remove_all();
        }
    }));
}
