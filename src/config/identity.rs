//! `[[identity_providers]]` and `[exchange]`: JWT issuers, their keys, and the PKCE-bound
//! userInfoId exchange of seed 003.

use super::field::{Checker, Field};
use super::raw::{RawExchange, RawIdentityProvider, defaults};
use super::routes::compile_api_prefix;
use super::secret::Secret;
use jsonwebtoken::Algorithm;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a provider's verification keys come from.
#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct JwksTiming {
    pub refresh: Duration,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub refetch_cooldown: Duration,
    pub max_stale: Duration,
    pub fetch_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
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

/// The value of a key's default (every default is valid).
fn default_of<T>(default: fn() -> Field<T>) -> T {
    match default() {
        Field::Valid(value) => value,
        Field::Absent | Field::Invalid(_) => unreachable!("defaults are valid values"),
    }
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
        let seconds = |default| Duration::from_secs(default_of(default));
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
            leeway_seconds: default_of(defaults::leeway_seconds),
            max_token_bytes: default_of(defaults::max_token_bytes),
            jwks: JwksTiming {
                refresh: seconds(defaults::jwks_refresh),
                min_refresh: seconds(defaults::jwks_min_refresh),
                max_refresh: seconds(defaults::jwks_max_refresh),
                refetch_cooldown: seconds(defaults::refetch_cooldown),
                max_stale: seconds(defaults::max_stale),
                fetch_timeout: Duration::from_millis(default_of(defaults::fetch_timeout_ms)),
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

/// One entry per provider written, `None` where it did not validate.
pub(super) fn compile_providers(
    raw: Vec<RawIdentityProvider>,
    base: &Path,
    checker: &mut Checker,
) -> Vec<Option<ProviderSettings>> {
    let mut providers: Vec<Option<ProviderSettings>> = Vec::new();
    for (index, provider) in raw.into_iter().enumerate() {
        let key = format!("identity_providers[{index}]");
        let compiled = compile_provider(&key, provider, base, checker);
        if let Some(provider) = &compiled {
            let duplicate = providers.iter().flatten().any(|other| {
                other.customer_id == provider.customer_id
                    && other.provider_id == provider.provider_id
            });
            if duplicate {
                checker.fail(
                    format!("{key}.provider_id"),
                    "customer_id and provider_id are already configured",
                );
            }
        }
        providers.push(compiled);
    }
    providers
}

fn compile_provider(
    key: &str,
    raw: RawIdentityProvider,
    base: &Path,
    checker: &mut Checker,
) -> Option<ProviderSettings> {
    let field = |name: &str| format!("{key}.{name}");
    let customer_id = checker.require(&field("customer_id"), raw.customer_id);
    let customer_ok = customer_id.as_ref().is_none_or(|customer| {
        (1..=25).contains(&customer.chars().count())
            && customer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !customer_ok {
        checker.fail(
            field("customer_id"),
            "must be 1-25 letters, digits, '-' or '_'",
        );
    }
    let provider_id = checker.require(&field("provider_id"), raw.provider_id);
    let issuer = checker.require(&field("issuer"), raw.issuer);
    if issuer.as_deref() == Some("") {
        checker.fail(field("issuer"), "must not be empty");
    }
    let audiences = checker.require_list(
        &field("audiences"),
        raw.audiences,
        "must list at least one non-empty audience",
    );
    if audiences
        .as_ref()
        .is_some_and(|audiences| audiences.iter().any(String::is_empty))
    {
        checker.fail(
            field("audiences"),
            "must list at least one non-empty audience",
        );
    }
    let algorithms = checker.require_list(
        &field("algorithms"),
        raw.algorithms,
        "must list at least one algorithm",
    );
    let locations = KeyLocations {
        jwks_uri: checker.get(&field("jwks_uri"), raw.jwks_uri),
        keys_file: checker.get(&field("keys_file"), raw.keys_file),
        secret: checker.get(&field("secret"), raw.secret),
    };
    let keys = compile_key_source(key, locations, issuer.as_deref(), base, checker);
    if let (Some(algorithms), Some(keys)) = (&algorithms, &keys) {
        check_algorithms_fit_keys(key, algorithms, keys, checker);
    }
    let leeway_seconds = checker.get(&field("leeway_seconds"), raw.leeway_seconds);
    if leeway_seconds.is_some_and(|leeway| !(0..=300).contains(&leeway)) {
        checker.fail(field("leeway_seconds"), "must be between 0 and 300");
    }
    let max_token_bytes = checker.get(&field("max_token_bytes"), raw.max_token_bytes);
    if max_token_bytes.is_some_and(|bytes| !(256..=65_536).contains(&bytes)) {
        checker.fail(field("max_token_bytes"), "must be between 256 and 65536");
    }
    let timing = RawTiming {
        refresh: raw.refresh_seconds,
        min_refresh: raw.min_refresh_seconds,
        max_refresh: raw.max_refresh_seconds,
        refetch_cooldown: raw.refetch_cooldown_seconds,
        max_stale: raw.max_stale_seconds,
        fetch_timeout_ms: raw.fetch_timeout_ms,
    };
    let jwks = compile_jwks_timing(key, timing, checker);
    Some(ProviderSettings {
        customer_id: customer_id.filter(|_| customer_ok)?,
        provider_id: provider_id?,
        issuer: issuer?,
        keys: keys?,
        audiences: audiences?,
        algorithms: algorithms?,
        leeway_seconds: leeway_seconds?,
        max_token_bytes: max_token_bytes?,
        jwks: jwks?,
    })
}

/// The three ways a provider's keys may be given; exactly one, or none for discovery.
struct KeyLocations {
    jwks_uri: Option<String>,
    keys_file: Option<String>,
    secret: Option<Secret>,
}

fn compile_key_source(
    key: &str,
    locations: KeyLocations,
    issuer: Option<&str>,
    base: &Path,
    checker: &mut Checker,
) -> Option<KeySource> {
    let field = |name: &str| format!("{key}.{name}");
    match (locations.jwks_uri, locations.keys_file, locations.secret) {
        (Some(uri), None, None) => {
            if !uri.starts_with("https://") && !uri.starts_with("http://") {
                checker.fail(field("jwks_uri"), "must be an http:// or https:// URL");
            }
            Some(KeySource::Jwks { uri })
        }
        (None, Some(file), None) => {
            let path = super::server::existing_file(base, &file, &field("keys_file"), checker);
            Some(KeySource::File { path })
        }
        (None, None, Some(secret)) => Some(KeySource::Secret(secret)),
        (None, None, None) => issuer.map(|issuer| KeySource::Discovery {
            url: format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
        }),
        _ => {
            checker.fail(
                field("jwks_uri"),
                "use only one of jwks_uri, keys_file and secret",
            );
            None
        }
    }
}

/// HMAC keys only ever come from an explicit secret, and never next to asymmetric algorithms.
fn check_algorithms_fit_keys(
    key: &str,
    algorithms: &[Algorithm],
    keys: &KeySource,
    checker: &mut Checker,
) {
    let hmac = algorithms.iter().filter(|alg| is_hmac(**alg)).count();
    if hmac > 0 && hmac < algorithms.len() {
        checker.fail(
            format!("{key}.algorithms"),
            "HS* algorithms cannot be mixed with asymmetric ones",
        );
    }
    let secret_keys = matches!(keys, KeySource::Secret(_));
    if secret_keys && hmac != algorithms.len() {
        checker.fail(
            format!("{key}.secret"),
            "a secret verifies HS* algorithms only",
        );
    }
    if !secret_keys && hmac > 0 {
        checker.fail(
            format!("{key}.algorithms"),
            "HS* algorithms need an explicit secret (never a JWKS)",
        );
    }
}

/// The JWKS timing keys of one provider, as written.
struct RawTiming {
    refresh: Field<u64>,
    min_refresh: Field<u64>,
    max_refresh: Field<u64>,
    refetch_cooldown: Field<u64>,
    max_stale: Field<u64>,
    fetch_timeout_ms: Field<u64>,
}

fn compile_jwks_timing(key: &str, raw: RawTiming, checker: &mut Checker) -> Option<JwksTiming> {
    let field = |name: &str| format!("{key}.{name}");
    let refresh = checker.get(&field("refresh_seconds"), raw.refresh);
    let min_refresh = checker.get(&field("min_refresh_seconds"), raw.min_refresh);
    let max_refresh = checker.get(&field("max_refresh_seconds"), raw.max_refresh);
    let cooldown = checker.get(&field("refetch_cooldown_seconds"), raw.refetch_cooldown);
    let max_stale = checker.get(&field("max_stale_seconds"), raw.max_stale);
    let fetch_timeout_ms = checker.get(&field("fetch_timeout_ms"), raw.fetch_timeout_ms);
    let (min_refresh, max_refresh) = (min_refresh?, max_refresh?);
    if min_refresh == 0 || min_refresh > max_refresh {
        checker.fail(
            field("min_refresh_seconds"),
            "must be at least 1 and at most max_refresh_seconds",
        );
    }
    if cooldown == Some(0) || fetch_timeout_ms == Some(0) {
        checker.fail(
            field("refetch_cooldown_seconds"),
            "refetch_cooldown_seconds and fetch_timeout_ms must be at least 1",
        );
    }
    Some(JwksTiming {
        refresh: Duration::from_secs(refresh?.clamp(min_refresh, max_refresh.max(min_refresh))),
        min_refresh: Duration::from_secs(min_refresh),
        max_refresh: Duration::from_secs(max_refresh),
        refetch_cooldown: Duration::from_secs(cooldown?),
        max_stale: Duration::from_secs(max_stale?),
        fetch_timeout: Duration::from_millis(fetch_timeout_ms?),
    })
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

pub(super) fn compile_exchange(
    raw: RawExchange,
    providers: &[Option<ProviderSettings>],
    checker: &mut Checker,
) -> Option<ExchangeSettings> {
    let api_prefix = compile_api_prefix(
        "exchange.api_prefix",
        raw.api_prefix,
        "/api/authenticate",
        checker,
    );
    let ttl = checker.get("exchange.ttl_seconds", raw.ttl_seconds);
    if ttl.is_some_and(|ttl| !(1..=86_400).contains(&ttl)) {
        checker.fail("exchange.ttl_seconds", "must be between 1 and 86400");
    }
    if providers.is_empty() {
        checker.fail(
            "exchange.api_prefix",
            "the exchange needs at least one [[identity_providers]] entry",
        );
    }
    let single_use = checker.get("exchange.single_use", raw.single_use);
    let claims = checker.get("exchange.claims", raw.claims);
    Some(ExchangeSettings {
        api_prefix: api_prefix?,
        ttl: Duration::from_secs(ttl?),
        single_use: single_use?,
        claims: claims?,
    })
}
