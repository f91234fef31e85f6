//! `auth = ["jwt"]`: `Authorization: Bearer <jwt>` from a configured identity provider the
//! route admits (its `customers` and `providers`), checked by the [`JwtVerifier`].

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers};
use crate::identity::{AuthDenial, AuthKind, BEARER_HEADER};
use crate::jwt::verifier::{JwtRefusal, JwtVerifier};
use async_trait::async_trait;
use std::sync::Arc;
use tracing::debug;

#[derive(Debug)]
pub(super) struct JwtAuthenticator {
    verifier: Arc<JwtVerifier>,
}

impl JwtAuthenticator {
    pub(super) fn new(verifier: Arc<JwtVerifier>) -> Self {
        JwtAuthenticator { verifier }
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
    fn kind(&self) -> AuthKind {
        AuthKind::Jwt
    }

    /// A bearer token stays at the gateway: the upstream gets identity headers instead.
    fn carriers(&self) -> Carriers {
        Carriers::headers(vec![BEARER_HEADER.to_owned()])
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let token = match bearer_token(request) {
            None => return AuthOutcome::NotPresent,
            Some(Err(())) => return AuthOutcome::Deny(AuthDenial::Invalid),
            Some(Ok(token)) => token,
        };
        match self.verifier.verify(token, request.tenants).await {
            Ok(principal) => AuthOutcome::Allow(principal),
            Err(JwtRefusal::Invalid(denial)) => {
                debug!(?denial, "JWT refused");
                AuthOutcome::Deny(AuthDenial::Invalid)
            }
            Err(JwtRefusal::KeysUnavailable) => AuthOutcome::Deny(AuthDenial::Unavailable),
        }
    }
}
