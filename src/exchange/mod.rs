//! The identity exchange of seed 003: a customer's IdP token (access or ID token) and a PKCE
//! challenge become a `userInfoId`; a later call redeems it only with the matching verifier.
//!
//! The record (customer, provider, subject, selected claims, challenge) is stored under the
//! SHA-256 of the userInfoId and expires at the token's `exp` or the configured ttl, whichever
//! comes first. With `single_use`, redemption deletes the record: the store's delete succeeds
//! for exactly one of two concurrent callers, so exactly one wins.

pub mod pkce;

use crate::config::{ExchangeSettings, ProviderSettings};
use crate::identity::{Principal, Tenant, TenantScope};
use crate::jwt::verifier::{JwtRefusal, JwtVerifier};
use crate::store::{Namespace, Record, SecretKey, Store, StoreError, get_json, now_ms};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why an exchange was refused (mapped to the envelope by `error`).
#[derive(Debug)]
pub enum ExchangeError {
    /// No such customer, or not one of its providers.
    UnknownProvider,
    /// The token does not verify with that provider (the reason is for the log only).
    TokenRefused,
    /// The provider's keys are unavailable: never "valid".
    KeysUnavailable,
    /// The system random source failed.
    NoRandomness,
    Store(StoreError),
}

impl From<StoreError> for ExchangeError {
    fn from(error: StoreError) -> Self {
        ExchangeError::Store(error)
    }
}

/// What `POST /api/authenticate/{customerId}` asks for, already shaped.
pub struct ExchangeRequest<'a> {
    pub customer_id: &'a str,
    pub provider_id: Option<i64>,
    pub code_challenge: &'a str,
    pub token: &'a str,
}

/// The token is a bearer credential: `Debug` leaves it out.
impl std::fmt::Debug for ExchangeRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeRequest")
            .field("customer_id", &self.customer_id)
            .field("provider_id", &self.provider_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct UserInfo {
    customer: String,
    provider: i64,
    claims: Map<String, Value>,
    challenge: String,
}

pub struct ExchangeService {
    settings: ExchangeSettings,
    /// Each customer's provider ids in config order: the first is the default.
    customers: Vec<(String, Vec<i64>)>,
    jwt: Arc<JwtVerifier>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ExchangeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeService")
            .field("api_prefix", &self.settings.api_prefix)
            .finish_non_exhaustive()
    }
}

impl ExchangeService {
    pub fn new(
        settings: ExchangeSettings,
        providers: &[ProviderSettings],
        jwt: Arc<JwtVerifier>,
        store: Arc<dyn Store>,
    ) -> Self {
        let mut customers: Vec<(String, Vec<i64>)> = Vec::new();
        for provider in providers {
            match customers
                .iter_mut()
                .find(|(customer, _)| *customer == provider.customer_id)
            {
                Some((_, ids)) => ids.push(provider.provider_id),
                None => customers.push((provider.customer_id.clone(), vec![provider.provider_id])),
            }
        }
        ExchangeService {
            settings,
            customers,
            jwt,
            store,
        }
    }

    pub fn settings(&self) -> &ExchangeSettings {
        &self.settings
    }

    /// Verifies the token with the customer's provider and stores a new userInfoId.
    pub async fn exchange(&self, request: ExchangeRequest<'_>) -> Result<String, ExchangeError> {
        let provider_id = self.provider_for(request.customer_id, request.provider_id)?;
        let scope = TenantScope {
            customers: vec![request.customer_id.to_owned()],
            providers: vec![provider_id],
        };
        let principal = match self.jwt.verify(request.token, &scope).await {
            Ok(principal) => principal,
            Err(JwtRefusal::KeysUnavailable) => return Err(ExchangeError::KeysUnavailable),
            Err(JwtRefusal::Invalid(denial)) => {
                tracing::debug!(?denial, "exchanged token refused");
                return Err(ExchangeError::TokenRefused);
            }
        };
        let token_expiry_ms = principal
            .claims
            .get("exp")
            .and_then(Value::as_f64)
            .map_or(i64::MAX, |exp| (exp * 1000.0) as i64);
        let ttl_expiry_ms = now_ms().saturating_add(self.settings.ttl.as_millis() as i64);
        let claims = principal
            .claims
            .iter()
            .filter(|(name, _)| self.settings.claims.iter().any(|kept| kept == name))
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect();
        let user_info = UserInfo {
            customer: request.customer_id.to_owned(),
            provider: provider_id,
            claims,
            challenge: request.code_challenge.to_owned(),
        };
        let record = Record {
            value: serde_json::to_vec(&user_info).expect("a userInfo record serialises"),
            expires_at_ms: Some(token_expiry_ms.min(ttl_expiry_ms)),
        };
        let user_info_id = new_user_info_id()?;
        let key = SecretKey::of(user_info_id.as_bytes());
        self.store
            .put(Namespace::ExchangeUserInfo, &key, &record, None)
            .await?;
        Ok(user_info_id)
    }

    /// The principal of a redeemed userInfoId, or `None` (unknown, expired, used, another
    /// customer's, or a verifier that does not match: all alike).
    pub async fn redeem(
        &self,
        user_info_id: &str,
        verifier: &str,
        scope: &TenantScope,
    ) -> Result<Option<Principal>, StoreError> {
        if !pkce::is_valid_verifier(verifier) || user_info_id.len() > 64 {
            return Ok(None);
        }
        let key = SecretKey::of(user_info_id.as_bytes());
        let loaded =
            get_json::<UserInfo>(self.store.as_ref(), Namespace::ExchangeUserInfo, &key).await;
        let Some((user_info, _)) = loaded? else {
            return Ok(None);
        };
        if !scope.admits(&user_info.customer, user_info.provider)
            || !pkce::verifier_matches(verifier, &user_info.challenge)
        {
            return Ok(None);
        }
        if self.settings.single_use && !self.store.remove(Namespace::ExchangeUserInfo, &key).await?
        {
            // Another redemption won the race.
            return Ok(None);
        }
        Ok(Some(Principal {
            claims: Arc::new(user_info.claims.into()),
            tenant: Some(Arc::new(Tenant {
                customer_id: user_info.customer,
                provider_id: user_info.provider,
            })),
        }))
    }

    /// The provider to use: the requested one of this customer, or its first.
    fn provider_for(
        &self,
        customer_id: &str,
        requested: Option<i64>,
    ) -> Result<i64, ExchangeError> {
        let (_, providers) = self
            .customers
            .iter()
            .find(|(customer, _)| customer == customer_id)
            .ok_or(ExchangeError::UnknownProvider)?;
        match requested {
            None => Ok(providers[0]),
            Some(id) if providers.contains(&id) => Ok(id),
            Some(_) => Err(ExchangeError::UnknownProvider),
        }
    }
}

/// `usr_` and 128 random bits in base64url (22 characters).
fn new_user_info_id() -> Result<String, ExchangeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| ExchangeError::NoRandomness)?;
    Ok(format!(
        "usr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_ids_are_random_and_shaped() {
        let (a, b) = (new_user_info_id().unwrap(), new_user_info_id().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 22);
        assert!(a.starts_with("usr_"));
    }
}
