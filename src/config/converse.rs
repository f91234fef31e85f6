//! `[store]`, `[cache]` and `[converse]`: compiled settings and their validation.

use super::ConfigProblem;
use super::raw::{RawCache, RawConverse, RawStore};
use super::secret::Secret;
use http::HeaderName;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where durable state lives.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    Sqlite { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub capacity: u64,
    /// The documented staleness bound of every cached credential.
    pub ttl: Duration,
}

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

type Problems = Vec<ConfigProblem>;

pub fn compile_store(raw: &RawStore, base: &Path, problems: &mut Problems) -> StoreSettings {
    match raw.backend.as_str() {
        "sqlite" => {}
        "redis" => problems.push(ConfigProblem::new(
            "store.backend",
            "\"redis\" is not available in this version of keyway (available: \"sqlite\")",
        )),
        other => problems.push(ConfigProblem::new(
            "store.backend",
            format!("unknown backend {other:?}"),
        )),
    }
    if raw.path.is_empty() {
        problems.push(ConfigProblem::new("store.path", "must not be empty"));
    }
    StoreSettings::Sqlite {
        path: base.join(&raw.path),
    }
}

pub fn compile_cache(raw: &RawCache, problems: &mut Problems) -> CacheSettings {
    if raw.capacity == 0 {
        problems.push(ConfigProblem::new("cache.capacity", "must be at least 1"));
    }
    if !(1..=3600).contains(&raw.ttl_seconds) {
        problems.push(ConfigProblem::new(
            "cache.ttl_seconds",
            "must be between 1 and 3600",
        ));
    }
    CacheSettings {
        capacity: raw.capacity,
        ttl: Duration::from_secs(raw.ttl_seconds),
    }
}

pub fn compile_converse(raw: &RawConverse, problems: &mut Problems) -> ConverseSettings {
    let mut fail = |key: &str, message: String| {
        problems.push(ConfigProblem::new(format!("converse.{key}"), message))
    };
    let header = HeaderName::from_bytes(raw.header.as_bytes()).unwrap_or_else(|_| {
        fail(
            "header",
            format!("{:?} is not a valid header name", raw.header),
        );
        HeaderName::from_static("x-converse-token")
    });
    let api_prefix = raw.api_prefix.trim_end_matches('/').to_owned();
    if crate::routing::validate_prefix(&format!("{api_prefix}/")).is_err() || api_prefix.is_empty()
    {
        fail(
            "api_prefix",
            "must be a literal path such as \"/api/user\"".to_owned(),
        );
    }
    if raw.max_timeout_seconds < 1 {
        fail("max_timeout_seconds", "must be at least 1".to_owned());
    }
    if raw.default_timeout_seconds != -1
        && !(1..=raw.max_timeout_seconds).contains(&raw.default_timeout_seconds)
    {
        fail(
            "default_timeout_seconds",
            "must be -1 or between 1 and max_timeout_seconds".to_owned(),
        );
    }
    if raw.default_timeout_seconds == -1 && !raw.allow_non_expiring {
        fail(
            "default_timeout_seconds",
            "is -1 but allow_non_expiring = false".to_owned(),
        );
    }
    if raw.max_concurrent_hashes == 0 {
        fail("max_concurrent_hashes", "must be at least 1".to_owned());
    }
    if raw.max_body_bytes == 0 {
        fail("max_body_bytes", "must be at least 1".to_owned());
    }
    if raw.purge_interval_seconds == 0 {
        fail("purge_interval_seconds", "must be at least 1".to_owned());
    }
    let lockout = &raw.lockout;
    if lockout.max_failures == 0 || lockout.ip_max_failures == 0 {
        fail(
            "lockout",
            "max_failures and ip_max_failures must be at least 1".to_owned(),
        );
    }
    if lockout.base_seconds == 0 || lockout.max_seconds < lockout.base_seconds {
        fail(
            "lockout",
            "base_seconds must be at least 1 and at most max_seconds".to_owned(),
        );
    }
    let directory = compile_directory(raw, &mut fail);
    ConverseSettings {
        header,
        api_prefix,
        default_timeout_seconds: raw.default_timeout_seconds,
        max_timeout_seconds: raw.max_timeout_seconds,
        allow_non_expiring: raw.allow_non_expiring,
        directory,
        max_concurrent_hashes: raw.max_concurrent_hashes,
        max_body_bytes: raw.max_body_bytes,
        purge_interval: Duration::from_secs(raw.purge_interval_seconds),
        lockout: LockoutSettings {
            max_failures: lockout.max_failures,
            ip_max_failures: lockout.ip_max_failures,
            base: Duration::from_secs(lockout.base_seconds),
            max: Duration::from_secs(lockout.max_seconds),
        },
    }
}

fn compile_directory(raw: &RawConverse, fail: &mut impl FnMut(&str, String)) -> DirectorySettings {
    match (raw.directory.as_str(), &raw.directory_url) {
        ("static", None) => {}
        ("static", Some(_)) => fail(
            "directory_url",
            "is only used with directory = \"upstream\"".to_owned(),
        ),
        ("upstream", Some(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                fail(
                    "directory_url",
                    "must be an http:// or https:// URL".to_owned(),
                );
            }
            if !raw.users.is_empty() {
                fail(
                    "users",
                    "are not used with directory = \"upstream\"".to_owned(),
                );
            }
            if !(1..=60_000).contains(&raw.directory_timeout_ms) {
                fail(
                    "directory_timeout_ms",
                    "must be between 1 and 60000".to_owned(),
                );
            }
            return DirectorySettings::Upstream {
                url: url.clone(),
                timeout: Duration::from_millis(raw.directory_timeout_ms),
            };
        }
        ("upstream", None) => fail(
            "directory_url",
            "is required with directory = \"upstream\"".to_owned(),
        ),
        (other, _) => fail(
            "directory",
            format!("must be \"static\" or \"upstream\", not {other:?}"),
        ),
    }
    let mut users: Vec<UserEntry> = Vec::new();
    for (index, user) in raw.users.iter().enumerate() {
        let email = user.email.trim().to_lowercase();
        if !email.contains('@') {
            fail(
                &format!("users[{index}].email"),
                "must be an email address".to_owned(),
            );
        }
        if users.iter().any(|other| other.email == email) {
            fail(
                &format!("users[{index}].email"),
                format!("{email:?} is listed twice"),
            );
        }
        if let Err(message) = crate::converse::password::check_phc(user.password_hash.expose()) {
            fail(&format!("users[{index}].password_hash"), message);
        }
        users.push(UserEntry {
            email,
            password_hash: user.password_hash.clone(),
            admin: user.admin,
        });
    }
    DirectorySettings::Static(users)
}
