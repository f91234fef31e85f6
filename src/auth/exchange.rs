//! `auth = ["exchange"]`: a `userInfoId` and its PKCE `codeVerifier`, from the query (the
//! seed's start-chat call) or else from the body (its set-identity call). The verifier is
//! the secret half: it is never forwarded. Either given twice (in any spelling, or in both the
//! query and the body) is refused, so the one userInfoId forwarded is the one authenticated.

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers};
use crate::exchange::ExchangeService;
use crate::identity::{AuthDenial, AuthKind, CODE_VERIFIER_PARAM, USER_INFO_ID_PARAM};
use async_trait::async_trait;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct ExchangeAuthenticator {
    service: Arc<ExchangeService>,
}

impl ExchangeAuthenticator {
    pub(super) fn new(service: Arc<ExchangeService>) -> Self {
        ExchangeAuthenticator { service }
    }
}

/// The (userInfoId, codeVerifier) values, from the query if it has either, else the body.
fn presented<'a>(request: &AuthRequest<'a>) -> (Vec<Cow<'a, str>>, Vec<Cow<'a, str>>) {
    let parameters = request.parameters;
    let from_query = (
        parameters.in_query(USER_INFO_ID_PARAM),
        parameters.in_query(CODE_VERIFIER_PARAM),
    );
    if !from_query.0.is_empty() || !from_query.1.is_empty() {
        return from_query;
    }
    let from_body = |name| {
        parameters
            .in_body(name)
            .into_iter()
            .map(Cow::Borrowed)
            .collect()
    };
    (
        from_body(USER_INFO_ID_PARAM),
        from_body(CODE_VERIFIER_PARAM),
    )
}

#[async_trait]
impl Authenticator for ExchangeAuthenticator {
    fn kind(&self) -> AuthKind {
        AuthKind::Exchange
    }

    fn carriers(&self) -> Carriers {
        Carriers {
            secret_parameters: &[CODE_VERIFIER_PARAM],
            ..Carriers::default()
        }
    }

    async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let repeated = [USER_INFO_ID_PARAM, CODE_VERIFIER_PARAM]
            .iter()
            .any(|name| request.parameters.all(name).len() > 1);
        if repeated {
            return AuthOutcome::Deny(AuthDenial::Repeated);
        }
        let (user_info_id, verifier) = match presented(request) {
            (ids, verifiers) if ids.is_empty() && verifiers.is_empty() => {
                return AuthOutcome::NotPresent;
            }
            (ids, verifiers) => match (ids.as_slice(), verifiers.as_slice()) {
                ([id], [verifier]) => (id.clone(), verifier.clone()),
                // Half a credential (the other half elsewhere, or missing).
                _ => return AuthOutcome::Deny(AuthDenial::Invalid),
            },
        };
        match self
            .service
            .redeem(&user_info_id, &verifier, request.tenants)
            .await
        {
            Ok(Some(principal)) => AuthOutcome::Allow(principal),
            Ok(None) => AuthOutcome::Deny(AuthDenial::Invalid),
            Err(_) => AuthOutcome::Deny(AuthDenial::Unavailable),
        }
    }
}
