//! `zookeeper` and `zookeeper-semaphore`: Apache Curator's two lock recipes on a
//! ZooKeeper ensemble, written here step for step on the `zookeeper-client` crate.
//!
//! The client crate: `zookeeper-client` 0.11 is pure Rust and async, maintained,
//! and has what the recipes need (ephemeral sequential nodes, one-shot watches,
//! session states, the `Create2` reply with the node's stat). Its own
//! Curator-compatible `Client::lock` is not used: it waits without a deadline, has
//! no try-without-waiting, and does not give the lock node's stat, while a scenario
//! needs all three (the fencing token is the node's `czxid`). The recipes below are
//! tested against their rules in `backends/tests/zookeeper.rs`.
//!
//! One ZooKeeper session per lockbench session, negotiated with the scenario's lease
//! as its timeout (the ensemble's 200 ms tick allows 400 ms to 60 s; the timeout the
//! server granted is what the session reports as the hold's lease). The crate keeps
//! the session alive with pings from its own task: a holder that is merely slow
//! keeps its lock, as with Curator; a holder whose process is stopped or killed
//! stops pinging, the ensemble expires the session after the timeout and deletes
//! its ephemeral nodes, and the next waiter gets the lock. The session is
//! "detached": dropping it (a crashed holder, to the harness) closes the socket
//! without a `CloseSession`, so the ensemble sees exactly what a crash looks like.
//!
//! - `zookeeper` (Curator's `InterProcessMutex`): an EPHEMERAL_SEQUENTIAL child
//!   `_c_<uuid>-lock-<seq>` of `/locks/<key>` (a container node, as Curator's
//!   `creatingParentContainersIfNeeded`). The `_c_<uuid>` prefix is Curator's
//!   protection: when a create's reply is lost, the children are listed and the node
//!   with our prefix is ours. The lowest sequence holds; every other waiter watches
//!   only its predecessor (no herd), and re-reads the children when it goes. A wait
//!   that runs out deletes its node, as Curator does. The fencing token is the lock
//!   node's `czxid`: zxids grow across the whole ensemble, and each grant's node was
//!   created after the previous holder's.
//! - `zookeeper-semaphore` (Curator's `InterProcessSemaphoreMutex`: an
//!   `InterProcessSemaphoreV2` with one lease): under `/semaphores/<key>`, take the
//!   internal mutex on `locks`, create a protected `lease-` node in `leases`, wait
//!   until at most one lease node exists, then release the internal mutex; releasing
//!   deletes the lease node. No fencing token: Curator's lease has none, and the
//!   comparison this project starts from used it without one.
//!
//! The hold's lease is counted from the request that showed our node first in
//! line, for the timeout the ensemble granted: the session lived at least that
//! long after it. A follower cut off from the leader may still answer reads for
//! up to `syncLimit` (2 s here) after the leader expired the session, a window this
//! count does not cover: a peer partition of a follower could then read as an
//! overlap inside both leases although the ensemble did as designed. A renewal
//! first syncs with the leader, which such a follower cannot.
//!
//! An operation whose outcome is unknown (no answer within [`RESPONSE_TIMEOUT`],
//! the connection lost) may leave a node behind: the session is then dropped, so
//! that the ensemble expires it and its nodes with it, and the next operation
//! opens a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, Error as ZkError, SessionState};

use crate::servers::{Endpoint, redact};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Owner, Result, Wait};

/// How long one request may take before its outcome is called unknown: a write
/// goes through the leader and a quorum's fsync.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long opening a session may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Mutex,
    Semaphore,
}

pub struct Zookeeper {
    variant: Variant,
    /// The connect string: `host:port,host:port,...`.
    connect: Arc<String>,
    /// Digest credentials (`user:password`), if the endpoints carry them.
    auth: Option<Arc<String>>,
    clock: Clock,
}

fn open(env: &BackendEnv, variant: Variant) -> Result<Arc<dyn LockBackend>> {
    if env.endpoints.is_empty() {
        return Err(BackendError::Config("zookeeper needs at least one endpoint".into()));
    }
    let mut hosts = Vec::new();
    let mut auth = None;
    for text in &env.endpoints {
        let e = Endpoint::from_env(text)?;
        hosts.push(format!("{}:{}", e.host, e.port));
        if let (Some(u), Some(p)) = (&e.user, e.password()) {
            auth = Some(Arc::new(format!("{u}:{p}")));
        }
    }
    Ok(Arc::new(Zookeeper { variant, connect: Arc::new(hosts.join(",")), auth, clock: env.clock.clone() }))
}

pub(crate) fn open_mutex(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Mutex)
}

pub(crate) fn open_semaphore(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Semaphore)
}

#[async_trait]
impl LockBackend for Zookeeper {
    fn name(&self) -> &str {
        match self.variant {
            Variant::Mutex => "zookeeper",
            Variant::Semaphore => "zookeeper-semaphore",
        }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lease: true,
            renew: true,
            fencing: self.variant == Variant::Mutex,
            blocking_wait: true,
            multi_process: true,
            // The leader checks for expired sessions every tick (200 ms) and rounds
            // each expiry up to the next tick; deleting the nodes is one more write.
            expiry_slack: Duration::from_millis(600),
            live_session_holds: true,
            ..Default::default()
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        Ok(Box::new(Session {
            variant: self.variant,
            connect: self.connect.clone(),
            auth: self.auth.clone(),
            clock: self.clock.clone(),
            client: None,
            asked: Duration::ZERO,
            held: HashMap::new(),
            sent: 0,
        }))
    }
}

struct Session {
    variant: Variant,
    connect: Arc<String>,
    auth: Option<Arc<String>>,
    clock: Clock,
    client: Option<Client>,
    /// The session timeout the open session was asked for.
    asked: Duration,
    /// The node that stands for each lock this session holds (the lock node, or
    /// the semaphore's lease node), by owner.
    held: HashMap<Owner, String>,
    /// Requests sent (opening a session and its pings not counted).
    sent: u64,
}

/// What a ZooKeeper error means for an operation that may change state.
fn classify(at: &str, e: ZkError) -> BackendError {
    let text = format!("zookeeper at {at}: {}", redact(&e.to_string()));
    match e {
        // The session is gone: the ensemble deleted its nodes, and a request in
        // it cannot have taken effect after that.
        ZkError::SessionExpired | ZkError::ClientClosed | ZkError::NoHosts | ZkError::Throttled => {
            BackendError::Unavailable(text)
        }
        ZkError::NoAuth | ZkError::AuthFailed | ZkError::InvalidAcl => BackendError::Unavailable(text),
        ZkError::BadArguments(_) | ZkError::Unimplemented | ZkError::NotReadOnly => BackendError::Rejected(text),
        // Lost connections, timeouts, a moved session: the request may have been
        // applied.
        _ => BackendError::Unknown(text),
    }
}

/// A request, with a deadline: no answer in time is an unknown outcome.
async fn timed<T>(f: impl std::future::Future<Output = Result<T, ZkError>>) -> Result<T, ZkError> {
    match tokio::time::timeout(RESPONSE_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(ZkError::Timeout),
    }
}

/// `; h:p: why` for each member that does not accept a connection (empty when
/// every member does).
async fn unreachable(connect: &str) -> String {
    let mut out = String::new();
    for m in connect.split(',') {
        let r = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(m)).await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => out.push_str(&format!("; member {m}: {e}")),
            Err(_) => out.push_str(&format!("; member {m}: no connection within 500 ms")),
        }
    }
    out
}

/// A node name's sequence number (the ten or nineteen digits the server appends).
fn sequence(name: &str) -> u64 {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    name[digits..].parse().unwrap_or(u64::MAX)
}

/// Curator's protection prefix: `_c_` and a random UUID.
fn protection() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!("_c_{}-{}-{}-{}-{}-", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A key as one path segment.
fn segment(key: &str) -> String {
    key.replace('/', "%2F")
}

fn container() -> CreateOptions<'static> {
    CreateMode::Container.with_acls(Acls::anyone_all())
}

fn ephemeral_sequential() -> CreateOptions<'static> {
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all())
}

/// A lock node this session created, and its creation zxid.
struct Node {
    path: String,
    czxid: i64,
}

/// How a wait for the lock ended.
enum Waited {
    /// Ours is the lowest node. `asked_at`: when the request that showed it was
    /// sent (the session was alive at the server after that).
    Granted { node: Node, asked_at: u64 },
    /// The wait ran out (the node is deleted again).
    TimedOut,
}

impl Session {
    fn at(&self) -> &str {
        &self.connect
    }

    /// The open session, or a new one with `lease` as its timeout. A session that
    /// expired or closed is replaced; so is one asked for another timeout when it
    /// holds nothing.
    async fn client(&mut self, lease: Duration) -> Result<Client> {
        if let Some(c) = &self.client
            && (c.state().is_terminated() || (self.asked != lease && self.held.is_empty()))
        {
            self.drop_session();
        }
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut conn = Client::connector()
            .with_session_timeout(lease)
            .with_connection_timeout(CONNECT_TIMEOUT)
            .with_detached()
            .with_fail_eagerly();
        if let Some(a) = &self.auth {
            conn = conn.with_auth("digest", a.as_bytes());
        }
        let at = self.at().to_owned();
        let c = match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), conn.connect(&self.connect)).await
        {
            Ok(Ok(c)) => c,
            // Nothing happened at the server: no session, no node. Which members
            // could not even be reached is said, each with why.
            Ok(Err(e)) => {
                return Err(BackendError::Unavailable(format!(
                    "zookeeper at {at}: {}{}",
                    redact(&e.to_string()),
                    unreachable(&self.connect).await
                )));
            }
            Err(_) => {
                return Err(BackendError::Unavailable(format!(
                    "zookeeper at {at}: no session within {CONNECT_TIMEOUT:?}"
                )));
            }
        };
        self.asked = lease;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Forget the session without closing it: its nodes stay until the ensemble
    /// expires it (a node of a request in doubt goes with them).
    fn drop_session(&mut self) {
        self.client = None;
        self.held.clear();
    }

    /// An error on a request that may have changed state: a session in doubt is
    /// dropped so that whatever it left behind expires.
    fn failed(&mut self, e: ZkError) -> BackendError {
        let err = classify(self.at(), e);
        if err.is_indeterminate() {
            self.drop_session();
        }
        err
    }

    /// Create a protected EPHEMERAL_SEQUENTIAL node `<dir>/<prefix><name>`, making
    /// the parents (containers) when they are missing. A create whose reply was
    /// lost is looked for by its protection prefix, as Curator does.
    async fn create_protected(&mut self, c: &Client, dir: &str, name: &str) -> Result<Node> {
        let prefix = format!("{}{name}", protection());
        let path = format!("{dir}/{prefix}");
        let at = self.at().to_owned();
        for _ in 0..3 {
            self.sent += 1;
            match timed(c.create(&path, b"", &ephemeral_sequential())).await {
                Ok((stat, seq)) => return Ok(Node { path: format!("{path}{seq}"), czxid: stat.czxid }),
                // The parent is missing (first use of the key, or an empty container
                // the server just removed).
                Err(ZkError::NoNode) => {
                    if let Err(e) = self.mkdir(c, dir).await {
                        return Err(self.failed(e));
                    }
                }
                Err(e) => {
                    let err = classify(&at, e);
                    if !err.is_indeterminate() {
                        return Err(err);
                    }
                    // Protection: is a node of ours there?
                    self.sent += 1;
                    return match timed(c.list_children(dir)).await {
                        Ok(children) => match children.into_iter().find(|n| n.starts_with(&prefix)) {
                            Some(n) => {
                                let p = format!("{dir}/{n}");
                                self.sent += 1;
                                match timed(c.check_stat(&p)).await {
                                    Ok(Some(stat)) => Ok(Node { path: p, czxid: stat.czxid }),
                                    Ok(None) => Err(BackendError::Unavailable(format!(
                                        "zookeeper at {at}: lock node {p} vanished (session expired?)"
                                    ))),
                                    Err(e) => Err(self.failed(e)),
                                }
                            }
                            // Not there: the create did not happen. Should it still
                            // land, it would sit in the queue of a live session, so
                            // the session goes (and any such node with it).
                            None => {
                                self.drop_session();
                                Err(err)
                            }
                        },
                        Err(e) => Err(self.failed(e)),
                    };
                }
            }
        }
        Err(BackendError::Unavailable(format!("zookeeper at {at}: {dir} keeps disappearing")))
    }

    /// Create `dir` and its missing parents as containers (Curator's
    /// `creatingParentContainersIfNeeded`), deepest first, each request counted.
    async fn mkdir(&mut self, c: &Client, dir: &str) -> Result<(), ZkError> {
        let mut missing = vec![dir.to_owned()];
        while let Some(p) = missing.last().cloned() {
            self.sent += 1;
            match timed(c.create(&p, b"", &container())).await {
                Ok(_) | Err(ZkError::NodeExists) => {
                    missing.pop();
                }
                Err(ZkError::NoNode) => match p.rsplit_once('/') {
                    Some((parent, _)) if !parent.is_empty() && missing.len() < 16 => missing.push(parent.to_owned()),
                    _ => return Err(ZkError::NoNode),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Delete a node of ours: Ok(false) when it is gone already (the session
    /// expired, or someone deleted it).
    async fn delete(&mut self, c: &Client, path: &str) -> Result<bool> {
        self.sent += 1;
        match timed(c.delete(path, None)).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode | ZkError::SessionExpired) => Ok(false),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Curator's `InterProcessMutex` on `dir`: queue a node, wait (until
    /// `deadline`, or not at all) for it to be the lowest.
    async fn mutex(&mut self, c: &Client, dir: &str, deadline: u64) -> Result<Waited> {
        let node = self.create_protected(c, dir, "lock-").await?;
        let mine = node.path.rsplit('/').next().unwrap_or_default().to_owned();
        let at = self.at().to_owned();
        loop {
            let asked_at = self.clock.now_ns();
            self.sent += 1;
            let mut children = match timed(c.list_children(dir)).await {
                Ok(v) => v,
                Err(e) => return Err(self.give_up(c, &node.path, e).await),
            };
            children.sort_by_key(|n| sequence(n));
            let Some(me) = children.iter().position(|n| *n == mine) else {
                return Err(BackendError::Unavailable(format!(
                    "zookeeper at {at}: our lock node {} is gone (session expired?)",
                    node.path
                )));
            };
            if me == 0 {
                return Ok(Waited::Granted { node, asked_at });
            }
            let left = deadline.saturating_sub(self.clock.now_ns());
            if left == 0 {
                self.leave(c, &node.path).await?;
                return Ok(Waited::TimedOut);
            }
            // Watch only the node just ahead of ours.
            let pred = format!("{dir}/{}", children[me - 1]);
            self.sent += 1;
            let watcher = match timed(c.get_and_watch_data(&pred)).await {
                Ok((_, _, w)) => w,
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(self.give_up(c, &node.path, e).await),
            };
            let gone = tokio::time::timeout(self.clock.true_duration(Duration::from_nanos(left)), watcher.changed());
            if gone.await.is_err() {
                self.leave(c, &node.path).await?;
                return Ok(Waited::TimedOut);
            }
        }
    }

    /// A request failed while our node is queued: delete it if the failure left
    /// the outcome clear, else drop the session (the node expires with it).
    async fn give_up(&mut self, c: &Client, path: &str, e: ZkError) -> BackendError {
        let err = self.failed(e);
        if self.client.is_some() {
            let _ = self.leave(c, path).await;
        }
        err
    }

    /// Take our node out of a queue. When that fails the session is dropped: a
    /// node left in the queue of a live session would block every later waiter.
    async fn leave(&mut self, c: &Client, path: &str) -> Result<()> {
        match self.delete(c, path).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.drop_session();
                Err(e)
            }
        }
    }

    /// Curator's `InterProcessSemaphoreMutex` on `/semaphores/<key>`.
    async fn semaphore(&mut self, c: &Client, base: &str, deadline: u64) -> Result<Waited> {
        let lock_dir = format!("{base}/locks");
        let inner = match self.mutex(c, &lock_dir, deadline).await? {
            Waited::Granted { node, .. } => node,
            Waited::TimedOut => return Ok(Waited::TimedOut),
        };
        let r = self.lease_node(c, base, deadline).await;
        // The internal mutex is released whatever happened (Curator's `finally`);
        // if that fails, the session (and the lease with it) is dropped. A lease
        // node that existed until then makes the outcome unknown, never "did not
        // happen".
        if self.client.is_some()
            && let Err(e) = self.leave(c, &inner.path).await
        {
            return Err(match r {
                Ok(Waited::Granted { .. }) => BackendError::Unknown(format!(
                    "the lease node was created, then releasing the internal lock failed: {e}"
                )),
                _ => e,
            });
        }
        r
    }

    /// The semaphore's lease: a protected node in `leases`, held once at most one
    /// lease node exists (the semaphore has one lease).
    async fn lease_node(&mut self, c: &Client, base: &str, deadline: u64) -> Result<Waited> {
        let dir = format!("{base}/leases");
        let node = self.create_protected(c, &dir, "lease-").await?;
        let mine = node.path.rsplit('/').next().unwrap_or_default().to_owned();
        let at = self.at().to_owned();
        loop {
            let asked_at = self.clock.now_ns();
            self.sent += 1;
            let (children, watcher) = match timed(c.list_and_watch_children(&dir)).await {
                Ok(v) => v,
                Err(e) => return Err(self.give_up(c, &node.path, e).await),
            };
            if !children.contains(&mine) {
                return Err(BackendError::Unavailable(format!(
                    "zookeeper at {at}: our lease node {} is gone (session expired?)",
                    node.path
                )));
            }
            if children.len() <= 1 {
                return Ok(Waited::Granted { node, asked_at });
            }
            let left = deadline.saturating_sub(self.clock.now_ns());
            let changed = tokio::time::timeout(self.clock.true_duration(Duration::from_nanos(left)), watcher.changed());
            if left == 0 || changed.await.is_err() {
                self.leave(c, &node.path).await?;
                return Ok(Waited::TimedOut);
            }
        }
    }

    async fn lock(&mut self, key: &str, lease: Duration, wait: Duration) -> Result<Option<Lease>> {
        let c = self.client(lease).await?;
        let invoked = self.clock.now_ns();
        let deadline = invoked.saturating_add(wait.as_nanos() as u64);
        let seg = segment(key);
        let waited = match self.variant {
            Variant::Mutex => self.mutex(&c, &format!("/locks/{seg}"), deadline).await?,
            Variant::Semaphore => self.semaphore(&c, &format!("/semaphores/{seg}"), deadline).await?,
        };
        let Waited::Granted { node, asked_at } = waited else { return Ok(None) };
        let owner = crate::new_owner();
        self.held.insert(owner, node.path);
        // The session lives at least one timeout past the request that showed our
        // node first; the timeout is what the ensemble granted.
        Ok(Some(Lease {
            key: key.to_owned(),
            owner,
            fencing_token: (self.variant == Variant::Mutex).then_some(node.czxid as u64),
            granted_at: asked_at,
            expires_at: asked_at + c.session_timeout().as_nanos() as u64,
        }))
    }
}

#[async_trait]
impl LockSession for Session {
    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        // Curator's `acquire(0, ms)`: queue, look, and leave again if not first.
        self.lock(key, lease, Duration::ZERO).await
    }

    async fn acquire(&mut self, key: &str, lease: Duration, wait: &Wait) -> Result<Option<Lease>> {
        self.lock(key, lease, wait.max).await
    }

    async fn ping(&mut self) -> Result<()> {
        let lease = if self.asked.is_zero() { Duration::from_secs(6) } else { self.asked };
        let c = self.client(lease).await?;
        self.sent += 1;
        match timed(c.check_stat("/")).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(self.at(), e)),
        }
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        // The session's own pings keep it alive; a renewal asks whether our node
        // is still there, in our session, after a sync with the leader (a member
        // cut off from the leader cannot answer it), so that the session lasts at
        // least one more timeout from now. It cannot promise more than that.
        let Some(path) = self.held.get(&lease.owner).cloned() else { return Ok(false) };
        let Some(c) = self.client.clone() else { return Ok(false) };
        if c.state() == SessionState::Expired {
            self.drop_session();
            return Ok(false);
        }
        // The session outlives the client's last ping by its timeout, so a longer
        // renewal holds only while the client runs. Where the ensemble cut the
        // timeout below the lease asked for (its maxSessionTimeout), the renewal
        // such a lease asks for cannot be promised at all.
        if extend > c.session_timeout() && c.session_timeout() < self.asked {
            return Err(BackendError::Rejected(format!(
                "a renewal of {extend:?}: the ensemble cut the session's timeout to {:?} (its maxSessionTimeout)",
                c.session_timeout()
            )));
        }
        self.sent += 1;
        if let Err(e) = timed(c.sync(&path)).await {
            return match e {
                ZkError::NoNode | ZkError::SessionExpired => {
                    self.held.remove(&lease.owner);
                    Ok(false)
                }
                e => Err(classify(self.at(), e)),
            };
        }
        self.sent += 1;
        match timed(c.check_stat(&path)).await {
            Ok(Some(stat)) => Ok(stat.ephemeral_owner == c.session_id().0),
            Ok(None) | Err(ZkError::SessionExpired) => {
                self.held.remove(&lease.owner);
                Ok(false)
            }
            Err(e) => Err(classify(self.at(), e)),
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let Some(path) = self.held.remove(&lease.owner) else { return Ok(false) };
        let Some(c) = self.client.clone() else { return Ok(false) };
        self.delete(&c, &path).await
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent)
    }

    async fn server_version(&mut self) -> Result<Option<String>> {
        // Not on the client protocol: the `srvr` four-letter word on the first
        // member's client port answers `Zookeeper version: 3.8.0-<git>, built ...`.
        let first = self.connect.split(',').next().unwrap_or_default().to_owned();
        let ask = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(&first).await?;
            s.write_all(b"srvr").await?;
            let mut text = String::new();
            s.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        };
        let text = match tokio::time::timeout(RESPONSE_TIMEOUT, ask).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(BackendError::Unavailable(format!("zookeeper at {first}: {e}"))),
            Err(_) => return Err(BackendError::Unknown(format!("zookeeper at {first}: no answer to srvr"))),
        };
        Ok(crate::servers::local::zookeeper_version(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_sort_by_the_number_the_server_appended() {
        let mut v = vec!["_c_b-lock-0000000010", "_c_a-lock-0000000002", "_c_c-lock-0000000009"];
        v.sort_by_key(|n| sequence(n));
        assert_eq!(v, ["_c_a-lock-0000000002", "_c_c-lock-0000000009", "_c_b-lock-0000000010"]);
        assert_eq!(sequence("_c_x-lease-9223372036854775807"), i64::MAX as u64);
    }

    #[test]
    fn protection_prefixes_are_curators_shape_and_differ() {
        let (a, b) = (protection(), protection());
        assert_ne!(a, b);
        assert!(a.starts_with("_c_") && a.ends_with('-') && a.len() == 3 + 36 + 1, "{a}");
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
