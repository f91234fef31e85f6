//! `auth = ["api_key"]`: a partner's id and secret in the two `[api_keys]` headers. Both
//! headers are removed on every route: a partner's secret never reaches a backend.

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers, Presented, presented};
use crate::api_keys::ApiKeyRegistry;
use crate::http_policy::normalise_name;
use crate::identity::{AuthDenial, AuthKind};
use async_trait::async_trait;
use std::sync::Arc;
use tracing::debug;

#[derive(Debug)]
pub(super) struct ApiKeyAuthenticator {
    registry: Arc<ApiKeyRegistry>,
    /// The header names, normalised: `_` variants count as copies.
    id_header: String,
    secret_header: String,
}

impl ApiKeyAuthenticator {
    pub(super) fn new(registry: Arc<ApiKeyRegistry>, id_header: &str, secret_header: &str) -> Self {
        ApiKeyAuthenticator {
            registry,
            id_header: normalise_name(id_header),
            secret_header: normalise_name(secret_header),
        }
    }
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    fn kind(&self) -> AuthKind {
        AuthKind::ApiKey
    }

    fn carriers(&self) -> Carriers {
        Carriers {
            stripped_everywhere: true,
            ..Carriers::headers(vec![self.id_header.clone(), self.secret_header.clone()])
        }
    }

    /// Neither header: not presented. Both, once each: checked. Anything else (one of them
    /// missing, either one twice) is a credential that cannot be right: denied.
    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let id = presented(request.headers, &self.id_header);
        let secret = presented(request.headers, &self.secret_header);
        let (id, secret) = match (id, secret) {
            (Presented::Absent, Presented::Absent) => return AuthOutcome::NotPresent,
            (Presented::Once(id), Presented::Once(secret)) => (id, secret),
            _ => {
                debug!("API key refused: the id and secret headers must each come once");
                return AuthOutcome::Deny(AuthDenial::Invalid);
            }
        };
        match self.registry.verify(id, secret, request.tenants) {
            Ok(principal) => AuthOutcome::Allow(principal),
            Err(refusal) => {
                debug!(?refusal, "API key refused");
                AuthOutcome::Deny(AuthDenial::Invalid)
            }
        }
    }
}
