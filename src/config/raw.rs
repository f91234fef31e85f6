//! The config file as written: serde structs that mirror `config.toml` key by key.
//!
//! Nothing here is trusted yet; `validate.rs` turns these into the compiled [`super::Config`].
//! Defaults that matter for safety are documented where they are set.

use super::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub credentials: BTreeMap<String, BTreeMap<String, Secret>>,
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
}

#[derive(Debug, Deserialize)]
pub struct RawHostedEmail {
    /// Life of the one-time `authtoken` sent by email.
    #[serde(default = "default_authtoken_ttl")]
    pub authtoken_ttl_seconds: u64,
    /// Life of the encrypted user token given for it.
    #[serde(default = "default_user_token_ttl")]
    pub user_token_ttl_seconds: u64,
    /// AES-256-GCM keys; the first seals new user tokens, all open them.
    #[serde(default)]
    pub encryption_keys: Vec<RawEncryptionKey>,
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (TLS); credentials as `smtp://user:pass@host`. Exclusive with
    /// `outbox_dir`.
    pub smtp_url: Option<Secret>,
    /// Writes each email as an `.eml` file here instead of sending it.
    pub outbox_dir: Option<String>,
    #[serde(default = "default_mail_from")]
    pub from: String,
    #[serde(default = "default_mail_subject")]
    pub subject: String,
    /// Authentication emails per address per hour.
    #[serde(default = "default_emails_per_address")]
    pub emails_per_address_per_hour: u32,
    /// Authentication emails per client (passkey) per minute.
    #[serde(default = "default_emails_per_client")]
    pub emails_per_client_per_minute: u32,
    #[serde(default)]
    pub clients: Vec<RawHostedEmailClient>,
}

#[derive(Debug, Deserialize)]
pub struct RawEncryptionKey {
    /// Written in every token (outside the ciphertext) to pick the key that opens it.
    pub id: String,
    /// 32 bytes, base64.
    pub key: Secret,
}

#[derive(Debug, Deserialize)]
pub struct RawHostedEmailClient {
    pub name: String,
    pub passkey: Secret,
    /// Allowed callback URL prefixes (absolute http(s) URLs).
    pub callback_urls: Vec<String>,
    /// Accepted `apiversion` values, e.g. `["5.4"]`.
    pub api_versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawExchange {
    /// Serves `POST {api_prefix}/{customerId}[?providerId=N]`.
    #[serde(default = "default_exchange_prefix")]
    pub api_prefix: String,
    /// Longest life of a userInfoId (never past the exchanged token's `exp`).
    #[serde(default = "default_exchange_ttl")]
    pub ttl_seconds: u64,
    /// A userInfoId redeems once.
    #[serde(default = "default_true")]
    pub single_use: bool,
    /// Token claims kept with the userInfoId (for identity headers).
    #[serde(default = "default_exchange_claims")]
    pub claims: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawIdentityProvider {
    pub customer_id: String,
    pub provider_id: i64,
    /// Compared exactly with the token's `iss`.
    pub issuer: String,
    /// Where the JWK set is fetched; with neither this, `keys_file` nor `secret`, it is
    /// discovered from `{issuer}/.well-known/openid-configuration`.
    pub jwks_uri: Option<String>,
    /// A JWK set or PEM public key file used instead of fetching.
    pub keys_file: Option<String>,
    /// An HMAC secret: only with HS* algorithms, never next to asymmetric keys.
    pub secret: Option<Secret>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: i64,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Refresh interval when the JWKS response has no usable `Cache-Control: max-age`.
    #[serde(default = "default_jwks_refresh")]
    pub refresh_seconds: u64,
    /// Bounds applied to `max-age`.
    #[serde(default = "default_jwks_min_refresh")]
    pub min_refresh_seconds: u64,
    #[serde(default = "default_jwks_max_refresh")]
    pub max_refresh_seconds: u64,
    /// An unknown `kid` triggers at most one refetch per this many seconds.
    #[serde(default = "default_refetch_cooldown")]
    pub refetch_cooldown_seconds: u64,
    /// How long the last good keys are used while fetches fail.
    #[serde(default = "default_max_stale")]
    pub max_stale_seconds: u64,
    #[serde(default = "default_fetch_timeout_ms")]
    pub fetch_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawStore {
    /// `"sqlite"` (embedded default).
    #[serde(default = "default_store_backend")]
    pub backend: String,
    #[serde(default = "default_store_path")]
    pub path: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            backend: default_store_backend(),
            path: default_store_path(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawCache {
    /// Entries per cache.
    #[serde(default = "default_cache_capacity")]
    pub capacity: u64,
    /// The staleness bound: how long a validated credential is trusted without the store.
    #[serde(default = "default_cache_ttl_seconds")]
    pub ttl_seconds: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            capacity: default_cache_capacity(),
            ttl_seconds: default_cache_ttl_seconds(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawConverse {
    #[serde(default = "default_converse_header")]
    pub header: String,
    /// Where the token API is served: `{api_prefix}/verify`, `{api_prefix}/token/...`.
    #[serde(default = "default_converse_api_prefix")]
    pub api_prefix: String,
    #[serde(default = "default_converse_timeout")]
    pub default_timeout_seconds: i64,
    #[serde(default = "default_converse_max_timeout")]
    pub max_timeout_seconds: i64,
    /// Whether `timeout = -1` (a token that never expires) may be requested.
    #[serde(default = "default_true")]
    pub allow_non_expiring: bool,
    /// `"static"` (`[[converse.users]]`) or `"upstream"` (`directory_url`).
    #[serde(default = "default_converse_directory")]
    pub directory: String,
    pub directory_url: Option<String>,
    #[serde(default = "default_directory_timeout_ms")]
    pub directory_timeout_ms: u64,
    /// Password hashes computed at once (each argon2id hash holds ~19 MiB).
    #[serde(default = "default_max_concurrent_hashes")]
    pub max_concurrent_hashes: usize,
    /// Largest body accepted by the token API.
    #[serde(default = "default_converse_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(default = "default_purge_interval_seconds")]
    pub purge_interval_seconds: u64,
    #[serde(default)]
    pub lockout: RawLockout,
    #[serde(default)]
    pub users: Vec<RawUser>,
}

#[derive(Debug, Deserialize)]
pub struct RawLockout {
    /// Failed logins for one account before it is locked.
    #[serde(default = "default_lockout_failures")]
    pub max_failures: u32,
    /// Failed logins from one client IP (any account) before it is locked.
    #[serde(default = "default_lockout_ip_failures")]
    pub ip_max_failures: u32,
    /// First lock length; each further failure doubles it.
    #[serde(default = "default_lockout_base")]
    pub base_seconds: u64,
    #[serde(default = "default_lockout_max")]
    pub max_seconds: u64,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout {
            max_failures: default_lockout_failures(),
            ip_max_failures: default_lockout_ip_failures(),
            base_seconds: default_lockout_base(),
            max_seconds: default_lockout_max(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawUser {
    pub email: String,
    /// An argon2id PHC string (`keyway hash-password`).
    pub password_hash: Secret,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub listen: Vec<String>,
    /// Worker threads of the proxy service.
    #[serde(default = "default_threads")]
    pub threads: usize,
    pub tls: Option<RawTls>,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(default = "default_grace_period_seconds")]
    pub grace_period_seconds: u64,
    /// Largest request body accepted; routes may lower or raise it.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Idle keep-alive connections kept per upstream pool.
    #[serde(default = "default_keepalive_pool_size")]
    pub upstream_keepalive_pool_size: usize,
}

#[derive(Debug, Deserialize)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct RawAdmin {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
pub struct RawLog {
    /// `tracing` filter directive, e.g. `"info"` or `"keyway=debug,info"`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// One structured line per request.
    #[serde(default = "default_true")]
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: default_log_level(),
            access_log: true,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawUpstream {
    pub addresses: Vec<String>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub sni: String,
    /// Verify the upstream's certificate chain and host name when `tls = true`.
    #[serde(default = "default_true")]
    pub verify_cert: bool,
    /// PEM file of CA certificates trusted for this upstream instead of the system roots.
    pub ca_file: Option<String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_io_timeout_ms")]
    pub read_timeout_ms: u64,
    #[serde(default = "default_io_timeout_ms")]
    pub write_timeout_ms: u64,
    /// How long an idle pooled connection is kept for reuse.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawRoute {
    pub name: String,
    pub path_prefix: String,
    pub host: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: String,
    pub auth: Vec<String>,
    pub credentials: Option<String>,
    #[serde(default)]
    pub identity_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub strip_request_headers: Vec<String>,
    pub max_body_bytes: Option<u64>,
    /// `jwt`: only tokens of these customers (empty: any configured customer).
    #[serde(default)]
    pub customers: Vec<String>,
    /// `jwt`: only tokens of these provider ids (empty: any).
    #[serde(default)]
    pub providers: Vec<i64>,
}

fn default_threads() -> usize {
    2
}
fn default_grace_period_seconds() -> u64 {
    30
}
fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_keepalive_pool_size() -> usize {
    128
}
fn default_log_level() -> String {
    "info".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_io_timeout_ms() -> u64 {
    30_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_store_backend() -> String {
    "sqlite".to_owned()
}
fn default_store_path() -> String {
    "data/keyway.db".to_owned()
}
fn default_cache_capacity() -> u64 {
    1_000_000
}
fn default_cache_ttl_seconds() -> u64 {
    30
}
fn default_converse_header() -> String {
    "X-CONVERSE-TOKEN".to_owned()
}
fn default_converse_api_prefix() -> String {
    "/api/user".to_owned()
}
fn default_converse_timeout() -> i64 {
    3600
}
fn default_converse_max_timeout() -> i64 {
    2_592_000
}
fn default_converse_directory() -> String {
    "static".to_owned()
}
fn default_directory_timeout_ms() -> u64 {
    2_000
}
fn default_max_concurrent_hashes() -> usize {
    4
}
fn default_converse_body_bytes() -> u64 {
    16 * 1024
}
fn default_purge_interval_seconds() -> u64 {
    60
}
fn default_lockout_failures() -> u32 {
    5
}
fn default_lockout_ip_failures() -> u32 {
    50
}
fn default_lockout_base() -> u64 {
    1
}
fn default_lockout_max() -> u64 {
    900
}
pub(super) fn default_leeway_seconds() -> i64 {
    60
}
pub(super) fn default_max_token_bytes() -> usize {
    8192
}
pub(super) fn default_jwks_refresh() -> u64 {
    300
}
pub(super) fn default_jwks_min_refresh() -> u64 {
    60
}
pub(super) fn default_jwks_max_refresh() -> u64 {
    86_400
}
pub(super) fn default_refetch_cooldown() -> u64 {
    30
}
pub(super) fn default_max_stale() -> u64 {
    86_400
}
pub(super) fn default_fetch_timeout_ms() -> u64 {
    2_000
}
fn default_authtoken_ttl() -> u64 {
    3600
}
fn default_user_token_ttl() -> u64 {
    30 * 86_400
}
fn default_mail_from() -> String {
    "keyway <no-reply@localhost>".to_owned()
}
fn default_mail_subject() -> String {
    "Confirm your email address".to_owned()
}
fn default_emails_per_address() -> u32 {
    5
}
fn default_emails_per_client() -> u32 {
    600
}
fn default_exchange_prefix() -> String {
    "/api/authenticate".to_owned()
}
fn default_exchange_ttl() -> u64 {
    600
}
fn default_exchange_claims() -> Vec<String> {
    ["sub", "email", "name"].map(str::to_owned).to_vec()
}
