//! Durable state behind the caches: a small, backend-neutral, async key-value store.
//!
//! Records live in namespaces (one per kind of credential), are keyed by the SHA-256 of the
//! secret they stand for (the raw secret is never stored), and may expire. Every write is
//! durable when its future resolves: a client is only told "done" after that.

mod purge;
mod sqlite;

pub use purge::PurgeService;
pub use sqlite::SqliteStore;

use crate::metrics::Metrics;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
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

#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts or replaces a record; durable when it returns.
    async fn put(&self, namespace: Namespace, key: &SecretKey, record: &Record) -> StoreResult<()>;

    /// The record, unless it is missing or expired.
    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>>;

    /// Removes a record; true when one (unexpired) was there.
    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool>;

    /// Moves an unexpired record's expiry; false when there was no such record.
    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool>;

    /// Deletes every expired record; returns how many.
    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64>;
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

/// A store that counts its calls in `keyway_store_operations_total{op}` and logs each failure
/// once, here: callers only map it to 503-01.
pub struct MeteredStore {
    inner: Box<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Box<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    fn observe<T>(&self, op: &'static str, result: StoreResult<T>) -> StoreResult<T> {
        self.metrics.observe_store(op);
        if let Err(error) = &result {
            tracing::warn!(op, %error, "store unavailable");
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn put(&self, namespace: Namespace, key: &SecretKey, record: &Record) -> StoreResult<()> {
        self.observe("put", self.inner.put(namespace, key, record).await)
    }

    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>> {
        self.observe("get", self.inner.get(namespace, key).await)
    }

    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool> {
        self.observe("remove", self.inner.remove(namespace, key).await)
    }

    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool> {
        let result = self.inner.set_expiry(namespace, key, expires_at_ms).await;
        self.observe("set_expiry", result)
    }

    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        self.observe("purge_expired", self.inner.purge_expired(now_ms).await)
    }
}
