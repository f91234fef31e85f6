//! `[api_keys]`: partners' own key pairs (`auth = ["api_key"]`), validated into
//! [`ApiKeySettings`]. Only the SHA-256 of each secret is configured; keyway never holds one.

use super::field::Checker;
use super::raw::{RawApiKeyClient, RawApiKeys};
use super::routes::header_name;
use http::HeaderName;

/// The headers partners send their pair in, and the partners.
#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    pub id_header: HeaderName,
    pub secret_header: HeaderName,
    pub clients: Vec<ApiKeyClient>,
}

/// One partner's key.
#[derive(Clone)]
pub struct ApiKeyClient {
    /// For logs, the `client` metric label and the principal's `client` claim.
    pub name: String,
    /// The key id the partner sends (the principal's `id` claim).
    pub id: String,
    /// SHA-256 of the partner's secret.
    pub secret_sha256: [u8; 32],
    /// Customers it may act for (see `RawApiKeyClient::customers`).
    pub customers: Vec<String>,
}

/// The digest identifies a secret: `Debug` leaves it out.
impl std::fmt::Debug for ApiKeyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyClient")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("customers", &self.customers)
            .finish_non_exhaustive()
    }
}

pub(super) fn compile_api_keys(raw: RawApiKeys, checker: &mut Checker) -> Option<ApiKeySettings> {
    let header = |checker: &mut Checker, key: &str, field| {
        let name: String = checker.get(key, field)?;
        checker.check(key, header_name(&name))
    };
    let id_header = header(checker, "api_keys.id_header", raw.id_header);
    let secret_header = header(checker, "api_keys.secret_header", raw.secret_header);
    if id_header.is_some() && id_header == secret_header {
        checker.fail(
            "api_keys.secret_header",
            "must differ from api_keys.id_header",
        );
    }
    if raw.clients.is_empty() {
        checker.fail(
            "api_keys.clients",
            "at least one [[api_keys.clients]] entry is required",
        );
    }
    let mut clients: Vec<ApiKeyClient> = Vec::new();
    let mut valid = true;
    for (index, client) in raw.clients.into_iter().enumerate() {
        let key = format!("api_keys.clients[{index}]");
        match compile_client(&key, client, &clients, checker) {
            Some(client) => clients.push(client),
            None => valid = false,
        }
    }
    valid.then_some(())?;
    Some(ApiKeySettings {
        id_header: id_header?,
        secret_header: secret_header?,
        clients,
    })
}

fn compile_client(
    key: &str,
    raw: RawApiKeyClient,
    earlier: &[ApiKeyClient],
    checker: &mut Checker,
) -> Option<ApiKeyClient> {
    let field = |name: &str| format!("{key}.{name}");
    let taken = earlier.iter().map(|other| other.name.as_str());
    let name = checker.client_name(&field("name"), raw.name, taken);
    let id = checker.require(&field("id"), raw.id);
    if let Some(id) = &id {
        if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            checker.fail(field("id"), "must be 1 to 256 visible ASCII characters");
        }
        if earlier.iter().any(|other| &other.id == id) {
            checker.fail(field("id"), "is the id of another client");
        }
    }
    let digest = checker.require(&field("secret_sha256"), raw.secret_sha256);
    let digest = digest.and_then(|digest| {
        checker.check(
            field("secret_sha256"),
            parse_digest(&digest)
                .ok_or_else(|| "must be 64 hex digits (keyway hash-api-key prints it)".to_owned()),
        )
    });
    if let Some(digest) = &digest
        && earlier.iter().any(|other| &other.secret_sha256 == digest)
    {
        checker.fail(
            field("secret_sha256"),
            "is the digest of another client's secret: give each partner its own",
        );
    }
    let customers = checker.list(&field("customers"), raw.customers)?;
    Some(ApiKeyClient {
        name: name?,
        id: id?,
        secret_sha256: digest?,
        customers,
    })
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    // `from_str_radix` would also take a sign: only hex digits count.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_digest(hex).map(|d| d[0]), Some(0x9f));
        assert_eq!(parse_digest(&hex.to_uppercase()).map(|d| d[31]), Some(0x08));
        assert!(parse_digest(&hex[..62]).is_none());
        assert!(parse_digest(&format!("{}zz", &hex[..62])).is_none());
        assert!(
            parse_digest("+f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .is_none()
        );
    }

    #[test]
    fn debug_shows_no_digest() {
        let client = ApiKeyClient {
            name: "partner".to_owned(),
            id: "ak_1".to_owned(),
            secret_sha256: [0xab; 32],
            customers: Vec::new(),
        };
        let shown = format!("{client:?}");
        assert!(
            shown.contains("partner") && !shown.contains("171"),
            "{shown}"
        );
    }
}
