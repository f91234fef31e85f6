//! The config file as written: serde structs that mirror `config.toml` key by key.
//!
//! Every leaf is a [`Field`], so a value of the wrong type is reported with its key instead of
//! stopping the parse. Nothing here is trusted yet: the other modules of `config` validate these
//! into plain settings. Every default is written once, in [`defaults`], and named on its field;
//! the README's tables are checked against them by a test.

use super::field::{Field, List, empty};
use super::secret::Secret;
use crate::identity::AuthKind;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// `[credentials.NAME]`: header name -> secret value.
    #[serde(default)]
    pub credentials: BTreeMap<String, BTreeMap<String, Field<Secret>>>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub cache: RawCache,
    pub converse: Option<RawConverse>,
    #[serde(default)]
    pub identity_providers: Vec<RawIdentityProvider>,
    pub exchange: Option<RawExchange>,
    pub hosted_email: Option<RawHostedEmail>,
    pub api_keys: Option<RawApiKeys>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawServer {
    /// Proxy listener addresses, `IP:port` (required, at least one).
    #[serde(default)]
    pub listen: List<String>,
    /// Worker threads of the proxy service (1–256).
    #[serde(default = "defaults::threads")]
    pub threads: Field<usize>,
    pub tls: Option<RawTls>,
    /// How long in-flight requests may take to finish after SIGTERM (at most 3600).
    #[serde(default = "defaults::grace_period_seconds")]
    pub grace_period_seconds: Field<u64>,
    /// Largest request body accepted; routes may lower or raise it.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: Field<u64>,
    /// Idle keep-alive connections kept per upstream pool.
    #[serde(default = "defaults::upstream_keepalive_pool_size")]
    pub upstream_keepalive_pool_size: Field<usize>,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` is believed.
    #[serde(default = "empty")]
    pub trusted_proxies: List<String>,
    /// Longest time a request head may take to arrive, from its first byte.
    #[serde(default = "defaults::header_timeout_ms")]
    pub header_timeout_ms: Field<u64>,
    /// Longest idle time of a kept-alive client connection between requests.
    #[serde(default = "defaults::keepalive_timeout_ms")]
    pub keepalive_timeout_ms: Field<u64>,
    /// Longest wait for each read of a request body.
    #[serde(default = "defaults::body_timeout_ms")]
    pub body_timeout_ms: Field<u64>,
    /// Longest wait for each write to the client.
    #[serde(default = "defaults::downstream_write_timeout_ms")]
    pub write_timeout_ms: Field<u64>,
    /// Largest request head (request line and headers).
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: Field<usize>,
    /// Most headers in a request.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: Field<usize>,
    /// Most client connections open at once; more are answered 503-01 and closed.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: Field<usize>,
    /// The running process's PID, written at start (`keyway reload` signals it).
    #[serde(default = "defaults::pid_file")]
    pub pid_file: Field<String>,
    /// The Unix socket a `run --upgrade` process takes the listening sockets over.
    #[serde(default = "defaults::upgrade_sock")]
    pub upgrade_sock: Field<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawTls {
    /// PEM certificate chain (required).
    #[serde(default)]
    pub cert: Field<String>,
    /// PEM private key (required).
    #[serde(default)]
    pub key: Field<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawAdmin {
    /// `IP:port` of `/metrics`, `/healthz`, `/readyz` (required).
    #[serde(default)]
    pub listen: Field<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawLog {
    /// `tracing` filter directive, e.g. `"info"` or `"keyway=debug,info"`.
    #[serde(default = "defaults::log_level")]
    pub level: Field<String>,
    /// One structured line per request.
    #[serde(default = "defaults::yes")]
    pub access_log: Field<bool>,
}

/// Where durable state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file: the embedded default, for one instance.
    Sqlite,
    /// A Redis (7.0+) or Valkey server, standalone or under Sentinel: for a fleet.
    Redis,
}

/// How the instances of a fleet hear that a cached credential changed in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidationMode {
    /// Redis client-side-caching broadcasts (`CLIENT TRACKING ON BCAST`): every change, by
    /// anyone, including a key deleted or expired in Redis itself.
    Tracking,
    /// A channel keyway publishes to from the same script that changes a key: for servers
    /// without BCAST tracking; changes made outside keyway are not heard.
    Pubsub,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawStore {
    #[serde(default = "defaults::store_backend")]
    pub backend: Field<StoreBackend>,
    /// The SQLite file, relative to the config file.
    #[serde(default = "defaults::store_path")]
    pub path: Field<String>,
    /// Redis: `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS).
    #[serde(default)]
    pub url: Field<Secret>,
    /// Redis under Sentinel: the sentinels' `host:port` addresses (instead of `url`).
    #[serde(default = "empty")]
    pub sentinels: List<String>,
    /// Redis under Sentinel: the monitored primary's name (required with `sentinels`).
    #[serde(default)]
    pub master_name: Field<String>,
    /// Redis under Sentinel: the data nodes' ACL user.
    #[serde(default)]
    pub username: Field<String>,
    /// Redis under Sentinel: the data nodes' password.
    #[serde(default)]
    pub password: Field<Secret>,
    /// Redis under Sentinel: the sentinels' own password.
    #[serde(default)]
    pub sentinel_password: Field<Secret>,
    /// Redis: prepended to every key keyway writes.
    #[serde(default = "defaults::redis_key_prefix")]
    pub key_prefix: Field<String>,
    /// Redis: longest wait for one store operation; a slower Redis is a 503.
    #[serde(default = "defaults::redis_timeout_ms")]
    pub timeout_ms: Field<u64>,
    /// Redis: replicas that must acknowledge a write before the client hears it succeeded.
    #[serde(default = "defaults::redis_wait_replicas")]
    pub wait_replicas: Field<u32>,
    /// Redis: how other instances hear of changes to cached credentials.
    #[serde(default = "defaults::redis_invalidation")]
    pub invalidation: Field<InvalidationMode>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawCache {
    /// Entries per credential cache.
    #[serde(default = "defaults::cache_capacity")]
    pub capacity: Field<u64>,
    /// The staleness bound: how long a validated credential is trusted without the store.
    #[serde(default = "defaults::cache_ttl_seconds")]
    pub ttl_seconds: Field<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawUpstream {
    /// `host:port` list (required), resolved when keyway starts.
    #[serde(default)]
    pub addresses: List<String>,
    #[serde(default = "defaults::no")]
    pub tls: Field<bool>,
    /// Server name for TLS; required when `tls = true`.
    #[serde(default = "empty")]
    pub sni: Field<String>,
    /// Verify the upstream's certificate chain and host name when `tls = true`.
    #[serde(default = "defaults::yes")]
    pub verify_cert: Field<bool>,
    /// PEM file of CA certificates trusted for this upstream instead of the system roots.
    #[serde(default)]
    pub ca_file: Field<String>,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: Field<u64>,
    #[serde(default = "defaults::io_timeout_ms")]
    pub read_timeout_ms: Field<u64>,
    #[serde(default = "defaults::io_timeout_ms")]
    pub write_timeout_ms: Field<u64>,
    /// How long an idle pooled connection is kept for reuse.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: Field<u64>,
}

/// An HTTP method as written in `methods = [...]` (any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMethod(pub http::Method);

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        http::Method::from_bytes(name.to_ascii_uppercase().as_bytes())
            .map(HttpMethod)
            .map_err(|_| serde::de::Error::custom(format!("{name:?} is not an HTTP method")))
    }
}

impl Serialize for HttpMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawRoute {
    /// Unique; the `route` label of metrics and logs (required).
    #[serde(default)]
    pub name: Field<String>,
    /// Literal path prefix (this or `path` is required).
    #[serde(default)]
    pub path_prefix: Field<String>,
    /// One operation's path, `{name}` matching one segment (instead of `path_prefix`).
    #[serde(default)]
    pub path: Field<String>,
    /// Match only this `Host` (absent: any host).
    #[serde(default)]
    pub host: Field<String>,
    /// Allowed methods (absent: all).
    #[serde(default)]
    pub methods: List<HttpMethod>,
    /// An `[upstreams.NAME]` (required).
    #[serde(default)]
    pub upstream: Field<String>,
    /// Any-of list of authenticators (required, at least one).
    #[serde(default)]
    pub auth: List<AuthKind>,
    /// A `[credentials.NAME]` set to inject.
    #[serde(default)]
    pub credentials: Field<String>,
    /// Upstream header -> principal claim (dotted path).
    #[serde(default = "empty")]
    pub identity_headers: Field<BTreeMap<String, String>>,
    /// More headers removed from every client request.
    #[serde(default = "empty")]
    pub strip_request_headers: List<String>,
    /// This route's body limit (absent: `server.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Field<u64>,
    /// `jwt`, `exchange` and `api_key` routes: only credentials of these customers (empty: any).
    #[serde(default = "empty")]
    pub customers: List<String>,
    /// `jwt` and `exchange` routes: only credentials of these provider ids (empty: any).
    #[serde(default = "empty")]
    pub providers: List<i64>,
    /// A JSON Schema file (draft 2020-12) every request body must satisfy before it goes
    /// upstream (absent: bodies are forwarded as they come).
    #[serde(default)]
    pub request_schema: Field<String>,
}

/// Where `[converse]` logins are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// `[[converse.users]]`.
    Static,
    /// A service at `directory_url` that answers `{email, password}` with 2xx or 4xx.
    Upstream,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawConverse {
    #[serde(default = "defaults::converse_header")]
    pub header: Field<String>,
    /// Where the token API is served: `{api_prefix}/verify`, `{api_prefix}/token/...`.
    #[serde(default = "defaults::converse_api_prefix")]
    pub api_prefix: Field<String>,
    #[serde(default = "defaults::converse_timeout")]
    pub default_timeout_seconds: Field<i64>,
    #[serde(default = "defaults::converse_max_timeout")]
    pub max_timeout_seconds: Field<i64>,
    /// Whether `timeout = -1` (a token that never expires) may be requested.
    #[serde(default = "defaults::yes")]
    pub allow_non_expiring: Field<bool>,
    #[serde(default = "defaults::directory")]
    pub directory: Field<DirectoryKind>,
    /// Required with `directory = "upstream"`.
    #[serde(default)]
    pub directory_url: Field<String>,
    #[serde(default = "defaults::directory_timeout_ms")]
    pub directory_timeout_ms: Field<u64>,
    /// Password hashes computed at once (each argon2id hash holds ~19 MiB).
    #[serde(default = "defaults::max_concurrent_hashes")]
    pub max_concurrent_hashes: Field<usize>,
    /// Logins that may wait for a password check beyond those running; more are 503-01 at once.
    #[serde(default = "defaults::max_queued_hashes")]
    pub max_queued_hashes: Field<usize>,
    /// Largest body accepted by the token API.
    #[serde(default = "defaults::converse_body_bytes")]
    pub max_body_bytes: Field<u64>,
    #[serde(default = "defaults::purge_interval_seconds")]
    pub purge_interval_seconds: Field<u64>,
    #[serde(default)]
    pub lockout: RawLockout,
    #[serde(default)]
    pub users: Vec<RawUser>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawLockout {
    /// Failed logins for one account before it is locked.
    #[serde(default = "defaults::lockout_failures")]
    pub max_failures: Field<u32>,
    /// Failed logins from one client IP (any account) before it is locked.
    #[serde(default = "defaults::lockout_ip_failures")]
    pub ip_max_failures: Field<u32>,
    /// First lock length; each further failure doubles it.
    #[serde(default = "defaults::lockout_base")]
    pub base_seconds: Field<u64>,
    #[serde(default = "defaults::lockout_max")]
    pub max_seconds: Field<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawUser {
    #[serde(default)]
    pub email: Field<String>,
    /// An argon2id PHC string (`keyway hash-password`).
    #[serde(default)]
    pub password_hash: Field<Secret>,
    #[serde(default = "defaults::no")]
    pub admin: Field<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawIdentityProvider {
    #[serde(default)]
    pub customer_id: Field<String>,
    #[serde(default)]
    pub provider_id: Field<i64>,
    /// Compared exactly with the token's `iss`.
    #[serde(default)]
    pub issuer: Field<String>,
    /// Where the JWK set is fetched; with neither this, `keys_file` nor `secret`, it is
    /// discovered from `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Field<String>,
    /// A JWK set or PEM public key file used instead of fetching.
    #[serde(default)]
    pub keys_file: Field<String>,
    /// An HMAC secret: only with HS* algorithms, never next to asymmetric keys.
    #[serde(default)]
    pub secret: Field<Secret>,
    #[serde(default)]
    pub audiences: List<String>,
    #[serde(default)]
    pub algorithms: List<Algorithm>,
    #[serde(default = "defaults::leeway_seconds")]
    pub leeway_seconds: Field<i64>,
    #[serde(default = "defaults::max_token_bytes")]
    pub max_token_bytes: Field<usize>,
    /// Refresh interval when the JWKS response has no usable `Cache-Control: max-age`.
    #[serde(default = "defaults::jwks_refresh")]
    pub refresh_seconds: Field<u64>,
    /// Bounds applied to `max-age`.
    #[serde(default = "defaults::jwks_min_refresh")]
    pub min_refresh_seconds: Field<u64>,
    #[serde(default = "defaults::jwks_max_refresh")]
    pub max_refresh_seconds: Field<u64>,
    /// An unknown `kid` triggers at most one refetch per this many seconds.
    #[serde(default = "defaults::refetch_cooldown")]
    pub refetch_cooldown_seconds: Field<u64>,
    /// How long the last good keys are used while fetches fail.
    #[serde(default = "defaults::max_stale")]
    pub max_stale_seconds: Field<u64>,
    #[serde(default = "defaults::fetch_timeout_ms")]
    pub fetch_timeout_ms: Field<u64>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawExchange {
    /// Serves `POST {api_prefix}/{customerId}[?providerId=N]`.
    #[serde(default = "defaults::exchange_prefix")]
    pub api_prefix: Field<String>,
    /// Longest life of a userInfoId (never past the exchanged token's `exp`).
    #[serde(default = "defaults::exchange_ttl")]
    pub ttl_seconds: Field<u64>,
    /// A userInfoId redeems once.
    #[serde(default = "defaults::yes")]
    pub single_use: Field<bool>,
    /// Token claims kept with the userInfoId (for identity headers).
    #[serde(default = "defaults::exchange_claims")]
    pub claims: Field<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawHostedEmail {
    /// Life of the one-time `authtoken` sent by email.
    #[serde(default = "defaults::authtoken_ttl")]
    pub authtoken_ttl_seconds: Field<u64>,
    /// Life of the encrypted user token given for it.
    #[serde(default = "defaults::user_token_ttl")]
    pub user_token_ttl_seconds: Field<u64>,
    /// AES-256-GCM keys; the first seals new user tokens, all open them.
    #[serde(default)]
    pub encryption_keys: Vec<RawEncryptionKey>,
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (TLS); credentials as `smtp://user:pass@host`. Exclusive with
    /// `outbox_dir`.
    #[serde(default)]
    pub smtp_url: Field<Secret>,
    /// The most one SMTP conversation (connect, greeting, sending) may take before the request
    /// fails with 503-01.
    #[serde(default = "defaults::smtp_timeout_ms")]
    pub smtp_timeout_ms: Field<u64>,
    /// Writes each email as an `.eml` file here instead of sending it.
    #[serde(default)]
    pub outbox_dir: Field<String>,
    #[serde(default = "defaults::mail_from")]
    pub from: Field<String>,
    #[serde(default = "defaults::mail_subject")]
    pub subject: Field<String>,
    /// Authentication emails per address per hour.
    #[serde(default = "defaults::emails_per_address")]
    pub emails_per_address_per_hour: Field<u32>,
    /// Authentication emails per client (passkey) per minute.
    #[serde(default = "defaults::emails_per_client")]
    pub emails_per_client_per_minute: Field<u32>,
    #[serde(default)]
    pub clients: Vec<RawHostedEmailClient>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawEncryptionKey {
    /// Written in every token (outside the ciphertext) to pick the key that opens it.
    #[serde(default)]
    pub id: Field<String>,
    /// 32 bytes, base64.
    #[serde(default)]
    pub key: Field<Secret>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawHostedEmailClient {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub passkey: Field<Secret>,
    /// Allowed callback URL prefixes (absolute http(s) URLs).
    #[serde(default)]
    pub callback_urls: List<String>,
    /// Accepted `apiversion` values, e.g. `["5.4"]`.
    #[serde(default)]
    pub api_versions: List<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RawApiKeys {
    /// The header a partner sends its key id in.
    #[serde(default = "defaults::api_key_id_header")]
    pub id_header: Field<String>,
    /// The header a partner sends its secret in.
    #[serde(default = "defaults::api_key_secret_header")]
    pub secret_header: Field<String>,
    #[serde(default)]
    pub clients: Vec<RawApiKeyClient>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawApiKeyClient {
    /// For logs and the `client` metric label (and the principal's `client` claim).
    #[serde(default)]
    pub name: Field<String>,
    /// The key id the partner sends (not a secret).
    #[serde(default)]
    pub id: Field<String>,
    /// Hex SHA-256 of the partner's secret (`keyway hash-api-key`, `keyway new-api-key`).
    #[serde(default)]
    pub secret_sha256: Field<String>,
    /// The customers this client may act for: routes with `customers` admit it only if it
    /// names one of them (empty: only routes without `customers`).
    #[serde(default = "empty")]
    pub customers: List<String>,
}

/// Sections whose every key has a default are the same whether written empty or left out.
macro_rules! default_from_empty_table {
    ($($section:ty),*) => {$(
        impl Default for $section {
            fn default() -> Self {
                toml::from_str("").expect("every key of this section has a default")
            }
        }
    )*};
}
default_from_empty_table!(RawLog, RawStore, RawCache, RawLockout);

/// Every default of the config file, written once.
pub(super) mod defaults {
    use super::{DirectoryKind, Field, InvalidationMode, StoreBackend};

    macro_rules! defaults {
        ($($name:ident: $type:ty = $value:expr;)*) => {$(
            pub(crate) fn $name() -> Field<$type> {
                Field::Valid($value)
            }
        )*};
    }

    defaults! {
        yes: bool = true;
        no: bool = false;
        threads: usize = 2;
        grace_period_seconds: u64 = 30;
        max_body_bytes: u64 = 1024 * 1024;
        upstream_keepalive_pool_size: usize = 128;
        header_timeout_ms: u64 = 10_000;
        keepalive_timeout_ms: u64 = 60_000;
        body_timeout_ms: u64 = 30_000;
        downstream_write_timeout_ms: u64 = 30_000;
        max_header_bytes: usize = 64 * 1024;
        max_headers: usize = 100;
        max_connections: usize = 10_000;
        pid_file: String = "data/keyway.pid".to_owned();
        upgrade_sock: String = "data/keyway-upgrade.sock".to_owned();
        log_level: String = "info".to_owned();
        store_backend: StoreBackend = StoreBackend::Sqlite;
        store_path: String = "data/keyway.db".to_owned();
        redis_key_prefix: String = "kw:".to_owned();
        redis_timeout_ms: u64 = 200;
        redis_wait_replicas: u32 = 0;
        redis_invalidation: InvalidationMode = InvalidationMode::Tracking;
        cache_capacity: u64 = 1_000_000;
        cache_ttl_seconds: u64 = 30;
        connect_timeout_ms: u64 = 1_000;
        io_timeout_ms: u64 = 30_000;
        idle_timeout_ms: u64 = 60_000;
        converse_header: String = "X-CONVERSE-TOKEN".to_owned();
        converse_api_prefix: String = "/api/user".to_owned();
        converse_timeout: i64 = 3600;
        converse_max_timeout: i64 = 2_592_000;
        directory: DirectoryKind = DirectoryKind::Static;
        directory_timeout_ms: u64 = 2_000;
        max_concurrent_hashes: usize = 4;
        max_queued_hashes: usize = 64;
        converse_body_bytes: u64 = 16 * 1024;
        purge_interval_seconds: u64 = 60;
        lockout_failures: u32 = 5;
        lockout_ip_failures: u32 = 50;
        lockout_base: u64 = 1;
        lockout_max: u64 = 900;
        leeway_seconds: i64 = 60;
        max_token_bytes: usize = 8192;
        jwks_refresh: u64 = 300;
        jwks_min_refresh: u64 = 60;
        jwks_max_refresh: u64 = 86_400;
        refetch_cooldown: u64 = 30;
        max_stale: u64 = 86_400;
        fetch_timeout_ms: u64 = 2_000;
        authtoken_ttl: u64 = 3600;
        user_token_ttl: u64 = 30 * 86_400;
        mail_from: String = "keyway <no-reply@localhost>".to_owned();
        mail_subject: String = "Confirm your email address".to_owned();
        smtp_timeout_ms: u64 = 10_000;
        emails_per_address: u32 = 5;
        emails_per_client: u32 = 600;
        exchange_prefix: String = "/api/authenticate".to_owned();
        exchange_ttl: u64 = 600;
        api_key_id_header: String = "asapp-api-id".to_owned();
        api_key_secret_header: String = "asapp-api-secret".to_owned();
        exchange_claims: Vec<String> = ["sub", "email", "name"].map(str::to_owned).to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// A section's defaults as `key = value` pairs (dotted keys for nested tables).
    fn defaults_of<T: DeserializeOwned + Serialize>() -> Vec<(String, toml::Value)> {
        let section: T = toml::from_str("").expect("every key has a default or is optional");
        let mut flat = Vec::new();
        flatten("", toml::Value::try_from(section).unwrap(), &mut flat);
        flat
    }

    fn flatten(prefix: &str, value: toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match value {
            toml::Value::Table(table) if prefix.is_empty() || !table.is_empty() => {
                for (key, value) in table {
                    let key = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&key, value, out);
                }
            }
            value => out.push((prefix.to_owned(), value)),
        }
    }

    /// The README's `| key | default | meaning |` rows of the section headed `heading`:
    /// (keys, default literals) where every default cell is made of TOML literals.
    fn readme_rows(heading: &str) -> Vec<(Vec<String>, Option<Vec<toml::Value>>)> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let start = readme
            .find(&format!("### `{heading}`"))
            .unwrap_or_else(|| panic!("README has no section {heading}"));
        let section = &readme[start..];
        let end = section[4..].find("\n##").map_or(section.len(), |at| at + 4);
        section[..end]
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').collect();
                (quoted(cells[1]), literals(cells[2]))
            })
            .collect()
    }

    fn quoted(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The cell's values when it holds only backquoted TOML literals.
    fn literals(cell: &str) -> Option<Vec<toml::Value>> {
        let quoted = quoted(cell);
        let outside: String = cell.split('`').step_by(2).collect();
        if quoted.is_empty()
            || outside
                .trim()
                .trim_matches(',')
                .trim()
                .contains(char::is_alphanumeric)
        {
            return None;
        }
        quoted
            .iter()
            .map(|literal| {
                let parsed: toml::Table = toml::from_str(&format!("v = {literal}")).ok()?;
                parsed.get("v").cloned()
            })
            .collect()
    }

    fn is_empty_collection(value: &toml::Value) -> bool {
        match value {
            toml::Value::Array(items) => items.is_empty(),
            toml::Value::Table(table) => table.is_empty(),
            _ => false,
        }
    }

    /// Every default in the code is the one the README shows, and every README default
    /// literal is the code's.
    fn check_section<T: DeserializeOwned + Serialize>(heading: &str) -> Vec<String> {
        let defaults = defaults_of::<T>();
        let rows = readme_rows(heading);
        let mut mismatches = Vec::new();
        for (keys, written) in &rows {
            let Some(written) = written else { continue };
            for (index, key) in keys.iter().enumerate() {
                let expected = written.get(index).or(written.first());
                let actual = defaults
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, v)| v);
                if actual != expected {
                    mismatches.push(format!(
                        "{heading} {key}: README {expected:?}, code {actual:?}"
                    ));
                }
            }
        }
        for (key, value) in &defaults {
            let documented = rows
                .iter()
                .any(|(keys, written)| written.is_some() && keys.contains(key));
            if !documented && !is_empty_collection(value) {
                mismatches.push(format!(
                    "{heading} {key}: default {value} is not in the README"
                ));
            }
        }
        mismatches
    }

    #[test]
    fn the_readme_shows_every_default_as_the_code_has_it() {
        let mismatches: Vec<String> = [
            check_section::<RawServer>("[server]"),
            check_section::<RawAdmin>("[admin]"),
            check_section::<RawLog>("[log]"),
            check_section::<RawStore>("[store]"),
            check_section::<RawCache>("[cache]"),
            check_section::<RawConverse>("[converse]"),
            check_section::<RawIdentityProvider>("[[identity_providers]]"),
            check_section::<RawExchange>("[exchange]"),
            check_section::<RawHostedEmail>("[hosted_email]"),
            check_section::<RawUpstream>("[upstreams.NAME]"),
            check_section::<RawRoute>("[[routes]]"),
            check_section::<RawApiKeys>("[api_keys]"),
            check_section::<RawApiKeyClient>("[[api_keys.clients]]"),
        ]
        .concat();
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    #[test]
    fn a_wrong_default_would_be_caught() {
        let rows = readme_rows("[server]");
        let threads = rows
            .iter()
            .find(|(keys, _)| keys == &["threads"])
            .and_then(|(_, written)| written.clone());
        assert_eq!(threads, Some(vec![toml::Value::Integer(2)]));
        assert_eq!(
            literals("`60`, `86400`").map(|values| values.len()),
            Some(2)
        );
        assert_eq!(literals("required"), None);
        assert_eq!(literals("`server.max_body_bytes`"), None);
    }
}
