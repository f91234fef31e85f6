//! `Secret`: a string that never shows itself in `Debug`, logs or error messages.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured secret value (e.g. an injected backend credential).
///
/// It has no `Display` impl and its `Debug` output is redacted, so a secret cannot reach a
/// log line or an error message by accident; read it only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are few and obvious on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A value of the wrong type is refused without quoting it: it may be the secret itself.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)
            .map(Secret)
            .map_err(|_| serde::de::Error::custom("must be a string"))
    }
}

/// Rendered redacted, like its `Debug` output.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("hunter2");
        let shown = format!("{secret:?} {:?}", vec![secret.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_mistyped_secret_is_not_quoted() {
        let tree: toml::Value = toml::from_str("s = 918273645").unwrap();
        let error = std::collections::BTreeMap::<String, Secret>::deserialize(tree)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("must be a string") && !error.contains("918273645"),
            "{error}"
        );
    }
}
