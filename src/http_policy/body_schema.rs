//! `request_schema` routes: a request body is JSON (by `Content-Type` and by its bytes, parsed
//! strictly) and valid against the route's JSON Schema (draft 2020-12, compiled once with the
//! `jsonschema` crate) before anything goes upstream.
//!
//! A rejection says where the body failed (a JSON pointer and the schema keyword), never what
//! it held: bodies carry credentials (`auth.token`), and the crate's own messages quote values.

use super::strict_json;
use http::HeaderMap;
use serde_json::Value;

/// A compiled request schema.
pub struct BodySchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySchema").finish_non_exhaustive()
    }
}

/// Why a body was refused (each is `400-01` to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRejection {
    /// `Content-Type` is missing or not JSON (`application/json`, `application/*+json`).
    NotJsonContentType,
    /// Not one JSON document (syntax, trailing bytes, a duplicate key, not UTF-8).
    Malformed,
    /// Parsed, but the schema refuses it: where, and which schema keyword.
    Invalid {
        instance_path: String,
        schema_path: String,
    },
}

impl BodySchema {
    /// Compiles a draft 2020-12 schema; the message says why it does not compile. External
    /// `$ref`s are not fetched (no file or network access): a schema must be self-contained.
    pub fn compile(document: &Value) -> Result<Self, String> {
        jsonschema::draft202012::new(document)
            .map(|validator| BodySchema { validator })
            .map_err(|error| {
                format!(
                    "not a valid draft 2020-12 JSON Schema (at {}): {}",
                    pointer(error.schema_path().as_str()),
                    error
                )
            })
    }

    /// Checks a request's `Content-Type` and body.
    pub fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), BodyRejection> {
        if !is_json_content_type(headers) {
            return Err(BodyRejection::NotJsonContentType);
        }
        let document = strict_json::parse(body).ok_or(BodyRejection::Malformed)?;
        match self.validator.validate(&document) {
            Ok(()) => Ok(()),
            Err(error) => Err(BodyRejection::Invalid {
                instance_path: pointer(error.instance_path().as_str()),
                schema_path: pointer(error.schema_path().as_str()),
            }),
        }
    }
}

/// The root pointer is empty; a log line shows it as `/`.
fn pointer(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// `application/json` or a `+json` type, with any parameters (`; charset=utf-8`).
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(mime) = value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
    else {
        return false;
    };
    let mime = mime.trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> BodySchema {
        BodySchema::compile(&json!({
            "type": "object",
            "required": ["id", "auth"],
            "properties": {
                "id": {"type": "string"},
                "auth": {"type": "object", "minProperties": 1}
            }
        }))
        .unwrap()
    }

    fn json_headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn content_types() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json_content_type(&json_headers(good)), "{good}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(!is_json_content_type(&json_headers(bad)), "{bad}");
        }
        assert!(!is_json_content_type(&HeaderMap::new()));
        let mut two = json_headers("application/json");
        two.append(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json_content_type(&two));
    }

    #[test]
    fn bodies() {
        let schema = schema();
        let json = json_headers("application/json");
        assert_eq!(
            schema.check(&json, br#"{"id":"a","auth":{"token":"t"}}"#),
            Ok(())
        );
        assert_eq!(
            schema.check(&json, br#"{"id":"a","auth":{"token":"t"}}x"#),
            Err(BodyRejection::Malformed)
        );
        assert_eq!(
            schema.check(&json, br#"{"id":"a","id":"b","auth":{"t":1}}"#),
            Err(BodyRejection::Malformed)
        );
        assert_eq!(
            schema.check(&json_headers("text/plain"), br#"{"id":"a","auth":{"t":1}}"#),
            Err(BodyRejection::NotJsonContentType)
        );
        let Err(BodyRejection::Invalid {
            instance_path,
            schema_path,
        }) = schema.check(&json, br#"{"id":"a","auth":{}}"#)
        else {
            panic!("auth {{}} must be invalid");
        };
        assert_eq!(instance_path, "/auth");
        assert!(schema_path.ends_with("minProperties"), "{schema_path}");
    }

    #[test]
    fn a_rejection_never_quotes_the_body() {
        let schema = schema();
        let rejection = schema
            .check(
                &json_headers("application/json"),
                br#"{"id":"a","auth":"secret-token-value"}"#,
            )
            .unwrap_err();
        assert!(!format!("{rejection:?}").contains("secret-token-value"));
    }

    #[test]
    fn a_schema_that_does_not_compile_says_why() {
        let error = BodySchema::compile(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(
            error.contains("not a valid draft 2020-12 JSON Schema"),
            "{error}"
        );
        assert!(BodySchema::compile(&json!({"pattern": "(unclosed"})).is_err());
    }
}
