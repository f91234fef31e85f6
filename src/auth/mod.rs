//! Authenticators: who is calling. Each returns Allow, Deny or NotPresent; a route accepts any-of.
//!
//! This module owns the decision rule (see [`authenticate_any`]); each authenticator lives in a
//! module of its own and knows only its own credential.

mod converse;
pub mod exchange;
pub mod hosted_email;
pub mod jwt;
mod none;
mod principal;

pub use converse::ConverseAuthenticator;
pub use exchange::ExchangeAuthenticator;
pub use hosted_email::HostedEmailAuthenticator;
pub use jwt::JwtAuthenticator;
pub use none::NoneAuthenticator;
pub use principal::{Principal, Tenant};

use crate::error::GatewayError;
use crate::metrics::{AuthSeries, Metrics, Verdict};
use crate::routing::TenantScope;
use async_trait::async_trait;
use http::{HeaderMap, Method, Uri};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The parts of a request an authenticator may look at; plain `http` types, no socket.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub client_ip: Option<IpAddr>,
    /// The route's accepted identity providers (for `jwt` and `exchange`).
    pub tenants: &'a TenantScope,
    /// The JSON or form body (form values as strings), read only on routes that accept
    /// credentials in it (`exchange`, `hosted_email`).
    pub body: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Headers, query and body carry credentials: `Debug` shows the method and path only.
impl std::fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("method", self.method)
            .field("path", &self.uri.path())
            .finish_non_exhaustive()
    }
}

/// Why a presented credential was refused. Clients only ever see the mapped envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDenial {
    /// Unknown, expired, revoked or malformed: deliberately indistinguishable.
    Invalid,
    /// Valid but not allowed here.
    Forbidden,
    /// The credential could not be checked (a dependency is down): never treated as valid.
    Unavailable,
}

impl From<AuthDenial> for GatewayError {
    fn from(denial: AuthDenial) -> Self {
        match denial {
            AuthDenial::Invalid => GatewayError::Unauthorized,
            AuthDenial::Forbidden => GatewayError::Forbidden,
            AuthDenial::Unavailable => GatewayError::ServiceUnavailable,
        }
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

#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The name used in `auth = [...]` and in the `authenticator` metric label.
    fn name(&self) -> &'static str;

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome;
}

/// Which configured services can back an authenticator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Available {
    pub converse: bool,
    pub jwt: bool,
    pub exchange: bool,
    pub hosted_email: bool,
}

/// The authenticator names a route may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    Converse,
    Jwt,
    Exchange,
    HostedEmail,
}

impl AuthKind {
    pub fn parse(name: &str) -> Option<AuthKind> {
        Some(match name {
            "none" => AuthKind::None,
            "converse" => AuthKind::Converse,
            "jwt" => AuthKind::Jwt,
            "exchange" => AuthKind::Exchange,
            "hosted_email" => AuthKind::HostedEmail,
            _ => return None,
        })
    }

    /// Why this kind cannot be used with the configured services, if it cannot.
    pub fn check_available(self, available: Available) -> Result<(), String> {
        match self {
            AuthKind::None => Ok(()),
            AuthKind::Converse if available.converse => Ok(()),
            AuthKind::Converse => {
                Err("authenticator \"converse\" needs a [converse] section".to_owned())
            }
            AuthKind::Jwt if available.jwt => Ok(()),
            AuthKind::Jwt => Err(
                "authenticator \"jwt\" needs at least one [[identity_providers]] entry".to_owned(),
            ),
            AuthKind::Exchange if available.exchange => Ok(()),
            AuthKind::Exchange => {
                Err("authenticator \"exchange\" needs an [exchange] section".to_owned())
            }
            AuthKind::HostedEmail if available.hosted_email => Ok(()),
            AuthKind::HostedEmail => {
                Err("authenticator \"hosted_email\" needs a [hosted_email] section".to_owned())
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Converse => "converse",
            AuthKind::Jwt => "jwt",
            AuthKind::Exchange => "exchange",
            AuthKind::HostedEmail => "hosted_email",
        }
    }

    /// Query and body parameters that carry this kind's secret: read for authentication,
    /// never forwarded.
    pub fn secret_parameters(self) -> &'static [&'static str] {
        match self {
            AuthKind::Exchange => &["codeVerifier"],
            AuthKind::HostedEmail => &[hosted_email::USER_TOKEN_PARAM],
            AuthKind::None | AuthKind::Converse | AuthKind::Jwt => &[],
        }
    }
}

/// An authenticator with its metric series (resolved once, not per request).
pub struct Instrumented {
    authenticator: Arc<dyn Authenticator>,
    series: AuthSeries,
}

impl Instrumented {
    pub fn new(authenticator: Arc<dyn Authenticator>, metrics: &Metrics) -> Self {
        Instrumented {
            series: metrics.auth_series(authenticator.name()),
            authenticator,
        }
    }
}

/// The configured services behind `Authenticators::new`.
pub struct AuthServices {
    pub converse: Option<Arc<crate::converse::ConverseService>>,
    pub jwt: Option<Arc<JwtAuthenticator>>,
    pub exchange: Option<Arc<crate::exchange::ExchangeService>>,
    pub hosted_email: Option<Arc<crate::hosted_email::HostedEmailService>>,
}

/// One shared instance of each configured authenticator.
pub struct Authenticators {
    none: Instrumented,
    converse: Option<Instrumented>,
    jwt: Option<Instrumented>,
    exchange: Option<Instrumented>,
    hosted_email: Option<Instrumented>,
}

impl Authenticators {
    pub fn new(services: AuthServices, metrics: &Metrics) -> Self {
        let instrument =
            |authenticator: Arc<dyn Authenticator>| Instrumented::new(authenticator, metrics);
        Authenticators {
            none: instrument(Arc::new(NoneAuthenticator)),
            converse: services
                .converse
                .map(|service| instrument(Arc::new(ConverseAuthenticator::new(service)))),
            jwt: services.jwt.map(|authenticator| instrument(authenticator)),
            exchange: services
                .exchange
                .map(|service| instrument(Arc::new(ExchangeAuthenticator::new(service)))),
            hosted_email: services
                .hosted_email
                .map(|service| instrument(Arc::new(HostedEmailAuthenticator::new(service)))),
        }
    }

    /// Config validation guarantees every kind a route names is present.
    fn get(&self, kind: AuthKind) -> Option<&Instrumented> {
        match kind {
            AuthKind::None => Some(&self.none),
            AuthKind::Converse => self.converse.as_ref(),
            AuthKind::Jwt => self.jwt.as_ref(),
            AuthKind::Exchange => self.exchange.as_ref(),
            AuthKind::HostedEmail => self.hosted_email.as_ref(),
        }
    }

    /// The route's authenticators, in its order.
    pub fn for_route<'a>(
        &'a self,
        kinds: &'a [AuthKind],
    ) -> impl Iterator<Item = &'a Instrumented> + 'a {
        kinds.iter().filter_map(|kind| self.get(*kind))
    }
}

/// Runs a route's authenticators and decides.
///
/// - any Deny denies (a bad credential is never rescued by another authenticator);
/// - two authenticators that both recognise a credential deny: one request, one identity;
/// - exactly one Allow allows;
/// - nothing presented is 401.
pub async fn authenticate_any<'a>(
    authenticators: impl IntoIterator<Item = &'a Instrumented>,
    request: &AuthRequest<'_>,
) -> Result<Principal, GatewayError> {
    let mut allowed: Option<Principal> = None;
    for Instrumented {
        authenticator,
        series,
    } in authenticators
    {
        let started = Instant::now();
        let outcome = authenticator.authenticate(request).await;
        series.observe(outcome.verdict(), started.elapsed());
        match outcome {
            AuthOutcome::Deny(denial) => return Err(denial.into()),
            AuthOutcome::Allow(_) if allowed.is_some() => return Err(GatewayError::Unauthorized),
            AuthOutcome::Allow(principal) => allowed = Some(principal),
            AuthOutcome::NotPresent => {}
        }
    }
    allowed.ok_or(GatewayError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(&'static str, fn() -> AuthOutcome);

    #[async_trait]
    impl Authenticator for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthOutcome {
            (self.1)()
        }
    }

    async fn decide(list: Vec<Instrumented>) -> Result<Principal, GatewayError> {
        let (method, uri, headers) = (Method::GET, Uri::from_static("/"), HeaderMap::new());
        let request = AuthRequest {
            method: &method,
            uri: &uri,
            headers: &headers,
            client_ip: None,
            tenants: &TenantScope::default(),
            body: None,
        };
        authenticate_any(&list, &request).await
    }

    fn allow() -> AuthOutcome {
        AuthOutcome::Allow(Principal::anonymous("t"))
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
        let cases: [(&[Outcome], Result<(), GatewayError>); 5] = [
            (&[absent, allow], Ok(())),
            (&[absent], Err(GatewayError::Unauthorized)),
            (&[allow, allow], Err(GatewayError::Unauthorized)),
            (&[allow, deny], Err(GatewayError::Unauthorized)),
            (
                &[|| AuthOutcome::Deny(AuthDenial::Unavailable), allow],
                Err(GatewayError::ServiceUnavailable),
            ),
        ];
        for (outcomes, expected) in cases {
            let metrics = Metrics::new();
            let list: Vec<Instrumented> = outcomes
                .iter()
                .map(|outcome| Instrumented::new(Arc::new(Fixed("t", *outcome)), &metrics))
                .collect();
            assert_eq!(
                decide(list).await.map(|_| ()),
                expected,
                "{} outcomes",
                outcomes.len()
            );
        }
    }

    #[test]
    fn a_request_s_debug_output_shows_no_credential() {
        let (method, uri) = (Method::GET, Uri::from_static("/x?user=query-secret"));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer header-secret".parse().unwrap());
        let body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"codeVerifier":"body-secret"}"#).unwrap();
        let request = AuthRequest {
            method: &method,
            uri: &uri,
            headers: &headers,
            client_ip: None,
            tenants: &TenantScope::default(),
            body: Some(&body),
        };
        let shown = format!("{request:?}");
        assert!(shown.contains("/x"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn availability() {
        let all = Available {
            converse: true,
            jwt: true,
            exchange: true,
            hosted_email: true,
        };
        let nothing = Available::default();
        let refusal = |kind: AuthKind| kind.check_available(nothing).unwrap_err();
        for kind in [
            AuthKind::None,
            AuthKind::Converse,
            AuthKind::Jwt,
            AuthKind::Exchange,
            AuthKind::HostedEmail,
        ] {
            assert!(kind.check_available(all).is_ok(), "{kind:?}");
        }
        assert!(AuthKind::None.check_available(nothing).is_ok());
        assert!(refusal(AuthKind::Converse).contains("[converse]"));
        assert!(refusal(AuthKind::Jwt).contains("identity_providers"));
        assert!(refusal(AuthKind::Exchange).contains("[exchange]"));
        assert!(refusal(AuthKind::HostedEmail).contains("[hosted_email]"));
        assert!(AuthKind::parse("basic").is_none());
    }
}
