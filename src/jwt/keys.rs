//! Verification keys from a JWK set, filtered to what a provider may use.
//!
//! Ignored (never an error for the whole set): `use = "enc"`, `key_ops` without `verify`,
//! RSA moduli under 2048 bits, `oct` keys (HMAC secrets never come from a JWKS), curves other
//! than P-256, P-384 and Ed25519, and any key whose `alg` is outside the provider's allow-list.

use super::Jws;
use super::signature::{KeyMaterial, Verifiers};
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::str::FromStr;

const MIN_RSA_BITS: usize = 2048;

/// One usable key and the algorithms it may verify.
pub struct VerificationKey {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    verifiers: Verifiers,
}

impl VerificationKey {
    fn new(
        kid: Option<String>,
        material: &KeyMaterial<'_>,
        candidates: &[Algorithm],
    ) -> Option<Self> {
        let verifiers = Verifiers::new(material, candidates);
        let algorithms = verifiers.algorithms();
        (!algorithms.is_empty()).then_some(VerificationKey {
            kid,
            algorithms,
            verifiers,
        })
    }

    /// Whether this key signed `jws` (with the algorithm its header names).
    pub fn signed(&self, jws: &Jws<'_>) -> bool {
        self.verifiers.verify(
            jws.algorithm,
            jws.signing_input().as_bytes(),
            jws.signature(),
        )
    }
}

/// The keys of one provider.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

/// The result of looking a token's key up.
pub enum KeyLookup<'a> {
    Found(&'a VerificationKey),
    /// A `kid` this set does not have: the provider may have rotated.
    UnknownKid,
    /// No key may verify this token (wrong alg for the key, or no kid among several keys).
    NoMatch,
}

impl KeySet {
    /// Parses a JWK set document; fails on garbage or when no key is usable.
    pub fn from_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        let value: Value = serde_json::from_slice(document).map_err(|_| "not JSON".to_owned())?;
        let entries = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "no \"keys\" array".to_owned())?;
        let keys: Vec<VerificationKey> = entries
            .iter()
            .filter_map(|jwk| usable_key(jwk, allowed))
            .collect();
        if keys.is_empty() {
            return Err(format!("none of {} keys is usable", entries.len()));
        }
        Ok(KeySet { keys })
    }

    /// A PEM public key (`keys_file`): RSA, EC or Ed25519. The key is the operator's own, so
    /// the JWKS filters on `use`/`key_ops`/size do not apply.
    pub fn from_pem(pem: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        use rustls_pki_types::SubjectPublicKeyInfoDer;
        use rustls_pki_types::pem::PemObject;
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|_| "not a PEM public key".to_owned())?;
        let key = VerificationKey::new(None, &KeyMaterial::Spki(der.as_ref()), allowed)
            .ok_or_else(|| "the key cannot verify any allowed algorithm".to_owned())?;
        Ok(KeySet { keys: vec![key] })
    }

    /// A configured key file: a JWK set, or a PEM public key.
    pub fn from_file_contents(contents: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        if contents.trim_ascii_start().starts_with(b"-----BEGIN") {
            KeySet::from_pem(contents, allowed)
        } else {
            KeySet::from_jwks(contents, allowed)
        }
    }

    /// A single HMAC secret (configured explicitly, never fetched).
    pub fn from_secret(secret: &[u8], allowed: &[Algorithm]) -> KeySet {
        KeySet {
            keys: VerificationKey::new(None, &KeyMaterial::Secret(secret), allowed)
                .into_iter()
                .collect(),
        }
    }

    /// Finds the key for a token. A set whose keys carry no `kid` (a configured secret, a
    /// kid-less JWKS) ignores the token's `kid` and needs exactly one candidate for the `alg`.
    pub fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> KeyLookup<'_> {
        let kid = kid.filter(|_| self.keys.iter().any(|key| key.kid.is_some()));
        match kid {
            Some(kid) => {
                let mut with_kid = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid))
                    .peekable();
                if with_kid.peek().is_none() {
                    return KeyLookup::UnknownKid;
                }
                with_kid
                    .find(|key| key.algorithms.contains(&algorithm))
                    .map_or(KeyLookup::NoMatch, KeyLookup::Found)
            }
            None => {
                let mut candidates = self
                    .keys
                    .iter()
                    .filter(|key| key.algorithms.contains(&algorithm));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => KeyLookup::Found(only),
                    _ => KeyLookup::NoMatch,
                }
            }
        }
    }
}

fn text<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn usable_key(jwk: &Value, allowed: &[Algorithm]) -> Option<VerificationKey> {
    if text(jwk, "use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()?
            .iter()
            .any(|op| op.as_str() == Some("verify"));
        if !verifies {
            return None;
        }
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    // A JWK's own `alg` narrows the allow-list; HMAC never comes from a JWKS.
    let candidates: Vec<Algorithm> = match text(jwk, "alg") {
        Some(alg) => vec![Algorithm::from_str(alg).ok()?],
        None => allowed.to_vec(),
    };
    let candidates: Vec<Algorithm> = candidates
        .into_iter()
        .filter(|alg| {
            allowed.contains(alg)
                && !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
        })
        .collect();
    with_material(jwk, |material| {
        VerificationKey::new(kid, material, &candidates)
    })?
}

/// Decodes a JWK's public key and hands it over; `None` for key types keyway does not use.
fn with_material<T>(jwk: &Value, use_material: impl FnOnce(&KeyMaterial<'_>) -> T) -> Option<T> {
    let decode = |name: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text(jwk, name)?)
            .ok()
    };
    match (text(jwk, "kty")?, text(jwk, "crv")) {
        ("RSA", _) => {
            if modulus_bits(text(jwk, "n")?)? < MIN_RSA_BITS {
                return None;
            }
            let (n, e) = (decode("n")?, decode("e")?);
            let strip = |bytes: &[u8]| bytes.iter().position(|&b| b != 0).map_or(0, |first| first);
            Some(use_material(&KeyMaterial::Rsa {
                n: &n[strip(&n)..],
                e: &e[strip(&e)..],
            }))
        }
        ("EC", Some(curve)) => {
            let size = match curve {
                "P-256" => 32,
                "P-384" => 48,
                _ => return None,
            };
            let (x, y) = (decode("x")?, decode("y")?);
            if x.len() != size || y.len() != size {
                return None;
            }
            let point = [&[4u8][..], &x, &y].concat();
            Some(use_material(&KeyMaterial::EcPoint(point)))
        }
        ("OKP", Some("Ed25519")) => Some(use_material(&KeyMaterial::Ed25519(&decode("x")?))),
        _ => None,
    }
}

fn modulus_bits(n: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .ok()?;
    let first = bytes.iter().position(|&b| b != 0)?;
    Some((bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An Ed25519 public key (RFC 8037 A.2).
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn set(keys: Value, allowed: &[Algorithm]) -> Result<KeySet, String> {
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes(), allowed)
    }

    #[test]
    fn filters_keys_a_provider_must_not_use() {
        let ed = |extra: Value| {
            let mut key = json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "k"});
            key.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            key
        };
        assert!(set(json!([ed(json!({}))]), &[Algorithm::EdDSA]).is_ok());
        assert!(set(json!([ed(json!({"use": "enc"}))]), &[Algorithm::EdDSA]).is_err());
        assert!(
            set(
                json!([ed(json!({"key_ops": ["encrypt"]}))]),
                &[Algorithm::EdDSA]
            )
            .is_err()
        );
        assert!(
            set(
                json!([ed(json!({"key_ops": ["verify"]}))]),
                &[Algorithm::EdDSA]
            )
            .is_ok()
        );
        assert!(
            set(json!([ed(json!({}))]), &[Algorithm::RS256]).is_err(),
            "alg outside allow-list"
        );
        assert!(
            set(json!([ed(json!({"kid": 7}))]), &[Algorithm::EdDSA]).is_err(),
            "non-string kid"
        );
        assert!(
            set(
                json!([{"kty": "oct", "k": "c2VjcmV0"}]),
                &[Algorithm::HS256]
            )
            .is_err()
        );
        let small_rsa = json!({"kty": "RSA", "n": "AQAB".repeat(40), "e": "AQAB"});
        assert!(
            set(json!([small_rsa]), &[Algorithm::RS256]).is_err(),
            "RSA < 2048 bits"
        );
        assert!(KeySet::from_jwks(b"<html>", &[Algorithm::EdDSA]).is_err());
        assert!(KeySet::from_jwks(br#"{"keys":[]}"#, &[Algorithm::EdDSA]).is_err());
    }

    #[test]
    fn lookup_by_kid_and_alg() {
        let keys = set(
            json!([{"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "a"}]),
            &[Algorithm::EdDSA, Algorithm::RS256],
        )
        .unwrap();
        assert!(matches!(
            keys.lookup(Some("a"), Algorithm::EdDSA),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            keys.lookup(Some("a"), Algorithm::RS256),
            KeyLookup::NoMatch
        ));
        assert!(matches!(
            keys.lookup(Some("b"), Algorithm::EdDSA),
            KeyLookup::UnknownKid
        ));
        assert!(matches!(
            keys.lookup(None, Algorithm::EdDSA),
            KeyLookup::Found(_)
        ));
    }

    #[test]
    fn pem_keys_verify_tokens() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing =
            jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::ES256),
            &json!({"a": 1}),
            &signing,
        )
        .unwrap();
        let keys =
            KeySet::from_file_contents(pair.public_key_pem().as_bytes(), &[Algorithm::ES256])
                .unwrap();
        let jws = crate::jwt::parse_jws(&token, 8192, &[Algorithm::ES256]).unwrap();
        let KeyLookup::Found(key) = keys.lookup(Some("any-kid"), Algorithm::ES256) else {
            panic!("found")
        };
        assert!(key.signed(&jws));
        assert!(KeySet::from_pem(pair.public_key_pem().as_bytes(), &[Algorithm::RS256]).is_err());
        assert!(
            KeySet::from_pem(
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                &[Algorithm::ES256]
            )
            .is_err()
        );
    }

    #[test]
    fn rsa_modulus_size() {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0x80u8; 256]);
        assert_eq!(modulus_bits(&n), Some(2048));
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0x01u8; 256]);
        assert_eq!(modulus_bits(&n), Some(2041));
    }
}
