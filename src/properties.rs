//! The invariants of every parser that reads untrusted bytes, one function per parser, each
//! taking arbitrary bytes and panicking when an invariant breaks. Two engines drive them: the
//! property tests below (proptest, in `make test`) and the coverage-guided fuzz targets in
//! `fuzz/` (libFuzzer, `make fuzz`), one target per function, so both check the same thing.
//!
//! Compiled for tests and for fuzzing builds (`--cfg fuzzing`) only.

use crate::config::Settings;
use crate::config::hosted_email::{EncryptionKey, HostedEmailClient};
use crate::config::secret::Secret;
use crate::converse::parse_token;
use crate::error::{is_envelope, render_envelope};
use crate::headers::{Forwarding, HeaderPolicy};
use crate::hosted_email::clients::callback_allowed;
use crate::hosted_email::user_token::{KeyRing, UserClaims};
use crate::http_policy::params::{is_named, pairs, values, without};
use crate::http_policy::{check_request_target, is_disguised_framing_header, same_header};
use crate::http_policy::{normalise_name, strict_json};
use crate::identity::{Claims, Principal};
use crate::jwt::keys::KeySet;
use crate::proxy::rewrite_upstream_error;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use pingora::http::RequestHeader;
use serde_json::Value;
use std::path::Path;

/// Every algorithm keyway knows, so the parsers' algorithm checks are exercised too.
const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

/// A request target is accepted only if its path reads the same to every server: what routes
/// match is what the upstream decodes, segment for segment.
pub fn request_target(data: &[u8]) {
    let Ok(path) = check_request_target(data) else {
        return;
    };
    assert!(
        data.starts_with(path.as_bytes()),
        "the path is the target's prefix"
    );
    assert!(matches!(data.get(path.len()), None | Some(b'?')));
    assert!(path.starts_with('/'));
    assert!(!path.contains("//") && !path.contains(';') && !path.contains('\\'));
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .expect("an accepted path decodes to UTF-8");
    let raw_segments: Vec<&str> = path.split('/').collect();
    let decoded_segments: Vec<&str> = decoded.split('/').collect();
    assert_eq!(raw_segments.len(), decoded_segments.len(), "no encoded `/`");
    for segment in decoded_segments {
        assert!(
            segment != "." && segment != "..",
            "no dot segment once decoded"
        );
        assert!(
            !segment.contains(['\\', '%', ';']),
            "nothing a server would decode again"
        );
        assert!(!segment.chars().any(char::is_control));
    }
}

/// Header names: whatever the client sent, in any spelling (`_` for `-`, any case), no header
/// keyway owns or injects reaches the upstream as the client's copy.
pub fn header_names(data: &[u8]) {
    let mut request = RequestHeader::build("GET", b"/", None).expect("a request head");
    for line in data.split(|&b| b == b'\n') {
        let mut parts = line.splitn(2, |&b| b == b':');
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        let _ = request.append_header(name, value);
    }
    let disguised: Vec<bool> = request
        .headers
        .keys()
        .map(|name| is_disguised_framing_header(name.as_str()))
        .collect();
    for (name, disguised) in request.headers.keys().zip(disguised) {
        let framing = ["content-length", "transfer-encoding", "keep-alive"]
            .iter()
            .any(|framing| same_header(name.as_str(), framing));
        assert_eq!(disguised, framing && name.as_str().contains('_'));
    }
    let policy = HeaderPolicy::new(
        ["x-internal-role"],
        vec![(
            HeaderName::from_static("x-backend-key"),
            HeaderValue::from_static("injected"),
        )],
        vec![(HeaderName::from_static("x-auth-subject"), "sub".to_owned())],
    );
    let principal = Principal::with_claims(Claims::from_iter([(
        "sub".to_owned(),
        Value::String("subject-1".to_owned()),
    )]));
    let proto = HeaderValue::from_static("http");
    let forwarding = Forwarding {
        chain: None,
        proto: &proto,
        host: None,
    };
    let request_id = HeaderValue::from_static("request-1");
    policy.apply(&mut request, &request_id, &principal, &forwarding);
    let expected = [
        ("x-internal-role", None),
        ("x-backend-key", Some("injected")),
        ("x-auth-subject", Some("subject-1")),
        ("x-request-id", Some("request-1")),
        ("x-forwarded-proto", Some("http")),
        ("x-forwarded-for", None),
        ("x-forwarded-host", None),
    ];
    for (owned, value) in expected {
        let copies: Vec<&HeaderValue> = request
            .headers
            .iter()
            .filter(|(name, _)| same_header(name.as_str(), &normalise_name(owned)))
            .map(|(_, value)| value)
            .collect();
        match value {
            None => assert!(copies.is_empty(), "{owned} is stripped in every spelling"),
            Some(value) => assert_eq!(copies, [value], "{owned} is keyway's, once"),
        }
    }
}

/// Compact JWS and JWT parsing: never a panic; what parses has three base64url segments, an
/// allowed algorithm, a signature in canonical base64url, and claims that are one JSON object.
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = crate::jwt::parse(token, 16 * 1024, &ALGORITHMS) else {
        return;
    };
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3);
    assert_eq!(
        parsed.jws.signing_input(),
        &token[..segments[0].len() + 1 + segments[1].len()]
    );
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parsed.jws.signature());
    assert_eq!(
        signature, segments[2],
        "the signature is canonical base64url"
    );
    assert!(ALGORITHMS.contains(&parsed.jws.algorithm));
}

/// Strict JSON accepts a subset of what `serde_json` accepts, with the same meaning, and refuses
/// duplicate member names at any depth.
pub fn strict_json(data: &[u8]) {
    let Some(strict) = strict_json::parse(data) else {
        return;
    };
    let lax: Value = serde_json::from_slice(data).expect("strict JSON is JSON");
    assert_eq!(strict, lax);
    assert_eq!(
        strict_json::parse_object(data).is_some(),
        strict.is_object()
    );
    assert!(!has_duplicate_keys(data));
}

/// Whether any object in the JSON text repeats a member name (`serde_json` keeps the last).
fn has_duplicate_keys(data: &[u8]) -> bool {
    struct Probe(bool);
    impl<'de> serde::de::Visitor<'de> for &mut Probe {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                self.0 |= !seen.insert(key);
                map.next_value_seed(&mut *self)?;
            }
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(&mut *self)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for &mut Probe {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    let mut probe = Probe(false);
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    serde::de::DeserializeSeed::deserialize(&mut probe, &mut deserializer).is_ok() && probe.0
}

/// JWK sets (and PEM keys) from a provider or a file: never a panic, whatever the document.
pub fn jwk_set(data: &[u8]) {
    let _ = KeySet::from_jwks(data, &ALGORITHMS);
    let _ = KeySet::from_file_contents(data, &ALGORITHMS);
}

/// A converse token is one canonical spelling of a UUID, nothing else.
pub fn converse_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = parse_token(text) {
        assert_eq!(token.hyphenated().to_string(), text);
    }
    if let Ok(bytes) = <[u8; 16]>::try_from(data.get(..16).unwrap_or_default()) {
        let canonical = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
        assert_eq!(parse_token(&canonical), Some(uuid::Uuid::from_bytes(bytes)));
        assert_eq!(
            parse_token(&canonical.to_uppercase()).is_some(),
            canonical == canonical.to_uppercase()
        );
    }
}

/// The secret parameters an authenticator reads are exactly those removed before forwarding:
/// the rewritten text parses as the original minus every secret pair, other pairs unchanged.
pub fn parameters(data: &[u8]) {
    const SECRETS: [&str; 2] = ["codeVerifier", "authToken"];
    let is_secret = |name: &str| SECRETS.iter().any(|secret| is_named(name, secret));
    let before = pairs(data);
    let expected: Vec<(String, String)> = before
        .iter()
        .filter(|(name, _)| !is_secret(name))
        .cloned()
        .collect();
    match without(data, &SECRETS) {
        Some(kept) => {
            assert_eq!(pairs(&kept), expected);
            for secret in SECRETS {
                assert_eq!(values(&kept, secret).count(), 0, "{secret} removed");
            }
        }
        None => assert_eq!(
            before, expected,
            "nothing to remove means no secret was read"
        ),
    }
}

/// An upstream error body leaves as an envelope: the upstream's own, byte for byte, or keyway's
/// with the upstream's status; never anything else.
pub fn upstream_error_body(data: &[u8]) {
    let (&[status_byte, split_byte], body) = data.split_at_checked(2).unwrap_or((&[0, 0], b""))
    else {
        return;
    };
    let status = 400 + u16::from(status_byte) % 200;
    let split = usize::from(split_byte).min(body.len());
    let (rewritten, code) = rewrite_upstream_error(status, &[&body[..split], &body[split..]]);
    assert!(is_envelope(&rewritten));
    if rewritten != body {
        assert_eq!(code, format!("{status}-00"));
        let expected = render_envelope(
            "fuzz",
            &crate::error::GatewayError::Upstream(
                http::StatusCode::from_u16(status).expect("400..=599"),
            ),
        );
        assert_eq!(rewritten, expected);
    } else {
        assert!(is_envelope(body));
    }
}

/// A hosted-email callback is admitted only on one of the client's own hosts and prefixes,
/// canonical, without credentials, fragment or an `authtoken` of its own.
pub fn callback_url(data: &[u8]) {
    let Ok(callback) = std::str::from_utf8(data) else {
        return;
    };
    let client = HostedEmailClient {
        name: "fuzz".to_owned(),
        passkey: Secret::new("fuzz-passkey"),
        callback_urls: vec![
            "https://app.example/cb".to_owned(),
            "http://127.0.0.1:8080/hooks/".to_owned(),
        ],
        api_versions: vec!["1".to_owned()],
    };
    if !callback_allowed(&client, callback) {
        return;
    }
    let url = url::Url::parse(callback).expect("an admitted callback parses");
    assert_eq!(url.as_str(), callback, "canonical");
    assert!(url.username().is_empty() && url.password().is_none() && url.fragment().is_none());
    assert!(
        !url.query_pairs()
            .any(|(name, _)| is_named(&name, "authtoken"))
    );
    let on_a_prefix = client.callback_urls.iter().any(|prefix| {
        let prefix_url = url::Url::parse(prefix).expect("a configured prefix");
        callback.starts_with(prefix.as_str())
            && url.host() == prefix_url.host()
            && url.port_or_known_default() == prefix_url.port_or_known_default()
            && url.scheme() == prefix_url.scheme()
    });
    assert!(on_a_prefix, "only the client's own hosts");
}

/// The user-token opener: never a panic on garbage, and a sealed token opens only unchanged.
pub fn user_token(data: &[u8]) {
    let ring = KeyRing::new(&[EncryptionKey {
        id: "k1".to_owned(),
        key: [7; 32],
    }]);
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(ring.open(text).is_none(), "no forgery from arbitrary bytes");
    }
    // What keyway seals: a plain address (`identity::plain_email`, at most 254 bytes), here
    // with a local part spelled from the input (the first `make fuzz` run sealed 249 NUL
    // bytes, past the opener's 2 KiB limit: no address admitted to the seal can be that).
    let local: String = data
        .iter()
        .take(32)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let claims = UserClaims {
        email: format!("u{local}@d{}.example.com", "d".repeat(data.len() % 62)),
        client: "fuzz".to_owned(),
        iat: 1,
        exp: 2,
    };
    let sealed = ring.seal(&claims);
    assert_eq!(ring.open(&sealed), Some(claims));
    let Some(&flip) = data.first() else {
        return;
    };
    let mut tampered = sealed.into_bytes();
    let at = usize::from(flip) % tampered.len();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    assert!(
        ring.open(&tampered).is_none(),
        "a changed token never opens"
    );
}

/// `check-config` never panics: every input is settings or a list of problems, each naming its
/// key. Files named by the text resolve under a directory with nothing in it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let empty = Path::new("/nonexistent/keyway-fuzz");
    let checked: Result<Settings, _> = Settings::from_toml(text, empty, &|_| None);
    if let Err(problems) = checked {
        assert!(!problems.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes with the characters each parser cares about over-represented.
    fn text_from(alphabet: &'static str, max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(alphabet.as_bytes()), 0..max)
    }

    /// Form-urlencoded text built from names that are, or spell, a secret parameter.
    fn form_text() -> impl Strategy<Value = Vec<u8>> {
        let name = prop::sample::select(vec![
            "codeVerifier",
            "CODEVERIFIER",
            "code%56erifier",
            "code+verifier",
            "authtoken",
            "auth%54oken",
            "x",
            "",
            "=",
            "a%zz",
        ]);
        let value = prop::collection::vec(any::<u8>(), 0..12);
        prop::collection::vec((name, value), 0..6).prop_map(|pairs| {
            let mut text = Vec::new();
            for (index, (name, value)) in pairs.into_iter().enumerate() {
                if index > 0 {
                    text.push(b'&');
                }
                text.extend_from_slice(name.as_bytes());
                text.push(b'=');
                text.extend(value.into_iter().filter(|&b| b != b'&'));
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn request_targets(data in text_from("/a.%2eEfF0c;?#\\~+-_ %C0AE8", 40)) {
            request_target(&data);
        }

        #[test]
        fn request_targets_from_any_bytes(data in prop::collection::vec(any::<u8>(), 0..64)) {
            request_target(&data);
        }

        #[test]
        fn header_names_in_any_spelling(data in text_from("xX-_:\nauthsubjectbackendkeyinternalrolerequestidforwardedprotocontentlengthtransfer", 200)) {
            header_names(&data);
        }

        #[test]
        fn jws_tokens(data in text_from("eyJhbGciOiJSUzI1NiJ9.abcXYZ-_=", 120)) {
            jws(&data);
        }

        #[test]
        fn jws_with_real_headers(claims in prop::collection::vec(any::<u8>(), 0..60), alg in prop::sample::select(vec!["RS256", "none", "HS256", "ES512"])) {
            use base64::Engine;
            let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let token = format!("{}.{}.{}", encode(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()), encode(&claims), encode(b"sig"));
            jws(token.as_bytes());
        }

        #[test]
        fn strict_json_documents(data in text_from("{}[]\"a:,1 .e-tfnul\\u0", 40)) {
            strict_json(&data);
        }

        #[test]
        fn jwk_sets(data in text_from("{}[]\":,keysktyRSAECnexyd-_AQ", 80)) {
            jwk_set(&data);
        }

        #[test]
        fn converse_tokens(data in prop::collection::vec(any::<u8>(), 0..40)) {
            converse_token(&data);
        }

        #[test]
        fn secret_parameters_are_removed(data in form_text()) {
            parameters(&data);
        }

        #[test]
        fn upstream_error_bodies(status in any::<u8>(), split in any::<u8>(), request_id in "[a-z0-9-]{0,8}", message in "[ -~]{0,12}", garbage in prop::collection::vec(any::<u8>(), 0..30)) {
            let envelope = serde_json::json!({"error": {"requestId": request_id, "code": "409-07", "message": message}}).to_string();
            for body in [envelope.as_bytes(), &garbage[..]] {
                let mut data = vec![status, split];
                data.extend_from_slice(body);
                upstream_error_body(&data);
            }
        }

        #[test]
        fn callback_urls(data in text_from("https://app.example/cb?authtoken=x&AuthToken#@:127.0.0.1:8080/hooks/%41.", 60)) {
            callback_url(&data);
        }

        #[test]
        fn user_tokens(data in prop::collection::vec(any::<u8>(), 0..80)) {
            user_token(&data);
        }

        #[test]
        fn config_text(data in text_from("[]=\"\n.{}server listen routes path_prefix upstream auth none 127.0.0.1:80 ${file:x}", 120)) {
            config(&data);
        }
    }

    /// The defect property testing found: a form body with one byte that is not UTF-8 had its
    /// secret parameter read (lossily) by the authenticator but forwarded unremoved.
    #[test]
    fn a_secret_in_a_body_that_is_not_utf8_is_removed() {
        parameters(b"codeVerifier=abc&note=\xff");
        assert_eq!(
            without(b"codeVerifier=abc&note=\xff", &["codeVerifier"]).as_deref(),
            Some(&b"note=\xff"[..])
        );
    }
}
