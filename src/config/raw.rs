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
