//! Signature verification with keys parsed once, when a key set is loaded.
//!
//! jsonwebtoken hands the key to its crypto backend (aws-lc-rs) on every call, and aws-lc then
//! rebuilds the RSA key (its Montgomery context) per verification: a third of an RS256 check.
//! keyway keeps aws-lc-rs `ParsedPublicKey`s (and HMAC keys) per key and algorithm instead. An
//! algorithm the key material cannot serve (wrong type, wrong curve) fails to parse and is left
//! out, which is also how a key's usable algorithms are decided.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    self as lc, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, VerificationAlgorithm,
};
use jsonwebtoken::Algorithm;

/// Public or secret key bytes, as they come from a JWK, a PEM file or the config.
pub(super) enum KeyMaterial<'a> {
    /// Big-endian modulus and exponent.
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// An uncompressed point: `0x04 || x || y`.
    EcPoint(Vec<u8>),
    /// A raw Ed25519 public key.
    Ed25519(&'a [u8]),
    /// A DER SubjectPublicKeyInfo (from PEM).
    Spki(&'a [u8]),
    /// An HMAC secret.
    Secret(&'a [u8]),
}

enum Verifier {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

/// A key's verifiers, one per algorithm it can serve.
pub(super) struct Verifiers {
    by_algorithm: Vec<(Algorithm, Verifier)>,
}

impl Verifiers {
    /// Parses `material` once for each of `candidates` it can serve.
    pub(super) fn new(material: &KeyMaterial<'_>, candidates: &[Algorithm]) -> Self {
        let by_algorithm = candidates
            .iter()
            .filter_map(|&algorithm| {
                build(material, algorithm).map(|verifier| (algorithm, verifier))
            })
            .collect();
        Verifiers { by_algorithm }
    }

    pub(super) fn algorithms(&self) -> Vec<Algorithm> {
        self.by_algorithm
            .iter()
            .map(|(algorithm, _)| *algorithm)
            .collect()
    }

    pub(super) fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self
            .by_algorithm
            .iter()
            .find(|(candidate, _)| *candidate == algorithm)
        {
            Some((_, Verifier::Public(key))) => key.verify_sig(message, signature).is_ok(),
            Some((_, Verifier::Hmac(key))) => hmac::verify(key, message, signature).is_ok(),
            None => false,
        }
    }
}

fn build(material: &KeyMaterial<'_>, algorithm: Algorithm) -> Option<Verifier> {
    let public = |bytes: &[u8]| {
        ParsedPublicKey::new(public_algorithm(algorithm)?, bytes)
            .ok()
            .map(Verifier::Public)
    };
    match material {
        KeyMaterial::Rsa { n, e } => {
            let components = RsaPublicKeyComponents { n: *n, e: *e };
            components
                .to_parsed_public_key(rsa_parameters(algorithm)?)
                .ok()
                .map(Verifier::Public)
        }
        KeyMaterial::EcPoint(point) => public(point),
        KeyMaterial::Ed25519(key) => public(key),
        KeyMaterial::Spki(der) => public(der),
        KeyMaterial::Secret(secret) => {
            let key = hmac::Key::new(hmac_algorithm(algorithm)?, secret);
            Some(Verifier::Hmac(Box::new(key)))
        }
    }
}

fn rsa_parameters(algorithm: Algorithm) -> Option<&'static RsaParameters> {
    Some(match algorithm {
        Algorithm::RS256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &lc::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &lc::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &lc::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn public_algorithm(algorithm: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match algorithm {
        Algorithm::ES256 => &lc::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &lc::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &lc::ED25519,
        other => rsa_parameters(other)?,
    })
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    Some(match algorithm {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => return None,
    })
}
