//! `Principal`: who a request was proven to come from, and the claims `identity_headers` read.

use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

/// The identity an authenticator established.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The authenticator that established it.
    pub authenticator: &'static str,
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
    pub fn anonymous(authenticator: &'static str) -> Self {
        Principal {
            authenticator,
            claims: NO_CLAIMS.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_text_by_path() {
        let mut principal = Principal::anonymous("t");
        principal.claims = Arc::new(
            json!({"sub": "u1", "n": 5, "ok": true, "roles": ["a", "b"], "org": {"id": "o"}})
                .as_object()
                .unwrap()
                .clone()
                .into(),
        );
        assert_eq!(principal.claim_text("sub").as_deref(), Some("u1"));
        assert_eq!(principal.claim_text("n").as_deref(), Some("5"));
        assert_eq!(principal.claim_text("ok").as_deref(), Some("true"));
        assert_eq!(principal.claim_text("roles").as_deref(), Some("a,b"));
        assert_eq!(principal.claim_text("org.id").as_deref(), Some("o"));
        assert_eq!(principal.claim_text("org"), None);
        assert_eq!(principal.claim_text("missing"), None);
    }
}
