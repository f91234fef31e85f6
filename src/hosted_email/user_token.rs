//! The encrypted user token: AES-256-GCM over `{email, client, iat, exp}`, written as
//! `{key id}.{base64url(nonce ‖ ciphertext ‖ tag)}`.
//!
//! The key id stays outside the ciphertext (it picks the key) but is bound to it as associated
//! data, so a token cannot be moved to another key. Nonces are 96 random bits per token: safe
//! for far more tokens than one key will ever seal (rotate keys by putting a new one first).

use crate::config::hosted_email::EncryptionKey;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// What a user token proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    pub email: String,
    pub client: String,
    /// Issued and expires, Unix seconds.
    pub iat: i64,
    pub exp: i64,
}

/// Longest token accepted for opening (a real one is ~200 bytes).
const MAX_TOKEN_BYTES: usize = 2048;

/// The configured keys, ready to seal (first) and open (any).
pub struct KeyRing {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "KeyRing({ids:?})")
    }
}

impl KeyRing {
    /// Config validation guarantees at least one well-formed key.
    pub fn new(keys: &[EncryptionKey]) -> Self {
        let keys = keys
            .iter()
            .map(|key| {
                let unbound = UnboundKey::new(&AES_256_GCM, &key.key).expect("32-byte AES key");
                (key.id.clone(), LessSafeKey::new(unbound))
            })
            .collect();
        KeyRing { keys }
    }

    /// Seals `claims` under the first key.
    pub fn seal(&self, claims: &UserClaims) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random source");
        let mut sealed = serde_json::to_vec(claims).expect("claims serialise");
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(id)),
            &mut sealed,
        )
        .expect("AES-GCM sealing of a small message");
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&sealed);
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(payload))
    }

    /// The claims of a token sealed by one of our keys; `None` for anything else (unknown key
    /// id, tampering, garbage). Expiry and client are the caller's to check.
    pub fn open(&self, token: &str) -> Option<UserClaims> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let (id, payload) = token.split_once('.')?;
        let (_, key) = self.keys.iter().find(|(known, _)| known == id)?;
        let mut payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        if payload.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = payload.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&payload).ok()?;
        let plain = key
            .open_in_place(nonce, Aad::from(associated_data(id)), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn associated_data(key_id: &str) -> Vec<u8> {
    format!("keyway hosted_email user token v1 {key_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> EncryptionKey {
        EncryptionKey {
            id: id.to_owned(),
            key: [byte; 32],
        }
    }

    fn claims() -> UserClaims {
        UserClaims {
            email: "a@example.com".into(),
            client: "reviews".into(),
            iat: 1,
            exp: 2,
        }
    }

    /// The largest claims keyway can seal (the longest address `plain_email` admits, the
    /// longest client name, the longest key id, the widest times) still open: the opener's
    /// size limit can never refuse a token keyway issued.
    #[test]
    fn the_largest_claims_keyway_seals_still_open() {
        use crate::config::MAX_CLIENT_NAME_BYTES;
        use crate::identity::{MAX_EMAIL_BYTES, plain_email};
        let domain = ["d".repeat(63), "d".repeat(63), "d".repeat(61)].join(".");
        let email = format!("{}@{domain}", "l".repeat(64));
        assert_eq!(email.len(), MAX_EMAIL_BYTES);
        assert!(plain_email(&email).is_some());
        let claims = UserClaims {
            email,
            client: "c".repeat(MAX_CLIENT_NAME_BYTES),
            iat: i64::MIN,
            exp: i64::MIN,
        };
        let ring = KeyRing::new(&[key(&"k".repeat(32), 1)]);
        let token = ring.seal(&claims);
        assert!(token.len() <= MAX_TOKEN_BYTES, "{} bytes", token.len());
        assert_eq!(ring.open(&token), Some(claims));
    }

    #[test]
    fn sealed_tokens_open_and_nothing_else_does() {
        let ring = KeyRing::new(&[key("k1", 1)]);
        let token = ring.seal(&claims());
        assert!(token.starts_with("k1."));
        assert_eq!(ring.open(&token), Some(claims()));
        assert_ne!(ring.seal(&claims()), token, "a fresh nonce per token");
        // Flip one bit of the ciphertext, of the nonce, and of the tag.
        let (id, payload) = token.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for at in [0, NONCE_LEN + 2, bytes.len() - 1] {
            bytes[at] ^= 1;
            let tampered = format!("{id}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(ring.open(&tampered), None, "bit flipped at {at}");
            bytes[at] ^= 1;
        }
        assert_eq!(ring.open(&format!("k9.{payload}")), None, "unknown key id");
        assert_eq!(ring.open("garbage"), None);
        assert_eq!(ring.open("k1."), None);
    }

    #[test]
    fn the_key_id_is_bound_to_the_ciphertext() {
        // Two keys with the same bytes: a token relabelled with the other id must not open.
        let ring = KeyRing::new(&[key("k1", 7), key("k2", 7)]);
        let token = ring.seal(&claims());
        let relabelled = token.replacen("k1.", "k2.", 1);
        assert_eq!(ring.open(&relabelled), None);
    }

    #[test]
    fn rotation_keeps_old_tokens_and_seals_with_the_new_key() {
        let old = KeyRing::new(&[key("old", 1)]);
        let token = old.seal(&claims());
        let rotated = KeyRing::new(&[key("new", 2), key("old", 1)]);
        assert_eq!(rotated.open(&token), Some(claims()));
        assert!(
            rotated.seal(&claims()).starts_with("new."),
            "the first key seals"
        );
    }
}
