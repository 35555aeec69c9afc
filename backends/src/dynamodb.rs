//! `dynamodb-lock-client`, `dynamodb-lock-client-hold` and `dynamodb-cas`: locks on
//! the DynamoDB API (the official `aws-sdk-dynamodb` crate; locally against
//! dynalite, see `servers::ServerKind::Dynamodb`). Every session has its own SDK
//! client and connection pool, no SDK retries (an operation is one request, and a
//! request that got no answer is an unknown outcome, never silently sent again),
//! and a 1 s deadline per request.
//!
//! - `dynamodb-lock-client` follows AWS's DynamoDB Lock Client for Java
//!   (awslabs/amazon-dynamodb-lock-client: `AmazonDynamoDBLockClient.java` of the
//!   1.2 line, whose pom says 1.2.1; with
//!   `deleteLockOnRelease` on, its default) step for step:
//!   - the lock is an item `{key, ownerName, leaseDuration (ms, a string),
//!     recordVersionNumber (a random UUID)}`;
//!   - acquire reads it (`GetItem`, consistent). Absent: a `PutItem` on
//!     `attribute_not_exists(key)`. Present: the waiter remembers its record
//!     version number and when it read it, polls every refresh period, and takes
//!     it over with a `PutItem` on `recordVersionNumber = <the one seen>` only once
//!     that number has stayed unchanged for a whole lease by its own clock. (One
//!     difference: the Java client adds one lease to the time it waits when it
//!     first finds the lock held, so it never gives up within a lease. Here the
//!     scenario's wait is the whole wait, as for every other backend; a waiter that
//!     is to take over an abandoned lock needs a wait longer than the lease, and
//!     the refresh period is the scenario's `backoff_max`. A request whose outcome
//!     is unknown ends the wait, as every backend's must, where the Java client
//!     retries; a request refused before doing anything, throttling included, is
//!     retried within the wait, where the Java client gives up on throttling.)
//!     A try without waiting
//!     (`shouldSkipBlockingWait`) keeps what it saw between calls (`notMyLocks`) and
//!     takes the lock over on a later try once that lease has passed unchanged;
//!   - heartbeat (renew) first checks the holder's own lease by its own clock (run
//!     out: the lock is given up without asking), then an `UpdateItem` on owner and
//!     record version number that writes a new record version number;
//!   - release is a `DeleteItem` on owner and record version number.
//!
//!   No fencing: a record version number is random, not ordered. Its safety rests
//!   on timing: a paused holder that wakes after its lease writes beside its
//!   successor.
//! - `dynamodb-lock-client-hold` is the same with `holdLockOnServiceUnavailable`:
//!   a heartbeat the service does not answer counts as sent (the holder's lease is
//!   extended locally). The Java client does this on an HTTP 503 only; a client
//!   cut off from the service never gets a 503 (its requests time out), and this
//!   backend treats a request with no answer the same way, which is the situation
//!   the option exists for. UNSAFE under a partition: the holder keeps working
//!   while its lease runs out on the server and someone else takes the lock.
//! - `dynamodb-cas` is a fenced alternative: one item per key with the owner, the
//!   expiry (ms on the client's clock) and a counter. Acquire is one conditional
//!   `UpdateItem` (`attribute_not_exists(key) OR expires < :now`) that sets owner
//!   and expiry and adds 1 to the counter, whose new value is the fencing token;
//!   renew and release are `UpdateItem`s on the owner. Release keeps the item (the
//!   counter must only grow) and sets its expiry to 0.
//!
//! The lock table (`lockbench_locks`; `lockbench_cas` for `dynamodb-cas`, partition
//! key `key`) is created by the first session that finds it missing, again after a
//! server restart that lost it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType,
};

use crate::servers::{Endpoint, redact};
use crate::{
    BackendEnv, BackendError, Capabilities, Clock, Lease, LockBackend, LockSession, Owner, Result, Wait, new_owner,
};

/// How long one request may take before its outcome is called unknown.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The lock tables' names (the lock client's items and dynamodb-cas's are
/// shaped differently), and their partition key.
pub const TABLE: &str = "lockbench_locks";
pub const CAS_TABLE: &str = "lockbench_cas";
const KEY: &str = "key";
// The Java lock client's attribute names.
const OWNER_NAME: &str = "ownerName";
const LEASE_DURATION: &str = "leaseDuration";
const RVN: &str = "recordVersionNumber";
// dynamodb-cas's.
const OWNER: &str = "owner";
const EXPIRES: &str = "expires";
const TOKEN: &str = "token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    LockClient,
    LockClientHold,
    Cas,
}

/// Where the service is and how to sign requests to it.
struct Service {
    url: String,
    /// `host:port` for messages.
    at: String,
    region: String,
    credentials: Credentials,
    /// The lock table is there (checked or created by this process).
    table_ready: AtomicBool,
}

pub struct Dynamo {
    variant: Variant,
    service: Arc<Service>,
    clock: Clock,
}

fn open(env: &BackendEnv, variant: Variant) -> Result<Arc<dyn LockBackend>> {
    let endpoint = env.endpoints.first().ok_or_else(|| BackendError::Config("dynamodb needs one endpoint".into()))?;
    let e = Endpoint::from_env(endpoint)?;
    // Credentials: the endpoint's `user:password@` (access key id and secret),
    // else the standard AWS variables, else dummy ones (an emulator takes any).
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let credentials = match (&e.user, e.password()) {
        (Some(id), Some(secret)) => Credentials::new(id, secret, None, None, "lockbench endpoint"),
        (None, Some(_)) => {
            return Err(BackendError::Config(format!(
                "dynamodb endpoint {e}: a secret key needs its access key id (http://ACCESS_KEY_ID:SECRET@host:port)"
            )));
        }
        _ => match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                if let Some(t) = var("AWS_SESSION_TOKEN") {
                    crate::servers::endpoint::remember(&t);
                }
                crate::servers::endpoint::remember(&secret);
                Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment")
            }
            _ => Credentials::new("lockbench", "lockbench", None, None, "dummy"),
        },
    };
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
    let service = Service {
        url: format!("http://{}:{}", e.host, e.port),
        at: format!("{}:{}", e.host, e.port),
        region,
        credentials,
        table_ready: AtomicBool::new(false),
    };
    Ok(Arc::new(Dynamo { variant, service: Arc::new(service), clock: env.clock.clone() }))
}

pub(crate) fn open_lock_client(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::LockClient)
}

pub(crate) fn open_lock_client_hold(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::LockClientHold)
}

pub(crate) fn open_cas(env: &BackendEnv) -> Result<Arc<dyn LockBackend>> {
    open(env, Variant::Cas)
}

#[async_trait]
impl LockBackend for Dynamo {
    fn name(&self) -> &str {
        match self.variant {
            Variant::LockClient => "dynamodb-lock-client",
            Variant::LockClientHold => "dynamodb-lock-client-hold",
            Variant::Cas => "dynamodb-cas",
        }
    }
    fn capabilities(&self) -> Capabilities {
        // The lock client's wait is its own polling loop (not `try_acquire` polled),
        // but no native wait either.
        let fencing = self.variant == Variant::Cas;
        Capabilities { lease: true, renew: true, fencing, multi_process: true, ..Default::default() }
    }
    async fn session(&self) -> Result<Box<dyn LockSession>> {
        let s = &self.service;
        // rustls with ring; the http:// of an emulator needs no TLS.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .credentials_provider(s.credentials.clone())
            .endpoint_url(&s.url)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder().connect_timeout(RESPONSE_TIMEOUT).operation_timeout(RESPONSE_TIMEOUT).build(),
            )
            .build();
        Ok(Box::new(Session {
            variant: self.variant,
            service: self.service.clone(),
            client: Client::from_conf(config),
            clock: self.clock.clone(),
            owner_name: format!("lockbench-{}", new_owner()),
            held: HashMap::new(),
            not_mine: HashMap::new(),
            sent: 0,
        }))
    }
}

/// A lock this session holds (lock client): what its next heartbeat or release
/// must match, and when its lease started by this client's clock.
struct Held {
    key: String,
    rvn: String,
    /// When the last successful write of it was sent (ns, the session's clock).
    since: u64,
    lease_ms: u64,
}

/// Someone else's lock as this session last saw it (the Java client's
/// `notMyLocks`, and the waiter's `lockTryingToBeAcquired`).
#[derive(Clone)]
struct Seen {
    rvn: String,
    /// When it was read (ns, the session's clock): the lease counts from here.
    at: u64,
    lease_ms: u64,
}

impl Seen {
    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.at) > self.lease_ms * 1_000_000
    }
}

/// What a read of a lock item found.
enum Found {
    Absent,
    Held(Seen),
}

struct Session {
    variant: Variant,
    service: Arc<Service>,
    client: Client,
    clock: Clock,
    /// This client's owner name (the Java client's `ownerName`).
    owner_name: String,
    held: HashMap<Owner, Held>,
    not_mine: HashMap<String, Seen>,
    sent: u64,
}

/// How a request ended, beyond success.
enum Failed {
    /// The condition did not hold: nothing was written.
    Condition,
    /// No answer, or the service said it is unavailable (HTTP 503): for the
    /// `-hold` variant's heartbeat.
    Unavailable(BackendError),
    Other(BackendError),
}

impl Failed {
    fn into_backend(self, what: &str) -> BackendError {
        match self {
            Failed::Condition => BackendError::Rejected(format!("{what}: condition failed")),
            Failed::Unavailable(e) | Failed::Other(e) => e,
        }
    }
}

/// Sort an SDK error: a condition that failed, a request that got no answer
/// (unknown outcome), one that never left or was refused before doing anything
/// (unavailable), or one the service answered with an error.
fn classify<E>(at: &str, e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> Failed
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // The error and its causes, without the SDK's Debug dump.
    let text = |e: &dyn std::error::Error| {
        let mut parts = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            let t = c.to_string();
            if !parts.iter().any(|p| p.contains(&t)) {
                parts.push(t);
            }
            cause = c.source();
        }
        redact(&format!("dynamodb at {at}: {}", parts.join(": ")))
    };
    match &e {
        SdkError::ConstructionFailure(_) => Failed::Other(BackendError::Config(text(&e))),
        SdkError::TimeoutError(_) => Failed::Unavailable(BackendError::Unknown(format!(
            "dynamodb at {at}: no answer within {RESPONSE_TIMEOUT:?}"
        ))),
        SdkError::DispatchFailure(d) => {
            let msg = text(&e);
            // Connecting failed: nothing was sent. (A reset after sending reads
            // "client error (SendRequest): ... Connection reset": unknown.)
            if msg.contains("client error (Connect)") || msg.contains("onnection refused") || d.is_user() {
                Failed::Unavailable(BackendError::Unavailable(msg))
            } else {
                Failed::Unavailable(BackendError::Unknown(msg))
            }
        }
        SdkError::ResponseError(_) => Failed::Unavailable(BackendError::Unknown(text(&e))),
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            let status = s.raw().status().as_u16();
            let msg = text(&e);
            match code {
                "ConditionalCheckFailedException" => Failed::Condition,
                // Refused before anything was done: missing table (a restarted
                // in-memory server), credentials, throttling.
                "ResourceNotFoundException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "AccessDeniedException"
                | "ExpiredTokenException"
                | "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded" => Failed::Other(BackendError::Unavailable(msg)),
                // The service failed: it may or may not have written.
                _ if status == 503 => Failed::Unavailable(BackendError::Unknown(msg)),
                _ if status >= 500 => Failed::Other(BackendError::Unknown(msg)),
                _ => Failed::Other(BackendError::Rejected(msg)),
            }
        }
        _ => Failed::Other(BackendError::Unknown(text(&e))),
    }
}

/// A version-4 UUID, as the Java client's record version numbers are.
fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let x = u128::from_be_bytes(b) & !(0xf000 << 64) & !(0xc000 << 48) | (0x4000 << 64) | (0x8000 << 48);
    let h = format!("{x:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A duration in whole milliseconds, rounded up: a lease written in ms must never
/// end on the server before the client believes it does.
fn ceil_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Session {
    fn at(&self) -> &str {
        &self.service.at
    }

    fn table(&self) -> &'static str {
        if self.variant == Variant::Cas { CAS_TABLE } else { TABLE }
    }

    /// Wall-clock milliseconds as this client sees them (its clock's skew
    /// included): `dynamodb-cas` compares expiries written by different clients.
    fn wall_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let skew = self.clock.now_ns() as i128 - Clock::monotonic().now_ns() as i128;
        ((wall.as_nanos() as i128 + skew) / 1_000_000).max(0) as u64
    }

    /// Make sure the lock table exists: created when missing (a concurrent
    /// creation by another session is fine).
    async fn ensure_table(&mut self) -> Result<()> {
        if self.service.table_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let at = self.service.at.clone();
        self.sent += 1;
        match self.client.describe_table().table_name(self.table()).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                self.sent += 1;
                let created = self
                    .client
                    .create_table()
                    .table_name(self.table())
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(KEY)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| BackendError::Config(e.to_string()))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(KEY)
                            .key_type(KeyType::Hash)
                            .build()
                            .map_err(|e| BackendError::Config(e.to_string()))?,
                    )
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
                    Err(e) => return Err(classify(&at, e).into_backend("CreateTable")),
                }
            }
            Err(e) => return Err(classify(&at, e).into_backend("DescribeTable")),
        }
        self.service.table_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// A failed request: a missing table (a restarted in-memory server) is made
    /// again before the next request.
    fn failed(&self, f: Failed) -> Failed {
        if let Failed::Other(BackendError::Unavailable(m)) = &f
            && m.contains("ResourceNotFoundException")
        {
            self.service.table_ready.store(false, Ordering::Release);
        }
        f
    }

    /// Read a lock item (consistent read).
    async fn read(&mut self, key: &str) -> Result<Found> {
        self.ensure_table().await?;
        self.sent += 1;
        let r = self.client.get_item().table_name(self.table()).key(KEY, s(key)).consistent_read(true).send().await;
        let item = match r {
            Ok(o) => o.item,
            Err(e) => {
                let f = classify(self.at(), e);
                return Err(self.failed(f).into_backend("GetItem"));
            }
        };
        // The lease counts from after the read, as the Java client's does.
        let at = self.clock.now_ns();
        let Some(item) = item else { return Ok(Found::Absent) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(rvn), Some(lease)) = (text(RVN), text(LEASE_DURATION)) else {
            return Err(BackendError::Rejected(format!(
                "dynamodb at {}: lock item {key} has no {RVN} or {LEASE_DURATION}",
                self.at()
            )));
        };
        let lease_ms = lease.parse().map_err(|_| {
            BackendError::Rejected(format!("dynamodb at {}: lock item {key}: {LEASE_DURATION} {lease:?}", self.at()))
        })?;
        Ok(Found::Held(Seen { rvn, at, lease_ms }))
    }

    /// Write a new lock item: on `attribute_not_exists(key)` (`over`: None), or
    /// over the lock last seen with this record version number.
    async fn put(&mut self, key: &str, lease: Duration, over: Option<&str>) -> Result<Option<Lease>> {
        let rvn = uuid();
        let lease_ms = ceil_ms(lease);
        let mut req = self
            .client
            .put_item()
            .table_name(self.table())
            .item(KEY, s(key))
            .item(OWNER_NAME, s(&self.owner_name))
            .item(LEASE_DURATION, s(lease_ms.to_string()))
            .item(RVN, s(&rvn))
            .expression_attribute_names("#k", KEY);
        req = match over {
            None => req.condition_expression("attribute_not_exists(#k)"),
            Some(old) => req
                .condition_expression("attribute_exists(#k) AND #r = :r")
                .expression_attribute_names("#r", RVN)
                .expression_attribute_values(":r", s(old)),
        };
        // The lease counts from before the request, as the Java client's does.
        let since = self.clock.now_ns();
        self.sent += 1;
        match req.send().await {
            Ok(_) => {
                let owner = new_owner();
                self.not_mine.remove(key);
                self.held.insert(owner, Held { key: key.to_owned(), rvn, since, lease_ms });
                Ok(Some(Lease::counted_from(key, owner, None, since, lease)))
            }
            Err(e) => match classify(self.at(), e) {
                Failed::Condition => Ok(None),
                f => Err(self.failed(f).into_backend("PutItem")),
            },
        }
    }

    /// One pass of the Java client's acquire loop without waiting
    /// (`shouldSkipBlockingWait`): take the lock if it is absent, or if this
    /// session saw it with the same record version number a whole lease ago.
    async fn lock_client_try(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        match self.read(key).await? {
            Found::Absent => self.put(key, lease, None).await,
            Found::Held(now) => {
                let t = self.clock.now_ns();
                match self.not_mine.get(key) {
                    Some(old) if old.rvn == now.rvn && old.expired(t) => {
                        let rvn = old.rvn.clone();
                        self.put(key, lease, Some(&rvn)).await
                    }
                    Some(old) if old.rvn == now.rvn => Ok(None),
                    _ => {
                        // Bounded: a session that tries many keys forgets old sightings.
                        if self.not_mine.len() >= 100_000 {
                            self.not_mine.clear();
                        }
                        self.not_mine.insert(key.to_owned(), now);
                        Ok(None)
                    }
                }
            }
        }
    }

    /// The Java client's blocking acquire: poll every refresh period; a lock
    /// seen held is taken over once its record version number stayed the same
    /// for its whole lease. Waits up to `wait.max` (see the module's note).
    async fn lock_client_acquire(&mut self, key: &str, lease: Duration, wait: &Wait) -> Result<Option<Lease>> {
        // The wait runs on the true clock, as every backend's does; the lease a
        // waiter watches runs on the session's own.
        let truth = Clock::monotonic();
        let deadline = truth.now_ns() + wait.max.as_nanos() as u64;
        let refresh = wait.backoff_max.max(Duration::from_millis(1));
        let mut trying: Option<Seen> = None;
        loop {
            let step = async {
                match self.read(key).await? {
                    Found::Absent => self.put(key, lease, None).await,
                    Found::Held(now) => {
                        match &trying {
                            None => trying = Some(now),
                            Some(t) if t.rvn == now.rvn => {
                                if t.expired(self.clock.now_ns()) {
                                    let rvn = t.rvn.clone();
                                    return self.put(key, lease, Some(&rvn)).await;
                                }
                            }
                            Some(_) => trying = Some(now),
                        }
                        Ok(None)
                    }
                }
            };
            match step.await {
                Ok(Some(l)) => return Ok(Some(l)),
                // Someone else's put won, or the lock is still someone's: wait on.
                // A request that certainly did nothing (unavailable) is retried too,
                // as the Java client retries client-side failures.
                Ok(None) | Err(BackendError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_sub(truth.now_ns());
            if left == 0 {
                return Ok(None);
            }
            tokio::time::sleep(refresh.min(Duration::from_nanos(left))).await;
        }
    }

    async fn cas_try(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        self.ensure_table().await?;
        let owner = new_owner();
        let since = self.clock.now_ns();
        // The condition reads the clock rounded down (an expiry is passed no
        // earlier than it is), the new expiry rounds up.
        let now = self.wall_ms();
        let until = now + 1 + ceil_ms(lease);
        self.sent += 1;
        let r = self
            .client
            .update_item()
            .table_name(self.table())
            .key(KEY, s(key))
            .update_expression("SET #o = :o, #e = :e ADD #t :one")
            .condition_expression("attribute_not_exists(#k) OR #e < :now")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_names("#t", TOKEN)
            .expression_attribute_values(":o", s(owner.to_string()))
            .expression_attribute_values(":e", n(until))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match r {
            Ok(o) => {
                let token = o
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(TOKEN))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| {
                        BackendError::Unknown(format!(
                            "dynamodb at {}: the grant of {key} returned no token",
                            self.at()
                        ))
                    })?;
                Ok(Some(Lease::counted_from(key, owner, Some(token), since, lease)))
            }
            Err(e) => match classify(self.at(), e) {
                Failed::Condition => Ok(None),
                f => Err(self.failed(f).into_backend("UpdateItem")),
            },
        }
    }

    /// dynamodb-cas's renew (`extend`: Some) or release (None): an `UpdateItem`
    /// on the owner (and, for a renew, an unexpired lease).
    async fn cas_update(&mut self, lease: &Lease, extend: Option<Duration>) -> Result<bool> {
        self.ensure_table().await?;
        let now = self.wall_ms();
        let mut req = self
            .client
            .update_item()
            .table_name(self.table())
            .key(KEY, s(&lease.key))
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_values(":o", s(lease.owner.to_string()));
        req = match extend {
            Some(d) => req
                .update_expression("SET #e = :e")
                .condition_expression("#o = :o AND #e >= :now")
                .expression_attribute_values(":e", n(now + 1 + ceil_ms(d)))
                .expression_attribute_values(":now", n(now)),
            None => req
                .update_expression("SET #e = :zero, #o = :nobody")
                .condition_expression("#o = :o")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":nobody", s("")),
        };
        self.sent += 1;
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(self.at(), e) {
                Failed::Condition => Ok(false),
                f => Err(self.failed(f).into_backend("UpdateItem")),
            },
        }
    }

    /// The Java client's `sendHeartbeat`.
    async fn heartbeat(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        let Some(h) = self.held.get(&lease.owner) else { return Ok(false) };
        let now = self.clock.now_ns();
        if now.saturating_sub(h.since) > h.lease_ms * 1_000_000 {
            // "Cannot send heartbeat because lock is not granted".
            self.held.remove(&lease.owner);
            return Ok(false);
        }
        let (key, old) = (h.key.clone(), h.rvn.clone());
        let rvn = uuid();
        let lease_ms = ceil_ms(extend);
        let sent_at = self.clock.now_ns();
        self.sent += 1;
        let r = self
            .client
            .update_item()
            .table_name(self.table())
            .key(KEY, s(&key))
            .update_expression("SET #l = :l, #r = :new")
            .condition_expression("attribute_exists(#k) AND #o = :o AND #r = :r")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#l", LEASE_DURATION)
            .expression_attribute_names("#r", RVN)
            .expression_attribute_names("#o", OWNER_NAME)
            .expression_attribute_values(":l", s(lease_ms.to_string()))
            .expression_attribute_values(":new", s(&rvn))
            .expression_attribute_values(":r", s(old))
            .expression_attribute_values(":o", s(&self.owner_name))
            .send()
            .await;
        match r {
            Ok(_) => {
                if let Some(h) = self.held.get_mut(&lease.owner) {
                    h.rvn = rvn;
                    h.since = sent_at;
                    h.lease_ms = lease_ms;
                }
                Ok(true)
            }
            Err(e) => match classify(self.at(), e) {
                Failed::Condition => {
                    // "Someone else acquired the lock, so we will stop heartbeating it".
                    self.held.remove(&lease.owner);
                    Ok(false)
                }
                Failed::Unavailable(_) if self.variant == Variant::LockClientHold => {
                    // holdLockOnServiceUnavailable: "Holding the lock" (the lease
                    // starts again by this client's clock).
                    if let Some(h) = self.held.get_mut(&lease.owner) {
                        h.since = self.clock.now_ns();
                    }
                    Ok(true)
                }
                f => Err(self.failed(f).into_backend("UpdateItem")),
            },
        }
    }

    /// The Java client's `releaseLock` (delete on release).
    async fn delete(&mut self, lease: &Lease) -> Result<bool> {
        // The heartbeat stops whatever the outcome.
        let Some(h) = self.held.remove(&lease.owner) else { return Ok(false) };
        self.sent += 1;
        let r = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(KEY, s(&h.key))
            .condition_expression("attribute_exists(#k) AND #o = :o AND #r = :r")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#o", OWNER_NAME)
            .expression_attribute_names("#r", RVN)
            .expression_attribute_values(":o", s(&self.owner_name))
            .expression_attribute_values(":r", s(&h.rvn))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => match classify(self.at(), e) {
                Failed::Condition => Ok(false),
                f => Err(self.failed(f).into_backend("DeleteItem")),
            },
        }
    }
}

#[async_trait]
impl LockSession for Session {
    async fn try_acquire(&mut self, key: &str, lease: Duration) -> Result<Option<Lease>> {
        match self.variant {
            Variant::Cas => self.cas_try(key, lease).await,
            _ => self.lock_client_try(key, lease).await,
        }
    }

    async fn acquire(&mut self, key: &str, lease: Duration, wait: &Wait) -> Result<Option<Lease>> {
        match self.variant {
            Variant::Cas => crate::poll_acquire(self, key, lease, wait).await,
            _ => self.lock_client_acquire(key, lease, wait).await,
        }
    }

    /// `ListTables` (one table at most): answered only with valid credentials.
    async fn ping(&mut self) -> Result<()> {
        self.sent += 1;
        match self.client.list_tables().limit(1).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(self.at(), e).into_backend("ListTables")),
        }
    }

    async fn renew(&mut self, lease: &Lease, extend: Duration) -> Result<bool> {
        match self.variant {
            Variant::Cas => self.cas_update(lease, Some(extend)).await,
            _ => self.heartbeat(lease, extend).await,
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<bool> {
        match self.variant {
            Variant::Cas => self.cas_update(lease, None).await,
            _ => self.delete(lease).await,
        }
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_version_numbers_are_version_4_uuids() {
        let a = uuid();
        assert_eq!(a.len(), 36, "{a}");
        assert_eq!(a.as_bytes()[14], b'4', "{a}");
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
        assert_ne!(a, uuid());
    }

    #[test]
    fn a_sighting_expires_after_its_whole_lease() {
        let seen = Seen { rvn: "x".into(), at: 1_000, lease_ms: 2 };
        assert!(!seen.expired(1_000 + 2_000_000));
        assert!(seen.expired(1_000 + 2_000_001));
    }
}
