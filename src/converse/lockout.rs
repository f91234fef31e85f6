//! Brute-force protection for the login endpoint: attempts per account and per client IP,
//! counted *before* the password is checked, exponential lock-outs that lift by themselves, a
//! reset on success.
//!
//! An attempt takes a slot from both counters before any hashing ([`Lockout::begin`]), so a
//! burst of concurrent guesses cannot all be verified while the first ones are still hashing:
//! per lock window, at most `max_failures` guesses for an account and `ip_max_failures` from an
//! IP are ever checked, whatever the concurrency. Accounts are keyed by the SHA-256 of the
//! normalised email, so a long email costs the table no more than a short one.

use crate::config::converse::LockoutSettings;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters kept at most; idle ones are forgotten after a day.
const MAX_TRACKED: u64 = 100_000;
const IDLE_FORGET: Duration = Duration::from_secs(24 * 3600);
/// What a client is told to wait when every slot of the window is taken by attempts in flight.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// An account, as the tables know it: the digest of its normalised email.
type AccountKey = [u8; 32];

#[derive(Debug, Default)]
struct Attempts {
    /// Failed attempts since the last success.
    failures: u32,
    /// Attempts begun and not yet resolved.
    in_flight: u32,
    locked_until: Option<Instant>,
}

struct Tracker<K> {
    counters: Cache<K, Arc<Mutex<Attempts>>>,
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

    fn counter(&self, key: &K) -> Arc<Mutex<Attempts>> {
        self.counters.get_with(key.clone(), Default::default)
    }

    /// Takes a slot, or says how long to wait: while locked, or when the attempts in flight
    /// already fill what the window allows (before the first lock: the failures left to the
    /// threshold; after it: one at a time).
    fn begin(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let counter = self.counter(key);
        let mut attempts = counter.lock().expect("lockout lock");
        if let Some(remaining) = attempts
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|remaining| !remaining.is_zero())
        {
            return Err(remaining);
        }
        let allowed = self.threshold.saturating_sub(attempts.failures).max(1);
        if attempts.in_flight >= allowed {
            return Err(BUSY_RETRY);
        }
        attempts.in_flight += 1;
        Ok(())
    }

    fn release(&self, key: &K) {
        if let Some(counter) = self.counters.get(key) {
            let mut attempts = counter.lock().expect("lockout lock");
            attempts.in_flight = attempts.in_flight.saturating_sub(1);
        }
    }

    fn fail(&self, key: &K, now: Instant, settings: &LockoutSettings) {
        let counter = self.counter(key);
        let mut attempts = counter.lock().expect("lockout lock");
        attempts.in_flight = attempts.in_flight.saturating_sub(1);
        attempts.failures = attempts.failures.saturating_add(1);
        if attempts.failures >= self.threshold {
            let doublings = (attempts.failures - self.threshold).min(30);
            let lock = settings
                .base
                .saturating_mul(1 << doublings)
                .min(settings.max);
            attempts.locked_until = Some(now + lock);
        }
    }
}

pub struct Lockout {
    settings: LockoutSettings,
    accounts: Tracker<AccountKey>,
    clients: Tracker<IpAddr>,
}

/// A login attempt that holds a slot of its account and of its client until it is resolved.
/// Dropped unresolved (the password could not be checked), it gives the slots back uncounted.
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    account: AccountKey,
    client: Option<IpAddr>,
    resolved: bool,
}

impl Attempt<'_> {
    /// A wrong password: counted against the account and the client.
    pub fn failed(mut self) {
        let now = Instant::now();
        let lockout = self.lockout;
        lockout.accounts.fail(&self.account, now, &lockout.settings);
        if let Some(ip) = self.client {
            lockout.clients.fail(&ip, now, &lockout.settings);
        }
        self.resolved = true;
    }

    /// The account's owner got in: its counter starts over (the client's does not).
    pub fn succeeded(mut self) {
        self.lockout.accounts.counters.invalidate(&self.account);
        if let Some(ip) = self.client {
            self.lockout.clients.release(&ip);
        }
        self.resolved = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.lockout.accounts.release(&self.account);
            if let Some(ip) = self.client {
                self.lockout.clients.release(&ip);
            }
        }
    }
}

impl Lockout {
    pub fn new(settings: LockoutSettings) -> Self {
        Lockout {
            accounts: Tracker::new(settings.max_failures),
            clients: Tracker::new(settings.ip_max_failures),
            settings,
        }
    }

    /// Begins an attempt for `account` (the normalised email, known or not) from `client`,
    /// before any password work; `Err` says how long to wait.
    pub fn begin(&self, account: &str, client: Option<IpAddr>) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let account: AccountKey = Sha256::digest(account.as_bytes()).into();
        self.accounts.begin(&account, now)?;
        if let Some(ip) = client
            && let Err(wait) = self.clients.begin(&ip, now)
        {
            self.accounts.release(&account);
            return Err(wait);
        }
        Ok(Attempt {
            lockout: self,
            account,
            client,
            resolved: false,
        })
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

    /// Ends an account's lock now, as time would.
    fn lift(lockout: &Lockout, account: &str) {
        let key: AccountKey = Sha256::digest(account.as_bytes()).into();
        lockout.accounts.counter(&key).lock().unwrap().locked_until = None;
    }

    fn fail(lockout: &Lockout, account: &str, ip: Option<IpAddr>) {
        lockout.begin(account, ip).expect("not locked").failed();
    }

    #[test]
    fn locks_after_threshold_backs_off_and_resets() {
        let lockout = lockout();
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            fail(&lockout, "a@x", ip);
        }
        let retry_after = lockout.begin("a@x", ip).err().expect("locked");
        assert!(retry_after > Duration::from_millis(1500) && retry_after <= Duration::from_secs(2));
        assert!(
            lockout.begin("b@x", None).is_ok(),
            "other accounts are not locked"
        );
        // The lock lifts by itself; one more failure doubles it, and the cap holds.
        lift(&lockout, "a@x");
        fail(&lockout, "a@x", ip);
        let retry_after = lockout.begin("a@x", ip).err().expect("locked");
        assert!(
            retry_after > Duration::from_secs(3),
            "doubled: {retry_after:?}"
        );
        lift(&lockout, "a@x");
        fail(&lockout, "a@x", ip);
        let retry_after = lockout.begin("a@x", ip).err().expect("locked");
        assert!(
            retry_after <= Duration::from_secs(5),
            "capped: {retry_after:?}"
        );
        lift(&lockout, "a@x");
        lockout.begin("a@x", None).expect("lifted").succeeded();
        assert!(
            lockout.begin("a@x", None).is_ok(),
            "a success resets the account"
        );
    }

    #[test]
    fn concurrent_attempts_never_exceed_the_threshold() {
        let lockout = lockout();
        let ip: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        // Thirty guesses arrive together: only three get a slot while none has finished.
        let admitted: Vec<Attempt<'_>> = (0..30)
            .filter_map(|_| lockout.begin("a@x", ip).ok())
            .collect();
        assert_eq!(admitted.len(), 3);
        for attempt in admitted {
            attempt.failed();
        }
        assert!(lockout.begin("a@x", ip).is_err(), "locked once they failed");
        // An attempt that could not be checked gives its slot back, uncounted.
        let attempt = lockout.begin("b@x", ip).unwrap();
        drop(attempt);
        let slots: Vec<Attempt<'_>> = (0..5)
            .filter_map(|_| lockout.begin("b@x", ip).ok())
            .collect();
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn a_client_spraying_accounts_is_locked() {
        let lockout = lockout();
        let ip = Some("10.0.0.9".parse().unwrap());
        for n in 0..10 {
            fail(&lockout, &format!("user{n}@x"), ip);
        }
        assert!(lockout.begin("fresh@x", ip).is_err());
        assert!(lockout.begin("fresh@x", None).is_ok());
    }
}
