//! Authenticators: who is calling. Each returns Allow, Deny or NotPresent; a route accepts
//! any-of ([`AuthChain::authenticate`] is the decision rule). Each authenticator lives in a
//! module of its own, knows only its own credential, and declares where that credential
//! travels ([`Carriers`]), from which routing derives what is never forwarded.

mod api_key;
mod converse;
mod exchange;
mod hosted_email;
mod jwt;
mod none;

use crate::api_keys::ApiKeyRegistry;
use crate::converse::ConverseService;
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use crate::http_policy::params::Parameters;
use crate::http_policy::same_header;
use crate::identity::{AuthDenial, AuthKind, Principal, TenantScope};
use crate::jwt::verifier::JwtVerifier;
use crate::metrics::{AuthSeries, Metrics, Verdict};
use async_trait::async_trait;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Instant;

/// The parts of a request an authenticator may look at; plain `http` types, no socket.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The route's accepted identity providers (for `jwt` and `exchange`).
    pub tenants: &'a TenantScope,
    /// The query's parameters, and the body's on routes whose credentials may travel in it.
    pub parameters: Parameters<'a>,
}

/// Headers, query and body carry credentials: `Debug` shows none of them.
impl std::fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("tenants", self.tenants)
            .finish_non_exhaustive()
    }
}

/// One authenticator's verdict on one request.
#[derive(Debug)]
pub enum AuthOutcome {
    Allow(Principal),
    Deny(AuthDenial),
    /// The request carries no credential of this kind.
    NotPresent,
}

impl AuthOutcome {
    fn verdict(&self) -> Verdict {
        match self {
            AuthOutcome::Allow(_) => Verdict::Allow,
            AuthOutcome::Deny(_) => Verdict::Deny,
            AuthOutcome::NotPresent => Verdict::Absent,
        }
    }
}

/// Where an authenticator's credential travels in a request: what keyway reads, and so what
/// it must never forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carriers {
    /// Headers (normalised names) the credential comes in: removed on the routes that accept
    /// this authenticator.
    pub headers: Vec<String>,
    /// Whether those headers are removed on every route: a token only keyway may ever see.
    pub stripped_everywhere: bool,
    /// Query and body parameters that hold a secret: read before authenticating (the body
    /// too), and removed from what goes upstream.
    pub secret_parameters: &'static [&'static str],
}

impl Carriers {
    fn headers(headers: Vec<String>) -> Self {
        Carriers {
            headers,
            ..Carriers::default()
        }
    }
}

#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Its name in `auth = [...]` and in the `authenticator` metric label.
    fn kind(&self) -> AuthKind;

    /// Where its credential travels.
    fn carriers(&self) -> Carriers;

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome;
}

/// `auth = ["none"]`.
pub fn none() -> Arc<dyn Authenticator> {
    Arc::new(none::NoneAuthenticator)
}

/// `auth = ["converse"]`, backed by the token service.
pub fn converse(service: Arc<ConverseService>) -> Arc<dyn Authenticator> {
    Arc::new(converse::ConverseAuthenticator::new(service))
}

/// `auth = ["jwt"]`, backed by the configured identity providers.
pub fn jwt(verifier: Arc<JwtVerifier>) -> Arc<dyn Authenticator> {
    Arc::new(jwt::JwtAuthenticator::new(verifier))
}

/// `auth = ["exchange"]`, backed by the userInfoId exchange.
pub fn exchange(service: Arc<ExchangeService>) -> Arc<dyn Authenticator> {
    Arc::new(exchange::ExchangeAuthenticator::new(service))
}

/// `auth = ["hosted_email"]`, backed by the hosted-email service.
pub fn hosted_email(service: Arc<HostedEmailService>) -> Arc<dyn Authenticator> {
    Arc::new(hosted_email::HostedEmailAuthenticator::new(service))
}

/// `auth = ["api_key"]`: partners' key pairs, in the two headers named.
pub fn api_key(
    registry: Arc<ApiKeyRegistry>,
    id_header: &str,
    secret_header: &str,
) -> Arc<dyn Authenticator> {
    Arc::new(api_key::ApiKeyAuthenticator::new(
        registry,
        id_header,
        secret_header,
    ))
}

/// How often a credential header was sent (in any spelling: `_` variants are copies), and its
/// value when exactly once.
enum Presented<'a> {
    Absent,
    Once(&'a str),
    Repeated,
}

/// `name` is a normalised header name (`http_policy::normalise_name`).
fn presented<'a>(headers: &'a HeaderMap, name: &str) -> Presented<'a> {
    let mut values = headers
        .iter()
        .filter(|(header, _)| same_header(header.as_str(), name))
        .map(|(_, value)| value.to_str().unwrap_or(""));
    match (values.next(), values.next()) {
        (None, _) => Presented::Absent,
        (Some(value), None) => Presented::Once(value),
        (Some(_), Some(_)) => Presented::Repeated,
    }
}

/// An authenticator with its metric series (resolved once, not per request).
pub struct Instrumented {
    authenticator: Arc<dyn Authenticator>,
    carriers: Carriers,
    series: AuthSeries,
}

impl std::fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Instrumented").field(&self.kind()).finish()
    }
}

impl Instrumented {
    pub fn new(authenticator: Arc<dyn Authenticator>, metrics: &Metrics) -> Self {
        Instrumented {
            series: metrics.auth_series(authenticator.kind().name()),
            carriers: authenticator.carriers(),
            authenticator,
        }
    }

    pub fn kind(&self) -> AuthKind {
        self.authenticator.kind()
    }

    pub fn carriers(&self) -> &Carriers {
        &self.carriers
    }
}

/// A route's authenticators, resolved, in its order.
#[derive(Debug, Clone)]
pub struct AuthChain(Vec<Arc<Instrumented>>);

impl AuthChain {
    pub fn new(authenticators: Vec<Arc<Instrumented>>) -> Self {
        AuthChain(authenticators)
    }

    pub fn carriers(&self) -> impl Iterator<Item = &Carriers> {
        self.0.iter().map(|authenticator| authenticator.carriers())
    }

    /// Runs the authenticators and decides:
    ///
    /// - any Deny denies (a bad credential is never rescued by another authenticator);
    /// - two authenticators that both recognise a credential deny: one request, one identity;
    /// - exactly one Allow allows;
    /// - nothing presented is denied as invalid (401).
    pub async fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Principal, AuthDenial> {
        let mut allowed: Option<Principal> = None;
        for instrumented in &self.0 {
            let started = Instant::now();
            let outcome = instrumented.authenticator.authenticate(request).await;
            instrumented
                .series
                .observe(outcome.verdict(), started.elapsed());
            match outcome {
                AuthOutcome::Deny(denial) => return Err(denial),
                AuthOutcome::Allow(_) if allowed.is_some() => return Err(AuthDenial::Invalid),
                AuthOutcome::Allow(principal) => allowed = Some(principal),
                AuthOutcome::NotPresent => {}
            }
        }
        allowed.ok_or(AuthDenial::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(fn() -> AuthOutcome);

    #[async_trait]
    impl Authenticator for Fixed {
        fn kind(&self) -> AuthKind {
            AuthKind::None
        }
        fn carriers(&self) -> Carriers {
            Carriers::default()
        }
        async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthOutcome {
            (self.0)()
        }
    }

    async fn decide(chain: AuthChain) -> Result<Principal, AuthDenial> {
        let headers = HeaderMap::new();
        let request = AuthRequest {
            headers: &headers,
            tenants: &TenantScope::default(),
            parameters: Parameters::new(None, &[]),
        };
        chain.authenticate(&request).await
    }

    fn allow() -> AuthOutcome {
        AuthOutcome::Allow(Principal::anonymous())
    }
    fn absent() -> AuthOutcome {
        AuthOutcome::NotPresent
    }
    fn deny() -> AuthOutcome {
        AuthOutcome::Deny(AuthDenial::Invalid)
    }

    #[tokio::test]
    async fn decision_rule() {
        type Outcome = fn() -> AuthOutcome;
        let cases: [(&[Outcome], Result<(), AuthDenial>); 5] = [
            (&[absent, allow], Ok(())),
            (&[absent], Err(AuthDenial::Invalid)),
            (&[allow, allow], Err(AuthDenial::Invalid)),
            (&[allow, deny], Err(AuthDenial::Invalid)),
            (
                &[|| AuthOutcome::Deny(AuthDenial::Unavailable), allow],
                Err(AuthDenial::Unavailable),
            ),
        ];
        for (outcomes, expected) in cases {
            let metrics = Metrics::new();
            let chain = AuthChain::new(
                outcomes
                    .iter()
                    .map(|outcome| Arc::new(Instrumented::new(Arc::new(Fixed(*outcome)), &metrics)))
                    .collect(),
            );
            assert_eq!(
                decide(chain).await.map(|_| ()),
                expected,
                "{} outcomes",
                outcomes.len()
            );
        }
    }

    #[test]
    fn a_request_s_debug_output_shows_no_credential() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer header-secret".parse().unwrap());
        let body = vec![("codeVerifier".to_owned(), "body-secret".to_owned())];
        let request = AuthRequest {
            headers: &headers,
            tenants: &TenantScope::default(),
            parameters: Parameters::new(Some("user=query-secret"), &body),
        };
        let shown = format!("{request:?}");
        assert!(shown.contains("AuthRequest"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
