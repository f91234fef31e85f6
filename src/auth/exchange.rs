//! `auth = ["exchange"]`: a `userInfoId` and its PKCE `codeVerifier`, from the query (the
//! seed's start-chat call) or from the JSON body (its set-identity call).

use super::{AuthDenial, AuthOutcome, AuthRequest, Authenticator};
use crate::error::GatewayError;
use crate::exchange::ExchangeService;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

pub struct ExchangeAuthenticator {
    service: Arc<ExchangeService>,
}

impl std::fmt::Debug for ExchangeAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExchangeAuthenticator")
    }
}

impl ExchangeAuthenticator {
    pub fn new(service: Arc<ExchangeService>) -> Self {
        ExchangeAuthenticator { service }
    }
}

/// A query parameter's raw value (userInfoIds and verifiers are unreserved characters).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        pair.split_once('=')
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value)
    })
}

/// The (userInfoId, codeVerifier) pair, from the query or else the JSON body.
fn presented<'a>(request: &'a AuthRequest<'_>) -> (Option<&'a str>, Option<&'a str>) {
    let query = request.uri.query();
    let from_query = (
        query_param(query, "userInfoId"),
        query_param(query, "codeVerifier"),
    );
    if from_query != (None, None) {
        return from_query;
    }
    let field = |name: &str| {
        request
            .body
            .and_then(|body| body.get(name))
            .and_then(Value::as_str)
    };
    (field("userInfoId"), field("codeVerifier"))
}

#[async_trait]
impl Authenticator for ExchangeAuthenticator {
    fn name(&self) -> &'static str {
        "exchange"
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let (user_info_id, verifier) = match presented(request) {
            (None, None) => return AuthOutcome::NotPresent,
            (Some(user_info_id), Some(verifier)) => (user_info_id, verifier),
            _ => return AuthOutcome::Deny(AuthDenial::Invalid),
        };
        match self
            .service
            .redeem(user_info_id, verifier, request.tenants)
            .await
        {
            Ok(Some(principal)) => AuthOutcome::Allow(principal),
            Ok(None) => AuthOutcome::Deny(AuthDenial::Invalid),
            Err(GatewayError::ServiceUnavailable) => AuthOutcome::Deny(AuthDenial::Unavailable),
            Err(_) => AuthOutcome::Deny(AuthDenial::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let query = Some("a=1&userInfoId=usr_x&codeVerifier=v");
        assert_eq!(query_param(query, "userInfoId"), Some("usr_x"));
        assert_eq!(query_param(query, "codeVerifier"), Some("v"));
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(query_param(Some("xuserInfoId=1"), "userInfoId"), None);
    }
}
