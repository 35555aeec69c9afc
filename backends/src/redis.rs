//! `redis` and `redis-naive`: one Redis server.
//!
//! `redis` is the single-instance recipe of the Redis documentation:
//! acquire = `SET key owner NX PX ttl`, release and renew = compare-and-delete /
//! compare-and-pexpire in Lua (EVALSHA). The fencing token is an `INCR` of a per-key
//! counter inside the same script as the SET, so a token exists exactly when a grant
//! does. The counter lives in memory like everything else: a restart without
//! persistence resets it, and the checker will see tokens go backwards.
//!
//! `redis-naive` is the recipe many posts show: `SETNX`, then `PEXPIRE` as a second
//! command (a crash in between leaves a lock that never expires), and `DEL` without
//! an owner check (a holder whose lease ran out deletes its successor's lock).
//!
//! Each session has its own dedicated connection ([`crate::resp::Conn`]: no
//! channel hop to a driver task between the client and the socket; a crashed
//! session is a dropped connection), which reconnects after a server restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisError, Script};

use crate::resp::{Conn, Reply};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

/// How long one command may take before its outcome is called unknown. Loopback
/// answers in well under a millisecond; a second means the server is stuck.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub acquire: Script,
    pub release: Script,
    pub renew: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts { acquire: Script::new(ACQUIRE), release: Script::new(RELEASE), renew: Script::new(RENEW) }
    }
}

/// A command's error, classified by what reached the server. Nothing was sent when
/// the connection was refused, could not even be opened (EMFILE "Too many open
/// files": the harness's own limit), or authentication failed (NOAUTH, WRONGPASS):
/// the command certainly did nothing. A timeout or a dropped connection may have
/// delivered it: unknown.
pub(crate) fn classify(e: RedisError) -> BackendError {
    let text = e.to_string();
    let no_fd = text.contains("Too many open files") || text.contains("os error 24") || text.contains("os error 23");
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        || text.contains("NOAUTH")
        || text.contains("WRONGPASS");
    if e.is_connection_refusal() || no_fd || auth {
        BackendError::Unavailable(text)
    } else if e.is_timeout() || e.is_connection_dropped() || e.is_io_error() {
        BackendError::Unknown(e.to_string())
    } else {
        BackendError::Rejected(e.to_string())
    }
}

/// A connection to one server, reconnecting on its own.
pub(crate) fn connect(endpoint: &str, timeout: Duration) -> Result<ConnectionManager> {
    let e = crate::servers::Endpoint::from_env(endpoint)?;
    let mut login = redis::RedisConnectionInfo::default().set_db(e.db.unwrap_or(0));
    if let Some(u) = &e.user {
        login = login.set_username(u);
    }
    if let Some(p) = e.password() {
        login = login.set_password(p);
    }
    let info = redis::ConnectionAddr::Tcp(e.host.clone(), e.port)
        .into_connection_info()
        .map(|i| i.set_redis_settings(login))
        .map_err(|err| {
            BackendError::Config(format!("redis endpoint `{e}`: {}", crate::servers::redact(&err.to_string())))
        })?;
    let client = redis::Client::open(info).map_err(|err| {
        BackendError::Config(format!("redis endpoint `{e}`: {}", crate::servers::redact(&err.to_string())))
    })?;
    let cfg = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_lazy_with_config(client, cfg)
        .map_err(|err| BackendError::Config(format!("{e}: {}", crate::servers::redact(&err.to_string()))))
}

pub(crate) fn lock_key(key: &str) -> String {
    format!("lockbench:{key}")
}

pub(crate) fn owner_value(owner: u64) -> String {
    format!("{owner:016x}")
}

pub struct Redis {
    endpoint: String,
    naive: bool,
    clock: Clock,
    scripts: Arc<Scripts>,
}

fn open(env: &BackendEnv, naive: bool) -> Result<Arc<dyn LockBackend>> {
    let endpoint = env.endpoints.first().ok_or_else(|| BackendError::Config("redis needs one endpoint".into()))?;
    Ok(Arc::new(Redis {
        endpoint: endpoint.clone(),
        naive,
        clock: env.clock.clone(),
        scripts: Arc::new(Scripts::new()),
    }))
}

pub(crate) fn open_safe(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, false)
}

pub(crate) fn open_naive(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, true)
}

#[async_trait]
impl LockBackend for Redis {
    fn name(&self) -> &str {
        if self.naive { "redis-naive" } else { "redis" }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lease: true,
            renew: true,
            fencing: !self.naive,
            multi_process: true,
            naive: self.naive,
            ..Default::default()
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let mut s =
            Session::new(Conn::new(&self.endpoint, RESPONSE_TIMEOUT)?, self.clock.clone(), self.scripts.clone());
        s.naive = self.naive;
        Ok(Box::new(s))
    }
}

/// The `redis` lock on one connection (`redis-sentinel` runs it on whichever
/// server Sentinel names).
pub(crate) struct Session {
    pub(crate) conn: Conn,
    naive: bool,
    clock: Clock,
    scripts: Arc<Scripts>,
    /// The acquire's arguments, written here instead of four new strings a request.
    scratch: String,
}

/// `redis_version` from a server's `INFO server`.
pub(crate) async fn redis_version(conn: &mut ConnectionManager) -> Result<Option<String>> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await.map_err(classify)?;
    Ok(version_of(&info))
}

fn version_of(info: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix("redis_version:")).map(|v| format!("Redis {}", v.trim()))
}

impl Session {
    pub(crate) fn new(conn: Conn, clock: Clock, scripts: Arc<Scripts>) -> Session {
        Session { conn, naive: false, clock, scripts, scratch: String::with_capacity(128) }
    }

    /// EVALSHA, or EVAL when the server does not have the script (a restarted
    /// server, or a first call): the answer as an integer.
    async fn script(&mut self, script: &Script, body: &str, keys: &[&[u8]], args: &[&[u8]]) -> Result<i64> {
        const COUNTS: [&[u8]; 3] = [b"0", b"1", b"2"];
        let sha = script.get_hash().as_bytes();
        // EVALSHA sha numkeys keys... args...: at most 8 parts, no allocation.
        let mut cmd: [&[u8]; 8] = [&[]; 8];
        let n = 3 + keys.len() + args.len();
        assert!(keys.len() < COUNTS.len() && n <= cmd.len(), "scripts take at most 2 keys and 3 arguments");
        (cmd[0], cmd[1], cmd[2]) = (b"EVALSHA", sha, COUNTS[keys.len()]);
        for (slot, a) in cmd[3..n].iter_mut().zip(keys.iter().chain(args)) {
            *slot = a;
        }
        match self.conn.call(&cmd[..n]).await? {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                (cmd[0], cmd[1]) = (b"EVAL", body.as_bytes());
                self.conn.call(&cmd[..n]).await?.int()
            }
            r => r.int(),
        }
    }

    async fn int(&mut self, args: &[&[u8]]) -> Result<i64> {
        self.conn.call(args).await?.int()
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        match self.conn.call(&[b"INFO", b"server"]).await? {
            Reply::Bulk(Some(b)) => Ok(version_of(&String::from_utf8_lossy(&b))),
            Reply::Error(e) => Err(BackendError::Rejected(e)),
            _ => Ok(None),
        }
    }

    /// `PING`, bounded by the connection and response timeouts.
    async fn ping(&mut self) -> Result<()> {
        match self.conn.call(&[b"PING"]).await? {
            Reply::Error(e) if e.starts_with("NOAUTH") || e.starts_with("WRONGPASS") => {
                Err(BackendError::Unavailable(format!("redis: {e}")))
            }
            Reply::Error(e) => Err(BackendError::Rejected(e)),
            _ => Ok(()),
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.conn.sent)
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        use std::fmt::Write as _;
        let owner = new_owner();
        // The lock key, its token counter's key, the owner and the TTL, one after
        // the other in one reused buffer rather than four new strings a request.
        let mut b = std::mem::take(&mut self.scratch);
        b.clear();
        let _ = write!(b, "lockbench:{key}");
        let ke = b.len();
        b.push_str(":token");
        let te = b.len();
        let _ = write!(b, "{owner:016x}");
        let ve = b.len();
        let _ = write!(b, "{}", lease.as_millis().max(1));
        let (k, token_key, value, ttl) = (&b[..ke], &b[..te], &b[te..ve], &b[ve..]);
        // The lease's clock starts before the request leaves: the server's TTL
        // starts later, so this estimate can only be early, never late.
        let now = self.clock.now_ns();
        let r = if self.naive {
            match self.int(&[b"SETNX", k.as_bytes(), value.as_bytes()]).await {
                Ok(1) => {
                    // The second round trip: a crash right here leaves a lock without TTL.
                    self.int(&[b"PEXPIRE", k.as_bytes(), ttl.as_bytes()]).await.map(|_| Some(None))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            let scripts = self.scripts.clone();
            self.script(
                &scripts.acquire,
                ACQUIRE,
                &[k.as_bytes(), token_key.as_bytes()],
                &[value.as_bytes(), ttl.as_bytes()],
            )
            .await
            .map(|t| (t > 0).then_some(Some(t as u64)))
        };
        self.scratch = b;
        // None: held by another; Some(token).
        let Some(token) = r? else {
            return Ok(None);
        };
        Ok(Some(Lease {
            key: key.to_owned(),
            owner,
            fencing_token: token,
            granted_at: now,
            expires_at: now + lease.as_nanos() as u64,
        }))
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let (k, ms) = (lock_key(&lease.key), extend.as_millis().max(1).to_string());
        let n = if self.naive {
            // No owner check: extends whoever holds the key now.
            self.int(&[b"PEXPIRE", k.as_bytes(), ms.as_bytes()]).await?
        } else {
            let scripts = self.scripts.clone();
            let v = owner_value(lease.owner);
            self.script(&scripts.renew, RENEW, &[k.as_bytes()], &[v.as_bytes(), ms.as_bytes()]).await?
        };
        Ok(n == 1)
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let k = lock_key(&lease.key);
        let n = if self.naive {
            // No owner check: deletes whoever holds the key now.
            self.int(&[b"DEL", k.as_bytes()]).await?
        } else {
            let scripts = self.scripts.clone();
            let v = owner_value(lease.owner);
            self.script(&scripts.release, RELEASE, &[k.as_bytes()], &[v.as_bytes()]).await?
        };
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_that_ran_out_of_file_descriptors_sent_nothing() {
        // EMFILE on connect: no socket, nothing sent, so the outcome is known (fail).
        let e = classify(RedisError::from(std::io::Error::from_raw_os_error(24)));
        assert!(matches!(e, BackendError::Unavailable(_)), "{e:?}");
        assert!(!e.is_indeterminate());
        assert!(e.to_string().contains("Too many open files"), "{e}");
    }

    #[test]
    fn refused_and_dropped_connections_differ() {
        let refused = classify(RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert!(matches!(refused, BackendError::Unavailable(_)), "{refused:?}");
        let reset = classify(RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert!(reset.is_indeterminate(), "{reset:?}");
    }
}
