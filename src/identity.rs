//! The vocabulary every layer shares: who a request comes from ([`Principal`], [`Claims`],
//! [`Tenant`]), which identity providers a route admits ([`TenantScope`]), the authenticator and
//! built-in endpoint names a config may use ([`AuthKind`], [`EndpointKind`]), why a credential
//! was refused ([`AuthDenial`]), and the names of the headers and parameters credentials travel in.
//!
//! A leaf: it imports nothing from keyway, so services, authenticators, routing and config can
//! all speak it without importing each other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

/// `Authorization`: where a bearer JWT travels (`auth = ["jwt"]`).
pub const BEARER_HEADER: &str = "authorization";
/// The header a hosted-email user token may travel in.
pub const USER_TOKEN_HEADER: &str = "x-user-token";
/// The query or form parameter a hosted-email user token may travel in.
pub const USER_TOKEN_PARAM: &str = "user";
/// The hosted-email client's passkey parameter (forwarded: it names the client, it proves nobody).
pub const PASSKEY_PARAM: &str = "passkey";
/// The exchange's userInfoId parameter (forwarded: useless without its verifier).
pub const USER_INFO_ID_PARAM: &str = "userInfoId";
/// The exchange's PKCE verifier parameter: the secret half of an exchange credential.
pub const CODE_VERIFIER_PARAM: &str = "codeVerifier";

/// The hosted-email one-time token's parameter, in the emailed link and the landing call.
pub const AUTHTOKEN_PARAM: &str = "authtoken";

/// The hosted-email API's fixed paths (seed 002).
pub const HOSTED_EMAIL_REQUEST_PATH: &str = "/api/hostedauthentication";
pub const HOSTED_EMAIL_AUTHENTICATE_PATH: &str = "/data/authenticateuser.json";

/// The longest email address accepted anywhere (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// A plain `local@domain` address, lower-cased: a dot-atom local part (no quotes, no
/// comments, at most 64 bytes) and a host name domain (no IP literal, no IDN), at most
/// [`MAX_EMAIL_BYTES`] in all. Anything else is `None`: quoted or bracketed forms would let one
/// mailbox be counted, or fail to send, under other spellings.
pub fn plain_email(text: &str) -> Option<String> {
    if text.len() > MAX_EMAIL_BYTES {
        return None;
    }
    let (local, domain) = text.split_once('@')?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let local_ok = (1..=64).contains(&local.len())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let domain_ok = domain.split('.').all(label_ok);
    (local_ok && domain_ok).then(|| text.to_ascii_lowercase())
}

/// The identity an authenticator established.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Named attributes (`sub`, `email`, `admin`, nested objects for JWT claims, …); shared,
    /// so a cached principal is handed out without copying its claims.
    pub claims: Arc<Claims>,
    /// The identity provider that vouched for it (JWT and exchange principals).
    pub tenant: Option<Arc<Tenant>>,
}

/// A principal's few named attributes, as a boxed list: a map allocates a whole node even for
/// one entry, which at a million cached principals would cost more than the claims themselves.
/// Names are unique (built from a map or a filtered map).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Box<[(Box<str>, Value)]>);

impl Claims {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(name, value)| (name.as_ref(), value))
    }
}

impl FromIterator<(String, Value)> for Claims {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(claims: I) -> Self {
        Claims(
            claims
                .into_iter()
                .map(|(name, value)| (name.into_boxed_str(), value))
                .collect(),
        )
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

/// The claims of an anonymous principal, shared by all of them.
static NO_CLAIMS: LazyLock<Arc<Claims>> = LazyLock::new(Arc::default);

/// A customer's identity provider, as configured in `[[identity_providers]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub customer_id: String,
    pub provider_id: i64,
}

impl Principal {
    /// No identity: what `auth = ["none"]` yields. Identity headers stay absent.
    pub fn anonymous() -> Self {
        Principal {
            claims: NO_CLAIMS.clone(),
            tenant: None,
        }
    }

    /// A principal with these claims and no tenant.
    pub fn with_claims(claims: Claims) -> Self {
        Principal {
            claims: Arc::new(claims),
            tenant: None,
        }
    }

    /// The header text of a claim by dotted path: strings as is, numbers and booleans
    /// printed, arrays of those joined with `,`. Objects and nulls have no header form.
    pub fn claim_text(&self, path: &str) -> Option<String> {
        let mut segments = path.split('.');
        let mut value = self.claims.get(segments.next()?)?;
        for segment in segments {
            value = value.as_object()?.get(segment)?;
        }
        match value {
            Value::Array(items) => items
                .iter()
                .map(scalar_text)
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(",")),
            other => scalar_text(other),
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The customers and providers a route accepts tokens from; empty lists accept any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantScope {
    pub customers: Vec<String>,
    pub providers: Vec<i64>,
}

impl TenantScope {
    pub fn admits(&self, customer_id: &str, provider_id: i64) -> bool {
        (self.customers.is_empty()
            || self
                .customers
                .iter()
                .any(|customer| customer == customer_id))
            && (self.providers.is_empty() || self.providers.contains(&provider_id))
    }
}

/// The authenticator names a route may list in `auth = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// A public route: everyone passes as an anonymous principal.
    None,
    /// A Converse token (seed 001) in its header.
    Converse,
    /// A bearer JWT from a configured identity provider.
    Jwt,
    /// A userInfoId and its PKCE verifier (seed 003).
    Exchange,
    /// A hosted-email user token with its client's passkey (seed 002).
    HostedEmail,
    /// A partner's own key pair (`[api_keys]`), exchanged for the route's credentials.
    ApiKey,
}

impl AuthKind {
    /// The name used in `auth = [...]`, in metrics and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Converse => "converse",
            AuthKind::Jwt => "jwt",
            AuthKind::Exchange => "exchange",
            AuthKind::HostedEmail => "hosted_email",
            AuthKind::ApiKey => "api_key",
        }
    }

    /// Whether this kind's principals come from an identity provider (and so may be limited
    /// to some customers and providers, and read JWT claims).
    pub fn has_tenant(self) -> bool {
        matches!(self, AuthKind::Jwt | AuthKind::Exchange)
    }

    /// Whether a route's `customers` can restrict this kind's principals: identity providers
    /// serve one customer each; API-key clients name the customers they act for.
    pub fn has_customers(self) -> bool {
        self.has_tenant() || self == AuthKind::ApiKey
    }
}

/// Which built-in API a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// `POST {converse.api_prefix}/verify[?createToken=true]`
    ConverseVerifyUser,
    /// `POST {converse.api_prefix}/token/verify`
    ConverseVerifyToken,
    /// `DELETE {converse.api_prefix}/token/{uuid}`
    ConverseDeleteToken,
    /// `DELETE {converse.api_prefix}/tokens?email=` (admins: log a user out everywhere)
    ConverseDeleteUserTokens,
    /// `POST {exchange.api_prefix}/{customerId}[?providerId=N]`
    ExchangeAuthenticate,
    /// `POST /api/hostedauthentication`
    HostedEmailRequest,
    /// `POST /data/authenticateuser.json`
    HostedEmailAuthenticate,
}

/// Why a presented credential was refused. Clients only ever see the mapped envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDenial {
    /// Unknown, expired, revoked or malformed: deliberately indistinguishable.
    Invalid,
    /// A credential parameter given more than once (in any spelling, or in both the query and
    /// the body): refused as a bad request rather than guessed at.
    Repeated,
    /// The credential could not be checked (a dependency is down): never treated as valid.
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_text_by_path() {
        let claims: Map<String, Value> =
            json!({"sub": "u1", "n": 5, "ok": true, "roles": ["a", "b"], "org": {"id": "o"}})
                .as_object()
                .unwrap()
                .clone();
        let principal = Principal::with_claims(claims.into());
        assert_eq!(principal.claim_text("sub").as_deref(), Some("u1"));
        assert_eq!(principal.claim_text("n").as_deref(), Some("5"));
        assert_eq!(principal.claim_text("ok").as_deref(), Some("true"));
        assert_eq!(principal.claim_text("roles").as_deref(), Some("a,b"));
        assert_eq!(principal.claim_text("org.id").as_deref(), Some("o"));
        assert_eq!(principal.claim_text("org"), None);
        assert_eq!(principal.claim_text("missing"), None);
    }

    #[test]
    fn only_plain_addresses_are_emails() {
        assert_eq!(
            plain_email("Ann.Lee+x@Example.COM").as_deref(),
            Some("ann.lee+x@example.com")
        );
        assert_eq!(plain_email("a@x").as_deref(), Some("a@x"));
        for refused in [
            "\"victim\"@example.com",
            "\"vic\tim\"@example.com",
            "\"a b\"@x",
            "\"<script>alert(1)</script>\"@x",
            "v@[127.0.0.1]",
            "v@127.0.0.1]",
            "no-at-sign",
            "a@b@c",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "ä@example.com",
            "a@exämple.com",
            "a b@example.com",
            "<a@example.com>",
        ] {
            assert_eq!(plain_email(refused), None, "{refused}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("a@{}.com", "b".repeat(60).repeat(5));
        assert_eq!(plain_email(&long_local), None);
        assert_eq!(plain_email(&long), None);
    }

    #[test]
    fn auth_kinds_read_as_their_config_names() {
        for kind in [
            AuthKind::None,
            AuthKind::Converse,
            AuthKind::Jwt,
            AuthKind::Exchange,
            AuthKind::HostedEmail,
        ] {
            let parsed: AuthKind =
                serde_json::from_value(Value::String(kind.name().to_owned())).unwrap();
            assert_eq!(parsed, kind);
        }
        assert!(serde_json::from_value::<AuthKind>(json!("basic")).is_err());
    }
}
