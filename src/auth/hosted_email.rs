//! `auth = ["hosted_email"]`: the encrypted user token from the `user` query or form parameter
//! or the `X-User-Token` header, presented with the client's `passkey` (query or form).

use super::{AuthDenial, AuthOutcome, AuthRequest, Authenticator};
use crate::hosted_email::HostedEmailService;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// The header a user token may come in (stripped before forwarding).
pub const USER_TOKEN_HEADER: &str = "x-user-token";
/// The query or form parameter a user token may come in (removed before forwarding).
pub const USER_TOKEN_PARAM: &str = "user";
const PASSKEY_PARAM: &str = "passkey";

pub struct HostedEmailAuthenticator {
    service: Arc<HostedEmailService>,
}

impl std::fmt::Debug for HostedEmailAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostedEmailAuthenticator")
    }
}

impl HostedEmailAuthenticator {
    pub fn new(service: Arc<HostedEmailService>) -> Self {
        HostedEmailAuthenticator { service }
    }
}

/// Every value of parameter `name` in the query and the (form) body, decoded.
fn parameter(request: &AuthRequest<'_>, name: &str) -> Vec<String> {
    let query = request.uri.query().unwrap_or("").as_bytes();
    let mut values: Vec<String> = url::form_urlencoded::parse(query)
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.into_owned())
        .collect();
    if let Some(Value::String(value)) = request.body.and_then(|body| body.get(name)) {
        values.push(value.clone());
    }
    values
}

#[async_trait]
impl Authenticator for HostedEmailAuthenticator {
    fn name(&self) -> &'static str {
        "hosted_email"
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let mut tokens = parameter(request, USER_TOKEN_PARAM);
        for header in request.headers.get_all(USER_TOKEN_HEADER) {
            tokens.push(String::from_utf8_lossy(header.as_bytes()).into_owned());
        }
        let token = match tokens.as_slice() {
            [] => return AuthOutcome::NotPresent,
            [token] => token,
            // Two tokens (or one twice): one request, one identity, no guessing.
            _ => return AuthOutcome::Deny(AuthDenial::Invalid),
        };
        let passkeys = parameter(request, PASSKEY_PARAM);
        let [passkey] = passkeys.as_slice() else {
            return AuthOutcome::Deny(AuthDenial::Invalid);
        };
        match self.service.verify_user_token(Some(passkey), token) {
            Some(principal) => AuthOutcome::Allow(principal),
            None => AuthOutcome::Deny(AuthDenial::Invalid),
        }
    }
}
