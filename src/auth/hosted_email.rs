//! `auth = ["hosted_email"]`: the encrypted user token from the `user` query or form parameter
//! or the `X-User-Token` header, presented with the client's `passkey` (query or form).

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers};
use crate::hosted_email::HostedEmailService;
use crate::identity::{AuthDenial, AuthKind, PASSKEY_PARAM, USER_TOKEN_HEADER, USER_TOKEN_PARAM};
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct HostedEmailAuthenticator {
    service: Arc<HostedEmailService>,
}

impl HostedEmailAuthenticator {
    pub(super) fn new(service: Arc<HostedEmailService>) -> Self {
        HostedEmailAuthenticator { service }
    }
}

#[async_trait]
impl Authenticator for HostedEmailAuthenticator {
    fn kind(&self) -> AuthKind {
        AuthKind::HostedEmail
    }

    /// The user token is the secret; the passkey names the client and is forwarded.
    fn carriers(&self) -> Carriers {
        Carriers {
            headers: vec![USER_TOKEN_HEADER.to_owned()],
            stripped_everywhere: false,
            secret_parameters: &[USER_TOKEN_PARAM],
        }
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let mut tokens = request.parameters.all(USER_TOKEN_PARAM);
        for header in request.headers.get_all(USER_TOKEN_HEADER) {
            tokens.push(
                String::from_utf8_lossy(header.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
        let token = match tokens.as_slice() {
            [] => return AuthOutcome::NotPresent,
            [token] => token,
            // Two tokens (or one twice): one request, one identity, no guessing.
            _ => return AuthOutcome::Deny(AuthDenial::Invalid),
        };
        let passkeys = request.parameters.all(PASSKEY_PARAM);
        let [passkey] = passkeys.as_slice() else {
            return AuthOutcome::Deny(AuthDenial::Invalid);
        };
        match self.service.verify_user_token(passkey, token) {
            Some(principal) => AuthOutcome::Allow(principal),
            None => AuthOutcome::Deny(AuthDenial::Invalid),
        }
    }
}
