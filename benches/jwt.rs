//! JWT benchmarks: a cached validation at a 100k-token working set, and uncached RS256, ES256
//! and EdDSA verification (parse, key lookup, signature, claims). Run with
//! `cargo bench --bench jwt`; under `cargo test` each runs once on a 1k working set.
//! Uncached tokens are minted by jwcrypto (`tests/integration/support/mint_jwt.py`).

// A bench crate has no public API: `pub` in its modules only means "shared".
#![allow(unreachable_pub)]

mod common;

use common::completed;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keyway::config::CacheSettings;
use keyway::config::identity::{KeySource, ProviderSettings};
use keyway::identity::TenantScope;
use keyway::jwt::jwks::ProviderKeys;
use keyway::jwt::keys::{KeyLookup, KeySet};
use keyway::jwt::verifier::{JwtProvider, JwtVerifier};
use keyway::jwt::{ClaimsPolicy, parse};
use keyway::metrics::Metrics;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// keyway's own allocator (see `src/main.rs`), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://idp.example.com";
const ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(subject: usize) -> Value {
    json!({"iss": ISSUER, "aud": "chat", "sub": format!("user-{subject}"), "exp": now() + 3600, "iat": now()})
}

/// `cargo bench` passes `--bench`; `cargo test` does not and gets a small working set.
fn working_set() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        100_000
    } else {
        1_000
    }
}

/// Keys and tokens from jwcrypto: one token per algorithm.
fn minted() -> (Value, Vec<(Algorithm, String)>) {
    use std::io::Write;
    let spec = json!({
        "keys": [{"kid": "rsa", "kty": "RSA"}, {"kid": "ec", "kty": "EC", "crv": "P-256"}, {"kid": "ed", "kty": "OKP", "crv": "Ed25519"}],
        "tokens": [
            {"name": "RS256", "key": "rsa", "alg": "RS256", "claims": claims(0)},
            {"name": "ES256", "key": "ec", "alg": "ES256", "claims": claims(0)},
            {"name": "EdDSA", "key": "ed", "alg": "EdDSA", "claims": claims(0)},
        ]
    });
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/integration/support/mint_jwt.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with jwcrypto (make deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let output: Value = serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap();
    let tokens = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .into_iter()
        .map(|alg| {
            (
                alg,
                output["tokens"][format!("{alg:?}")]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    (output["jwks"].clone(), tokens)
}

fn uncached(c: &mut Criterion, jwks: &Value, tokens: &[(Algorithm, String)]) {
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes(), ALGORITHMS).unwrap();
    let policy = ClaimsPolicy {
        issuer: ISSUER.to_owned(),
        audiences: vec!["chat".to_owned()],
        leeway_seconds: 60,
    };
    for (alg, token) in tokens {
        c.bench_function(&format!("jwt_verify_uncached_{alg:?}"), |b| {
            b.iter(|| {
                let unverified = parse(black_box(token), 8192, ALGORITHMS).unwrap();
                let KeyLookup::Found(key) =
                    keys.lookup(unverified.jws.kid.as_deref(), unverified.jws.algorithm)
                else {
                    panic!("key")
                };
                assert!(key.signed(&unverified.jws));
                policy.check(&unverified.claims, now()).unwrap()
            })
        });
    }
}

/// An Ed25519 key of our own (rcgen), to sign the large working set quickly.
fn own_ed25519() -> (EncodingKey, Value) {
    use base64::Engine;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
    let key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    (
        key,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "own"}]}),
    )
}

fn cache_hit(c: &mut Criterion) {
    let (signing_key, jwks) = own_ed25519();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("jwks.json");
    std::fs::write(&keys_file, jwks.to_string()).unwrap();
    let settings = ProviderSettings::with_defaults(
        "customer123",
        456,
        ISSUER,
        KeySource::File { path: keys_file },
        &["chat"],
        &[Algorithm::EdDSA],
    );
    let metrics = Arc::new(Metrics::new());
    let keys = Arc::new(ProviderKeys::new(&settings, metrics.clone()).unwrap());
    let cache = CacheSettings {
        capacity: 1_000_000,
        ttl: Duration::from_secs(3600),
    };
    let verifier = JwtVerifier::new(
        vec![JwtProvider::new(&settings, keys)],
        vec!["sub".to_owned()],
        &cache,
        &metrics,
    );
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("own".into());
    let tokens: Vec<String> = (0..working_set())
        .map(|n| encode(&header, &claims(n), &signing_key).unwrap())
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scope = TenantScope::default();
    runtime.block_on(async {
        for token in &tokens {
            assert!(verifier.verify(token, &scope).await.is_ok());
        }
    });
    // As in a request, the presented token is hot (just parsed from the request head) while
    // the cache's 100k entries are not: each batch copies 64 tokens first (untimed), then
    // times their lookups. A hit never waits, so it is polled once, without a runtime.
    let mut next = 0;
    c.bench_function("jwt_cache_hit_working_set", |b| {
        b.iter_batched(
            || {
                next = (next + 7919) % tokens.len();
                tokens[next].clone()
            },
            |token| {
                let verified = completed(verifier.verify(&token, &scope));
                assert!(verified.is_ok());
                (token, verified)
            },
            BatchSize::NumIterations(64),
        )
    });
}

fn benches(c: &mut Criterion) {
    let (jwks, tokens) = minted();
    uncached(c, &jwks, &tokens);
    cache_hit(c);
}

criterion_group!(jwt, benches);
criterion_main!(jwt);
