//! Brute-force protection for the login endpoint: failures per account and per client IP,
//! exponential lock-outs that lift by themselves, a reset on success.

use crate::config::converse::LockoutSettings;
use moka::sync::Cache;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters kept at most; idle ones are forgotten after a day.
const MAX_TRACKED: u64 = 100_000;
const IDLE_FORGET: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Whether a login attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    Locked { retry_after: Duration },
}

struct Tracker<K> {
    counters: Cache<K, Arc<Mutex<Failures>>>,
    threshold: u32,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Tracker<K> {
    fn new(threshold: u32) -> Self {
        Tracker {
            counters: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(IDLE_FORGET)
                .build(),
            threshold,
        }
    }

    fn remaining_lock(&self, key: &K, now: Instant) -> Option<Duration> {
        let counter = self.counters.get(key)?;
        let failures = counter.lock().expect("lockout lock");
        failures
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
    }

    fn fail(&self, key: K, now: Instant, settings: &LockoutSettings) {
        let counter = self.counters.get_with(key, Default::default);
        let mut failures = counter.lock().expect("lockout lock");
        failures.count = failures.count.saturating_add(1);
        if failures.count >= self.threshold {
            let doublings = (failures.count - self.threshold).min(30);
            let lock = settings
                .base
                .saturating_mul(1 << doublings)
                .min(settings.max);
            failures.locked_until = Some(now + lock);
        }
    }
}

pub struct Lockout {
    settings: LockoutSettings,
    accounts: Tracker<String>,
    clients: Tracker<IpAddr>,
}

impl Lockout {
    pub fn new(settings: LockoutSettings) -> Self {
        Lockout {
            accounts: Tracker::new(settings.max_failures),
            clients: Tracker::new(settings.ip_max_failures),
            settings,
        }
    }

    /// Checked before any password work. `account` is the lower-cased email, known or not.
    pub fn gate(&self, account: &str, client: Option<IpAddr>) -> Gate {
        let now = Instant::now();
        let by_account = self.accounts.remaining_lock(&account.to_owned(), now);
        let by_client = client.and_then(|ip| self.clients.remaining_lock(&ip, now));
        match by_account.max(by_client) {
            Some(retry_after) => Gate::Locked { retry_after },
            None => Gate::Open,
        }
    }

    pub fn record_failure(&self, account: &str, client: Option<IpAddr>) {
        let now = Instant::now();
        self.accounts.fail(account.to_owned(), now, &self.settings);
        if let Some(ip) = client {
            self.clients.fail(ip, now, &self.settings);
        }
    }

    /// The account's owner got in: its counter starts over (the client's does not).
    pub fn record_success(&self, account: &str) {
        self.accounts.counters.invalidate(&account.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout() -> Lockout {
        Lockout::new(LockoutSettings {
            max_failures: 3,
            ip_max_failures: 10,
            base: Duration::from_secs(2),
            max: Duration::from_secs(5),
        })
    }

    #[test]
    fn locks_after_threshold_backs_off_and_resets() {
        let lockout = lockout();
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..2 {
            lockout.record_failure("a@x", ip);
            assert_eq!(lockout.gate("a@x", ip), Gate::Open);
        }
        lockout.record_failure("a@x", ip);
        let Gate::Locked { retry_after } = lockout.gate("a@x", ip) else {
            panic!("locked")
        };
        assert!(retry_after > Duration::from_millis(1500) && retry_after <= Duration::from_secs(2));
        lockout.record_failure("a@x", ip);
        let Gate::Locked { retry_after } = lockout.gate("a@x", ip) else {
            panic!("locked")
        };
        assert!(
            retry_after > Duration::from_secs(3),
            "doubled: {retry_after:?}"
        );
        lockout.record_failure("a@x", ip);
        let Gate::Locked { retry_after } = lockout.gate("a@x", ip) else {
            panic!("locked")
        };
        assert!(
            retry_after <= Duration::from_secs(5),
            "capped: {retry_after:?}"
        );
        assert_eq!(
            lockout.gate("b@x", None),
            Gate::Open,
            "other accounts are not locked"
        );
        lockout.record_success("a@x");
        assert_eq!(lockout.gate("a@x", None), Gate::Open);
    }

    #[test]
    fn a_client_spraying_accounts_is_locked() {
        let lockout = lockout();
        let ip = Some("10.0.0.9".parse().unwrap());
        for n in 0..10 {
            lockout.record_failure(&format!("user{n}@x"), ip);
        }
        assert!(matches!(lockout.gate("fresh@x", ip), Gate::Locked { .. }));
        assert_eq!(lockout.gate("fresh@x", None), Gate::Open);
    }
}
