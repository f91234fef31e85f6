//! `[hosted_email]`: passkey clients, user-token keys and email delivery, validated.

use super::field::Checker;
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
    /// lettre's SMTP URL (may carry credentials, hence a secret), and the most one SMTP
    /// conversation may take.
    Smtp { url: Secret, timeout: Duration },
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

pub(super) fn compile_hosted_email(
    raw: RawHostedEmail,
    base: &Path,
    checker: &mut Checker,
) -> Option<HostedEmailSettings> {
    let key = |field: &str| format!("hosted_email.{field}");
    let authtoken_ttl = checker.get(&key("authtoken_ttl_seconds"), raw.authtoken_ttl_seconds);
    if authtoken_ttl.is_some_and(|ttl| !(1..=7 * 86_400).contains(&ttl)) {
        checker.fail(key("authtoken_ttl_seconds"), "must be between 1 and 604800");
    }
    let user_token_ttl = checker.get(&key("user_token_ttl_seconds"), raw.user_token_ttl_seconds);
    if user_token_ttl.is_some_and(|ttl| !(1..=366 * 86_400).contains(&ttl)) {
        checker.fail(
            key("user_token_ttl_seconds"),
            "must be between 1 and 31622400",
        );
    }
    let from = checker.get(&key("from"), raw.from).and_then(|from| {
        checker.check(
            key("from"),
            from.parse::<lettre::message::Mailbox>()
                .map_err(|_| format!("{from:?} is not an email address")),
        )
    });
    let subject = checker.get(&key("subject"), raw.subject);
    if subject
        .as_deref()
        .is_some_and(|subject| subject.trim().is_empty())
    {
        checker.fail(key("subject"), "must not be empty");
    }
    let smtp_url = checker.get(&key("smtp_url"), raw.smtp_url);
    let smtp_timeout_ms = checker.get(&key("smtp_timeout_ms"), raw.smtp_timeout_ms);
    if smtp_timeout_ms.is_some_and(|ms| !(1..=300_000).contains(&ms)) {
        checker.fail(key("smtp_timeout_ms"), "must be between 1 and 300000");
    }
    let smtp = smtp_url.map(|url| (url, Duration::from_millis(smtp_timeout_ms.unwrap_or(0))));
    let outbox_dir = checker.get(&key("outbox_dir"), raw.outbox_dir);
    let delivery = compile_delivery(smtp, outbox_dir, base, checker);
    let encryption_keys = compile_keys(raw.encryption_keys, checker);
    let clients = compile_clients(raw.clients, checker);
    let mut per = |field: &str, value| {
        let value = checker.get(&key(field), value)?;
        NonZeroU32::new(value).or_else(|| {
            checker.fail(key(field), "must be at least 1");
            None
        })
    };
    let per_address = per(
        "emails_per_address_per_hour",
        raw.emails_per_address_per_hour,
    );
    let per_client = per(
        "emails_per_client_per_minute",
        raw.emails_per_client_per_minute,
    );
    Some(HostedEmailSettings {
        authtoken_ttl: Duration::from_secs(authtoken_ttl?),
        user_token_ttl: Duration::from_secs(user_token_ttl?),
        encryption_keys: encryption_keys?,
        delivery: delivery?,
        from: from?,
        subject: subject?,
        emails_per_address_per_hour: per_address?,
        emails_per_client_per_minute: per_client?,
        clients: clients?,
    })
}

fn compile_delivery(
    smtp: Option<(Secret, Duration)>,
    outbox_dir: Option<String>,
    base: &Path,
    checker: &mut Checker,
) -> Option<MailDelivery> {
    match (smtp, outbox_dir) {
        (Some((url, timeout)), None) => {
            let scheme = url::Url::parse(url.expose()).map(|url| url.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("smtp" | "smtps")) {
                checker.fail(
                    "hosted_email.smtp_url",
                    "must be an smtp:// or smtps:// URL",
                );
            }
            Some(MailDelivery::Smtp { url, timeout })
        }
        (None, Some(dir)) if !dir.is_empty() => Some(MailDelivery::Outbox {
            dir: base.join(dir),
        }),
        (Some(_), Some(_)) => {
            checker.fail(
                "hosted_email.smtp_url",
                "give either smtp_url or outbox_dir, not both",
            );
            None
        }
        _ => {
            checker.fail(
                "hosted_email.outbox_dir",
                "either smtp_url or a non-empty outbox_dir is required",
            );
            None
        }
    }
}

fn compile_keys(raw: Vec<RawEncryptionKey>, checker: &mut Checker) -> Option<Vec<EncryptionKey>> {
    if raw.is_empty() {
        checker.fail(
            "hosted_email.encryption_keys",
            "at least one key is required",
        );
    }
    let mut keys: Vec<EncryptionKey> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut valid = true;
    for (index, entry) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("hosted_email.encryption_keys[{index}].{field}");
        let id = checker.require(&key("id"), entry.id);
        if let Some(id) = &id {
            let id_ok = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                checker.fail(key("id"), "must be 1-32 letters, digits, \"-\" or \"_\"");
            }
            if ids.contains(id) {
                checker.fail(key("id"), format!("{id:?} is used twice"));
            }
            ids.push(id.clone());
        }
        let secret = checker.require(&key("key"), entry.key);
        let bytes = secret.and_then(|secret| {
            let decoded = base64::engine::general_purpose::STANDARD.decode(secret.expose().trim());
            let bytes = decoded
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
            if bytes.is_none() {
                checker.fail(
                    key("key"),
                    "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
                );
            }
            bytes
        });
        match (id, bytes) {
            (Some(id), Some(key)) => keys.push(EncryptionKey { id, key }),
            _ => valid = false,
        }
    }
    valid.then_some(keys)
}

fn compile_clients(
    raw: Vec<RawHostedEmailClient>,
    checker: &mut Checker,
) -> Option<Vec<HostedEmailClient>> {
    if raw.is_empty() {
        checker.fail("hosted_email.clients", "at least one client is required");
    }
    let mut clients: Vec<HostedEmailClient> = Vec::new();
    let mut valid = true;
    for (index, client) in raw.into_iter().enumerate() {
        let compiled = compile_client(
            &format!("hosted_email.clients[{index}]"),
            client,
            &clients,
            checker,
        );
        match compiled {
            Some(client) => clients.push(client),
            None => valid = false,
        }
    }
    valid.then_some(clients)
}

fn compile_client(
    key: &str,
    raw: RawHostedEmailClient,
    earlier: &[HostedEmailClient],
    checker: &mut Checker,
) -> Option<HostedEmailClient> {
    let field = |name: &str| format!("{key}.{name}");
    let taken = earlier.iter().map(|other| other.name.as_str());
    let name = checker.client_name(&field("name"), raw.name, taken);
    let passkey = checker.require(&field("passkey"), raw.passkey);
    if let Some(passkey) = &passkey {
        if passkey.expose().len() < 16 {
            checker.fail(field("passkey"), "must be at least 16 characters");
        }
        if earlier.iter().any(|other| &other.passkey == passkey) {
            checker.fail(field("passkey"), "is the passkey of another client");
        }
    }
    let api_versions = checker.require_list(
        &field("api_versions"),
        raw.api_versions,
        "at least one version is required",
    );
    let callback_urls = checker.require_list(
        &field("callback_urls"),
        raw.callback_urls,
        "at least one URL prefix is required",
    );
    for (index, url) in callback_urls.iter().flatten().enumerate() {
        checker.check(
            format!("{key}.callback_urls[{index}]"),
            check_callback_prefix(url),
        );
    }
    Some(HostedEmailClient {
        name: name?,
        passkey: passkey?,
        callback_urls: callback_urls?,
        api_versions: api_versions?,
    })
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
        let mut checker = Checker::default();
        compile_hosted_email(raw, Path::new("/etc/keyway"), &mut checker);
        checker
            .problems
            .iter()
            .map(|problem| problem.to_string())
            .collect()
    }

    #[test]
    fn every_mistake_is_reported_with_its_key() {
        let problems = problems_of(
            r#"
smtp_url = "http://mail.example.com"
smtp_timeout_ms = 0
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
[[clients]]
name = "a-name-longer-than-sixty-four-bytes-is-refused-for-it-is-a-label-and-seal"
passkey = "passkey-client-c-0123456789"
callback_urls = ["https://c.example.com/"]
api_versions = ["5.4"]
"#,
        );
        let expected = [
            "hosted_email.smtp_url",
            "hosted_email.smtp_timeout_ms",
            "hosted_email.encryption_keys[0].key",
            "hosted_email.encryption_keys[1].id",
            "hosted_email.clients[0].passkey",
            "hosted_email.clients[0].api_versions",
            "hosted_email.clients[0].callback_urls[0]",
            "hosted_email.clients[1].name",
            "hosted_email.clients[1].callback_urls",
            "hosted_email.clients[2].name",
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
        let mut checker = Checker::default();
        let settings = compile_hosted_email(raw, Path::new("/etc/keyway"), &mut checker).unwrap();
        assert!(checker.problems.is_empty(), "{:?}", checker.problems);
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
