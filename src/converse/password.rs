//! Password hashes: argon2id PHC strings, verified on the blocking pool under a concurrency cap.

use crate::config::converse::{ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_PASSES};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One lane: the OWASP minimum the config accepts, 19 MiB and 2 passes.
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_PASSES, LANES, None)
        .expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new argon2id PHC string for `password` (what `keyway hash-password` prints).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters cannot fail")
        .to_string()
}

/// Verifies passwords; at most `permits` hashes run at once, so a login flood cannot exhaust
/// memory, and at most `queued` more wait for a turn: beyond that a login is refused at once
/// rather than kept waiting without limit. Unknown accounts are checked against a dummy hash so
/// they take as long as known ones.
pub struct PasswordChecker {
    permits: Semaphore,
    /// Places for the running and the waiting checks.
    places: Semaphore,
    dummy: Arc<str>,
}

/// Every place in the queue is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl PasswordChecker {
    pub fn new(permits: usize, queued: usize) -> Self {
        PasswordChecker {
            permits: Semaphore::new(permits),
            places: Semaphore::new(permits + queued),
            dummy: hash_password("keyway dummy password, never valid").into(),
        }
    }

    /// True when `password` matches `phc`; with `None`, spends the same time and returns false.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Busy> {
        let _place = self.places.try_acquire().map_err(|_| Busy)?;
        let Ok(_permit) = self.permits.acquire().await else {
            return Ok(false);
        };
        let known = phc.is_some();
        let phc = self.hash_to_check(phc);
        let password = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|parsed| {
                hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        Ok(known && matched)
    }

    /// The hash a login is checked against: the account's, or for an unknown account a dummy
    /// made with the same parameters, so both cost one full argon2id verification.
    fn hash_to_check(&self, phc: Option<&str>) -> Arc<str> {
        phc.map_or_else(|| self.dummy.clone(), Arc::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_cost_a_full_verification() {
        let phc = hash_password("password1");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(crate::config::converse::check_phc(&phc).is_ok());
        let checker = PasswordChecker::new(1, 0);
        assert_eq!(checker.verify("password1", Some(&phc)).await, Ok(true));
        assert_eq!(checker.verify("password2", Some(&phc)).await, Ok(false));
        assert_eq!(
            checker
                .verify("keyway dummy password, never valid", None)
                .await,
            Ok(false),
            "the dummy never lets anyone in"
        );
        // An unknown account is checked against a hash with the same cost parameters.
        let dummy = checker.hash_to_check(None);
        let parsed = PasswordHash::new(&dummy).unwrap();
        assert_eq!(
            Params::try_from(&parsed).unwrap(),
            Params::try_from(&PasswordHash::new(&phc).unwrap()).unwrap()
        );
        assert_eq!(&*checker.hash_to_check(Some(&phc)), phc.as_str());
    }

    #[tokio::test]
    async fn a_full_queue_answers_at_once() {
        let phc = hash_password("password1");
        let checker = Arc::new(PasswordChecker::new(1, 1));
        let running: Vec<_> = (0..2)
            .map(|_| {
                let (checker, phc) = (checker.clone(), phc.clone());
                tokio::spawn(async move { checker.verify("password1", Some(&phc)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        // One check runs and one waits: a third finds no place.
        assert_eq!(checker.verify("password1", Some(&phc)).await, Err(Busy));
        for check in running {
            assert_eq!(check.await.unwrap(), Ok(true));
        }
        assert_eq!(checker.verify("password1", Some(&phc)).await, Ok(true));
    }
}
