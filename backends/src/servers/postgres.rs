//! The PostgreSQL recipe of the local provider: a data directory made by `initdb`,
//! the server's command line, PgBouncer's configuration, and a readiness probe.
//!
//! PostgreSQL and PgBouncer refuse to run as root. When lockbench runs as root (CI),
//! both run as the unprivileged user `postgres` that Debian's `postgresql` package
//! creates (or LOCKBENCH_POSTGRES_USER), switched to between fork and exec so that
//! no wrapper process (`su`, `runuser`) stands between lockbench and the server and
//! breaks its parent-death signal. As an ordinary user they run as that user.
//!
//! This module starts nothing itself: `local` does, with the usual guards.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{BackendError, Result};

/// The superuser `initdb` creates, and the user a local endpoint logs in as.
pub const SUPERUSER: &str = "postgres";

fn config(what: impl std::fmt::Display) -> BackendError {
    BackendError::Config(what.to_string())
}

/// The (uid, gid) to run PostgreSQL as: `None` when lockbench is not root.
pub fn run_as() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("LOCKBENCH_POSTGRES_USER").unwrap_or_else(|_| "postgres".into());
    let cname = std::ffi::CString::new(name.clone()).map_err(config)?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r with a buffer of ours; `out` is null or points at `pw`.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return Err(config(format!(
            "PostgreSQL refuses to run as root and there is no user `{name}` to run it as: run scripts/setup (Debian package postgresql creates it) or set LOCKBENCH_POSTGRES_USER"
        )));
    }
    if pw.pw_uid == 0 {
        return Err(config(format!("LOCKBENCH_POSTGRES_USER `{name}` is root: PostgreSQL refuses that")));
    }
    Ok(Some((pw.pw_uid, pw.pw_gid)))
}

/// Make `dir` the server's (owned by the user it runs as) and its data directory
/// (`dir/data`) with `initdb` if there is none yet. Returns the ids to run as.
pub fn prepare(dir: &Path) -> Result<Option<(u32, u32)>> {
    let ids = run_as()?;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| config(format!("{}: {e}", dir.display())))?;
    }
    if dir.join("data/PG_VERSION").is_file() {
        return Ok(ids);
    }
    let initdb = super::local::postgres_bin("initdb")
        .ok_or_else(|| config("PostgreSQL's initdb is not installed: run scripts/setup (Debian package postgresql)"))?;
    let log = dir.join("initdb.log");
    let mut cmd = Command::new(initdb);
    // Trust on loopback only (the server listens nowhere else, like the other local
    // servers, which have no password either). --no-sync: a fresh catalogue that a
    // machine crash would lose is no loss; the server itself runs with fsync on.
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(&log).map_err(|e| config(format!("{}: {e}", log.display())))?)
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).map_err(config)?);
    let mut child = super::local::spawn_guarded_as(cmd, ids).map_err(|e| config(format!("starting initdb: {e}")))?;
    let status = child.wait().map_err(config)?;
    super::local::forget(child.id());
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(config(format!("initdb failed ({status}):\n{}", text.trim_end())));
    }
    Ok(ids)
}

/// The server's arguments: loopback only, no Unix socket, fsync on.
pub fn server_args(cmd: &mut Command, dir: &Path, port: u16) {
    cmd.arg("-D").arg(dir.join("data")).args(["-p", &port.to_string()]).current_dir(dir);
    for c in [
        "listen_addresses=127.0.0.1",
        "unix_socket_directories=",
        // Durable by default: a committed lease row survives a kill and restart.
        "fsync=on",
        "synchronous_commit=on",
        "full_page_writes=on",
        "max_connections=300",
        "shared_buffers=32MB",
        "huge_pages=off",
        "logging_collector=off",
    ] {
        cmd.args(["-c", c]);
    }
}

/// The server's log (its stderr), appended to across restarts.
pub fn log_file(dir: &Path) -> Result<File> {
    let p = dir.join("server.log");
    std::fs::OpenOptions::new().create(true).append(true).open(&p).map_err(|e| config(format!("{}: {e}", p.display())))
}

/// PgBouncer on `port` in front of PostgreSQL on `pg_port`, in transaction pooling
/// mode with two server connections: every statement runs on whichever one is
/// free, which is what breaks session-level advisory locks.
pub fn pgbouncer_command(dir: &Path, port: u16, pg_port: u16) -> Result<Command> {
    let program = super::local::which("pgbouncer")
        .ok_or_else(|| config("pgbouncer is not installed: run scripts/setup (Debian package pgbouncer)"))?;
    let d = dir.display();
    let ini = format!(
        "[databases]
* = host=127.0.0.1 port={pg_port} user={SUPERUSER}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
max_client_conn = 2000
server_reset_query =
logfile = {d}/pgbouncer.log
pidfile =
ignore_startup_parameters = extra_float_digits,options
"
    );
    let path = dir.join("pgbouncer.ini");
    std::fs::write(&path, ini).map_err(|e| config(format!("{}: {e}", path.display())))?;
    let mut cmd = Command::new(program);
    cmd.arg(&path).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    Ok(cmd)
}

/// Does a PostgreSQL (or PgBouncer) answer a login on `s`? A server that is still
/// starting answers the startup message with an error ('E'); a ready one asks for
/// (or grants) authentication ('R').
pub fn probe(s: &mut TcpStream) -> bool {
    let ok = probe_open(s);
    // Terminate, so that the server does not log an unexpected EOF.
    let _ = s.write_all(&[b'X', 0, 0, 0, 4]);
    ok
}

/// [`probe`], leaving the login open (a test's idle client connection).
pub fn probe_open(s: &mut TcpStream) -> bool {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", SUPERUSER), ("database", "postgres")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    let mut first = [0u8; 1];
    s.write_all(&msg).is_ok() && s.read_exact(&mut first).is_ok() && first[0] == b'R'
}
