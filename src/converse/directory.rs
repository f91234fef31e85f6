//! Who may log in: the static `[[converse.users]]` list (argon2id hashes) or an upstream
//! service that already owns the users.

use super::ConverseError;
use super::password::{Busy, PasswordChecker};
use crate::config::converse::{ConverseSettings, DirectorySettings};
use std::collections::HashMap;
use std::time::Duration;
use tracing::warn;

/// A user whose password checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    pub email: String,
    pub admin: bool,
}

struct StaticUser {
    password_hash: String,
    admin: bool,
}

/// The configured user directory.
pub struct Directory(Source);

enum Source {
    Static {
        users: HashMap<String, StaticUser>,
        checker: PasswordChecker,
    },
    Upstream {
        url: String,
        client: reqwest::Client,
    },
}

impl Directory {
    pub fn new(settings: &ConverseSettings) -> Self {
        Directory(match &settings.directory {
            DirectorySettings::Static(entries) => Source::Static {
                users: entries
                    .iter()
                    .map(|entry| {
                        let user = StaticUser {
                            password_hash: entry.password_hash.expose().to_owned(),
                            admin: entry.admin,
                        };
                        (entry.email.clone(), user)
                    })
                    .collect(),
                checker: PasswordChecker::new(
                    settings.max_concurrent_hashes,
                    settings.max_queued_hashes,
                ),
            },
            DirectorySettings::Upstream { url, timeout } => Source::Upstream {
                url: url.clone(),
                client: upstream_client(*timeout),
            },
        })
    }

    /// `Ok(None)`: wrong email or password (indistinguishable, and equally slow).
    /// `Err(DirectoryUnavailable)`: the upstream directory could not answer; never "valid".
    pub async fn verify(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<VerifiedUser>, ConverseError> {
        match &self.0 {
            Source::Static { users, checker } => {
                let user = users.get(email);
                let matched = checker
                    .verify(password, user.map(|user| user.password_hash.as_str()))
                    .await
                    .map_err(|Busy| ConverseError::Busy)?;
                Ok(user.filter(|_| matched).map(|user| VerifiedUser {
                    email: email.to_owned(),
                    admin: user.admin,
                }))
            }
            Source::Upstream { url, client } => verify_upstream(client, url, email, password).await,
        }
    }

    /// Whether `email` may still hold tokens: a user removed from the static directory (by a
    /// reload) may not. The upstream directory is asked only at login.
    pub fn still_has(&self, email: &str) -> bool {
        match &self.0 {
            Source::Static { users, .. } => users.contains_key(email),
            Source::Upstream { .. } => true,
        }
    }

    /// Whether `email` is an administrator (only the static directory knows admins).
    pub fn is_admin(&self, email: &str) -> bool {
        match &self.0 {
            Source::Static { users, .. } => users.get(email).is_some_and(|user| user.admin),
            Source::Upstream { .. } => false,
        }
    }
}

fn upstream_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a TLS-capable HTTP client builds")
}

async fn verify_upstream(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> Result<Option<VerifiedUser>, ConverseError> {
    let body = serde_json::json!({ "email": email, "password": password });
    let response = client.post(url).json(&body).send().await.map_err(|error| {
        // reqwest errors name the URL, never the body.
        warn!(%error, "user directory unreachable");
        ConverseError::DirectoryUnavailable
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(Some(VerifiedUser {
            email: email.to_owned(),
            admin: false,
        }));
    }
    if status.is_client_error() {
        return Ok(None);
    }
    warn!(%status, "user directory failed");
    Err(ConverseError::DirectoryUnavailable)
}
