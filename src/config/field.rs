//! [`Field`]: one config value as written (absent, well-typed, or of the wrong type), and the
//! [`Checker`] that collects every problem with the key it concerns.
//!
//! A wrong type is kept in the field instead of failing the whole parse, so that one mistake
//! (`path_prefix = 17`) is reported together with every other problem in the file, each under
//! its full key path (`routes[1].path_prefix`).

use super::{ConfigProblem, MAX_CLIENT_NAME_BYTES};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One leaf value of the config file.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<T> {
    /// Not written (and no default).
    #[default]
    Absent,
    Valid(T),
    /// Written with the wrong type or an unknown choice; the text says what was expected.
    Invalid(String),
}

/// A list whose items are checked one by one (`auth[1]: unknown variant ...`).
pub(super) type List<T> = Field<Vec<Field<T>>>;

impl<T> From<T> for Field<T> {
    fn from(value: T) -> Self {
        Field::Valid(value)
    }
}

/// The default of a collection field: valid and empty.
pub(super) fn empty<T: Default>() -> Field<T> {
    Field::Valid(T::default())
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        Ok(match T::deserialize(value) {
            Ok(value) => Field::Valid(value),
            Err(error) => Field::Invalid(error.message().trim_end().to_owned()),
        })
    }
}

/// Only valid values have a TOML form (used to render the defaults).
impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Valid(value) => value.serialize(serializer),
            Field::Absent | Field::Invalid(_) => serializer.serialize_none(),
        }
    }
}

/// Collects problems while settings are validated.
#[derive(Debug, Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<ConfigProblem>,
}

impl Checker {
    pub(super) fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    /// Records `Err` as a problem at `key`; passes `Ok` through.
    pub(super) fn check<T>(
        &mut self,
        key: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|message| self.fail(key, message)).ok()
    }

    /// A field that may be absent (or has a default): its value; a wrong type is recorded.
    pub(super) fn get<T>(&mut self, key: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Valid(value) => Some(value),
            Field::Absent => None,
            Field::Invalid(message) => {
                self.fail(key, message);
                None
            }
        }
    }

    /// A field that must be written: its value; absence and a wrong type are recorded.
    pub(super) fn require<T>(&mut self, key: &str, field: Field<T>) -> Option<T> {
        if matches!(field, Field::Absent) {
            self.fail(key, "is required");
        }
        self.get(key, field)
    }

    /// A client's required `name`: safe as a metric label and a log field (letters, digits,
    /// `-`, `_`, `.`), and not one of the `taken` names.
    pub(super) fn client_name<'a>(
        &mut self,
        key: &str,
        field: Field<String>,
        mut taken: impl Iterator<Item = &'a str>,
    ) -> Option<String> {
        let name = self.require(key, field)?;
        let label_safe = (1..=MAX_CLIENT_NAME_BYTES).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !label_safe {
            self.fail(
                key,
                format!("must be 1-{MAX_CLIENT_NAME_BYTES} letters, digits, \"-\", \"_\" or \".\""),
            );
        }
        if taken.any(|other| other == name) {
            self.fail(key, format!("{name:?} is used twice"));
        }
        Some(name)
    }

    /// A list that may be absent: its well-typed items (each bad one recorded at `key[i]`).
    pub(super) fn list<T>(&mut self, key: &str, field: List<T>) -> Option<Vec<T>> {
        let items = self.get(key, field)?;
        let valid: Vec<T> = items
            .into_iter()
            .enumerate()
            .filter_map(|(index, item)| self.get(&format!("{key}[{index}]"), item))
            .collect();
        Some(valid)
    }

    /// A list that must have at least one item: `empty` is the problem when it has none.
    pub(super) fn require_list<T>(
        &mut self,
        key: &str,
        field: List<T>,
        empty: &str,
    ) -> Option<Vec<T>> {
        let none = match &field {
            Field::Absent => true,
            Field::Valid(items) => items.is_empty(),
            Field::Invalid(_) => false,
        };
        if none {
            self.fail(key, empty);
        }
        self.list(key, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Sample {
        #[serde(default)]
        text: Field<String>,
        #[serde(default = "empty")]
        numbers: List<u32>,
    }

    #[test]
    fn a_wrong_type_is_kept_and_reported_with_its_key() {
        let sample: Sample = toml::from_str("text = 17\nnumbers = [1, \"two\", 3]").unwrap();
        let mut checker = Checker::default();
        assert_eq!(checker.get("text", sample.text), None);
        assert_eq!(checker.list("numbers", sample.numbers), Some(vec![1, 3]));
        let shown: Vec<String> = checker.problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("text: invalid type: integer `17`"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("numbers[1]: invalid type: string"),
            "{shown:?}"
        );
    }

    #[test]
    fn absent_required_fields_are_named_and_defaults_render() {
        let sample: Sample = toml::from_str("").unwrap();
        let mut checker = Checker::default();
        assert_eq!(checker.require("text", sample.text), None);
        assert_eq!(checker.problems[0].to_string(), "text: is required");
        let defaults = toml::Value::try_from(Sample {
            text: Field::Absent,
            numbers: empty(),
        })
        .unwrap();
        assert_eq!(
            defaults.get("numbers"),
            Some(&toml::Value::Array(Vec::new()))
        );
        assert!(
            defaults.get("text").is_none(),
            "absent fields have no default"
        );
    }
}
