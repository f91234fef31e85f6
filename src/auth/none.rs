//! `auth = ["none"]`: the route is public; every request passes as an anonymous principal.

use super::{AuthOutcome, AuthRequest, Authenticator, Carriers};
use crate::identity::{AuthKind, Principal};
use async_trait::async_trait;

#[derive(Debug)]
pub(super) struct NoneAuthenticator;

#[async_trait]
impl Authenticator for NoneAuthenticator {
    fn kind(&self) -> AuthKind {
        AuthKind::None
    }

    fn carriers(&self) -> Carriers {
        Carriers::default()
    }

    async fn authenticate(&self, _request: &AuthRequest<'_>) -> AuthOutcome {
        AuthOutcome::Allow(Principal::anonymous())
    }
}
