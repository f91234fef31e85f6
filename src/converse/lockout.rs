//! Brute-force protection for the login endpoint: attempts per account and per client IP,
//! counted *before* the password is checked, exponential lock-outs that lift by themselves, a
//! reset on success.
//!
//! An attempt takes a slot from both counters before any hashing ([`Lockout::begin`]), so a
//! burst of concurrent guesses cannot all be verified while the first ones are still hashing:
//! per lock window, at most `max_failures` guesses for an account and `ip_max_failures` from an
//! IP are ever checked, whatever the concurrency. The counters live where the store says
//! ([`CounterBackend`]): in this process, or in Redis for the whole fleet. Accounts are keyed by
//! the SHA-256 of the normalised email, so a long email costs no more than a short one and no
//! address is written to Redis.

use crate::config::converse::LockoutSettings;
use crate::store::StoreError;
use crate::store::counters::{Admission, AttemptCounters, AttemptPolicy, CounterBackend};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Lockout {
    accounts: Arc<dyn AttemptCounters>,
    clients: Arc<dyn AttemptCounters>,
    account_policy: AttemptPolicy,
    client_policy: AttemptPolicy,
}

/// A held slot of one counter.
struct Slot {
    key: String,
    id: u64,
}

/// A login attempt that holds a slot of its account and of its client until it is resolved.
/// Dropped unresolved (the password could not be checked), it gives the slots back uncounted.
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    account: Option<Slot>,
    client: Option<Slot>,
}

impl Attempt<'_> {
    /// A wrong password: counted against the account and the client.
    pub async fn failed(mut self) -> Result<(), StoreError> {
        let lockout = self.lockout;
        if let Some(slot) = self.account.take() {
            let counted = lockout
                .accounts
                .fail(&slot.key, slot.id, &lockout.account_policy);
            counted.await?;
        }
        if let Some(slot) = self.client.take() {
            let counted = lockout
                .clients
                .fail(&slot.key, slot.id, &lockout.client_policy);
            counted.await?;
        }
        Ok(())
    }

    /// The account's owner got in: its counter starts over (the client's does not).
    pub async fn succeeded(mut self) -> Result<(), StoreError> {
        if let Some(slot) = self.client.take() {
            self.lockout.clients.release(&slot.key, slot.id);
        }
        if let Some(slot) = self.account.take() {
            self.lockout.accounts.reset(&slot.key, slot.id).await?;
        }
        Ok(())
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.account.take() {
            self.lockout.accounts.release(&slot.key, slot.id);
        }
        if let Some(slot) = self.client.take() {
            self.lockout.clients.release(&slot.key, slot.id);
        }
    }
}

/// `begin`'s refusal: locked (or every slot busy) for this long.
#[derive(Debug)]
pub struct Locked(pub Duration);

impl Lockout {
    pub fn new(settings: &LockoutSettings, counters: &CounterBackend) -> Self {
        let policy = |threshold| AttemptPolicy {
            threshold,
            base: settings.base,
            max: settings.max,
        };
        Lockout {
            accounts: counters.attempts("account"),
            clients: counters.attempts("client"),
            account_policy: policy(settings.max_failures),
            client_policy: policy(settings.ip_max_failures),
        }
    }

    /// Begins an attempt for `account` (the normalised email, known or not) from `client`,
    /// before any password work.
    pub async fn begin(
        &self,
        account: &str,
        client: Option<IpAddr>,
    ) -> Result<Result<Attempt<'_>, Locked>, StoreError> {
        let mut attempt = Attempt {
            lockout: self,
            account: None,
            client: None,
        };
        let account = account_key(account);
        match self.accounts.begin(&account, &self.account_policy).await? {
            Admission::Admitted(id) => attempt.account = Some(Slot { key: account, id }),
            Admission::Wait(wait) => return Ok(Err(Locked(wait))),
        }
        if let Some(ip) = client {
            let key = ip.to_string();
            // On a refusal or an error, dropping `attempt` gives the account's slot back.
            match self.clients.begin(&key, &self.client_policy).await? {
                Admission::Admitted(id) => attempt.client = Some(Slot { key, id }),
                Admission::Wait(wait) => return Ok(Err(Locked(wait))),
            }
        }
        Ok(Ok(attempt))
    }
}

/// The account counter's key: the hex SHA-256 of the normalised email.
fn account_key(account: &str) -> String {
    Sha256::digest(account.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::counters::LocalAttempts;

    fn settings() -> LockoutSettings {
        LockoutSettings {
            max_failures: 3,
            ip_max_failures: 10,
            base: Duration::from_secs(2),
            max: Duration::from_secs(5),
        }
    }

    /// A lockout over local counters, and the account counters (to lift locks as time would).
    fn lockout() -> (Lockout, Arc<LocalAttempts>) {
        let accounts = Arc::new(LocalAttempts::default());
        let mut lockout = Lockout::new(&settings(), &CounterBackend::local());
        lockout.accounts = accounts.clone();
        (lockout, accounts)
    }

    async fn fail(lockout: &Lockout, account: &str, ip: Option<IpAddr>) {
        let attempt = lockout
            .begin(account, ip)
            .await
            .unwrap()
            .expect("not locked");
        attempt.failed().await.unwrap();
    }

    async fn wait_of(lockout: &Lockout, account: &str, ip: Option<IpAddr>) -> Duration {
        match lockout.begin(account, ip).await.unwrap() {
            Err(Locked(wait)) => wait,
            Ok(_) => panic!("{account} is not locked"),
        }
    }

    #[tokio::test]
    async fn locks_after_threshold_backs_off_and_resets() {
        let (lockout, accounts) = lockout();
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            fail(&lockout, "a@x", ip).await;
        }
        let retry_after = wait_of(&lockout, "a@x", ip).await;
        assert!(retry_after > Duration::from_millis(1500) && retry_after <= Duration::from_secs(2));
        assert!(
            lockout.begin("b@x", None).await.unwrap().is_ok(),
            "other accounts are not locked"
        );
        // The lock lifts by itself; one more failure doubles it, and the cap holds.
        accounts.lift(&account_key("a@x"));
        fail(&lockout, "a@x", ip).await;
        let retry_after = wait_of(&lockout, "a@x", ip).await;
        assert!(
            retry_after > Duration::from_secs(3),
            "doubled: {retry_after:?}"
        );
        accounts.lift(&account_key("a@x"));
        fail(&lockout, "a@x", ip).await;
        let retry_after = wait_of(&lockout, "a@x", ip).await;
        assert!(
            retry_after <= Duration::from_secs(5),
            "capped: {retry_after:?}"
        );
        accounts.lift(&account_key("a@x"));
        let attempt = lockout.begin("a@x", None).await.unwrap().expect("lifted");
        attempt.succeeded().await.unwrap();
        assert!(
            lockout.begin("a@x", None).await.unwrap().is_ok(),
            "a success resets the account"
        );
    }

    #[tokio::test]
    async fn concurrent_attempts_never_exceed_the_threshold() {
        let (lockout, _) = lockout();
        let ip: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        // Thirty guesses arrive together: only three get a slot while none has finished.
        let mut admitted = Vec::new();
        for _ in 0..30 {
            if let Ok(attempt) = lockout.begin("a@x", ip).await.unwrap() {
                admitted.push(attempt);
            }
        }
        assert_eq!(admitted.len(), 3);
        for attempt in admitted {
            attempt.failed().await.unwrap();
        }
        assert!(
            lockout.begin("a@x", ip).await.unwrap().is_err(),
            "locked once they failed"
        );
        // An attempt that could not be checked gives its slot back, uncounted.
        let attempt = lockout.begin("b@x", ip).await.unwrap();
        drop(attempt);
        let mut slots = Vec::new();
        for _ in 0..5 {
            if let Ok(attempt) = lockout.begin("b@x", ip).await.unwrap() {
                slots.push(attempt);
            }
        }
        assert_eq!(slots.len(), 3);
    }

    #[tokio::test]
    async fn a_client_spraying_accounts_is_locked() {
        let (lockout, _) = lockout();
        let ip = Some("10.0.0.9".parse().unwrap());
        for n in 0..10 {
            fail(&lockout, &format!("user{n}@x"), ip).await;
        }
        assert!(lockout.begin("fresh@x", ip).await.unwrap().is_err());
        assert!(lockout.begin("fresh@x", None).await.unwrap().is_ok());
    }
}
