//! Converse user tokens (seed 001): log in, issue, validate (with autoRenew), verify, revoke.
//!
//! Tokens are random UUIDs handed to the client once; the store keeps only their SHA-256.
//! A credential cache in front of the store trusts a validated token for at most `cache.ttl_seconds`
//! and never past its expiry; a DELETE evicts it at once. autoRenew moves the expiry in memory
//! on every use and writes the store only when the stored expiry falls behind by more than the
//! renewal window (half the timeout, at most a minute), so a busy token costs no writes.

pub mod directory;
pub mod lockout;
pub mod password;

use crate::cache::CredentialCache;
use crate::config::{CacheSettings, ConverseSettings};
use crate::identity::{MAX_EMAIL_BYTES, Principal};
use crate::metrics::{CacheSeries, LoginSeries, Metrics};
use crate::store::counters::CounterBackend;
use crate::store::{
    InvalidationSink, Namespace, Record, SecretKey, Store, StoreError, get_json, now_ms,
};
use directory::{Directory, VerifiedUser};
use lockout::{Locked, Lockout};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tracing::warn;
use uuid::Uuid;

/// The cache label in `keyway_cache_requests_total`.
const CACHE_NAME: &str = "converse_token";
/// The longest a renewed expiry may lag in the store.
const MAX_RENEW_WINDOW_MS: i64 = 60_000;
/// Expiry of a token that never expires, in memory.
const NEVER: i64 = i64::MAX;

/// Why the token API refused a call (mapped to the envelope by `error`).
#[derive(Debug)]
pub enum ConverseError {
    /// Wrong email or password (indistinguishable).
    WrongCredentials,
    /// Too many failed logins for the account or the client; retry after this many seconds.
    Locked {
        retry_after_seconds: u64,
    },
    /// A token to delete that is unknown, expired, or (to a non-admin) someone else's.
    UnknownToken,
    /// An admin-only call by someone who is not an admin.
    NotAdmin,
    /// The upstream user directory could not answer: never "valid".
    DirectoryUnavailable,
    /// More logins are waiting for a password check than may wait.
    Busy,
    /// An email longer than any address may be: refused before any work.
    InvalidEmail,
    Store(StoreError),
}

impl From<StoreError> for ConverseError {
    fn from(error: StoreError) -> Self {
        ConverseError::Store(error)
    }
}

/// A token's lifetime as requested: seconds, or never (`timeout = -1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Seconds(i64),
    Never,
}

impl Lifetime {
    fn expiry_from(self, now: i64) -> Option<i64> {
        match self {
            Lifetime::Seconds(seconds) => Some(now.saturating_add(seconds.saturating_mul(1000))),
            Lifetime::Never => None,
        }
    }

    fn as_seconds(self) -> i64 {
        match self {
            Lifetime::Seconds(seconds) => seconds,
            Lifetime::Never => -1,
        }
    }
}

/// A login request, already validated for shape.
pub struct Login<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub lifetime: Lifetime,
    pub auto_renew: bool,
    pub create_token: bool,
    pub client_ip: Option<IpAddr>,
}

/// Everything but the password.
impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("email", &self.email)
            .field("lifetime", &self.lifetime)
            .field("auto_renew", &self.auto_renew)
            .field("create_token", &self.create_token)
            .finish_non_exhaustive()
    }
}

/// What the store keeps for a token (as JSON), keyed by the token's SHA-256.
#[derive(Debug, Serialize, Deserialize)]
struct StoredToken {
    email: String,
    timeout: i64,
    #[serde(rename = "autoRenew")]
    auto_renew: bool,
}

/// A validated token, shared by cache hits.
#[derive(Debug)]
struct LiveToken {
    email: String,
    /// Built once when the token is loaded; every use hands out a cheap clone.
    principal: Principal,
    /// Renewal step in ms when autoRenew is on.
    renew_ms: Option<i64>,
    expires_at_ms: AtomicI64,
    stored_expires_at_ms: AtomicI64,
}

/// The principal of a Converse user: `sub`, `subject` and `email` are the email.
fn user_principal(email: &str, admin: bool) -> Principal {
    let mut claims = serde_json::Map::new();
    for name in ["sub", "subject", "email"] {
        claims.insert(name.into(), email.into());
    }
    claims.insert("admin".into(), admin.into());
    Principal::with_claims(claims.into())
}

pub struct ConverseService {
    settings: ConverseSettings,
    store: Arc<dyn Store>,
    /// Also registered with the store, to hear of tokens changed by other instances.
    cache: Arc<CredentialCache<Arc<LiveToken>>>,
    directory: Directory,
    lockout: Lockout,
    metrics: Arc<Metrics>,
    cache_series: CacheSeries,
    login_series: LoginSeries,
    local_invalidations: prometheus::IntCounter,
}

impl std::fmt::Debug for ConverseService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConverseService")
    }
}

/// An email as accounts are counted and tokens owned: trimmed, lower-case.
fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The owner of a user's tokens in the store: the digest of the normalised email.
fn owner_of(email: &str) -> SecretKey {
    SecretKey::of(normalise_email(email).as_bytes())
}

/// The canonical text form of a token: lower-case hyphenated UUID.
pub fn parse_token(text: &str) -> Option<Uuid> {
    let uuid = Uuid::try_parse(text).ok()?;
    let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut canonical) == text).then_some(uuid)
}

impl ConverseService {
    pub fn new(
        settings: ConverseSettings,
        cache: &CacheSettings,
        store: Arc<dyn Store>,
        counters: &CounterBackend,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cache = Arc::new(CredentialCache::new(cache.capacity, cache.ttl));
        let sink: Arc<dyn InvalidationSink> = cache.clone();
        store.watch(Namespace::ConverseToken, Arc::downgrade(&sink));
        ConverseService {
            directory: Directory::new(&settings),
            lockout: Lockout::new(&settings.lockout, counters),
            cache,
            settings,
            store,
            cache_series: metrics.cache_series(CACHE_NAME),
            login_series: metrics.login_series(),
            local_invalidations: metrics.cache_invalidation("local"),
            metrics,
        }
    }

    pub fn settings(&self) -> &ConverseSettings {
        &self.settings
    }

    /// `POST /api/user/verify`: checks the password; with `create_token`, issues a token.
    pub async fn login(&self, login: Login<'_>) -> Result<Option<Uuid>, ConverseError> {
        let checked = self.check_password(&login).await;
        self.count_login(&checked);
        let user = checked?;
        if !login.create_token {
            return Ok(None);
        }
        let token = self
            .issue(&user.email, login.lifetime, login.auto_renew)
            .await?;
        Ok(Some(token))
    }

    fn count_login(&self, checked: &Result<VerifiedUser, ConverseError>) {
        let series = &self.login_series;
        match checked {
            Ok(_) => &series.success,
            Err(ConverseError::WrongCredentials) => &series.wrong,
            Err(ConverseError::Locked { .. }) => &series.locked,
            Err(ConverseError::Busy) => &series.busy,
            Err(ConverseError::InvalidEmail) => &series.invalid,
            Err(_) => &series.unavailable,
        }
        .inc();
    }

    /// The password check of a login: counted against the account and the client before any
    /// hashing, so a burst of guesses cannot outrun the lock.
    async fn check_password(&self, login: &Login<'_>) -> Result<VerifiedUser, ConverseError> {
        if login.email.len() > MAX_EMAIL_BYTES {
            return Err(ConverseError::InvalidEmail);
        }
        let account = normalise_email(login.email);
        let attempt = self
            .lockout
            .begin(&account, login.client_ip)
            .await?
            .map_err(|Locked(retry_after)| ConverseError::Locked {
                retry_after_seconds: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            })?;
        // An error (directory down, queue full) drops the attempt: its slot is given back.
        match self.directory.verify(&account, login.password).await? {
            Some(user) => {
                attempt.succeeded().await?;
                Ok(user)
            }
            None => {
                // Not counted (the store failed): the guess's outcome is not told either.
                attempt.failed().await?;
                Err(ConverseError::WrongCredentials)
            }
        }
    }

    async fn issue(
        &self,
        email: &str,
        lifetime: Lifetime,
        auto_renew: bool,
    ) -> Result<Uuid, StoreError> {
        let token = Uuid::new_v4();
        let stored = StoredToken {
            email: email.to_owned(),
            timeout: lifetime.as_seconds(),
            auto_renew,
        };
        let record = Record {
            value: serde_json::to_vec(&stored).expect("a token record serialises"),
            expires_at_ms: lifetime.expiry_from(now_ms()),
        };
        let key = SecretKey::of(token.hyphenated().to_string().as_bytes());
        let owner = owner_of(email);
        self.store
            .put(Namespace::ConverseToken, &key, &record, Some(&owner))
            .await?;
        self.metrics.token_issued();
        Ok(token)
    }

    /// The principal of a presented token, renewing it when it has autoRenew.
    /// `Ok(None)`: unknown, expired, deleted or malformed, all alike.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some(live) = self.live_token(token).await? else {
            return Ok(None);
        };
        self.renew(token, &live);
        Ok(Some(live.principal.clone()))
    }

    /// `POST /api/user/token/verify`: whether a token is valid, without renewing it.
    pub async fn is_valid(&self, token: &str) -> Result<bool, StoreError> {
        Ok(self.live_token(token).await?.is_some())
    }

    /// `DELETE /api/user/token/{uuid}`: a user may delete its own tokens, an admin any.
    /// Someone else's token is "not found" to a non-admin: existence is not revealed.
    pub async fn revoke(&self, token: &str, caller: &Principal) -> Result<(), ConverseError> {
        let live = self
            .live_token(token)
            .await?
            .ok_or(ConverseError::UnknownToken)?;
        let caller_email = caller.claim_text("email");
        let is_admin = caller.claim_text("admin").as_deref() == Some("true");
        if !is_admin && caller_email.as_deref() != Some(live.email.as_str()) {
            return Err(ConverseError::UnknownToken);
        }
        let key = SecretKey::of(token.as_bytes());
        let removed = self.store.remove(Namespace::ConverseToken, &key).await?;
        // After the removal: a read that began before it is not kept either.
        self.forget(&key);
        if !removed {
            return Err(ConverseError::UnknownToken);
        }
        self.metrics.token_revoked();
        Ok(())
    }

    /// `DELETE {prefix}/tokens?email=`: "log out everywhere", for admins. Revokes every token
    /// of the user, on every instance; returns how many there were.
    pub async fn revoke_all(
        &self,
        email: &str,
        caller: &Principal,
    ) -> Result<usize, ConverseError> {
        if caller.claim_text("admin").as_deref() != Some("true") {
            return Err(ConverseError::NotAdmin);
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(ConverseError::InvalidEmail);
        }
        let owner = owner_of(email);
        let removed = self
            .store
            .remove_owned_by(Namespace::ConverseToken, &owner)
            .await?;
        for key in &removed {
            self.forget(key);
            self.metrics.token_revoked();
        }
        Ok(removed.len())
    }

    fn forget(&self, key: &SecretKey) {
        self.cache.invalidate(key);
        self.local_invalidations.inc();
    }

    /// A token that is valid now: from the cache, else from the store (then cached).
    async fn live_token(&self, token: &str) -> Result<Option<Arc<LiveToken>>, StoreError> {
        if parse_token(token).is_none() {
            return Ok(None);
        }
        let key = SecretKey::of(token.as_bytes());
        let now = now_ms();
        if let Some(live) = self.cache.get(&key) {
            self.cache_series.observe(true);
            if live.expires_at_ms.load(Ordering::Acquire) > now {
                return Ok(Some(live));
            }
            self.cache.invalidate(&key);
            return Ok(None);
        }
        self.cache_series.observe(false);
        let ticket = self.cache.fill_ticket();
        let loaded =
            get_json::<StoredToken>(self.store.as_ref(), Namespace::ConverseToken, &key).await;
        let Some((stored, expires_at_ms)) = loaded? else {
            return Ok(None);
        };
        if !self.directory.still_has(&stored.email) {
            return Ok(None);
        }
        let expiry = expires_at_ms.unwrap_or(NEVER);
        let live = Arc::new(LiveToken {
            principal: user_principal(&stored.email, self.directory.is_admin(&stored.email)),
            email: stored.email,
            renew_ms: (stored.auto_renew && stored.timeout > 0)
                .then(|| stored.timeout.saturating_mul(1000)),
            expires_at_ms: AtomicI64::new(expiry),
            stored_expires_at_ms: AtomicI64::new(expiry),
        });
        if let Some(ticket) = ticket {
            self.cache.fill(ticket, key, live.clone(), Duration::MAX);
        }
        Ok(Some(live))
    }

    /// autoRenew: the expiry moves to now + timeout in memory at once, and to the store only
    /// when the stored expiry lags by more than the renewal window.
    fn renew(&self, token: &str, live: &LiveToken) {
        let Some(step) = live.renew_ms else { return };
        let expiry = now_ms().saturating_add(step);
        live.expires_at_ms.fetch_max(expiry, Ordering::AcqRel);
        let window = (step / 2).min(MAX_RENEW_WINDOW_MS);
        let stored = live.stored_expires_at_ms.load(Ordering::Acquire);
        if expiry - stored < window
            || live
                .stored_expires_at_ms
                .compare_exchange(stored, expiry, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        let key = SecretKey::of(token.as_bytes());
        tokio::spawn(async move {
            if let Err(error) = store
                .set_expiry(Namespace::ConverseToken, &key, Some(expiry))
                .await
            {
                warn!(%error, ?key, "could not persist a token renewal");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_s_debug_output_has_no_password() {
        let login = Login {
            email: "a@example.com",
            password: "hunter2-secret",
            lifetime: Lifetime::Seconds(60),
            auto_renew: false,
            create_token: true,
            client_ip: None,
        };
        let shown = format!("{login:?}");
        assert!(
            shown.contains("a@example.com") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn only_canonical_tokens_parse() {
        let token = Uuid::new_v4().to_string();
        assert!(parse_token(&token).is_some());
        assert!(parse_token(&token.to_uppercase()).is_none());
        assert!(parse_token(&token.replace('-', "")).is_none());
        assert!(parse_token(&format!("{{{token}}}")).is_none());
        assert!(parse_token("not-a-token").is_none());
    }
}
