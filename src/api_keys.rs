//! API-key clients (`[api_keys]`): a partner presents its own id and secret; keyway compares
//! the secret's SHA-256 with the configured digest in constant time and admits the partner as
//! a principal with `client` (its configured name) and `id` claims. The route then injects the
//! backend's real credentials, which no partner ever holds.
//!
//! Also the helpers behind `keyway new-api-key` and `keyway hash-api-key`.

use crate::config::{ApiKeyClient, ApiKeySettings};
use crate::identity::{Claims, Principal, TenantScope};
use crate::metrics::Metrics;
use base64::Engine;
use prometheus::IntCounter;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The shortest secret `hash-api-key` accepts: 22 characters of base64 carry 128 bits.
pub const MIN_SECRET_CHARS: usize = 22;

/// Why a presented pair was refused. All are the same `401-01` to the client; the reason is
/// for keyway's own debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyRefusal {
    /// No client has this id.
    UnknownId,
    /// The id is known and the secret is not its secret.
    WrongSecret,
    /// The client does not act for any of the route's customers.
    OutOfScope,
}

/// One configured client, ready to admit.
struct KnownClient {
    secret_sha256: [u8; 32],
    customers: Vec<String>,
    principal: Principal,
    admitted: IntCounter,
}

/// The configured clients by id.
pub struct ApiKeyRegistry {
    by_id: HashMap<String, KnownClient>,
}

impl std::fmt::Debug for ApiKeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRegistry")
            .field("clients", &self.by_id.len())
            .finish()
    }
}

impl ApiKeyRegistry {
    /// Each client's principal and metric series are made here, once.
    pub fn new(settings: &ApiKeySettings, metrics: &Metrics) -> Self {
        let by_id = settings
            .clients
            .iter()
            .map(|client| (client.id.clone(), known(client, metrics)))
            .collect();
        ApiKeyRegistry { by_id }
    }

    /// The principal of the client whose id and secret these are, if it may use a route
    /// limited to `scope`.
    pub fn verify(
        &self,
        id: &str,
        secret: &str,
        scope: &TenantScope,
    ) -> Result<Principal, ApiKeyRefusal> {
        let presented = digest_of(secret);
        let client = self.by_id.get(id);
        // The comparison runs whether or not the id is known.
        let expected = client.map_or(&[0u8; 32], |client| &client.secret_sha256);
        let matches =
            aws_lc_rs::constant_time::verify_slices_are_equal(&presented, expected).is_ok();
        let client = client.ok_or(ApiKeyRefusal::UnknownId)?;
        if !matches {
            return Err(ApiKeyRefusal::WrongSecret);
        }
        if !in_scope(&client.customers, scope) {
            return Err(ApiKeyRefusal::OutOfScope);
        }
        client.admitted.inc();
        Ok(client.principal.clone())
    }
}

fn known(client: &ApiKeyClient, metrics: &Metrics) -> KnownClient {
    let claims: Claims = [
        ("client".to_owned(), Value::from(client.name.as_str())),
        ("id".to_owned(), Value::from(client.id.as_str())),
    ]
    .into_iter()
    .collect();
    KnownClient {
        secret_sha256: client.secret_sha256,
        customers: client.customers.clone(),
        principal: Principal::with_claims(claims),
        admitted: metrics.api_key_requests(&client.name),
    }
}

/// A route without `customers` admits every client; one with `customers` admits a client that
/// acts for one of them. A client has no identity provider, so a route limited to some
/// `providers` admits none.
fn in_scope(customers: &[String], scope: &TenantScope) -> bool {
    scope.providers.is_empty()
        && (scope.customers.is_empty()
            || customers
                .iter()
                .any(|customer| scope.customers.contains(customer)))
}

/// SHA-256 of a secret as configured in `secret_sha256`.
pub fn digest_of(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lower-case hex, as `secret_sha256` is written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A fresh key pair: an id (`ak_` and 16 hex digits) and a 256-bit secret (base64url).
pub fn new_key() -> (String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).expect("the OS random source works");
    getrandom::fill(&mut secret).expect("the OS random source works");
    (
        format!("ak_{}", hex(&id)),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ApiKeyRegistry {
        let client = |name: &str, id: &str, secret: &str, customers: &[&str]| ApiKeyClient {
            name: name.to_owned(),
            id: id.to_owned(),
            secret_sha256: digest_of(secret),
            customers: customers.iter().map(|c| (*c).to_owned()).collect(),
        };
        let settings = ApiKeySettings {
            id_header: http::HeaderName::from_static("asapp-api-id"),
            secret_header: http::HeaderName::from_static("asapp-api-secret"),
            clients: vec![
                client("acme", "ak_1", "secret-one-0123456789abc", &["acme"]),
                client("any", "ak_2", "secret-two-0123456789abc", &[]),
            ],
        };
        ApiKeyRegistry::new(&settings, &Metrics::new())
    }

    fn scope(customers: &[&str]) -> TenantScope {
        TenantScope {
            customers: customers.iter().map(|c| (*c).to_owned()).collect(),
            providers: Vec::new(),
        }
    }

    #[test]
    fn the_right_pair_gives_the_client_s_claims() {
        let principal = registry()
            .verify("ak_1", "secret-one-0123456789abc", &scope(&[]))
            .unwrap();
        assert_eq!(principal.claim_text("client").as_deref(), Some("acme"));
        assert_eq!(principal.claim_text("id").as_deref(), Some("ak_1"));
    }

    #[test]
    fn refusals() {
        let registry = registry();
        let any = scope(&[]);
        let refused = |id, secret, scope: &TenantScope| registry.verify(id, secret, scope).err();
        assert_eq!(
            refused("ak_1", "secret-two-0123456789abc", &any),
            Some(ApiKeyRefusal::WrongSecret)
        );
        assert_eq!(
            refused("ak_9", "secret-one-0123456789abc", &any),
            Some(ApiKeyRefusal::UnknownId)
        );
        assert_eq!(
            refused("ak_2", "secret-two-0123456789abc", &scope(&["acme"])),
            Some(ApiKeyRefusal::OutOfScope)
        );
        assert_eq!(
            refused("ak_1", "secret-one-0123456789abc", &scope(&["acme"])),
            None
        );
        let providers = TenantScope {
            customers: Vec::new(),
            providers: vec![1],
        };
        assert_eq!(
            refused("ak_1", "secret-one-0123456789abc", &providers),
            Some(ApiKeyRefusal::OutOfScope)
        );
    }

    #[test]
    fn new_keys_are_fresh_and_long() {
        let (id, secret) = new_key();
        let (other_id, other_secret) = new_key();
        assert!(id.starts_with("ak_") && id.len() == 19, "{id}");
        assert_eq!(secret.len(), 43);
        assert!(secret.len() >= MIN_SECRET_CHARS);
        assert_ne!((id, secret), (other_id, other_secret));
        assert_eq!(
            hex(&digest_of("test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
