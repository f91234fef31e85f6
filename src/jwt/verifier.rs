//! [`JwtVerifier`]: is this token from one of the identity providers a scope admits?
//!
//! The provider is chosen by the token's `iss` among those the scope admits (its customers and
//! providers); its keys verify the signature and its policy the claims. Verified tokens are
//! cached under the SHA-256 of the token, never past `exp` (+ leeway) or `cache.ttl_seconds`.
//! A provider's final refusal of a token (a bad signature, an expired token, another audience or
//! issuer) is remembered for a minute, so a token sent again and again costs one signature
//! check, not one per request; a refusal that time or a key rotation may lift (an unknown `kid`,
//! `nbf` or `iat` in the future, keys unavailable) is never remembered.
//! Used by the `jwt` authenticator and by the identity exchange.

use super::jwks::ProviderKeys;
use super::keys::KeyLookup;
use super::{ClaimsPolicy, Denial, UnverifiedToken, parse};
use crate::cache::CredentialCache;
use crate::config::{CacheSettings, ProviderSettings};
use crate::identity::{Principal, Tenant, TenantScope};
use crate::metrics::{CacheSeries, Metrics};
use crate::store::{SecretKey, now_ms};
use jsonwebtoken::Algorithm;
use std::sync::Arc;
use std::time::Duration;

const CACHE_NAME: &str = "jwt";
/// The cache series of remembered refusals (`hit`: a request answered from one).
const REFUSALS_NAME: &str = "jwt_refused";
/// How long a final refusal is remembered (never longer than `cache.ttl_seconds`).
const REFUSAL_TTL: Duration = Duration::from_secs(60);
/// At most this many refused tokens are remembered (an entry is under a hundred bytes).
const REFUSALS_CAPACITY: u64 = 65_536;

/// One configured provider, ready to verify.
pub struct JwtProvider {
    /// Shared by every principal this provider vouches for.
    tenant: Arc<Tenant>,
    policy: ClaimsPolicy,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    keys: Arc<ProviderKeys>,
}

impl JwtProvider {
    pub fn new(settings: &ProviderSettings, keys: Arc<ProviderKeys>) -> Self {
        JwtProvider {
            tenant: Arc::new(Tenant {
                customer_id: settings.customer_id.clone(),
                provider_id: settings.provider_id,
            }),
            policy: ClaimsPolicy {
                issuer: settings.issuer.clone(),
                audiences: settings.audiences.clone(),
                leeway_seconds: settings.leeway_seconds,
            },
            algorithms: settings.algorithms.clone(),
            max_token_bytes: settings.max_token_bytes,
            keys,
        }
    }
}

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    /// The token is not good (the reason is for the log only).
    Invalid(Denial),
    /// The provider's keys are unavailable: never "valid".
    KeysUnavailable,
}

pub struct JwtVerifier {
    providers: Vec<JwtProvider>,
    /// Every algorithm some provider allows, and the largest token any accepts.
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    /// Verified principals until their token's `exp` (+ leeway), at most `cache.ttl_seconds`.
    cache: CredentialCache<Principal>,
    /// Tokens some providers refused for good, for [`REFUSAL_TTL`].
    refusals: CredentialCache<Refusals>,
    /// The top-level claims anything reads (identity headers, the exchange); a principal keeps
    /// only these, which keeps cached principals small.
    claims_in_use: Vec<String>,
    cache_series: CacheSeries,
    refusal_series: CacheSeries,
}

/// The providers (by index; the first 64) that refused one token for good, and the last reason.
#[derive(Debug, Clone, Copy)]
struct Refusals {
    providers: u64,
    denial: Denial,
}

impl Refusals {
    const NONE: Refusals = Refusals {
        providers: 0,
        denial: Denial::Signature,
    };

    /// Why provider `index` refused the token, if it did for good.
    fn by(&self, index: usize) -> Option<Denial> {
        let bit = provider_bit(index)?;
        (self.providers & bit != 0).then_some(self.denial)
    }

    /// Remembers `refusal` by provider `index` if it is final: true when it was remembered.
    fn record(&mut self, index: usize, refusal: JwtRefusal) -> bool {
        let JwtRefusal::Invalid(denial) = refusal else {
            return false;
        };
        match provider_bit(index) {
            Some(bit) if is_final(denial) => {
                self.providers |= bit;
                self.denial = denial;
                true
            }
            _ => false,
        }
    }
}

/// Provider `index`'s bit in [`Refusals::providers`]; `None` beyond the first 64.
fn provider_bit(index: usize) -> Option<u64> {
    1u64.checked_shl(u32::try_from(index).ok()?)
}

/// A refusal the same token would get from the same provider at any later time.
fn is_final(denial: Denial) -> bool {
    matches!(
        denial,
        Denial::Signature | Denial::Claim("exp" | "aud" | "iss")
    )
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("providers", &self.providers.len())
            .finish()
    }
}

/// A verified principal and the Unix milliseconds until which it may be trusted.
type Verified = (Principal, i64);

impl JwtVerifier {
    pub fn new(
        providers: Vec<JwtProvider>,
        claims_in_use: Vec<String>,
        cache: &CacheSettings,
        metrics: &Metrics,
    ) -> Self {
        let mut algorithms: Vec<Algorithm> = providers
            .iter()
            .flat_map(|p| p.algorithms.iter().copied())
            .collect();
        algorithms.dedup();
        JwtVerifier {
            max_token_bytes: providers
                .iter()
                .map(|p| p.max_token_bytes)
                .max()
                .unwrap_or(0),
            algorithms,
            providers,
            cache: CredentialCache::new(cache.capacity, cache.ttl),
            refusals: CredentialCache::new(
                cache.capacity.min(REFUSALS_CAPACITY),
                cache.ttl.min(REFUSAL_TTL),
            ),
            claims_in_use,
            cache_series: metrics.cache_series(CACHE_NAME),
            refusal_series: metrics.cache_series(REFUSALS_NAME),
        }
    }

    /// Verifies a token for a scope of admitted providers, using the cache.
    pub async fn verify(&self, token: &str, scope: &TenantScope) -> Result<Principal, JwtRefusal> {
        let key = SecretKey::of(token.as_bytes());
        if let Some(principal) = self.cache.get(&key) {
            let admitted = principal
                .tenant
                .as_ref()
                .is_some_and(|tenant| scope.admits(&tenant.customer_id, tenant.provider_id));
            if admitted {
                self.cache_series.observe(true);
                return Ok(principal);
            }
            // Verified for a provider this scope does not admit (providers may share an
            // issuer): verify again, for this scope.
        }
        self.cache_series.observe(false);
        // A JWT is verified from its own signature: no store behind this cache to change it,
        // so the ticket is always granted.
        let ticket = self.cache.fill_ticket();
        let (principal, valid_until_ms) = self.verify_uncached(token, scope, &key).await?;
        let valid_for = u64::try_from(valid_until_ms - now_ms()).unwrap_or(0);
        if let Some(ticket) = ticket {
            let valid_for = Duration::from_millis(valid_for);
            self.cache.fill(ticket, key, principal.clone(), valid_for);
        }
        Ok(principal)
    }

    /// Tries each provider the scope admits for the token's issuer, skipping those that
    /// refused this token for good within [`REFUSAL_TTL`].
    async fn verify_uncached(
        &self,
        token: &str,
        scope: &TenantScope,
        key: &SecretKey,
    ) -> Result<Verified, JwtRefusal> {
        let unverified =
            parse(token, self.max_token_bytes, &self.algorithms).map_err(JwtRefusal::Invalid)?;
        let issuer = unverified.issuer().unwrap_or_default();
        let candidates = self.providers.iter().enumerate().filter(|(_, provider)| {
            provider.policy.issuer == issuer
                && scope.admits(&provider.tenant.customer_id, provider.tenant.provider_id)
        });
        let ticket = self.refusals.fill_ticket();
        let mut refusals = self.refusals.get(key).unwrap_or(Refusals::NONE);
        let (mut verdict, mut checked, mut learned) = (
            Err(JwtRefusal::Invalid(Denial::UnknownIssuer)),
            false,
            false,
        );
        for (index, provider) in candidates {
            if let Some(denial) = refusals.by(index) {
                verdict = Err(JwtRefusal::Invalid(denial));
                continue;
            }
            checked = true;
            verdict = verify_with(provider, token, &unverified, &self.claims_in_use).await;
            match verdict {
                Ok(_) => break,
                Err(refusal) => learned |= refusals.record(index, refusal),
            }
        }
        if let (true, Some(ticket)) = (learned, ticket) {
            self.refusals.fill(ticket, *key, refusals, REFUSAL_TTL);
        }
        if verdict.is_err() && refusals.providers != 0 {
            self.refusal_series.observe(!checked);
        }
        verdict
    }
}

async fn verify_with(
    provider: &JwtProvider,
    token: &str,
    unverified: &UnverifiedToken<'_>,
    claims_in_use: &[String],
) -> Result<Verified, JwtRefusal> {
    let algorithm = unverified.jws.algorithm;
    if token.len() > provider.max_token_bytes {
        return Err(JwtRefusal::Invalid(Denial::TooLarge));
    }
    if !provider.algorithms.contains(&algorithm) {
        return Err(JwtRefusal::Invalid(Denial::Algorithm));
    }
    let mut keys = provider.keys.current().ok_or(JwtRefusal::KeysUnavailable)?;
    let kid = unverified.jws.kid.as_deref();
    if matches!(keys.lookup(kid, algorithm), KeyLookup::UnknownKid)
        && provider.keys.refetch_for_unknown_kid().await
    {
        keys = provider.keys.current().unwrap_or(keys);
    }
    let KeyLookup::Found(key) = keys.lookup(kid, algorithm) else {
        return Err(JwtRefusal::Invalid(Denial::NoKey));
    };
    if !key.signed(&unverified.jws) {
        return Err(JwtRefusal::Invalid(Denial::Signature));
    }
    let exp = provider
        .policy
        .check(&unverified.claims, now_ms() / 1000)
        .map_err(JwtRefusal::Invalid)?;
    let claims = unverified
        .claims
        .iter()
        .filter(|(name, _)| claims_in_use.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let principal = Principal {
        claims: Arc::new(claims),
        tenant: Some(provider.tenant.clone()),
    };
    let valid_until_ms = exp
        .saturating_add(provider.policy.leeway_seconds)
        .saturating_mul(1000);
    Ok((principal, valid_until_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_refusals_of_the_first_64_providers_are_remembered() {
        let mut refusals = Refusals::NONE;
        assert!(refusals.record(0, JwtRefusal::Invalid(Denial::Signature)));
        assert!(refusals.record(63, JwtRefusal::Invalid(Denial::Claim("exp"))));
        for (index, refusal) in [
            (1, JwtRefusal::Invalid(Denial::NoKey)),
            (2, JwtRefusal::Invalid(Denial::Claim("nbf"))),
            (3, JwtRefusal::Invalid(Denial::Claim("iat"))),
            (4, JwtRefusal::KeysUnavailable),
            (64, JwtRefusal::Invalid(Denial::Signature)),
        ] {
            assert!(!refusals.record(index, refusal), "{index}: {refusal:?}");
        }
        assert_eq!(refusals.by(0), Some(Denial::Claim("exp")));
        assert_eq!(refusals.by(63), Some(Denial::Claim("exp")));
        for index in [1, 2, 3, 4, 64, usize::MAX] {
            assert_eq!(refusals.by(index), None, "{index}");
        }
    }
}
