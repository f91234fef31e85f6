//! Limits on authentication emails: per address (so nobody is flooded) and per client passkey
//! (so one client cannot burn the mail budget). GCRA limits kept where the store says
//! ([`CounterBackend`]): in this process, or in Redis for the whole fleet. Addresses are
//! counted by their SHA-256, so none is written to Redis.

use super::HostedEmailError;
use crate::store::counters::{CounterBackend, RateLimiter};
use crate::store::{SecretKey, StoreError};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct SendLimits {
    per_address: Arc<dyn RateLimiter>,
    per_client: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for SendLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendLimits")
    }
}

impl SendLimits {
    pub(super) fn new(
        per_address_per_hour: NonZeroU32,
        per_client_per_minute: NonZeroU32,
        counters: &CounterBackend,
    ) -> Self {
        let hour = Duration::from_secs(3600);
        let minute = Duration::from_secs(60);
        SendLimits {
            per_address: counters.rate_limiter("address", per_address_per_hour, hour),
            per_client: counters.rate_limiter("client", per_client_per_minute, minute),
        }
    }

    /// Counts one email for `client` to `address`; 429-01 with Retry-After when over a limit.
    pub(super) async fn admit(&self, client: &str, address: &str) -> Result<(), HostedEmailError> {
        check(self.per_client.admit(client).await)?;
        let address = SecretKey::of(address.to_lowercase().as_bytes()).to_hex();
        check(self.per_address.admit(&address).await)
    }
}

fn check(admitted: Result<Option<Duration>, StoreError>) -> Result<(), HostedEmailError> {
    match admitted? {
        None => Ok(()),
        Some(wait) => Err(HostedEmailError::RateLimited {
            retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_limit_is_counted_separately_and_says_when_to_retry() {
        let limits = SendLimits::new(
            NonZeroU32::new(2).unwrap(),
            NonZeroU32::new(3).unwrap(),
            &CounterBackend::local(),
        );
        assert!(limits.admit("c", "a@example.com").await.is_ok());
        assert!(limits.admit("c", "A@example.com").await.is_ok());
        // The third email to one address (any case) in the hour is refused for ~30 minutes.
        match limits.admit("c", "a@EXAMPLE.com").await {
            Err(HostedEmailError::RateLimited {
                retry_after_seconds,
            }) => assert!(
                (1..=1800).contains(&retry_after_seconds),
                "{retry_after_seconds}"
            ),
            other => panic!("{other:?}"),
        }
        // That refusal used the client's third email of the minute; the next is refused.
        assert!(matches!(
            limits.admit("c", "b@example.com").await,
            Err(HostedEmailError::RateLimited { .. })
        ));
        assert!(limits.admit("other", "b@example.com").await.is_ok());
    }
}
