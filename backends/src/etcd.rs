//! `etcd`, `etcd-unfenced` and `etcd-txn`: etcd v3 (the `etcd-client` crate, gRPC;
//! one client per session, balanced over every member).
//!
//! Every session keeps one etcd lease, granted with the scenario's lease as its TTL
//! (etcd counts whole seconds and raises a TTL below its minimum, 2 s with default
//! timing: the TTL the server granted is what the session reports as the hold's
//! lease). The lease is kept alive only by the session's own renewals and by a
//! keep-alive before an acquire when a third of it has passed; a paused or crashed
//! holder's lease therefore runs out, the server deletes the lock key, and the next
//! waiter gets the lock. That is the etcd 3.4 behaviour Jepsen's 2020 analysis
//! measured under process pauses.
//!
//! - `etcd`: the server's lock service (`v3lock`: `Lock` with the lease; it puts
//!   `<name>/<lease in hex>` and waits until every key under `<name>/` with a lower
//!   create revision is gone: a queue in create-revision order). A wait is that
//!   queue (`acquire` overrides the polling default); a try without waiting is the
//!   same recipe as one transaction (put the waiter key, read the lowest), and the
//!   key is deleted again when it is not the lowest (etcd 3.5's `TryLock`). Release
//!   deletes the lock key, which is what the server's `Unlock` does. The fencing
//!   token is the revision of the answer that granted the lock (the try's
//!   transaction, or `Lock`): at least the revision that deleted the previous
//!   holder's key, so it grows with every grant. A request whose outcome is
//!   unknown may leave a waiter key behind, and a failed release its lock key: the
//!   session then stops renewing its lease, so that the key expires (kept, the
//!   next acquire would find its own key and be granted re-entrantly on it). Jepsen's recommended fix: the
//!   guarded resource refuses a token lower than one it has seen.
//! - `etcd-unfenced`: the same lock, and the guarded write carries no token: what
//!   most applications do, and what Jepsen measured (lost updates under pauses).
//! - `etcd-txn`: the hand-rolled recipe: `If(CreateRevision(key) == 0)
//!   Then(Put(key, owner, lease))`, polling; release and renew are owner-checked;
//!   the token is the put's revision.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper, LockOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use crate::servers::{Endpoint, redact};
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, Wait, new_owner};

/// How long one request may take before its outcome is called unknown. etcd
/// commits every write through Raft and an fsync on a majority.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Lock,
    Unfenced,
    Txn,
}

pub struct Etcd {
    variant: Variant,
    /// `http://host:port` of every member.
    urls: Arc<Vec<String>>,
    /// The members as the user named them (no password), for messages.
    at: String,
    user: Option<(String, String)>,
    clock: Clock,
}

fn open(env: &BackendEnv, variant: Variant) -> Result<Arc<dyn LockBackend>> {
    if env.endpoints.is_empty() {
        return Err(BackendError::Config("etcd needs at least one endpoint".into()));
    }
    let mut urls = Vec::new();
    let mut shown = Vec::new();
    let mut user = None;
    for text in &env.endpoints {
        let e = Endpoint::from_env(text)?;
        urls.push(format!("http://{}:{}", e.host, e.port));
        shown.push(format!("{}:{}", e.host, e.port));
        if let (Some(u), Some(p)) = (&e.user, e.password()) {
            user = Some((u.clone(), p.to_owned()));
        }
    }
    Ok(Arc::new(Etcd { variant, urls: Arc::new(urls), at: shown.join(","), user, clock: env.clock.clone() }))
}

pub(crate) fn open_lock(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Lock)
}

pub(crate) fn open_unfenced(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Unfenced)
}

pub(crate) fn open_txn(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Txn)
}

#[async_trait]
impl LockBackend for Etcd {
    fn name(&self) -> &str {
        match self.variant {
            Variant::Lock => "etcd",
            Variant::Unfenced => "etcd-unfenced",
            Variant::Txn => "etcd-txn",
        }
    }
    fn capabilities(&self) -> Capabilities {
        let fencing = self.variant != Variant::Unfenced;
        let blocking_wait = self.variant != Variant::Txn;
        Capabilities {
            lease: true,
            renew: true,
            fencing,
            blocking_wait,
            multi_process: true,
            // etcd raises a TTL below its minimum (1.5 election timeouts: 2 s with
            // default timing) and revokes expired leases on a 500 ms tick.
            expiry_slack: Duration::from_millis(2_500),
            ..Default::default()
        }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        Ok(Box::new(Session {
            variant: self.variant,
            urls: self.urls.clone(),
            at: self.at.clone(),
            user: self.user.clone(),
            clock: self.clock.clone(),
            client: None,
            lease: None,
            held: Default::default(),
            sent: 0,
        }))
    }
}

/// The session's etcd lease. It is kept alive while the session waits in the lock
/// queue, by renewals while it holds, and by a keep-alive before an acquire when a
/// third of it has passed: never in the background, so that a holder that stops
/// renewing (paused, crashed, or slower than its lease) loses it as the scenario
/// says.
struct SessionLease {
    id: i64,
    /// As granted (whole seconds).
    ttl: Duration,
    /// When the last grant or keep-alive that the server answered was sent, on the
    /// client's clock: the lease runs at least until this plus `ttl`.
    refreshed_at: u64,
    /// The keep-alive stream, opened by the first keep-alive.
    stream: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

impl SessionLease {
    fn until(&self) -> u64 {
        self.refreshed_at.saturating_add(self.ttl.as_nanos() as u64)
    }
}

struct Session {
    variant: Variant,
    urls: Arc<Vec<String>>,
    at: String,
    user: Option<(String, String)>,
    clock: Clock,
    client: Option<Client>,
    lease: Option<SessionLease>,
    /// The key of each lock this session holds and the lease it was taken
    /// under, by owner.
    held: std::collections::HashMap<u64, (String, i64)>,
    /// Requests sent (the connection's set-up not counted).
    sent: u64,
}

/// A request's error: what etcd or the transport said. A request that may have
/// reached the server is `Unknown`; one the server refused is `Rejected`.
fn classify(at: &str, e: etcd_client::Error) -> BackendError {
    use tonic::Code;
    let text = format!("etcd at {at}: {}", redact(&e.to_string()));
    match &e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unauthenticated
            | Code::Unimplemented => BackendError::Rejected(text),
            Code::ResourceExhausted => BackendError::Unavailable(text),
            _ => BackendError::Unknown(text),
        },
        etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => BackendError::Config(text),
        _ => BackendError::Unknown(text),
    }
}

/// The lease was not found (expired, or revoked): grant a new one.
fn lease_gone(e: &etcd_client::Error) -> bool {
    e.to_string().contains("lease not found")
}

impl Variant {
    /// Each backend's keys live under a prefix of their own, so that backends
    /// sharing a cluster never see each other's locks.
    fn space(self) -> &'static str {
        match self {
            Variant::Lock => "lockbench/etcd",
            Variant::Unfenced => "lockbench/etcd-unfenced",
            Variant::Txn => "lockbench/etcd-txn",
        }
    }

    /// Where the lock service and the try recipe keep a key's waiters.
    fn lock_prefix(self, key: &str) -> String {
        format!("{}/{key}/", self.space())
    }

    fn txn_key(self, key: &str) -> String {
        format!("{}/{key}", self.space())
    }
}

impl Session {
    /// The client, connected if there is none. Nothing of ours was asked yet, so a
    /// failure is `Unavailable`.
    async fn client(&mut self) -> Result<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some((u, p)) = &self.user {
            opts = opts.with_user(u.clone(), p.clone());
        }
        let at = &self.at;
        let c = match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(self.urls.as_slice(), Some(opts))).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(BackendError::Unavailable(format!("etcd at {at}: {}", redact(&e.to_string()))));
            }
            Err(_) => {
                return Err(BackendError::Unavailable(format!(
                    "etcd at {at}: could not connect within {CONNECT_TIMEOUT:?}"
                )));
            }
        };
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Send one request under the response deadline.
    async fn call<T>(
        &mut self,
        deadline: Duration,
        f: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        self.sent += 1;
        match tokio::time::timeout(deadline, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&self.at, e)),
            Err(_) => Err(BackendError::Unknown(format!("etcd at {}: no answer within {deadline:?}", self.at))),
        }
    }

    /// The session's lease, with at least two thirds of its TTL left: kept alive
    /// if a third has passed, or a new one with TTL `want` in whole seconds (at
    /// least one) if there is none or it ran out. Its id, TTL, and when it was last
    /// known alive.
    async fn lease(&mut self, want: Duration) -> Result<(i64, Duration, u64)> {
        let want_s = want.as_secs_f64().ceil().max(1.0) as i64;
        let now = self.clock.now_ns();
        if let Some(l) = &self.lease
            && (l.ttl.as_secs() as i64) < want_s
        {
            self.lease = None;
        }
        if let Some(l) = &self.lease {
            if now < l.refreshed_at.saturating_add(l.ttl.as_nanos() as u64 / 3) {
                return Ok((l.id, l.ttl, l.refreshed_at));
            }
            // A keep-alive without an answer leaves the lease in doubt: take a new
            // one (the old one, if it lives, runs out by itself).
            if now < l.until() && matches!(self.keep_alive().await, Ok(true)) {
                let l = self.lease.as_ref().expect("kept alive");
                return Ok((l.id, l.ttl, l.refreshed_at));
            }
        }
        self.lease = None;
        let mut c = self.client().await?;
        let t = self.clock.now_ns();
        // Nothing of the lock was asked yet: a grant that fails leaves no lock
        // behind (a lease granted without our hearing of it expires unused).
        let r = match self.call(RESPONSE_TIMEOUT, c.lease_grant(want_s, None)).await {
            Ok(r) => r,
            Err(BackendError::Unknown(m)) => return Err(BackendError::Unavailable(m)),
            Err(e) => return Err(e),
        };
        let ttl = Duration::from_secs(r.ttl().max(1) as u64);
        self.lease = Some(SessionLease { id: r.id(), ttl, refreshed_at: t, stream: None });
        Ok((r.id(), ttl, t))
    }

    /// One keep-alive of the session's lease: false when there is none or the
    /// server says it is gone (it is then forgotten).
    async fn keep_alive(&mut self) -> Result<bool> {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else { return Ok(false) };
        let mut c = self.client().await?;
        if self.lease.as_ref().is_some_and(|l| l.stream.is_none()) {
            // Opening the stream is itself a keep-alive: it waits for the answer.
            let t = self.clock.now_ns();
            match self.call(RESPONSE_TIMEOUT, c.lease_keep_alive(id)).await {
                Ok(pair) => {
                    if let Some(l) = self.lease.as_mut() {
                        l.stream = Some(pair);
                        l.refreshed_at = t;
                    }
                    return Ok(true);
                }
                // Opening the stream sends the first keep-alive: "lease not found".
                Err(e) if e.to_string().contains("lease not found") => {
                    self.lease = None;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        let t = self.clock.now_ns();
        let at = self.at.clone();
        self.sent += 1;
        let l = self.lease.as_mut().expect("checked above");
        let (keeper, answers) = l.stream.as_mut().expect("just opened");
        let round = async {
            keeper.keep_alive().await?;
            answers.message().await
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, round).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                l.ttl = Duration::from_secs(r.ttl() as u64);
                l.refreshed_at = t;
                Ok(true)
            }
            Ok(Ok(Some(_))) => {
                self.lease = None;
                Ok(false)
            }
            Ok(Err(e)) if lease_gone(&e) => {
                self.lease = None;
                Ok(false)
            }
            _ => {
                // The stream broke or no answer came: a new stream next time. Whether
                // the lease lives is unknown.
                l.stream = None;
                Err(BackendError::Unknown(format!("etcd at {at}: no answer to a lease keep-alive")))
            }
        }
    }

    fn granted(&self, key: &str, owner: u64, rev: i64, now: u64, refreshed_at: u64, ttl: Duration) -> Lease {
        let token = (self.variant != Variant::Unfenced).then_some(rev as u64);
        // The lease runs at least from the grant or keep-alive that was last sent.
        let expires_at = refreshed_at.saturating_add(ttl.as_nanos() as u64).max(now);
        Lease { key: key.to_owned(), owner, fencing_token: token, granted_at: now, expires_at }
    }

    /// The lock key this session's lease puts under `key` (as the lock service
    /// names it: the lease id in hex).
    fn waiter_key(&self, key: &str, lease: i64) -> String {
        format!("{}{:x}", self.variant.lock_prefix(key), lease)
    }

    /// A lock-changing request whose outcome is unknown may have left a key of
    /// ours bound to the session's lease (a waiter key put after we gave up on
    /// it): stop keeping that lease alive, so that whatever it holds expires, and
    /// the next acquire takes a new lease (and a new key name).
    fn in_doubt(&mut self, e: BackendError) -> BackendError {
        if e.is_indeterminate() {
            self.lease = None;
        }
        e
    }

    /// Send a transaction that puts a key under the session's lease. A lease the
    /// server no longer knows is forgotten (the next acquire takes a new one); an
    /// outcome in doubt stops the lease's renewal (see `in_doubt`).
    async fn lease_txn(&mut self, c: &mut Client, txn: Txn) -> Result<TxnResponse> {
        match self.call(RESPONSE_TIMEOUT, c.txn(txn)).await {
            Err(BackendError::Rejected(m)) if m.contains("lease not found") => {
                self.lease = None;
                Err(BackendError::Rejected(m))
            }
            Err(e) => Err(self.in_doubt(e)),
            Ok(r) => Ok(r),
        }
    }

    /// etcd 3.5's `TryLock`, in one transaction: put the waiter key, read the
    /// lowest; not the lowest means held by another, and the key is taken back.
    async fn try_lock(&mut self, key: &str, want: Duration) -> Result<Option<Lease>> {
        let now = self.clock.now_ns();
        let (id, ttl, refreshed_at) = self.lease(want).await?;
        let mut c = self.client().await?;
        let mine = self.waiter_key(key, id);
        let lowest = || {
            TxnOp::get(
                self.variant.lock_prefix(key),
                Some(GetOptions::new().with_prefix().with_sort(SortTarget::Create, SortOrder::Ascend).with_limit(1)),
            )
        };
        let txn = Txn::new()
            .when([Compare::create_revision(mine.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(mine.clone(), "", Some(PutOptions::new().with_lease(id))), lowest()])
            .or_else([TxnOp::get(mine.clone(), None), lowest()]);
        let r = self.lease_txn(&mut c, txn).await?;
        let rev = r.header().map_or(0, |h| h.revision());
        // The lowest waiter is the second answer in both branches (etcd's own
        // TryLock reads Responses[1]); the first is our put, or our key's get.
        let lowest_key = match r.op_responses().get(1) {
            Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.key().to_vec()),
            _ => None,
        };
        match lowest_key {
            Some(k) if k == mine.as_bytes() => {
                // Ours is the lowest: held. The token is the answer's revision (as
                // etcd's Mutex keeps its header's): at least the revision that
                // deleted the previous holder's key, so it grows with every grant.
                let owner = new_owner();
                self.held.insert(owner, (mine, id));
                Ok(Some(self.granted(key, owner, rev, now, refreshed_at, ttl)))
            }
            _ => {
                self.call(RESPONSE_TIMEOUT, c.delete(mine, None)).await?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl LockSession for Session {
    async fn server_version(&mut self) -> Result<Option<String>> {
        let mut c = self.client().await?;
        let s = self.call(RESPONSE_TIMEOUT, c.status()).await?;
        Ok(Some(format!("etcd {}", s.version())))
    }

    /// A member's status (any member the client picks).
    async fn ping(&mut self) -> Result<()> {
        let mut c = self.client().await?;
        match self.call(RESPONSE_TIMEOUT, c.status()).await {
            Ok(_) => Ok(()),
            // Nothing was asked of the lock: a status that gets no answer means
            // the cluster is not reachable.
            Err(BackendError::Unknown(m)) => Err(BackendError::Unavailable(m)),
            Err(e) => Err(e),
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent)
    }

    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        match self.variant {
            Variant::Lock | Variant::Unfenced => self.try_lock(key, lease).await,
            Variant::Txn => {
                let now = self.clock.now_ns();
                let (id, ttl, refreshed_at) = self.lease(lease).await?;
                let mut c = self.client().await?;
                let owner = new_owner();
                let k = self.variant.txn_key(key);
                let txn = Txn::new()
                    .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(k.clone(), owner.to_string(), Some(PutOptions::new().with_lease(id)))]);
                let r = self.lease_txn(&mut c, txn).await?;
                if !r.succeeded() {
                    return Ok(None);
                }
                let rev = r.header().map_or(0, |h| h.revision());
                self.held.insert(owner, (k, id));
                Ok(Some(self.granted(key, owner, rev, now, refreshed_at, ttl)))
            }
        }
    }

    /// `etcd` and `etcd-unfenced` wait in the lock service's queue for at most the
    /// wait; `etcd-txn` polls.
    async fn acquire(&mut self, key: &str, lease: Duration, wait: &Wait) -> Result<Option<Lease>> {
        if self.variant == Variant::Txn || wait.max.is_zero() {
            return if self.variant == Variant::Txn {
                crate::poll_acquire(self, key, lease, wait).await
            } else {
                self.try_acquire(key, lease).await
            };
        }
        let now = self.clock.now_ns();
        let (id, ttl, refreshed_at) = self.lease(lease).await?;
        let mut c = self.client().await?;
        self.sent += 1;
        let name = self.variant.lock_prefix(key);
        let name = name.trim_end_matches('/').to_owned();
        // Wait in the queue, keeping the lease alive meanwhile (a waiter whose lease
        // ran out would lose its place, and its key).
        let mut waiting = c.clone();
        let mut lock = Box::pin(waiting.lock(name, Some(LockOptions::new().with_lease(id))));
        let give_up = tokio::time::sleep(wait.max);
        tokio::pin!(give_up);
        let answer = loop {
            tokio::select! {
                r = &mut lock => break Ok(r),
                _ = &mut give_up => break Err(()),
                _ = tokio::time::sleep(ttl / 3) => {
                    // The wait's end still bounds a keep-alive that takes long.
                    tokio::select! {
                        k = self.keep_alive() => if let Ok(false) = k {
                            break Ok(Err(etcd_client::Error::LeaseKeepAliveError("lease not found while waiting".into())));
                        },
                        _ = &mut give_up => break Err(()),
                    }
                }
            }
        };
        // A request given up on is cancelled here, before its key is taken back.
        drop(lock);
        let refreshed_at = self.lease.as_ref().map_or(refreshed_at, |l| l.refreshed_at);
        match answer {
            Ok(Ok(r)) => {
                let rev = r.header().map_or(0, |h| h.revision());
                let owner = new_owner();
                self.held.insert(owner, (String::from_utf8_lossy(r.key()).into_owned(), id));
                Ok(Some(self.granted(key, owner, rev, now, refreshed_at, ttl)))
            }
            Ok(Err(e)) if lease_gone(&e) => {
                self.lease = None;
                Err(classify(&self.at, e))
            }
            Ok(Err(e)) => {
                let e = classify(&self.at, e);
                Err(self.in_doubt(e))
            }
            Err(()) => {
                // The wait is over. The server may have granted the lock just as
                // the request was cancelled: take the waiter key back (the lock
                // service deletes it too when it sees the cancel).
                let mine = self.waiter_key(key, id);
                let taken_back = self.call(RESPONSE_TIMEOUT, c.delete(mine, None)).await;
                // The cancelled request's put may still land after this delete:
                // stop renewing the lease that would keep such a key alive.
                self.lease = None;
                match taken_back {
                    Ok(_) => Ok(None),
                    Err(e) => Err(BackendError::Unknown(format!(
                        "etcd at {}: a timed-out wait could not take its waiter key back: {e}",
                        self.at
                    ))),
                }
            }
        }
    }

    /// A keep-alive of the session's lease, if this hold was taken under it: the
    /// lock key lives exactly as long.
    async fn renew(&mut self, lease: &Lease, _extend: Duration) -> Result<bool> {
        let under = self.held.get(&lease.owner).map(|(_, id)| *id);
        if under.is_none() || under != self.lease.as_ref().map(|l| l.id) {
            return Ok(false);
        }
        self.keep_alive().await
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let mut c = self.client().await?;
        match self.variant {
            Variant::Lock | Variant::Unfenced => {
                let Some((k, _)) = self.held.remove(&lease.owner) else { return Ok(false) };
                // A release that failed may have left the lock key: stop renewing the
                // lease it lives under. Kept, the next acquire would put the same
                // key name under the same lease, find the old key still there and
                // be "granted" at once, re-entrantly, under the old key's create
                // revision, with a token no higher than the last grant's (seen in
                // leader-kill: a release to a member being killed, then a grant
                // with the same token 177).
                let r = self.call(RESPONSE_TIMEOUT, c.delete(k, None)).await.inspect_err(|_| self.lease = None)?;
                Ok(r.deleted() == 1)
            }
            Variant::Txn => {
                self.held.remove(&lease.owner);
                let k = self.variant.txn_key(&lease.key);
                let txn = Txn::new()
                    .when([Compare::value(k.clone(), CompareOp::Equal, lease.owner.to_string())])
                    .and_then([TxnOp::delete(k, None)]);
                Ok(self.call(RESPONSE_TIMEOUT, c.txn(txn)).await?.succeeded())
            }
        }
    }
}
