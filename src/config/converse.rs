//! `[converse]`: the token API of seed 001, its user directory and its login lock-outs.

use super::field::{Checker, Field};
use super::raw::{DirectoryKind, RawConverse, RawLockout, RawUser};
use super::routes::compile_api_prefix;
use super::secret::Secret;
use http::HeaderName;
use std::time::Duration;

/// The weakest argon2id a configured password hash may use: OWASP's minimum, 19 MiB and 2
/// passes (and what `keyway hash-password` writes, with 1 lane).
pub const ARGON2_MIN_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_MIN_PASSES: u32 = 2;

#[derive(Debug, Clone)]
pub struct ConverseSettings {
    pub header: HeaderName,
    /// Without trailing slash, e.g. `/api/user`.
    pub api_prefix: String,
    pub default_timeout_seconds: i64,
    pub max_timeout_seconds: i64,
    pub allow_non_expiring: bool,
    pub directory: DirectorySettings,
    pub max_concurrent_hashes: usize,
    pub max_queued_hashes: usize,
    pub max_body_bytes: u64,
    pub purge_interval: Duration,
    pub lockout: LockoutSettings,
}

#[derive(Debug, Clone)]
pub enum DirectorySettings {
    /// `[[converse.users]]`, emails lower-cased.
    Static(Vec<UserEntry>),
    /// keyway posts `{email, password}` to `url`; 2xx means valid.
    Upstream { url: String, timeout: Duration },
}

#[derive(Debug, Clone)]
pub struct UserEntry {
    pub email: String,
    pub password_hash: Secret,
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct LockoutSettings {
    pub max_failures: u32,
    pub ip_max_failures: u32,
    pub base: Duration,
    pub max: Duration,
}

pub(super) fn compile_converse(
    raw: RawConverse,
    checker: &mut Checker,
) -> Option<ConverseSettings> {
    let key = |field: &str| format!("converse.{field}");
    let header = checker.get(&key("header"), raw.header).and_then(|header| {
        checker.check(
            key("header"),
            HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("{header:?} is not a valid header name")),
        )
    });
    let api_prefix = compile_api_prefix(&key("api_prefix"), raw.api_prefix, "/api/user", checker);
    let timeouts = compile_timeouts(
        raw.default_timeout_seconds,
        raw.max_timeout_seconds,
        raw.allow_non_expiring,
        checker,
    );
    let at_least_one = |checker: &mut Checker, field: &str, value: Option<u64>| {
        if value == Some(0) {
            checker.fail(key(field), "must be at least 1");
        }
        value
    };
    let hashes = checker.get(&key("max_concurrent_hashes"), raw.max_concurrent_hashes);
    let hashes = at_least_one(checker, "max_concurrent_hashes", hashes.map(|n| n as u64));
    let queued = checker.get(&key("max_queued_hashes"), raw.max_queued_hashes);
    let body = checker.get(&key("max_body_bytes"), raw.max_body_bytes);
    let body = at_least_one(checker, "max_body_bytes", body);
    let purge = checker.get(&key("purge_interval_seconds"), raw.purge_interval_seconds);
    let purge = at_least_one(checker, "purge_interval_seconds", purge);
    let lockout = compile_lockout(raw.lockout, checker);
    let directory = compile_directory(
        raw.directory,
        raw.directory_url,
        raw.directory_timeout_ms,
        raw.users,
        checker,
    );
    let (default_timeout_seconds, max_timeout_seconds, allow_non_expiring) = timeouts?;
    Some(ConverseSettings {
        header: header?,
        api_prefix: api_prefix?,
        default_timeout_seconds,
        max_timeout_seconds,
        allow_non_expiring,
        directory: directory?,
        max_concurrent_hashes: hashes? as usize,
        max_queued_hashes: queued?,
        max_body_bytes: body?,
        purge_interval: Duration::from_secs(purge?),
        lockout: lockout?,
    })
}

/// (default, max, allow_non_expiring): `-1` never expires, and only when allowed.
fn compile_timeouts(
    default: Field<i64>,
    max: Field<i64>,
    allow: Field<bool>,
    checker: &mut Checker,
) -> Option<(i64, i64, bool)> {
    let default = checker.get("converse.default_timeout_seconds", default);
    let max = checker.get("converse.max_timeout_seconds", max);
    let allow = checker.get("converse.allow_non_expiring", allow);
    let (default, max, allow) = (default?, max?, allow?);
    if max < 1 {
        checker.fail("converse.max_timeout_seconds", "must be at least 1");
    }
    if default != -1 && !(1..=max).contains(&default) {
        checker.fail(
            "converse.default_timeout_seconds",
            "must be -1 or between 1 and max_timeout_seconds",
        );
    }
    if default == -1 && !allow {
        checker.fail(
            "converse.default_timeout_seconds",
            "is -1 but allow_non_expiring = false",
        );
    }
    Some((default, max, allow))
}

fn compile_lockout(raw: RawLockout, checker: &mut Checker) -> Option<LockoutSettings> {
    let key = |field: &str| format!("converse.lockout.{field}");
    let max_failures = checker.get(&key("max_failures"), raw.max_failures);
    let ip_max_failures = checker.get(&key("ip_max_failures"), raw.ip_max_failures);
    let base = checker.get(&key("base_seconds"), raw.base_seconds);
    let max = checker.get(&key("max_seconds"), raw.max_seconds);
    if max_failures == Some(0) || ip_max_failures == Some(0) {
        checker.fail(
            "converse.lockout",
            "max_failures and ip_max_failures must be at least 1",
        );
    }
    if let (Some(base), Some(max)) = (base, max)
        && (base == 0 || max < base)
    {
        checker.fail(
            "converse.lockout",
            "base_seconds must be at least 1 and at most max_seconds",
        );
    }
    Some(LockoutSettings {
        max_failures: max_failures?,
        ip_max_failures: ip_max_failures?,
        base: Duration::from_secs(base?),
        max: Duration::from_secs(max?),
    })
}

fn compile_directory(
    kind: Field<DirectoryKind>,
    url: Field<String>,
    timeout_ms: Field<u64>,
    users: Vec<RawUser>,
    checker: &mut Checker,
) -> Option<DirectorySettings> {
    let kind = checker.get("converse.directory", kind)?;
    let url = checker.get("converse.directory_url", url);
    let timeout_ms = checker.get("converse.directory_timeout_ms", timeout_ms);
    match (kind, url) {
        (DirectoryKind::Static, None) => {
            compile_users(users, checker).map(DirectorySettings::Static)
        }
        (DirectoryKind::Static, Some(_)) => {
            checker.fail(
                "converse.directory_url",
                "is only used with directory = \"upstream\"",
            );
            None
        }
        (DirectoryKind::Upstream, Some(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                checker.fail(
                    "converse.directory_url",
                    "must be an http:// or https:// URL",
                );
            }
            if !users.is_empty() {
                checker.fail(
                    "converse.users",
                    "are not used with directory = \"upstream\"",
                );
            }
            let timeout_ms = timeout_ms?;
            if !(1..=60_000).contains(&timeout_ms) {
                checker.fail(
                    "converse.directory_timeout_ms",
                    "must be between 1 and 60000",
                );
            }
            Some(DirectorySettings::Upstream {
                url,
                timeout: Duration::from_millis(timeout_ms),
            })
        }
        (DirectoryKind::Upstream, None) => {
            checker.fail(
                "converse.directory_url",
                "is required with directory = \"upstream\"",
            );
            None
        }
    }
}

fn compile_users(raw: Vec<RawUser>, checker: &mut Checker) -> Option<Vec<UserEntry>> {
    let mut users: Vec<UserEntry> = Vec::new();
    let mut valid = true;
    for (index, user) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("converse.users[{index}].{field}");
        let email = checker.require(&key("email"), user.email);
        let email = email.map(|email| email.trim().to_lowercase());
        if let Some(email) = &email {
            if !email.contains('@') {
                checker.fail(key("email"), "must be an email address");
            }
            if users.iter().any(|other| &other.email == email) {
                checker.fail(key("email"), format!("{email:?} is listed twice"));
            }
        }
        let hash = checker.require(&key("password_hash"), user.password_hash);
        let hash = hash.and_then(|hash| {
            checker.check(key("password_hash"), check_phc(hash.expose()).map(|_| hash))
        });
        let admin = checker.get(&key("admin"), user.admin);
        match (email, hash, admin) {
            (Some(email), Some(password_hash), Some(admin)) => users.push(UserEntry {
                email,
                password_hash,
                admin,
            }),
            _ => valid = false,
        }
    }
    valid.then_some(users)
}

/// Checks a configured hash: an argon2id PHC string at least as strong as the minimum.
pub fn check_phc(phc: &str) -> Result<(), String> {
    use argon2::password_hash::PasswordHash;
    let parsed = PasswordHash::new(phc)
        .map_err(|_| "is not a PHC string (use `keyway hash-password`)".to_owned())?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err("must be an argon2id hash".to_owned());
    }
    let params = argon2::Params::try_from(&parsed)
        .map_err(|_| "has invalid argon2 parameters".to_owned())?;
    if params.m_cost() < ARGON2_MIN_MEMORY_KIB || params.t_cost() < ARGON2_MIN_PASSES {
        return Err(format!(
            "is weaker than m={ARGON2_MIN_MEMORY_KIB},t={ARGON2_MIN_PASSES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phc_strings_are_checked() {
        let strong = "$argon2id$v=19$m=19456,t=2,p=1$ZrC0T/R9uSfqOLeWDlF+Tg$mRD6PfsSSu5N0bOQdaNpEdkcGLdtLjsL6L8pNbn+0L4";
        assert!(check_phc(strong).is_ok());
        assert!(check_phc("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA").is_err());
        assert!(check_phc("$argon2id$v=19$m=4096,t=2,p=1$c2FsdHNhbHQ$aGFzaA").is_err());
        assert!(check_phc("plain").is_err());
    }
}
