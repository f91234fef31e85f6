//! Password hashes: argon2id PHC strings, verified on the blocking pool under a concurrency cap.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("static argon2 parameters are valid");
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

/// Checks a configured hash: an argon2id PHC string at least as strong as ours.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc)
        .map_err(|_| "is not a PHC string (use `keyway hash-password`)".to_owned())?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err("must be an argon2id hash".to_owned());
    }
    let params =
        Params::try_from(&parsed).map_err(|_| "has invalid argon2 parameters".to_owned())?;
    if params.m_cost() < MEMORY_KIB || params.t_cost() < PASSES {
        return Err(format!("is weaker than m={MEMORY_KIB},t={PASSES}"));
    }
    Ok(())
}

/// Verifies passwords; at most `permits` hashes run at once, so a login flood cannot exhaust
/// memory. Unknown accounts are checked against a dummy hash so they take as long as known ones.
pub struct PasswordChecker {
    permits: Semaphore,
    dummy: Arc<str>,
    /// argon2 verifications run, known account or not.
    verifications: AtomicU64,
}

impl PasswordChecker {
    pub fn new(permits: usize) -> Self {
        PasswordChecker {
            permits: Semaphore::new(permits),
            dummy: hash_password("keyway dummy password, never valid").into(),
            verifications: AtomicU64::new(0),
        }
    }

    /// True when `password` matches `phc`; with `None`, spends the same time and returns false.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = phc.is_some();
        let phc: Arc<str> = phc.map_or_else(|| self.dummy.clone(), Arc::from);
        let password = password.to_owned();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|parsed| {
                hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        known && matched
    }

    /// How many argon2 verifications have run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_checked() {
        let phc = hash_password("password1");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(check_phc(&phc).is_ok());
        assert!(check_phc("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA").is_err());
        assert!(check_phc("plain").is_err());
        let checker = PasswordChecker::new(1);
        assert!(checker.verify("password1", Some(&phc)).await);
        assert!(!checker.verify("password2", Some(&phc)).await);
        assert_eq!(checker.verifications(), 2);
        assert!(
            !checker
                .verify("keyway dummy password, never valid", None)
                .await
        );
        assert_eq!(
            checker.verifications(),
            3,
            "an unknown account costs a full verification"
        );
    }
}
