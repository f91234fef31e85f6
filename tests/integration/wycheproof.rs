//! Wycheproof's JWS vectors (vendored under tests/vectors/wycheproof, Apache-2.0) through
//! keyway's own verification path: parse, key selection from a JWK set, signature.

use base64::Engine;
use jsonwebtoken::Algorithm;
use keyway::jwt::keys::{KeyLookup, KeySet};
use keyway::jwt::parse_jws;
use serde_json::{Value, json};

/// Every asymmetric algorithm keyway verifies; HMAC only through an explicit secret.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Algorithms jsonwebtoken cannot verify: their vectors are skipped and counted.
const UNSUPPORTED: &[&str] = &["ES521", "ES512"];

/// Vectors Wycheproof calls valid that keyway refuses on purpose (asserted refused, counted):
/// a `?` inside base64url (RFC 7515 section 2 base64url has no such character; lenient decoders
/// skip it), and RFC 7520 Figure 20, a PS384 signature under a JWK whose `alg` is PS256 (keyway
/// requires the token's `alg` to be one the key allows).
const REFUSED_BY_POLICY: &[&str] = &[
    "InvalidCharacterInsertedInHeader",
    "InvalidCharacterInsertedInPayload",
    "Figure20",
];

fn key_set(group: &Value) -> (Result<KeySet, String>, &'static [Algorithm]) {
    if let Some(public) = group.get("public") {
        let document = json!({ "keys": [public] }).to_string();
        return (
            KeySet::from_jwks(document.as_bytes(), ASYMMETRIC),
            ASYMMETRIC,
        );
    }
    let secret = group["private"]["k"].as_str().unwrap();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .unwrap();
    (
        Ok(KeySet::from_secret(&secret, &[Algorithm::HS256])),
        &[Algorithm::HS256],
    )
}

fn verifies(jws: &str, keys: &KeySet, allowed: &[Algorithm]) -> bool {
    let Ok(parsed) = parse_jws(jws, 64 * 1024, allowed) else {
        return false;
    };
    match keys.lookup(parsed.kid.as_deref(), parsed.algorithm) {
        KeyLookup::Found(key) => key.signed(&parsed),
        KeyLookup::UnknownKid | KeyLookup::NoMatch => false,
    }
}

#[test]
fn wycheproof_json_web_signature_vectors() {
    let path = crate::support::keyway::repository_file(
        "tests/vectors/wycheproof/json_web_signature_test.json",
    );
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Upstream defect: two "invalid" vectors (invalidBase64Padding*) lost their padding in
    // conversion and are now byte-identical to a "valid" one of the same group (same key).
    // They cannot be both; they are counted apart, and the test proves the identity.
    let (mut checked, mut skipped, mut refused_by_policy, mut failures) = (0, 0, 0, Vec::new());
    let mut contradictory = 0;
    for group in vectors["testGroups"].as_array().unwrap() {
        let key = group.get("public").or(group.get("private")).unwrap();
        if UNSUPPORTED.contains(&key["alg"].as_str().unwrap_or("")) {
            skipped += group["tests"].as_array().unwrap().len();
            continue;
        }
        let (keys, allowed) = key_set(group);
        let tests = group["tests"].as_array().unwrap();
        let valid_texts: Vec<&str> = tests
            .iter()
            .filter(|test| test["result"] == "valid")
            .filter_map(|test| test["jws"].as_str())
            .collect();
        for test in tests {
            let jws = test["jws"].as_str().unwrap_or("");
            if test["result"] == "invalid" && valid_texts.contains(&jws) {
                contradictory += 1;
                continue;
            }
            let stricter = REFUSED_BY_POLICY.contains(&test["comment"].as_str().unwrap_or(""));
            refused_by_policy += usize::from(stricter);
            let expected_valid = test["result"] == "valid" && !stricter;
            let verified = keys.as_ref().is_ok_and(|keys| verifies(jws, keys, allowed));
            if verified != expected_valid {
                failures.push(format!(
                    "tcId {} ({}): expected {}",
                    test["tcId"], test["comment"], test["result"]
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let total = vectors["numberOfTests"].as_u64().unwrap() as usize;
    assert_eq!(checked + skipped + contradictory, total);
    assert_eq!(
        contradictory, 2,
        "only the two padding vectors contradict a valid one"
    );
    assert_eq!(skipped, 2, "only the ES521 vectors are skipped");
    assert_eq!(
        refused_by_policy, 4,
        "the policy list matches exactly these vectors"
    );
}
