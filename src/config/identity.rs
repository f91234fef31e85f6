//! `[[identity_providers]]`: compiled settings and their validation.

use super::ConfigProblem;
use super::raw::{RawExchange, RawIdentityProvider};
use super::secret::Secret;
use jsonwebtoken::Algorithm;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where a provider's verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Jwks {
        uri: String,
    },
    /// `jwks_uri` read from `{issuer}/.well-known/openid-configuration`.
    Discovery {
        url: String,
    },
    File {
        path: PathBuf,
    },
    Secret(Secret),
}

#[derive(Debug, Clone)]
pub struct JwksTiming {
    pub refresh: Duration,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub refetch_cooldown: Duration,
    pub max_stale: Duration,
    pub fetch_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub customer_id: String,
    pub provider_id: i64,
    pub issuer: String,
    pub keys: KeySource,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_seconds: i64,
    pub max_token_bytes: usize,
    pub jwks: JwksTiming,
}

impl ProviderSettings {
    /// A provider with the config file's defaults for everything not given (leeway, token
    /// size, JWKS timing): for embedding keyway, benches and examples.
    pub fn with_defaults(
        customer_id: &str,
        provider_id: i64,
        issuer: &str,
        keys: KeySource,
        audiences: &[&str],
        algorithms: &[Algorithm],
    ) -> Self {
        use super::raw;
        let seconds = Duration::from_secs;
        ProviderSettings {
            customer_id: customer_id.to_owned(),
            provider_id,
            issuer: issuer.to_owned(),
            keys,
            audiences: audiences
                .iter()
                .map(|&audience| audience.to_owned())
                .collect(),
            algorithms: algorithms.to_vec(),
            leeway_seconds: raw::default_leeway_seconds(),
            max_token_bytes: raw::default_max_token_bytes(),
            jwks: JwksTiming {
                refresh: seconds(raw::default_jwks_refresh()),
                min_refresh: seconds(raw::default_jwks_min_refresh()),
                max_refresh: seconds(raw::default_jwks_max_refresh()),
                refetch_cooldown: seconds(raw::default_refetch_cooldown()),
                max_stale: seconds(raw::default_max_stale()),
                fetch_timeout: Duration::from_millis(raw::default_fetch_timeout_ms()),
            },
        }
    }

    /// `customer:provider`, the `provider` label of JWKS metrics.
    pub fn label(&self) -> String {
        format!("{}:{}", self.customer_id, self.provider_id)
    }
}

fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

pub fn compile_providers(
    raw: &[RawIdentityProvider],
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ProviderSettings> {
    raw.iter()
        .enumerate()
        .map(|(index, provider)| {
            let key = format!("identity_providers[{index}]");
            if raw[..index].iter().any(|other| {
                other.customer_id == provider.customer_id
                    && other.provider_id == provider.provider_id
            }) {
                problems.push(ConfigProblem::new(
                    format!("{key}.provider_id"),
                    "customer_id and provider_id are already configured",
                ));
            }
            compile_provider(&key, provider, base, problems)
        })
        .collect()
}

fn compile_provider(
    key: &str,
    raw: &RawIdentityProvider,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> ProviderSettings {
    let mut fail = |field: &str, message: String| {
        problems.push(ConfigProblem::new(format!("{key}.{field}"), message))
    };
    let customer = &raw.customer_id;
    if !(1..=25).contains(&customer.chars().count())
        || !customer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        fail(
            "customer_id",
            "must be 1-25 letters, digits, '-' or '_'".to_owned(),
        );
    }
    if raw.issuer.is_empty() {
        fail("issuer", "must not be empty".to_owned());
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        fail(
            "audiences",
            "must list at least one non-empty audience".to_owned(),
        );
    }
    let algorithms: Vec<Algorithm> = raw
        .algorithms
        .iter()
        .filter_map(|name| {
            let parsed = Algorithm::from_str(name).ok();
            if parsed.is_none() {
                fail("algorithms", format!("unknown algorithm {name:?}"));
            }
            parsed
        })
        .collect();
    if algorithms.is_empty() {
        fail("algorithms", "must list at least one algorithm".to_owned());
    }
    let hmac = algorithms.iter().filter(|alg| is_hmac(**alg)).count();
    if hmac > 0 && hmac < algorithms.len() {
        fail(
            "algorithms",
            "HS* algorithms cannot be mixed with asymmetric ones".to_owned(),
        );
    }
    let keys = match (&raw.jwks_uri, &raw.keys_file, &raw.secret) {
        (Some(uri), None, None) => {
            if !uri.starts_with("https://") && !uri.starts_with("http://") {
                fail("jwks_uri", "must be an http:// or https:// URL".to_owned());
            }
            KeySource::Jwks { uri: uri.clone() }
        }
        (None, Some(file), None) => {
            let path = base.join(file);
            if !path.is_file() {
                fail(
                    "keys_file",
                    format!("file {:?} does not exist", path.display().to_string()),
                );
            }
            KeySource::File { path }
        }
        (None, None, Some(secret)) => KeySource::Secret(secret.clone()),
        (None, None, None) => KeySource::Discovery {
            url: format!(
                "{}/.well-known/openid-configuration",
                raw.issuer.trim_end_matches('/')
            ),
        },
        _ => {
            fail(
                "jwks_uri",
                "use only one of jwks_uri, keys_file and secret".to_owned(),
            );
            KeySource::Discovery { url: String::new() }
        }
    };
    let secret_keys = matches!(keys, KeySource::Secret(_));
    if secret_keys && hmac != algorithms.len() {
        fail("secret", "a secret verifies HS* algorithms only".to_owned());
    }
    if !secret_keys && hmac > 0 {
        fail(
            "algorithms",
            "HS* algorithms need an explicit secret (never a JWKS)".to_owned(),
        );
    }
    if !(0..=300).contains(&raw.leeway_seconds) {
        fail("leeway_seconds", "must be between 0 and 300".to_owned());
    }
    if !(256..=65_536).contains(&raw.max_token_bytes) {
        fail(
            "max_token_bytes",
            "must be between 256 and 65536".to_owned(),
        );
    }
    if raw.min_refresh_seconds == 0 || raw.min_refresh_seconds > raw.max_refresh_seconds {
        fail(
            "min_refresh_seconds",
            "must be at least 1 and at most max_refresh_seconds".to_owned(),
        );
    }
    if raw.refetch_cooldown_seconds == 0 || raw.fetch_timeout_ms == 0 {
        fail(
            "refetch_cooldown_seconds",
            "refetch_cooldown_seconds and fetch_timeout_ms must be at least 1".to_owned(),
        );
    }
    ProviderSettings {
        customer_id: raw.customer_id.clone(),
        provider_id: raw.provider_id,
        issuer: raw.issuer.clone(),
        keys,
        audiences: raw.audiences.clone(),
        algorithms,
        leeway_seconds: raw.leeway_seconds,
        max_token_bytes: raw.max_token_bytes,
        jwks: JwksTiming {
            refresh: Duration::from_secs(
                raw.refresh_seconds
                    .clamp(raw.min_refresh_seconds, raw.max_refresh_seconds),
            ),
            min_refresh: Duration::from_secs(raw.min_refresh_seconds),
            max_refresh: Duration::from_secs(raw.max_refresh_seconds),
            refetch_cooldown: Duration::from_secs(raw.refetch_cooldown_seconds),
            max_stale: Duration::from_secs(raw.max_stale_seconds),
            fetch_timeout: Duration::from_millis(raw.fetch_timeout_ms),
        },
    }
}

/// `[exchange]`: the PKCE-bound userInfoId exchange of seed 003.
#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// Without trailing slash, e.g. `/api/authenticate`.
    pub api_prefix: String,
    pub ttl: Duration,
    pub single_use: bool,
    pub claims: Vec<String>,
}

pub fn compile_exchange(
    raw: &RawExchange,
    providers: &[ProviderSettings],
    problems: &mut Vec<ConfigProblem>,
) -> ExchangeSettings {
    let mut fail = |field: &str, message: &str| {
        problems.push(ConfigProblem::new(format!("exchange.{field}"), message))
    };
    let api_prefix = raw.api_prefix.trim_end_matches('/').to_owned();
    if api_prefix.is_empty() || crate::routing::validate_prefix(&format!("{api_prefix}/")).is_err()
    {
        fail(
            "api_prefix",
            "must be a literal path such as \"/api/authenticate\"",
        );
    }
    if !(1..=86_400).contains(&raw.ttl_seconds) {
        fail("ttl_seconds", "must be between 1 and 86400");
    }
    if providers.is_empty() {
        fail(
            "api_prefix",
            "the exchange needs at least one [[identity_providers]] entry",
        );
    }
    ExchangeSettings {
        api_prefix,
        ttl: Duration::from_secs(raw.ttl_seconds),
        single_use: raw.single_use,
        claims: raw.claims.clone(),
    }
}
