//! `momento`: Momento's lock recipe, the drop-in replacement for AWS's DynamoDB Lock
//! Client that Momento ships (momentohq/momento-dynamodb-lock-client,
//! `MomentoDynamoDBLockClient.java` and `MomentoLockClientHeartbeatHandler.java`),
//! through Momento's official Rust SDK against a real Momento cache. There is no
//! local Momento server: this backend runs only where `MOMENTO_API_KEY` is set
//! (with `MOMENTO_ENDPOINT` for a v2 key; the cache is `MOMENTO_CACHE`, default
//! `lockbench`, created when missing).
//!
//! The recipe, as the Java client does it:
//! - acquire: `set_if_absent(key, owner)` with the lease as TTL; a waiter polls it
//!   every refresh period;
//! - heartbeat: read the item's remaining TTL; if it has more than 200 ms left, read
//!   the item; if the owner is ours, `update_ttl(key, lease)`. With the Java
//!   client's default (`holdLockOnServiceUnavailable` off) an error gives the lock
//!   up; here it is an unknown outcome (the harness's holder works on, as an
//!   application that does not check `isExpired()` would). The Java handler also
//!   holds the lock when its own 10 s wait for an answer runs out; here the SDK's
//!   1 s deadline ends a request first;
//! - release: the same two reads, then an unconditional `delete`.
//!
//! The item's value is this client's owner name and the grant's owner id, so that
//! a stale lease of the same client matches nothing. Heartbeat and release are
//! still check-then-act, not atomic (Momento has no delete-if-equal): a lease that
//! runs out between the owner check and the `update_ttl` or `delete` extends or
//! deletes the next holder's lock. That breaks the release contract of
//! [`crate::LockSession::release`] in a narrow window (the recipe's own flaw, kept
//! on purpose). No fencing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use momento::cache::Configuration;
use momento::cache::{
    CreateCacheResponse, GetResponse, ItemGetTtlResponse, SetIfAbsentRequest, SetIfAbsentResponse, UpdateTtlResponse,
};
use momento::config::grpc_configuration::GrpcConfiguration;
use momento::config::transport_strategy::TransportStrategy;
use momento::{CacheClient, CredentialProvider, MomentoError, MomentoErrorCode};

use crate::servers::redact;
use crate::{BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Result, new_owner};

/// The variables this backend needs (the first) or reads when set.
pub const API_KEY_VAR: &str = "MOMENTO_API_KEY";
pub const ENDPOINT_VAR: &str = "MOMENTO_ENDPOINT";
pub const CACHE_VAR: &str = "MOMENTO_CACHE";
/// The Java client's margin: a lock with less TTL left is not touched.
const TTL_GRACE: Duration = Duration::from_millis(200);
/// How long one request may take (the SDK's deadline).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Momento {
    credentials: CredentialProvider,
    cache: String,
    clock: Clock,
    cache_ready: Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) fn open(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let key = var(API_KEY_VAR).ok_or_else(|| {
        BackendError::Config(format!("momento is a hosted service with no local server: set {API_KEY_VAR}"))
    })?;
    crate::servers::endpoint::remember(&key);
    #[allow(deprecated)] // a legacy key carries its endpoint; a v2 key needs MOMENTO_ENDPOINT
    let credentials = match var(ENDPOINT_VAR) {
        Some(endpoint) => CredentialProvider::from_api_key_v2(key, endpoint),
        None => CredentialProvider::from_string(key),
    }
    .map_err(|e| BackendError::Config(format!("momento: {API_KEY_VAR}: {}", redact(&e.message))))?;
    Ok(Arc::new(Momento {
        credentials,
        cache: var(CACHE_VAR).unwrap_or_else(|| "lockbench".to_owned()),
        clock: env.clock.clone(),
        cache_ready: Default::default(),
    }))
}

#[async_trait]
impl LockBackend for Momento {
    fn name(&self) -> &str {
        "momento"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { lease: true, renew: true, multi_process: true, ..Default::default() }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        // The TTL of each set is given with it; the default only has to be valid.
        let client = CacheClient::builder()
            .default_ttl(Duration::from_secs(60))
            .configuration(
                Configuration::builder().transport_strategy(
                    TransportStrategy::builder()
                        .grpc_configuration(GrpcConfiguration::builder().deadline(RESPONSE_TIMEOUT)),
                ),
            )
            .credential_provider(self.credentials.clone())
            .build()
            .map_err(|e| describe(&e))?;
        Ok(Box::new(Session {
            client,
            cache: self.cache.clone(),
            clock: self.clock.clone(),
            owner_name: format!("lockbench-{}", new_owner()),
            held: std::collections::HashMap::new(),
            cache_ready: self.cache_ready.clone(),
            sent: 0,
        }))
    }
}

/// An SDK error, sorted: a deadline or an unavailable service may have done the
/// request (unknown); refusals did nothing.
fn describe(e: &MomentoError) -> BackendError {
    let text = redact(&format!("momento: {:?}: {}", e.error_code, e.message));
    match e.error_code {
        MomentoErrorCode::TimeoutError
        | MomentoErrorCode::ServerUnavailable
        | MomentoErrorCode::InternalServerError
        | MomentoErrorCode::UnknownServiceError
        | MomentoErrorCode::CancelledError
        | MomentoErrorCode::UnknownError => BackendError::Unknown(text),
        MomentoErrorCode::AuthenticationError
        | MomentoErrorCode::PermissionError
        | MomentoErrorCode::LimitExceededError
        | MomentoErrorCode::ClientResourceExhausted
        | MomentoErrorCode::CacheNotFoundError => BackendError::Unavailable(text),
        _ => BackendError::Rejected(text),
    }
}

struct Session {
    client: CacheClient,
    cache: String,
    clock: Clock,
    owner_name: String,
    /// Held locks: owner id to key and the value written (owner name and id).
    held: std::collections::HashMap<u64, (String, String)>,
    cache_ready: Arc<std::sync::atomic::AtomicBool>,
    sent: u64,
}

impl Session {
    async fn ensure_cache(&mut self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.cache_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.sent += 1;
        match self.client.create_cache(&self.cache).await {
            Ok(CreateCacheResponse::Created | CreateCacheResponse::AlreadyExists) => {}
            Err(e) if e.error_code == MomentoErrorCode::AlreadyExistsError => {}
            Err(e) => return Err(describe(&e)),
        }
        self.cache_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Is the lock on `key` still ours, as the Java client checks it: more than
    /// 200 ms of TTL left, and our value in the item.
    async fn still_ours(&mut self, key: &str, mine: &str) -> std::result::Result<bool, MomentoError> {
        self.sent += 1;
        match self.client.item_get_ttl(&self.cache, key).await? {
            ItemGetTtlResponse::Hit { remaining_ttl } if remaining_ttl > TTL_GRACE => {}
            _ => return Ok(false),
        }
        self.sent += 1;
        Ok(match self.client.get(&self.cache, key).await? {
            GetResponse::Hit { value } => {
                let v: String = value.try_into().unwrap_or_default();
                v == mine
            }
            GetResponse::Miss => false,
        })
    }
}

#[async_trait]
impl LockSession for Session {
    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        self.ensure_cache().await?;
        let since = self.clock.now_ns();
        self.sent += 1;
        let owner = new_owner();
        let mine = format!("{} {owner}", self.owner_name);
        let req = SetIfAbsentRequest::new(&self.cache, key, mine.as_str()).ttl(lease);
        match self.client.send_request(req).await.map_err(|e| describe(&e))? {
            SetIfAbsentResponse::Stored => {
                self.held.insert(owner, (key.to_owned(), mine));
                Ok(Some(Lease::counted_from(key, owner, None, since, lease)))
            }
            SetIfAbsentResponse::NotStored => Ok(None),
        }
    }

    /// A read of a key nobody uses: answered only with a valid key and cache.
    async fn ping(&mut self) -> Result<()> {
        self.ensure_cache().await?;
        self.sent += 1;
        self.client.get(&self.cache, "lockbench-ping").await.map(|_| ()).map_err(|e| describe(&e))
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let Some((key, mine)) = self.held.get(&lease.owner).cloned() else { return Ok(false) };
        let r = match self.still_ours(&key, &mine).await {
            Ok(false) => Ok(false),
            Ok(true) => {
                self.sent += 1;
                self.client.update_ttl(&self.cache, key.as_str(), extend).await.map(|u| u == UpdateTtlResponse::Set)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.held.remove(&lease.owner);
                Ok(false)
            }
            // Kept: a release may still give the lock back.
            Err(e) => Err(describe(&e)),
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        let Some((key, mine)) = self.held.remove(&lease.owner) else { return Ok(false) };
        if !self.still_ours(&key, &mine).await.map_err(|e| describe(&e))? {
            // Left to expire (the Java client returns true here: the lock was in
            // its storage; it is no longer ours to give back).
            return Ok(false);
        }
        self.sent += 1;
        self.client.delete(&self.cache, key.as_str()).await.map_err(|e| describe(&e))?;
        Ok(true)
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent)
    }
}
