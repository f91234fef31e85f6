//! `[hosted_email]`: passkey clients, user-token keys and email delivery, validated.

use super::ConfigProblem;
use super::raw::{RawEncryptionKey, RawHostedEmail, RawHostedEmailClient};
use super::secret::Secret;
use base64::Engine;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The compiled `[hosted_email]` section.
#[derive(Debug, Clone)]
pub struct HostedEmailSettings {
    pub authtoken_ttl: Duration,
    pub user_token_ttl: Duration,
    /// Never empty; the first seals new user tokens.
    pub encryption_keys: Vec<EncryptionKey>,
    pub delivery: MailDelivery,
    pub from: lettre::message::Mailbox,
    pub subject: String,
    pub emails_per_address_per_hour: NonZeroU32,
    pub emails_per_client_per_minute: NonZeroU32,
    pub clients: Vec<HostedEmailClient>,
}

/// A user-token key and the id written next to the tokens it seals.
#[derive(Clone)]
pub struct EncryptionKey {
    pub id: String,
    pub key: [u8; 32],
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({:?}, <redacted>)", self.id)
    }
}

#[derive(Debug, Clone)]
pub enum MailDelivery {
    /// lettre's SMTP URL (may carry credentials, hence a secret).
    Smtp { url: Secret },
    /// `.eml` files in this directory: the embedded default that needs no mail server.
    Outbox { dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct HostedEmailClient {
    pub name: String,
    pub passkey: Secret,
    /// Canonical absolute http(s) URLs; a callback must start with one of them.
    pub callback_urls: Vec<String>,
    pub api_versions: Vec<String>,
}

type Problems = Vec<ConfigProblem>;

pub fn compile_hosted_email(
    raw: &RawHostedEmail,
    base: &Path,
    problems: &mut Problems,
) -> HostedEmailSettings {
    let mut fail = |key: String, message: String| {
        problems.push(ConfigProblem::new(format!("hosted_email.{key}"), message))
    };
    if !(1..=7 * 86_400).contains(&raw.authtoken_ttl_seconds) {
        fail(
            "authtoken_ttl_seconds".into(),
            "must be between 1 and 604800".into(),
        );
    }
    if !(1..=366 * 86_400).contains(&raw.user_token_ttl_seconds) {
        fail(
            "user_token_ttl_seconds".into(),
            "must be between 1 and 31622400".into(),
        );
    }
    let from = raw.from.parse().unwrap_or_else(|_| {
        fail(
            "from".into(),
            format!("{:?} is not an email address", raw.from),
        );
        "keyway <no-reply@localhost>"
            .parse()
            .expect("a valid mailbox")
    });
    if raw.subject.trim().is_empty() {
        fail("subject".into(), "must not be empty".into());
    }
    let delivery = compile_delivery(raw, base, &mut fail);
    let encryption_keys = compile_keys(&raw.encryption_keys, &mut fail);
    let clients = compile_clients(&raw.clients, &mut fail);
    let per_address = NonZeroU32::new(raw.emails_per_address_per_hour).unwrap_or_else(|| {
        fail(
            "emails_per_address_per_hour".into(),
            "must be at least 1".into(),
        );
        NonZeroU32::MIN
    });
    let per_client = NonZeroU32::new(raw.emails_per_client_per_minute).unwrap_or_else(|| {
        fail(
            "emails_per_client_per_minute".into(),
            "must be at least 1".into(),
        );
        NonZeroU32::MIN
    });
    HostedEmailSettings {
        authtoken_ttl: Duration::from_secs(raw.authtoken_ttl_seconds),
        user_token_ttl: Duration::from_secs(raw.user_token_ttl_seconds),
        encryption_keys,
        delivery,
        from,
        subject: raw.subject.clone(),
        emails_per_address_per_hour: per_address,
        emails_per_client_per_minute: per_client,
        clients,
    }
}

fn compile_delivery(
    raw: &RawHostedEmail,
    base: &Path,
    fail: &mut impl FnMut(String, String),
) -> MailDelivery {
    match (&raw.smtp_url, &raw.outbox_dir) {
        (Some(url), None) => {
            let scheme = url::Url::parse(url.expose()).map(|url| url.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("smtp" | "smtps")) {
                fail(
                    "smtp_url".into(),
                    "must be an smtp:// or smtps:// URL".into(),
                );
            }
            MailDelivery::Smtp { url: url.clone() }
        }
        (None, Some(dir)) if !dir.is_empty() => MailDelivery::Outbox {
            dir: base.join(dir),
        },
        (Some(_), Some(_)) => {
            fail(
                "smtp_url".into(),
                "give either smtp_url or outbox_dir, not both".into(),
            );
            MailDelivery::Outbox { dir: base.into() }
        }
        _ => {
            fail(
                "outbox_dir".into(),
                "either smtp_url or a non-empty outbox_dir is required".into(),
            );
            MailDelivery::Outbox { dir: base.into() }
        }
    }
}

fn compile_keys(
    raw: &[RawEncryptionKey],
    fail: &mut impl FnMut(String, String),
) -> Vec<EncryptionKey> {
    if raw.is_empty() {
        fail(
            "encryption_keys".into(),
            "at least one key is required".into(),
        );
    }
    let mut keys = Vec::new();
    for (index, entry) in raw.iter().enumerate() {
        let key = format!("encryption_keys[{index}]");
        let id_ok = (1..=32).contains(&entry.id.len())
            && entry
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            fail(
                format!("{key}.id"),
                "must be 1-32 letters, digits, \"-\" or \"_\"".into(),
            );
        }
        if raw[..index].iter().any(|other| other.id == entry.id) {
            fail(format!("{key}.id"), format!("{:?} is used twice", entry.id));
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(entry.key.expose().trim());
        match decoded
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        {
            Some(bytes) => keys.push(EncryptionKey {
                id: entry.id.clone(),
                key: bytes,
            }),
            None => fail(
                format!("{key}.key"),
                "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)".into(),
            ),
        }
    }
    keys
}

fn compile_clients(
    raw: &[RawHostedEmailClient],
    fail: &mut impl FnMut(String, String),
) -> Vec<HostedEmailClient> {
    if raw.is_empty() {
        fail("clients".into(), "at least one client is required".into());
    }
    let mut clients = Vec::new();
    for (index, client) in raw.iter().enumerate() {
        let key = format!("clients[{index}]");
        let name_ok = !client.name.is_empty()
            && client
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            fail(
                format!("{key}.name"),
                "must be letters, digits, \"-\", \"_\" or \".\"".into(),
            );
        }
        if raw[..index].iter().any(|other| other.name == client.name) {
            fail(
                format!("{key}.name"),
                format!("{:?} is used twice", client.name),
            );
        }
        if client.passkey.expose().len() < 16 {
            fail(
                format!("{key}.passkey"),
                "must be at least 16 characters".into(),
            );
        }
        if raw[..index]
            .iter()
            .any(|other| other.passkey == client.passkey)
        {
            fail(
                format!("{key}.passkey"),
                "is the passkey of another client".into(),
            );
        }
        if client.api_versions.is_empty() {
            fail(
                format!("{key}.api_versions"),
                "at least one version is required".into(),
            );
        }
        if client.callback_urls.is_empty() {
            fail(
                format!("{key}.callback_urls"),
                "at least one URL prefix is required".into(),
            );
        }
        for (url_index, url) in client.callback_urls.iter().enumerate() {
            if let Err(message) = check_callback_prefix(url) {
                fail(format!("{key}.callback_urls[{url_index}]"), message);
            }
        }
        clients.push(HostedEmailClient {
            name: client.name.clone(),
            passkey: client.passkey.clone(),
            callback_urls: client.callback_urls.clone(),
            api_versions: client.api_versions.clone(),
        });
    }
    clients
}

/// A callback prefix is an absolute http(s) URL with a host, no credentials, no query or
/// fragment, written in canonical form (so that comparing text compares URLs).
fn check_callback_prefix(prefix: &str) -> Result<(), String> {
    let url = url::Url::parse(prefix).map_err(|_| format!("{prefix:?} is not an absolute URL"))?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !usable {
        return Err(format!(
            "{prefix:?} must be an http(s) URL with a host and no credentials, query or fragment"
        ));
    }
    if url.as_str() != prefix {
        return Err(format!(
            "{prefix:?} is not in canonical form; write {:?}",
            url.as_str()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<String> {
        let raw: RawHostedEmail = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        compile_hosted_email(&raw, Path::new("/etc/keyway"), &mut problems);
        problems.iter().map(|problem| problem.to_string()).collect()
    }

    #[test]
    fn every_mistake_is_reported_with_its_key() {
        let problems = problems_of(
            r#"
smtp_url = "http://mail.example.com"
outbox_dir = "outbox"
encryption_keys = [{ id = "k1", key = "c2hvcnQ=" }, { id = "k1", key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" }]
[[clients]]
name = "a"
passkey = "short"
callback_urls = ["https://a.example.com"]
api_versions = []
[[clients]]
name = "a"
passkey = "short"
callback_urls = []
api_versions = ["5.4"]
"#,
        );
        let expected = [
            "hosted_email.smtp_url",
            "hosted_email.encryption_keys[0].key",
            "hosted_email.encryption_keys[1].id",
            "hosted_email.clients[0].passkey",
            "hosted_email.clients[0].api_versions",
            "hosted_email.clients[0].callback_urls[0]",
            "hosted_email.clients[1].name",
            "hosted_email.clients[1].callback_urls",
        ];
        for key in expected {
            assert!(
                problems.iter().any(|problem| problem.contains(key)),
                "{key} not in {problems:#?}"
            );
        }
        assert!(
            problems.iter().all(|problem| !problem.contains("AQEBAQ")),
            "a key reached a message"
        );
    }

    #[test]
    fn an_outbox_is_relative_to_the_config() {
        let raw: RawHostedEmail = toml::from_str(
            r#"
outbox_dir = "outbox"
encryption_keys = [{ id = "k1", key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" }]
[[clients]]
name = "a"
passkey = "a-passkey-0123456789"
callback_urls = ["https://a.example.com/"]
api_versions = ["5.4"]
"#,
        )
        .unwrap();
        let mut problems = Vec::new();
        let settings = compile_hosted_email(&raw, Path::new("/etc/keyway"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(matches!(
            settings.delivery,
            MailDelivery::Outbox { ref dir } if dir == Path::new("/etc/keyway/outbox")
        ));
        assert_eq!(settings.encryption_keys[0].key, [1u8; 32]);
        assert!(!format!("{settings:?}").contains("a-passkey"));
    }

    #[test]
    fn callback_prefixes_must_be_canonical_http_urls() {
        assert!(check_callback_prefix("https://reviews.example.com/confirm").is_ok());
        assert!(check_callback_prefix("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "https://reviews.example.com",
            "https://REVIEWS.example.com/",
            "https://user@reviews.example.com/",
            "ftp://reviews.example.com/",
            "https://reviews.example.com/?a=1",
            "/confirm",
            "//reviews.example.com/",
        ] {
            assert!(check_callback_prefix(bad).is_err(), "{bad}");
        }
    }
}
