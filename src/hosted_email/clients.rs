//! Hosted-email API clients: found by passkey (in constant time), then held to their API
//! versions and callback URL prefixes.

use super::HostedEmailError;
use crate::config::hosted_email::HostedEmailClient;
use crate::http_policy::params::is_named;
use crate::identity::AUTHTOKEN_PARAM;
use sha2::{Digest, Sha256};

/// The configured clients, each with the SHA-256 of its passkey.
pub struct Clients {
    clients: Vec<(HostedEmailClient, [u8; 32])>,
}

/// A passkey's digest would allow guessing it offline: `Debug` shows client names only.
impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .clients
            .iter()
            .map(|(client, _)| client.name.as_str())
            .collect();
        f.debug_tuple("Clients").field(&names).finish()
    }
}

impl Clients {
    pub fn new(clients: &[HostedEmailClient]) -> Self {
        let clients = clients
            .iter()
            .map(|client| (client.clone(), passkey_digest(client.passkey.expose())))
            .collect();
        Clients { clients }
    }

    /// The client a passkey belongs to. Every client's digest is compared, in constant time,
    /// so timing tells nothing about how much of a guess was right or which client matched.
    pub fn by_passkey(&self, passkey: &str) -> Option<&HostedEmailClient> {
        let presented = passkey_digest(passkey);
        let mut found = None;
        for (client, digest) in &self.clients {
            if aws_lc_rs::constant_time::verify_slices_are_equal(digest, &presented).is_ok() {
                found = Some(client);
            }
        }
        found
    }

    /// The rule every hosted-email call follows: an `apiversion` is required, a known passkey
    /// is required, and the version must be one the client may use.
    pub fn admit(
        &self,
        api_version: Option<&str>,
        passkey: Option<&str>,
    ) -> Result<&HostedEmailClient, HostedEmailError> {
        let api_version = api_version
            .filter(|version| !version.is_empty())
            .ok_or(HostedEmailError::BadApiVersion)?;
        let client = passkey
            .and_then(|passkey| self.by_passkey(passkey))
            .ok_or(HostedEmailError::UnknownPasskey)?;
        if !client
            .api_versions
            .iter()
            .any(|allowed| allowed == api_version)
        {
            return Err(HostedEmailError::BadApiVersion);
        }
        Ok(client)
    }
}

fn passkey_digest(passkey: &str) -> [u8; 32] {
    Sha256::digest(passkey.as_bytes()).into()
}

/// Whether `callback` is a URL the client allows: canonical, absolute http(s) without
/// credentials or fragment, without an `authtoken` parameter of its own (in any spelling: the
/// emailed link would carry two, a planted one first), and starting with one of the client's
/// prefixes at a boundary (`https://a.example/cb` admits `https://a.example/cb?x` and `/cb/x`,
/// not `/cbx`).
pub fn callback_allowed(client: &HostedEmailClient, callback: &str) -> bool {
    let Ok(url) = url::Url::parse(callback) else {
        return false;
    };
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && !url
            .query_pairs()
            .any(|(name, _)| is_named(&name, AUTHTOKEN_PARAM))
        && url.as_str() == callback;
    plain
        && client.callback_urls.iter().any(|prefix| {
            callback.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn client(name: &str, passkey: &str) -> HostedEmailClient {
        HostedEmailClient {
            name: name.into(),
            passkey: Secret::new(passkey),
            callback_urls: vec![
                "https://reviews.example.com/confirm".into(),
                "https://shop.example.com/".into(),
            ],
            api_versions: vec!["5.4".into()],
        }
    }

    #[test]
    fn passkey_and_version_rules() {
        let clients = Clients::new(&[
            client("a", "passkey-a-0123456789"),
            client("b", "passkey-b-0123456789"),
        ]);
        let admitted = clients.admit(Some("5.4"), Some("passkey-b-0123456789"));
        assert_eq!(admitted.unwrap().name, "b");
        let refusals = [
            (None, Some("passkey-a-0123456789"), "BadApiVersion"),
            (Some(""), Some("passkey-a-0123456789"), "BadApiVersion"),
            (Some("5.4"), None, "UnknownPasskey"),
            (Some("5.4"), Some("passkey-a-012345678"), "UnknownPasskey"),
            (Some("5.3"), Some("passkey-a-0123456789"), "BadApiVersion"),
        ];
        for (version, passkey, expected) in refusals {
            let error = clients.admit(version, passkey).unwrap_err();
            assert_eq!(format!("{error:?}"), expected, "{version:?} {passkey:?}");
        }
    }

    #[test]
    fn callback_urls_match_by_prefix_at_a_boundary_only() {
        let client = client("a", "passkey-a-0123456789");
        for good in [
            "https://reviews.example.com/confirm",
            "https://reviews.example.com/confirm?product=1",
            "https://reviews.example.com/confirm/step2",
            "https://shop.example.com/anything",
        ] {
            assert!(callback_allowed(&client, good), "{good}");
        }
        for bad in [
            "https://reviews.example.com/confirmed",
            "https://reviews.example.com.evil.com/confirm",
            "https://reviews.example.com@evil.com/confirm",
            "https://user:pw@reviews.example.com/confirm",
            "//evil.com/confirm",
            "/\\evil.com",
            "https:/\\evil.com/",
            "https://reviews.example.com\\@evil.com/confirm",
            "javascript:alert(1)//https://reviews.example.com/confirm",
            "http://reviews.example.com/confirm",
            "HTTPS://reviews.example.com/confirm",
            "https://reviews.example.com/confirm#frag",
            "https://reviews.example.com/confirm/../admin",
            " https://reviews.example.com/confirm",
            "https://reviews.example.com/confirm\t",
            "data:text/html,https://reviews.example.com/confirm",
            "https://reviews.example.com/confirm?authtoken=planted",
            "https://reviews.example.com/confirm?x=1&AuthToken=planted",
            "https://reviews.example.com/confirm?%61uthtoken=planted",
        ] {
            assert!(!callback_allowed(&client, bad), "{bad}");
        }
    }
}
