//! Configuration, a leaf: `config.toml` -> raw serde structs ([`raw`]) -> validated, plain
//! [`Settings`]. Nothing here builds a runtime object, opens a file for use or looks a name up
//! in DNS: that is `build`'s job, so `check-config` is safe to run anywhere.
//!
//! Loading never stops at the first mistake: `${VAR}` problems, unknown keys, values of the
//! wrong type and semantic errors are collected and reported together, each naming its key
//! (`routes[2].upstream`).

pub mod api_keys;
pub mod converse;
mod env;
mod field;
pub mod files;
pub mod hosted_email;
pub mod identity;
pub mod raw;
mod routes;
pub mod secret;
mod server;

/// The longest client name (a metric label, and part of every sealed hosted-email user token,
/// which must stay within the opener's size limit).
pub const MAX_CLIENT_NAME_BYTES: usize = 64;

pub use api_keys::{ApiKeyClient, ApiKeySettings};
pub use converse::ConverseSettings;
pub use hosted_email::HostedEmailSettings;
pub use identity::{ExchangeSettings, ProviderSettings};
pub use raw::InvalidationMode;
pub use routes::{
    CredentialSet, RequestSchemaSpec, RoutePath, RouteSpec, TargetSpec, UpstreamSpec,
};
pub use server::{
    AdminSettings, CacheSettings, ClientLimits, LogSettings, RedisServer, RedisSettings,
    SentinelSettings, ServerSettings, StoreSettings, TlsFiles,
};

use field::Checker;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A validated configuration: plain data, every choice an enum, every reference checked.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub store: StoreSettings,
    pub cache: CacheSettings,
    /// `[upstreams.NAME]`, by name.
    pub upstreams: Vec<UpstreamSpec>,
    /// `[credentials.NAME]`, by name.
    pub credentials: BTreeMap<String, CredentialSet>,
    /// `[[routes]]` in file order, then the routes of the configured built-in APIs.
    pub routes: Vec<RouteSpec>,
    /// Present when `[converse]` is configured: the token API and `auth = ["converse"]`.
    pub converse: Option<ConverseSettings>,
    /// `[[identity_providers]]`: JWT issuers, for `auth = ["jwt"]` and the exchange.
    pub identity_providers: Vec<ProviderSettings>,
    /// Present when `[exchange]` is configured: the userInfoId API and `auth = ["exchange"]`.
    pub exchange: Option<ExchangeSettings>,
    /// Present when `[hosted_email]` is configured: the hosted email APIs and
    /// `auth = ["hosted_email"]`.
    pub hosted_email: Option<HostedEmailSettings>,
    /// Present when `[api_keys]` is configured: partners' key pairs for `auth = ["api_key"]`.
    pub api_keys: Option<ApiKeySettings>,
}

/// One mistake in the config, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a config could not be loaded: every problem found, not just the first.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        writeln!(f, "{}: {count} {noun}", self.path.display())?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads, substitutes `${VAR}` from the process environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_owned(),
            problems: vec![ConfigProblem::new(
                "",
                format!("cannot read the file: {error}"),
            )],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::from_toml(&text, base, &|name| std::env::var(name).ok()).map_err(|problems| {
            ConfigError {
                path: path.to_owned(),
                problems,
            }
        })
    }

    /// Only `server.pid_file` of the file at `path` (its default when absent), resolved like
    /// every path: what `keyway reload` needs. The rest is validated by the running process,
    /// in its own environment.
    pub fn pid_file_of(path: &Path) -> Result<PathBuf, ConfigError> {
        let problem = |message: String| ConfigError {
            path: path.to_owned(),
            problems: vec![ConfigProblem::new("server.pid_file", message)],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| problem(format!("cannot read the file: {error}")))?;
        let tree: toml::Value = toml::from_str(&text)
            .map_err(|error| problem(format!("invalid TOML: {}", error.message())))?;
        let configured = tree.get("server").and_then(|server| server.get("pid_file"));
        let pid_file = match configured {
            None => match raw::defaults::pid_file() {
                field::Field::Valid(default) => default,
                _ => unreachable!("defaults are valid"),
            },
            Some(toml::Value::String(pid_file)) => pid_file.clone(),
            Some(_) => return Err(problem("must be a string".to_owned())),
        };
        Ok(path.parent().unwrap_or(Path::new(".")).join(pid_file))
    }

    /// Validates config text; relative file paths resolve against `base`.
    pub fn from_toml(
        text: &str,
        base: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Vec<ConfigProblem>> {
        let mut tree: toml::Value = toml::from_str(text).map_err(|error| {
            vec![ConfigProblem::new(
                "",
                format!("invalid TOML: {}", error.message()),
            )]
        })?;
        let mut checker = Checker {
            problems: env::substitute(&mut tree, &env::Sources { lookup, base }),
        };
        let raw = read_raw(tree, &mut checker);
        let settings = raw.and_then(|raw| compile(raw, base, &mut checker));
        match settings {
            Some(settings) if checker.problems.is_empty() => Ok(settings),
            _ => Err(checker.problems),
        }
    }
}

/// The raw structs, with every unknown key reported. A value of the wrong type inside a leaf
/// is kept in its [`field::Field`]; only a section of the wrong shape (`server = 5`) stops here.
fn read_raw(tree: toml::Value, checker: &mut Checker) -> Option<raw::RawConfig> {
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(key_of(&path));
    let ignoring = serde_ignored::Deserializer::new(tree, &mut record_unknown);
    let result: Result<raw::RawConfig, _> = serde_path_to_error::deserialize(ignoring);
    for key in unknown {
        checker.fail(key, "unknown key");
    }
    match result {
        Ok(raw) => Some(raw),
        Err(error) => {
            let key = error.path().to_string();
            let message = error.into_inner().message().trim_end().to_owned();
            checker.fail(if key == "." { String::new() } else { key }, message);
            None
        }
    }
}

/// Validates every section; `None` when something is missing or of the wrong type.
fn compile(raw: raw::RawConfig, base: &Path, checker: &mut Checker) -> Option<Settings> {
    let server = server::compile_server(raw.server, base, checker);
    let admin = server::compile_admin(raw.admin, server.as_ref(), checker);
    let log = server::compile_log(raw.log, checker);
    let store = server::compile_store(raw.store, base, checker);
    let cache = server::compile_cache(raw.cache, checker);
    let converse = raw
        .converse
        .map(|converse| converse::compile_converse(converse, checker));
    let identity_providers = identity::compile_providers(raw.identity_providers, base, checker);
    let exchange = raw
        .exchange
        .map(|exchange| identity::compile_exchange(exchange, &identity_providers, checker));
    let hosted_email = raw
        .hosted_email
        .map(|hosted| hosted_email::compile_hosted_email(hosted, base, checker));
    let api_keys = raw
        .api_keys
        .map(|keys| api_keys::compile_api_keys(keys, checker));
    let upstream_names: Vec<String> = raw.upstreams.keys().cloned().collect();
    let credential_names: Vec<String> = raw.credentials.keys().cloned().collect();
    let upstreams = routes::compile_upstreams(raw.upstreams, base, checker);
    let credentials = routes::compile_credentials(raw.credentials, checker);
    let services = routes::Services {
        converse: converse.as_ref().map(Option::as_ref),
        providers: &identity_providers,
        exchange: exchange.as_ref().map(Option::as_ref),
        hosted_email: hosted_email.is_some(),
        api_keys: api_keys.as_ref().map(Option::as_ref),
    };
    let context = routes::RouteContext {
        upstream_names: upstream_names.iter().map(String::as_str).collect(),
        credential_names: credential_names.iter().map(String::as_str).collect(),
        default_body_limit: server.as_ref().map_or(1, |server| server.max_body_bytes),
        base,
        services,
    };
    let routes = routes::compile_routes(raw.routes, &context, checker);
    Some(Settings {
        server: server?,
        admin: admin?,
        log: log?,
        store: store?,
        cache: cache?,
        upstreams: upstreams?,
        credentials: credentials?,
        routes: routes?,
        converse: configured(converse)?,
        identity_providers: identity_providers.into_iter().collect::<Option<_>>()?,
        exchange: configured(exchange)?,
        hosted_email: configured(hosted_email)?,
        api_keys: configured(api_keys)?,
    })
}

/// An optional section: `Some(None)` when left out, `None` when written but invalid.
fn configured<T>(section: Option<Option<T>>) -> Option<Option<T>> {
    match section {
        None => Some(None),
        Some(valid) => valid.map(Some),
    }
}

/// `routes[2].upstrem` from serde_ignored's path.
fn key_of(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_of(parent)),
        Path::Map { parent, key } => {
            let parent = key_of(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_of(parent),
    }
}
