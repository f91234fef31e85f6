//! Resident memory per cached credential: fills keyway's JWT cache (the real
//! `JwtVerifier`, every token verified and cached as in a request) with N distinct tokens
//! and prints, as JSON, how much the process's RSS grew per cached token. `bench/load.py` runs
//! it with N = 1,000,000 (`--tokens 10000` in its smoke run).
//!
//!     cargo run --release --example cache_rss -- --tokens 1000000
//!
//! HS256 keeps signing and verifying the million tokens quick; the cache holds the SHA-256 of a
//! token and the verified principal, so the algorithm does not change what is measured.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keyway::config::CacheSettings;
use keyway::config::identity::{KeySource, ProviderSettings};
use keyway::config::secret::Secret;
use keyway::identity::TenantScope;
use keyway::jwt::jwks::ProviderKeys;
use keyway::jwt::verifier::{JwtProvider, JwtVerifier};
use keyway::metrics::Metrics;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://idp.example.com";
const SECRET: &str = "cache-rss-example-hs256-secret-0123456789";

fn main() {
    let count = token_count();
    let verifier = verifier(count);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    // Tokens the size of a typical access token's claims; minted before the first reading so
    // that only the cache's growth is measured.
    let tokens: Vec<String> = (0..count)
        .map(|n| {
            let claims = json!({"iss": ISSUER, "aud": "chat", "sub": format!("user-{n:08}"),
                "email": format!("user-{n:08}@example.com"), "exp": now + 3600, "iat": now});
            encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let scope = TenantScope::default();
    let before = rss_bytes();
    runtime.block_on(async {
        for token in &tokens {
            let verified = verifier.verify(token, &scope).await;
            assert!(verified.is_ok(), "a minted token was refused");
        }
    });
    let after = rss_bytes();
    let per_credential = (after.saturating_sub(before)) as f64 / count as f64;
    println!(
        "{}",
        json!({"cached_tokens": count, "rss_before_bytes": before, "rss_after_bytes": after,
            "rss_bytes_per_cached_token": per_credential})
    );
}

fn token_count() -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|arg| arg == "--tokens") {
        Some(at) => args[at + 1].parse().expect("--tokens N"),
        None => 1_000_000,
    }
}

fn verifier(capacity: usize) -> JwtVerifier {
    let settings = ProviderSettings::with_defaults(
        "customer123",
        456,
        ISSUER,
        KeySource::Secret(Secret::new(SECRET)),
        &["chat"],
        &[Algorithm::HS256],
    );
    let metrics = Arc::new(Metrics::new());
    let keys = Arc::new(ProviderKeys::new(&settings, metrics.clone()).unwrap());
    let cache = CacheSettings {
        capacity: capacity as u64,
        ttl: Duration::from_secs(3600),
    };
    // What a route with `identity_headers = { "x-auth-subject" = "sub", "x-auth-email" = "email" }`
    // keeps of each token.
    let claims_in_use = vec!["email".to_owned(), "sub".to_owned()];
    JwtVerifier::new(
        vec![JwtProvider::new(&settings, keys)],
        claims_in_use,
        &cache,
        &metrics,
    )
}

/// The process's resident set size, from `/proc/self/statm` (pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
