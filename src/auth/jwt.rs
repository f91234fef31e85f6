//! `auth = ["jwt"]`: `Authorization: Bearer <jwt>` from a configured identity provider.
//!
//! The provider is chosen by the token's `iss` among those the route admits (its `customers`
//! and `providers`); its keys verify the signature and its policy the claims. Verified tokens
//! are cached under the SHA-256 of the token, never past `exp` (+ leeway) or `cache.ttl_seconds`.

use super::{AuthDenial, AuthOutcome, AuthRequest, Authenticator, Principal, Tenant};
use crate::cache::CredentialCache;
use crate::config::CacheSettings;
use crate::config::identity::ProviderSettings;
use crate::jwks::ProviderKeys;
use crate::jwt::keys::KeyLookup;
use crate::jwt::{ClaimsPolicy, Denial, UnverifiedToken, parse};
use crate::metrics::{CacheSeries, Metrics};
use crate::routing::TenantScope;
use crate::store::{SecretKey, now_ms};
use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use std::sync::Arc;
use std::time::Duration;
use tracing::debug;

const CACHE_NAME: &str = "jwt";

/// One configured provider, compiled.
pub struct JwtProvider {
    /// Shared by every principal this provider vouches for.
    pub tenant: Arc<Tenant>,
    pub policy: ClaimsPolicy,
    pub algorithms: Vec<Algorithm>,
    pub max_token_bytes: usize,
    pub keys: Arc<ProviderKeys>,
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

pub struct JwtAuthenticator {
    providers: Vec<JwtProvider>,
    /// Every algorithm some provider allows, and the largest token any accepts.
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    /// Verified principals until their token's `exp` (+ leeway), at most `cache.ttl_seconds`.
    cache: CredentialCache<Principal>,
    /// The top-level claims anything reads (identity headers, the exchange); a principal keeps
    /// only these, which keeps cached principals small.
    claims_in_use: Vec<String>,
    cache_series: CacheSeries,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("providers", &self.providers.len())
            .finish()
    }
}

/// How a verification attempt ended.
enum Verdict {
    Allow(Principal, i64),
    Deny(Denial),
    /// The provider's keys are unavailable: 503, never "valid".
    Unavailable,
}

impl JwtAuthenticator {
    pub fn new(
        providers: Vec<JwtProvider>,
        claims_in_use: Vec<String>,
        cache: &CacheSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut algorithms: Vec<Algorithm> = providers
            .iter()
            .flat_map(|p| p.algorithms.iter().copied())
            .collect();
        algorithms.dedup();
        JwtAuthenticator {
            max_token_bytes: providers
                .iter()
                .map(|p| p.max_token_bytes)
                .max()
                .unwrap_or(0),
            algorithms,
            providers,
            cache: CredentialCache::new(cache.capacity, cache.ttl),
            claims_in_use,
            cache_series: metrics.cache_series(CACHE_NAME),
        }
    }

    /// Verifies a token for a route's tenant scope, using the cache.
    pub async fn verify(&self, token: &str, scope: &TenantScope) -> AuthOutcome {
        let key = SecretKey::of(token.as_bytes());
        if let Some(principal) = self.cache.get(&key) {
            let admitted = principal
                .tenant
                .as_ref()
                .is_some_and(|tenant| scope.admits(&tenant.customer_id, tenant.provider_id));
            if admitted {
                self.cache_series.observe(true);
                return AuthOutcome::Allow(principal);
            }
            // Verified for a provider this route does not admit (providers may share an
            // issuer): verify again, for this route's scope.
        }
        self.cache_series.observe(false);
        match self.verify_uncached(token, scope).await {
            Verdict::Allow(principal, valid_until_ms) => {
                let valid_for = u64::try_from(valid_until_ms - now_ms()).unwrap_or(0);
                self.cache
                    .insert(key, principal.clone(), Duration::from_millis(valid_for));
                AuthOutcome::Allow(principal)
            }
            Verdict::Deny(denial) => {
                debug!(?denial, "JWT refused");
                AuthOutcome::Deny(AuthDenial::Invalid)
            }
            Verdict::Unavailable => AuthOutcome::Deny(AuthDenial::Unavailable),
        }
    }

    async fn verify_uncached(&self, token: &str, scope: &TenantScope) -> Verdict {
        let unverified = match parse(token, self.max_token_bytes, &self.algorithms) {
            Ok(unverified) => unverified,
            Err(denial) => return Verdict::Deny(denial),
        };
        let issuer = unverified.issuer().unwrap_or_default();
        let candidates = self.providers.iter().filter(|provider| {
            provider.policy.issuer == issuer
                && scope.admits(&provider.tenant.customer_id, provider.tenant.provider_id)
        });
        let mut verdict = Verdict::Deny(Denial::UnknownIssuer);
        for provider in candidates {
            verdict = verify_with(provider, token, &unverified, &self.claims_in_use).await;
            if matches!(verdict, Verdict::Allow(..)) {
                break;
            }
        }
        verdict
    }
}

async fn verify_with(
    provider: &JwtProvider,
    token: &str,
    unverified: &UnverifiedToken<'_>,
    claims_in_use: &[String],
) -> Verdict {
    let algorithm = unverified.jws.algorithm;
    if token.len() > provider.max_token_bytes {
        return Verdict::Deny(Denial::TooLarge);
    }
    if !provider.algorithms.contains(&algorithm) {
        return Verdict::Deny(Denial::Algorithm);
    }
    let Some(mut keys) = provider.keys.current() else {
        return Verdict::Unavailable;
    };
    let kid = unverified.jws.kid.as_deref();
    if matches!(keys.lookup(kid, algorithm), KeyLookup::UnknownKid)
        && provider.keys.refetch_for_unknown_kid().await
    {
        keys = provider.keys.current().unwrap_or(keys);
    }
    let KeyLookup::Found(key) = keys.lookup(kid, algorithm) else {
        return Verdict::Deny(Denial::NoKey);
    };
    if !key.signed(&unverified.jws) {
        return Verdict::Deny(Denial::Signature);
    }
    match provider.policy.check(&unverified.claims, now_ms() / 1000) {
        Ok(exp) => {
            let claims = unverified
                .claims
                .iter()
                .filter(|(name, _)| claims_in_use.contains(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            let principal = Principal {
                authenticator: "jwt",
                claims: Arc::new(claims),
                tenant: Some(provider.tenant.clone()),
            };
            let valid_until_ms = exp
                .saturating_add(provider.policy.leeway_seconds)
                .saturating_mul(1000);
            Verdict::Allow(principal, valid_until_ms)
        }
        Err(denial) => Verdict::Deny(denial),
    }
}

/// The token of `Authorization: Bearer <token>`; `Err` when the header is ambiguous.
fn bearer_token<'a>(request: &AuthRequest<'a>) -> Option<Result<&'a str, ()>> {
    let mut values = request.headers.get_all(http::header::AUTHORIZATION).iter();
    let first = values.next()?;
    let text = first.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    if values.next().is_some() || token.is_empty() || token.contains(' ') {
        return Some(Err(()));
    }
    Some(Ok(token))
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &'static str {
        "jwt"
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        match bearer_token(request) {
            None => AuthOutcome::NotPresent,
            Some(Err(())) => AuthOutcome::Deny(AuthDenial::Invalid),
            Some(Ok(token)) => self.verify(token, request.tenants).await,
        }
    }
}
