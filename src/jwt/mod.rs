//! JWTs in one place: parsing (this file), keys (`keys`, `signature`), each provider's JWK set
//! (`jwks`), and the [`verifier::JwtVerifier`] that both the `jwt` authenticator and the
//! exchange use.
//!
//! keyway closes jsonwebtoken's gaps: it parses the token itself (size, shape, duplicate keys,
//! `crit`, `kid` type, `alg` allow-list, with jsonwebtoken's `Algorithm` names), verifies the
//! signature with keys aws-lc-rs parsed once (`signature`), and checks every claim with its own
//! policy: `exp` required and numeric, `iss` exact, `aud` a string or array containing a
//! configured audience, `nbf` and `iat` with leeway. `jku`, `x5u`, `x5c` and `jwk` headers are
//! never looked at.

pub mod jwks;
pub mod keys;
mod signature;
pub mod verifier;

use crate::http_policy::strict_json;

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::str::FromStr;

/// Why a token was refused (for the log; clients always see the same 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    TooLarge,
    /// Not three base64url segments of JSON objects without duplicate keys.
    Malformed,
    /// `alg` missing, unknown or not allowed (including `none`).
    Algorithm,
    /// `crit` present: keyway understands no extensions.
    Critical,
    /// `kid` present but not a string.
    KeyId,
    /// No configured provider issues this `iss` for this route.
    UnknownIssuer,
    /// No key of the provider may verify this token.
    NoKey,
    Signature,
    /// A claim failed: the name says which.
    Claim(&'static str),
}

/// A compact JWS split and its header checked; the signature is not verified yet.
pub struct Jws<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub payload: Vec<u8>,
    signing_input: &'a str,
    /// The decoded signature: a segment that is not canonical base64url is refused at parse.
    signature: Vec<u8>,
}

/// A JWT: a JWS whose payload is a JSON object of claims.
pub struct UnverifiedToken<'a> {
    pub jws: Jws<'a>,
    pub claims: Map<String, Value>,
}

/// Together, payload and signature are the bearer token: `Debug` shows the header only.
impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("jws", &self.jws)
            .finish_non_exhaustive()
    }
}

fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

/// Parses a compact JWS: size first, then shape and header.
pub fn parse_jws<'a>(
    token: &'a str,
    max_bytes: usize,
    allowed: &[Algorithm],
) -> Result<Jws<'a>, Denial> {
    if token.len() > max_bytes {
        return Err(Denial::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Denial::Malformed);
    };
    if header.is_empty() || signature.is_empty() {
        return Err(Denial::Malformed);
    }
    let signing_input = &token[..header.len() + 1 + payload.len()];
    // Decoding is the alphabet check (URL-safe, unpadded, no stray bits): one pass per segment,
    // every segment before anything is read from the header.
    let (Some(header), Some(payload), Some(signature)) = (
        decode_segment(header),
        decode_segment(payload),
        decode_segment(signature),
    ) else {
        return Err(Denial::Malformed);
    };
    let header_json = strict_json::parse_object(&header).ok_or(Denial::Malformed)?;
    let algorithm = header_json
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|alg| Algorithm::from_str(alg).ok())
        .filter(|alg| allowed.contains(alg))
        .ok_or(Denial::Algorithm)?;
    if header_json.contains_key("crit") || header_json.contains_key("b64") {
        return Err(Denial::Critical);
    }
    let kid = match header_json.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Denial::KeyId),
    };
    Ok(Jws {
        algorithm,
        kid,
        payload,
        signing_input,
        signature,
    })
}

impl Jws<'_> {
    /// `header.payload`, the bytes the signature covers.
    pub fn signing_input(&self) -> &str {
        self.signing_input
    }

    /// The signature bytes, decoded.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Parses a JWT: a JWS whose payload is a JSON object without duplicate keys.
pub fn parse<'a>(
    token: &'a str,
    max_bytes: usize,
    allowed: &[Algorithm],
) -> Result<UnverifiedToken<'a>, Denial> {
    let jws = parse_jws(token, max_bytes, allowed)?;
    let claims = strict_json::parse_object(&jws.payload).ok_or(Denial::Malformed)?;
    Ok(UnverifiedToken { jws, claims })
}

impl UnverifiedToken<'_> {
    /// The `iss` claim, used to pick the provider before anything is trusted.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// A provider's claim rules, compiled once at start-up.
#[derive(Debug, Clone)]
pub struct ClaimsPolicy {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway_seconds: i64,
}

fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, Denial> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number.as_f64().map(Some).ok_or(Denial::Claim(name)),
        Some(_) => Err(Denial::Claim(name)),
    }
}

impl ClaimsPolicy {
    /// Checks the claims at `now` (Unix seconds); returns `exp`.
    pub fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<i64, Denial> {
        let (now, leeway) = (now as f64, self.leeway_seconds as f64);
        let exp = numeric_date(claims, "exp")?.ok_or(Denial::Claim("exp"))?;
        if now > exp + leeway {
            return Err(Denial::Claim("exp"));
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Denial::Claim("nbf"));
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(Denial::Claim("iat"));
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Denial::Claim("iss"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(audience)) => self.audiences.contains(audience),
            Some(Value::Array(items)) => items.iter().any(|item| {
                item.as_str()
                    .is_some_and(|audience| self.audiences.iter().any(|a| a == audience))
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(Denial::Claim("aud"));
        }
        Ok(exp.floor() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&claims))
    }

    const ALLOWED: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

    #[test]
    fn header_checks() {
        let claims = json!({"iss": "i"});
        let ok = token(json!({"alg": "RS256", "kid": "k"}), claims.clone());
        assert_eq!(
            parse(&ok, 8192, ALLOWED).unwrap().jws.kid.as_deref(),
            Some("k")
        );
        for (header, denial) in [
            (json!({"alg": "none"}), Denial::Algorithm),
            (json!({"alg": "HS256"}), Denial::Algorithm),
            (json!({"alg": "RS256", "crit": ["exp"]}), Denial::Critical),
            (json!({"alg": "RS256", "kid": 5}), Denial::KeyId),
            (json!({"alg": "RS256", "kid": ["a"]}), Denial::KeyId),
        ] {
            assert_eq!(
                parse(&token(header.clone(), claims.clone()), 8192, ALLOWED).unwrap_err(),
                denial,
                "{header}"
            );
        }
        assert_eq!(parse(&ok, 10, ALLOWED).unwrap_err(), Denial::TooLarge);
        for bad in [
            format!("{ok}.x"),
            ok.rsplit_once('.').unwrap().0.to_owned(),
            format!("{ok} xyz"),
            format!("{ok}."),
            // Signatures that are not canonical base64url (found by `make fuzz`): a length
            // of 4n+1, and trailing bits that another decoder would drop.
            format!("{}.c2lnA", ok.rsplit_once('.').unwrap().0),
            format!("{}.c2l", ok.rsplit_once('.').unwrap().0),
            // Decoding is the only alphabet check: the standard alphabet, padding and
            // non-ASCII are refused in every segment.
            format!("{}.c2l+", ok.rsplit_once('.').unwrap().0),
            format!("{}.c2k/", ok.rsplit_once('.').unwrap().0),
            format!("{}.c2k=", ok.rsplit_once('.').unwrap().0),
            ok.replacen('.', "=.", 1),
            ok.replacen('.', ".é", 1),
            // A malformed segment is refused as malformed before the algorithm is looked at.
            format!(
                "{}.c2l+",
                token(json!({"alg": "none"}), claims.clone())
                    .rsplit_once('.')
                    .unwrap()
                    .0
            ),
        ] {
            assert_eq!(
                parse(&bad, 8192, ALLOWED).unwrap_err(),
                Denial::Malformed,
                "{bad}"
            );
        }
        let duplicate = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256"})),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"a","sub":"b"}"#)
        );
        assert_eq!(
            parse(&duplicate, 8192, ALLOWED).unwrap_err(),
            Denial::Malformed
        );
    }

    #[test]
    fn claim_checks() {
        let policy = ClaimsPolicy {
            issuer: "https://idp.example.com".into(),
            audiences: vec!["chat".into()],
            leeway_seconds: 60,
        };
        let now = 1_000_000;
        let good = json!({"iss": "https://idp.example.com", "aud": "chat", "exp": now + 10, "iat": now, "nbf": now});
        let check = |patch: Value| {
            let mut claims = good.as_object().unwrap().clone();
            for (key, value) in patch.as_object().unwrap() {
                if value.is_null() {
                    claims.remove(key);
                } else {
                    claims.insert(key.clone(), value.clone());
                }
            }
            policy.check(&claims, now)
        };
        assert_eq!(check(json!({})), Ok(now + 10));
        assert!(check(json!({"aud": ["other", "chat"]})).is_ok());
        assert!(
            check(json!({"exp": now - 59})).is_ok(),
            "just inside leeway"
        );
        for (patch, claim) in [
            (json!({"exp": null}), "exp"),
            (json!({"exp": "999999999999"}), "exp"),
            (json!({"exp": now - 61}), "exp"),
            (json!({"nbf": now + 61}), "nbf"),
            (json!({"iat": now + 61}), "iat"),
            (json!({"iss": null}), "iss"),
            (json!({"iss": "https://idp.example.com/"}), "iss"),
            (json!({"iss": "https://IDP.example.com"}), "iss"),
            (json!({"aud": null}), "aud"),
            (json!({"aud": 1}), "aud"),
            (json!({"aud": []}), "aud"),
            (json!({"aud": "other"}), "aud"),
        ] {
            assert_eq!(check(patch.clone()), Err(Denial::Claim(claim)), "{patch}");
        }
    }
}
