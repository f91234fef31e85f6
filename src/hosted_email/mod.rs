//! Hosted email authentication (seed 002): a client (passkey) asks keyway to email a one-time
//! `authtoken` link to a content submitter; the landing page trades the `authtoken` for an
//! encrypted user token; later submissions carry that token on `auth = ["hosted_email"]` routes.
//!
//! Authtokens are 256 random bits, stored only as their SHA-256 with an expiry, and consumed
//! exactly once (the store's remove decides between concurrent callers). User tokens are
//! AES-256-GCM (see [`user_token`]); nothing about them is stored.

pub mod clients;
mod mailer;
mod rate_limit;
pub mod user_token;

use crate::config::hosted_email::{HostedEmailClient, HostedEmailSettings};
use crate::identity::{Principal, plain_email};
use crate::metrics::Metrics;
use crate::store::counters::CounterBackend;
use crate::store::{Namespace, Record, SecretKey, Store, StoreError, get_json, now_ms};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clients::Clients;
use mailer::{Email, Mailer};
use rate_limit::SendLimits;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use user_token::{KeyRing, UserClaims};

/// Why a hosted-email call was refused (mapped to the envelope by `error`).
#[derive(Debug)]
pub enum HostedEmailError {
    /// `apiversion` missing, or not one the client may use.
    BadApiVersion,
    /// `passkey` missing or unknown.
    UnknownPasskey,
    /// Not a plain email address, or a callback URL the client does not allow.
    InvalidRequest,
    /// Over an email limit; retry after this many seconds.
    RateLimited {
        retry_after_seconds: u64,
    },
    /// An authtoken that is missing, unknown, expired, used or another client's.
    InvalidAuthToken,
    /// The email could not be sent (its authtoken was deleted).
    NotSent,
    Store(StoreError),
}

impl From<StoreError> for HostedEmailError {
    fn from(error: StoreError) -> Self {
        HostedEmailError::Store(error)
    }
}

/// What an authtoken stands for until it is used.
#[derive(Serialize, Deserialize)]
struct PendingAuthentication {
    email: String,
    client: String,
}

/// A user token and the address it proves.
pub struct Authenticated {
    pub user_token: String,
    pub email: String,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HostedEmailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedEmailService")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

pub struct HostedEmailService {
    settings: HostedEmailSettings,
    clients: Clients,
    keys: KeyRing,
    store: Arc<dyn Store>,
    mailer: Mailer,
    limits: SendLimits,
    metrics: Arc<Metrics>,
}

impl HostedEmailService {
    pub fn new(
        settings: HostedEmailSettings,
        store: Arc<dyn Store>,
        counters: &CounterBackend,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(HostedEmailService {
            clients: Clients::new(&settings.clients),
            keys: KeyRing::new(&settings.encryption_keys),
            mailer: Mailer::new(&settings.delivery)?,
            limits: SendLimits::new(
                settings.emails_per_address_per_hour,
                settings.emails_per_client_per_minute,
                counters,
            ),
            store,
            settings,
            metrics,
        })
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// `POST /api/hostedauthentication`: stores a one-time authtoken for `email` and sends
    /// the link `callback_url?authtoken=…` to it. Nothing is sent for a refused request.
    pub async fn request_email(
        &self,
        client: &HostedEmailClient,
        email: &str,
        callback_url: &str,
    ) -> Result<(), HostedEmailError> {
        // One spelling per mailbox: the limits count it, the link goes to it, the user token
        // names it.
        let email = plain_email(email).ok_or(HostedEmailError::InvalidRequest)?;
        let to: lettre::message::Mailbox = email
            .parse::<lettre::Address>()
            .map(Into::into)
            .map_err(|_| HostedEmailError::InvalidRequest)?;
        if !clients::callback_allowed(client, callback_url) {
            return Err(HostedEmailError::InvalidRequest);
        }
        self.limits.admit(&client.name, &email).await?;
        let (authtoken, key) = self.store_authtoken(client, &email).await?;
        let link = link_with_authtoken(callback_url, &authtoken);
        self.send_link(client, to, &link, &key).await
    }

    /// A new authtoken for `email` from `client`, stored (as its SHA-256) until it expires.
    async fn store_authtoken(
        &self,
        client: &HostedEmailClient,
        email: &str,
    ) -> Result<(String, SecretKey), StoreError> {
        let authtoken = random_token();
        let key = SecretKey::of(authtoken.as_bytes());
        let pending = PendingAuthentication {
            email: email.to_owned(),
            client: client.name.clone(),
        };
        let record = Record {
            value: serde_json::to_vec(&pending).expect("serialisable"),
            expires_at_ms: Some(now_ms() + self.settings.authtoken_ttl.as_millis() as i64),
        };
        self.store
            .put(Namespace::HostedEmailAuthToken, &key, &record, None)
            .await?;
        Ok((authtoken, key))
    }

    /// Emails `link`; if that fails, the authtoken behind it (`key`) is deleted: a link that
    /// never left must not stay usable.
    async fn send_link(
        &self,
        client: &HostedEmailClient,
        to: lettre::message::Mailbox,
        link: &str,
        key: &SecretKey,
    ) -> Result<(), HostedEmailError> {
        let email = Email {
            from: &self.settings.from,
            to,
            subject: &self.settings.subject,
            link,
        };
        let sent = self.mailer.send(email).await;
        self.metrics.email(sent.is_ok());
        if let Err(error) = sent {
            tracing::warn!(client = client.name, %error, "authentication email not sent");
            let _ = self
                .store
                .remove(Namespace::HostedEmailAuthToken, key)
                .await;
            return Err(HostedEmailError::NotSent);
        }
        Ok(())
    }

    /// `POST /data/authenticateuser.json`: consumes the authtoken (exactly once) and answers
    /// with a user token. A missing, unknown, expired, used or other client's authtoken is
    /// [`HostedEmailError::InvalidAuthToken`].
    pub async fn authenticate_user(
        &self,
        client: &HostedEmailClient,
        authtoken: Option<&str>,
    ) -> Result<Authenticated, HostedEmailError> {
        let authtoken = authtoken
            .filter(|token| !token.is_empty() && token.len() <= 256)
            .ok_or(HostedEmailError::InvalidAuthToken)?;
        let key = SecretKey::of(authtoken.as_bytes());
        let namespace = Namespace::HostedEmailAuthToken;
        let Some((pending, _)) =
            get_json::<PendingAuthentication>(self.store.as_ref(), namespace, &key).await?
        else {
            return Err(HostedEmailError::InvalidAuthToken);
        };
        // Another client's authtoken is refused without being used up.
        if pending.client != client.name || !self.store.remove(namespace, &key).await? {
            return Err(HostedEmailError::InvalidAuthToken);
        }
        let iat = now_ms() / 1000;
        let claims = UserClaims {
            email: pending.email,
            client: pending.client,
            iat,
            exp: iat + self.settings.user_token_ttl.as_secs() as i64,
        };
        Ok(Authenticated {
            user_token: self.keys.seal(&claims),
            email: claims.email,
        })
    }

    /// The principal of a user token presented with `passkey`: the token must open under one
    /// of our keys, belong to the passkey's client and be unexpired.
    pub fn verify_user_token(&self, passkey: &str, user_token: &str) -> Option<Principal> {
        let client = self.clients.by_passkey(passkey)?;
        let claims = self.keys.open(user_token)?;
        if claims.client != client.name || claims.exp <= now_ms() / 1000 {
            return None;
        }
        let attributes = [
            ("email".to_owned(), Value::String(claims.email)),
            ("client".to_owned(), Value::String(claims.client)),
        ];
        Some(Principal::with_claims(attributes.into_iter().collect()))
    }
}

/// 256 random bits, base64url: the authtoken.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `callback` with `authtoken=…` appended to its query (base64url needs no escaping).
fn link_with_authtoken(callback: &str, authtoken: &str) -> String {
    let separator = match callback.split_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some((_, query)) if query.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{callback}{separator}authtoken={authtoken}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_appends_the_authtoken_to_the_query() {
        assert_eq!(
            link_with_authtoken("https://a/cb", "T"),
            "https://a/cb?authtoken=T"
        );
        assert_eq!(
            link_with_authtoken("https://a/cb?x=1", "T"),
            "https://a/cb?x=1&authtoken=T"
        );
        assert_eq!(
            link_with_authtoken("https://a/cb?", "T"),
            "https://a/cb?authtoken=T"
        );
        let token = random_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, random_token());
    }
}
