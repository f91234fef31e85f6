//! Durable state behind the caches: a small, backend-neutral, async key-value store, and the
//! counters that limit logins and emails.
//!
//! Records live in namespaces (one per kind of credential), are keyed by the SHA-256 of the
//! secret they stand for (the raw secret is never stored), and may expire. Every write is
//! durable when its future resolves: a client is only told "done" after that. Two backends:
//! SQLite (one instance, in-process counters) and Redis (a fleet: shared records, shared
//! counters, and invalidations pushed to every instance's caches).

pub mod counters;
mod purge;
pub mod redis;
mod sqlite;

pub use purge::PurgeService;
pub use sqlite::SqliteStore;

use crate::metrics::{Metrics, StoreSeries};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::sync::Weak;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a record is; each namespace is its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Converse user tokens.
    ConverseToken,
    /// userInfoIds of the identity exchange.
    ExchangeUserInfo,
    /// One-time authtokens of hosted email authentication.
    HostedEmailAuthToken,
}

impl Namespace {
    pub const ALL: [Namespace; 3] = [
        Namespace::ConverseToken,
        Namespace::ExchangeUserInfo,
        Namespace::HostedEmailAuthToken,
    ];

    /// The namespace named `name` (its [`Namespace::as_str`]).
    pub fn named(name: &str) -> Option<Namespace> {
        Namespace::ALL
            .into_iter()
            .find(|namespace| namespace.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::ConverseToken => "converse_token",
            Namespace::ExchangeUserInfo => "exchange_user_info",
            Namespace::HostedEmailAuthToken => "hosted_email_authtoken",
        }
    }
}

/// The SHA-256 of a secret: the only form in which a secret reaches the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn of(secret: &[u8]) -> Self {
        SecretKey(Sha256::digest(secret).into())
    }

    pub fn from_bytes(digest: [u8; 32]) -> Self {
        SecretKey(digest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex: the form in Redis keys.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The key whose [`SecretKey::to_hex`] is `hex`.
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(SecretKey(bytes))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate log lines and useless to an attacker.
        write!(
            f,
            "SecretKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A stored record: an opaque value and its expiry (Unix milliseconds; `None`: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Vec<u8>,
    pub expires_at_ms: Option<i64>,
}

/// A store failure. Its text is for the log only (see [`MeteredStore`]); clients see 503-01.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// A keeper of copies of records (a credential cache) that must hear when they change.
pub trait InvalidationSink: Send + Sync {
    /// This record changed or went away: forget it.
    fn invalidate(&self, key: &SecretKey);
    /// Every record may have changed (the store was flushed): forget everything.
    fn invalidate_all(&self);
    /// `false`: changes can no longer be heard, so nothing may be answered from memory until
    /// `true` comes back (and nothing read before then may be kept).
    fn set_trusted(&self, trusted: bool);
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates a record, optionally owned by a user (the digest of a normalised email, for
    /// [`Store::remove_owned_by`]); durable when it returns. A record with the same key must
    /// not exist.
    async fn put(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        record: &Record,
        owner: Option<&SecretKey>,
    ) -> StoreResult<()>;

    /// The record, unless it is missing or expired.
    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>>;

    /// Removes a record; true when one (unexpired) was there. Of concurrent removals of one
    /// record, on any instance, exactly one is told true: single-use credentials rely on it.
    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool>;

    /// Removes every unexpired record of `owner` in `namespace`; returns their keys.
    async fn remove_owned_by(
        &self,
        namespace: Namespace,
        owner: &SecretKey,
    ) -> StoreResult<Vec<SecretKey>>;

    /// Moves an unexpired record's expiry; false when there was no such record.
    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool>;

    /// Deletes every expired record; returns how many (a backend with native expiry: 0).
    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64>;

    /// Registers a cache of `namespace` to hear of changes made elsewhere (other instances,
    /// or the store's own operators). A store only one instance writes has nothing to say.
    fn watch(&self, _namespace: Namespace, _sink: Weak<dyn InvalidationSink>) {}

    /// Whether the store can be reached now (for `/readyz`).
    fn is_reachable(&self) -> bool {
        true
    }
}

/// A record whose value is JSON, read back: `None` when missing, expired or unreadable (an
/// unreadable record is logged and treated as absent, never as valid).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    namespace: Namespace,
    key: &SecretKey,
) -> StoreResult<Option<(T, Option<i64>)>> {
    let Some(record) = store.get(namespace, key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&record.value) {
        Ok(value) => Ok(Some((value, record.expires_at_ms))),
        Err(_) => {
            tracing::warn!(namespace = namespace.as_str(), ?key, "unreadable record");
            Ok(None)
        }
    }
}

/// Wall-clock Unix milliseconds: expiries must survive restarts, so not `Instant`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The operation names in `keyway_store_operation_duration_seconds{op}`.
pub const OPERATIONS: [&str; 8] = [
    "put",
    "get",
    "remove",
    "remove_owned_by",
    "set_expiry",
    "purge_expired",
    "lockout",
    "rate_limit",
];

/// A store that times its calls in `keyway_store_operation_duration_seconds{backend,op}`,
/// counts failures in `keyway_store_errors_total{op}` and logs each failure once, here:
/// callers only map it to 503-01.
pub struct MeteredStore {
    inner: Box<dyn Store>,
    series: StoreSeries,
}

impl MeteredStore {
    pub fn new(inner: Box<dyn Store>, backend: &str, metrics: &Metrics) -> Self {
        MeteredStore {
            inner,
            series: metrics.store_series(backend, &OPERATIONS),
        }
    }

    fn observe<T>(
        &self,
        op: &'static str,
        started: Instant,
        result: StoreResult<T>,
    ) -> StoreResult<T> {
        observe(&self.series, op, started, result)
    }
}

/// Records one store call in `series` and logs its failure.
pub fn observe<T>(
    series: &StoreSeries,
    op: &'static str,
    started: Instant,
    result: StoreResult<T>,
) -> StoreResult<T> {
    series.observe(op, started.elapsed(), result.is_ok());
    if let Err(error) = &result {
        tracing::warn!(op, %error, "store unavailable");
    }
    result
}

#[async_trait]
impl Store for MeteredStore {
    async fn put(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        record: &Record,
        owner: Option<&SecretKey>,
    ) -> StoreResult<()> {
        let started = Instant::now();
        let result = self.inner.put(namespace, key, record, owner).await;
        self.observe("put", started, result)
    }

    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>> {
        let started = Instant::now();
        self.observe("get", started, self.inner.get(namespace, key).await)
    }

    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool> {
        let started = Instant::now();
        self.observe("remove", started, self.inner.remove(namespace, key).await)
    }

    async fn remove_owned_by(
        &self,
        namespace: Namespace,
        owner: &SecretKey,
    ) -> StoreResult<Vec<SecretKey>> {
        let started = Instant::now();
        let result = self.inner.remove_owned_by(namespace, owner).await;
        self.observe("remove_owned_by", started, result)
    }

    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool> {
        let started = Instant::now();
        let result = self.inner.set_expiry(namespace, key, expires_at_ms).await;
        self.observe("set_expiry", started, result)
    }

    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        let started = Instant::now();
        let result = self.inner.purge_expired(now_ms).await;
        self.observe("purge_expired", started, result)
    }

    fn watch(&self, namespace: Namespace, sink: Weak<dyn InvalidationSink>) {
        self.inner.watch(namespace, sink);
    }

    fn is_reachable(&self) -> bool {
        self.inner.is_reachable()
    }
}
