//! `auth = ["converse"]`: the token in `X-CONVERSE-TOKEN` (name from `[converse] header`).

use super::{AuthDenial, AuthOutcome, AuthRequest, Authenticator};
use crate::converse::ConverseService;
use crate::error::GatewayError;
use crate::headers::{normalise_name, same_header};
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug)]
pub struct ConverseAuthenticator {
    service: Arc<ConverseService>,
    /// The header name, normalised: `_` variants count as copies of it.
    header: String,
}

impl ConverseAuthenticator {
    pub fn new(service: Arc<ConverseService>) -> Self {
        let header = normalise_name(service.settings().header.as_str());
        ConverseAuthenticator { service, header }
    }
}

impl std::fmt::Debug for ConverseService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConverseService")
    }
}

#[async_trait]
impl Authenticator for ConverseAuthenticator {
    fn name(&self) -> &'static str {
        "converse"
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let mut presented = request
            .headers
            .iter()
            .filter(|(name, _)| same_header(name.as_str(), &self.header))
            .map(|(_, value)| value.to_str().unwrap_or(""));
        let Some(token) = presented.next() else {
            return AuthOutcome::NotPresent;
        };
        // Two copies of the token header: one request, one identity.
        if presented.next().is_some() {
            return AuthOutcome::Deny(AuthDenial::Invalid);
        }
        match self.service.authenticate(token).await {
            Ok(Some(principal)) => AuthOutcome::Allow(principal),
            Ok(None) => AuthOutcome::Deny(AuthDenial::Invalid),
            Err(GatewayError::ServiceUnavailable) => AuthOutcome::Deny(AuthDenial::Unavailable),
            Err(_) => AuthOutcome::Deny(AuthDenial::Invalid),
        }
    }
}
