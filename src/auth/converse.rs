//! `auth = ["converse"]`: the token in `X-CONVERSE-TOKEN` (name from `[converse] header`).

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers, Presented, presented};
use crate::converse::ConverseService;
use crate::http_policy::normalise_name;
use crate::identity::{AuthDenial, AuthKind};
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct ConverseAuthenticator {
    service: Arc<ConverseService>,
    /// The header name, normalised: `_` variants count as copies of it.
    header: String,
}

impl ConverseAuthenticator {
    pub(super) fn new(service: Arc<ConverseService>) -> Self {
        let header = normalise_name(service.settings().header.as_str());
        ConverseAuthenticator { service, header }
    }
}

#[async_trait]
impl Authenticator for ConverseAuthenticator {
    fn kind(&self) -> AuthKind {
        AuthKind::Converse
    }

    /// A client's Converse token is keyway's business only: never forwarded, on any route.
    fn carriers(&self) -> Carriers {
        Carriers {
            stripped_everywhere: true,
            ..Carriers::headers(vec![self.header.clone()])
        }
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let token = match presented(request.headers, &self.header) {
            Presented::Absent => return AuthOutcome::NotPresent,
            Presented::Once(token) => token,
            // Two copies of the token header: one request, one identity.
            Presented::Repeated => return AuthOutcome::Deny(AuthDenial::Invalid),
        };
        match self.service.authenticate(token).await {
            Ok(Some(principal)) => AuthOutcome::Allow(principal),
            Ok(None) => AuthOutcome::Deny(AuthDenial::Invalid),
            Err(_) => AuthOutcome::Deny(AuthDenial::Unavailable),
        }
    }
}
