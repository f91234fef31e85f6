//! JWTs minted by jwcrypto (Python), and a JWKS server whose answers the test controls.

use super::backend::runtime_and_listener;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Keys and tokens from `mint_jwt.py`.
pub struct Minted {
    pub jwks: Value,
    pub tokens: HashMap<String, String>,
}

impl Minted {
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name}"))
    }
}

/// Runs the jwcrypto minter on `spec` (see the script's docstring).
pub fn mint(spec: &Value) -> Minted {
    use std::io::Write;
    let script = super::keyway::repository_file("tests/integration/support/mint_jwt.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "mint_jwt.py failed (is jwcrypto installed? `make deps`)"
    );
    let minted: Value = serde_json::from_slice(&output.stdout).unwrap();
    Minted {
        jwks: minted["jwks"].clone(),
        tokens: serde_json::from_value(minted["tokens"].clone()).unwrap(),
    }
}

/// What the JWKS endpoint answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub cache_control: Option<String>,
}

/// Serves `/jwks.json` (the provider's), `/attacker.json` (never to be fetched) and discovery.
pub struct JwksServer {
    pub address: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    fetches: Arc<AtomicUsize>,
    attacker_fetches: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl JwksServer {
    pub fn start(jwks: &Value) -> JwksServer {
        let (runtime, listener) = runtime_and_listener();
        let address = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(Reply {
            status: 200,
            body: jwks.to_string(),
            cache_control: None,
        }));
        let (fetches, attacker_fetches) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (served, counted, attacked) =
            (reply.clone(), fetches.clone(), attacker_fetches.clone());
        let discovery =
            json!({ "issuer": "unused", "jwks_uri": format!("http://{address}/jwks.json") });
        let app = Router::new()
            .route(
                "/jwks.json",
                get(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let reply = served.lock().unwrap().clone();
                    async move { respond(reply) }
                }),
            )
            .route(
                "/attacker.json",
                get(move || {
                    attacked.fetch_add(1, Ordering::SeqCst);
                    async { "{}" }
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let body = discovery.to_string();
                    async move { body }
                }),
            );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            address,
            reply,
            fetches,
            attacker_fetches,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.address)
    }

    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub fn serve_keys(&self, jwks: &Value) {
        self.set(Reply {
            status: 200,
            body: jwks.to_string(),
            cache_control: None,
        });
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn attacker_fetches(&self) -> usize {
        self.attacker_fetches.load(Ordering::SeqCst)
    }
}

fn respond(reply: Reply) -> Response {
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(cache_control) = reply.cache_control {
        response
            .headers_mut()
            .insert("cache-control", cache_control.parse().unwrap());
    }
    response
}

/// The identity providers the JWT and exchange tests share, both keyed by `jwks_url`:
/// customer123/456 (issuer `issuer`, four algorithms, plus `extra` keys) and othercorp/789
/// (issuer `other_issuer`, ES256 only).
pub fn providers(jwks_url: &str, issuer: &str, other_issuer: &str, extra: &str) -> String {
    format!(
        r#"
[[identity_providers]]
customer_id = "customer123"
provider_id = 456
issuer = "{issuer}"
jwks_uri = "{jwks_url}"
audiences = ["chat"]
algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
{extra}

[[identity_providers]]
customer_id = "othercorp"
provider_id = 789
issuer = "{other_issuer}"
jwks_uri = "{jwks_url}"
audiences = ["chat"]
algorithms = ["ES256"]
"#
    )
}

/// The issuer of customer123's provider in the JWT and exchange tests.
pub const ISSUER: &str = "https://idp.example.com";

/// Unix seconds, for `exp`/`iat`/`nbf` claims.
pub fn unix_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
