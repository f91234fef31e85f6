//! Limits on authentication emails: per address (so nobody is flooded) and per client passkey
//! (so one client cannot burn the mail budget). GCRA limiters from `governor`.

use super::HostedEmailError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forget idle keys after this many checks, so the key maps stay bounded.
const RETAIN_EVERY: u64 = 4096;

pub(super) struct SendLimits {
    per_address: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl std::fmt::Debug for SendLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendLimits")
    }
}

impl SendLimits {
    pub(super) fn new(per_address_per_hour: NonZeroU32, per_client_per_minute: NonZeroU32) -> Self {
        SendLimits {
            per_address: DefaultKeyedRateLimiter::keyed(Quota::per_hour(per_address_per_hour)),
            per_client: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_client_per_minute)),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one email for `client` to `address`; 429-01 with Retry-After when over a limit.
    pub(super) fn admit(&self, client: &str, address: &str) -> Result<(), HostedEmailError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.per_address.retain_recent();
            self.per_client.retain_recent();
        }
        check(&self.per_client, client.to_owned())?;
        check(&self.per_address, address.to_lowercase())
    }
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), HostedEmailError> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        HostedEmailError::RateLimited {
            retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_counted_separately_and_says_when_to_retry() {
        let limits = SendLimits::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(3).unwrap());
        assert!(limits.admit("c", "a@example.com").is_ok());
        assert!(limits.admit("c", "A@example.com").is_ok());
        // The third email to one address (any case) in the hour is refused for ~30 minutes.
        match limits.admit("c", "a@EXAMPLE.com") {
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
            limits.admit("c", "b@example.com"),
            Err(HostedEmailError::RateLimited { .. })
        ));
        assert!(limits.admit("other", "b@example.com").is_ok());
    }
}
