//! Configuration: `config.toml` -> raw serde structs -> validated, compiled [`Config`].
//!
//! Loading never stops at the first mistake: `${VAR}` problems, unknown keys and semantic
//! errors are collected and reported together, each naming its key (`routes[2].upstream`).

pub mod converse;
mod env;
pub mod hosted_email;
pub mod identity;
pub(crate) mod raw;
pub mod secret;
mod validate;

use crate::routing::RouteTable;
pub use converse::{CacheSettings, ConverseSettings, StoreSettings};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated, compiled configuration: everything the request path needs, built once.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub routes: RouteTable,
    pub store: StoreSettings,
    pub cache: CacheSettings,
    /// Present when `[converse]` is configured: the token API and `auth = ["converse"]`.
    pub converse: Option<ConverseSettings>,
    /// `[[identity_providers]]`: JWT issuers, for `auth = ["jwt"]`.
    pub identity_providers: Vec<identity::ProviderSettings>,
    /// Present when `[exchange]` is configured: the userInfoId API and `auth = ["exchange"]`.
    pub exchange: Option<identity::ExchangeSettings>,
    /// Present when `[hosted_email]` is configured: the hosted email APIs and
    /// `auth = ["hosted_email"]`.
    pub hosted_email: Option<hosted_email::HostedEmailSettings>,
}

impl Config {
    /// The top-level JWT claims something reads: identity headers on `jwt` and `exchange`
    /// routes, and the exchange's stored claims and `exp`. A verified JWT keeps only these.
    pub fn jwt_claims_in_use(&self) -> Vec<String> {
        use crate::auth::AuthKind;
        let reads_jwt_claims = |kind: &AuthKind| matches!(kind, AuthKind::Jwt | AuthKind::Exchange);
        let mut names: Vec<String> = self
            .routes
            .routes()
            .iter()
            .filter(|route| route.auth.iter().any(reads_jwt_claims))
            .flat_map(|route| route.headers.identity_claims())
            .map(|path| path.split('.').next().unwrap_or(path).to_owned())
            .collect();
        if let Some(exchange) = &self.exchange {
            names.extend(exchange.claims.iter().cloned());
            names.push("exp".to_owned());
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<String>,
    pub threads: usize,
    pub tls: Option<TlsFiles>,
    pub grace_period: Duration,
    pub upstream_keepalive_pool_size: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: String,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub access_log: bool,
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

impl Config {
    /// Reads, substitutes `${VAR}` from the process environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_owned(),
            problems: vec![ConfigProblem::new(
                "",
                format!("cannot read the file: {error}"),
            )],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, &|name| std::env::var(name).ok()).map_err(|problems| {
            ConfigError {
                path: path.to_owned(),
                problems,
            }
        })
    }

    /// Validates config text; relative file paths resolve against `base`.
    pub fn from_toml(
        text: &str,
        base: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigProblem>> {
        let mut tree: toml::Value = toml::from_str(text).map_err(|error| {
            vec![ConfigProblem::new(
                "",
                format!("invalid TOML: {}", error.message()),
            )]
        })?;
        let mut problems = env::substitute(&mut tree, lookup);
        let mut unknown = Vec::new();
        let raw = serde_ignored::deserialize(tree, |path| unknown.push(validate::key_of(&path)));
        problems.extend(
            unknown
                .into_iter()
                .map(|key| ConfigProblem::new(key, "unknown key")),
        );
        let raw: raw::RawConfig = match raw {
            Ok(raw) => raw,
            Err(error) => {
                problems.push(ConfigProblem::new(
                    "",
                    error.to_string().trim_end().to_owned(),
                ));
                return Err(problems);
            }
        };
        let config = validate::compile(raw, base, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }
}
