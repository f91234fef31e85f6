//! `auth = ["none"]`: the route is public; every request passes as an anonymous principal.

use super::{AuthOutcome, AuthRequest, Authenticator, Principal};
use async_trait::async_trait;

#[derive(Debug)]
pub struct NoneAuthenticator;

#[async_trait]
impl Authenticator for NoneAuthenticator {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn authenticate(&self, _request: &AuthRequest<'_>) -> AuthOutcome {
        AuthOutcome::Allow(Principal::anonymous(self.name()))
    }
}
