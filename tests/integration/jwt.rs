//! `auth = ["jwt"]` with tokens minted by jwcrypto and keys served by a real JWKS endpoint.

use crate::support::jose::{ISSUER, JwksServer, Minted, Reply, mint, providers, unix_now};
use crate::support::{Backend, Keyway, envelope};
use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const OTHER_ISSUER: &str = "https://idp.other.example";

/// Claims that pass, with `patch` applied (null removes a claim).
pub fn claims(patch: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": "chat", "sub": "user-42", "exp": unix_now() + 600, "iat": unix_now(),
        "roles": ["agent", "admin"], "org": {"id": "org-7"}
    });
    for (name, value) in patch.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn keys() -> Value {
    json!([
        {"kid": "rsa-1", "kty": "RSA"},
        {"kid": "ec-1", "kty": "EC", "crv": "P-256"},
        {"kid": "ed-1", "kty": "OKP", "crv": "Ed25519"},
        {"kid": "hmac-from-public", "kty": "oct-from-public", "of": "rsa-1"},
        {"kid": "attacker", "kty": "RSA"},
    ])
}

/// A config with two providers (ours, and another customer's on the same JWKS) and routes.
pub fn jwt_config(backend: std::net::SocketAddr, jwks_url: &str, provider_extra: &str) -> String {
    crate::support::config(
        backend,
        &format!(
            r#"
{providers}
[[routes]]
name = "chat"
path_prefix = "/api/chat/"
upstream = "backend"
auth = ["jwt"]
customers = ["customer123"]
identity_headers = {{ "x-auth-subject" = "sub", "x-auth-roles" = "roles", "x-auth-org" = "org.id" }}

[[routes]]
name = "other"
path_prefix = "/api/other/"
upstream = "backend"
auth = ["jwt"]
customers = ["othercorp"]
"#,
            providers = providers(jwks_url, ISSUER, OTHER_ISSUER, provider_extra)
        ),
    )
}

/// The provider's public keys only (the attacker's and the HMAC one are not published).
fn published(minted: &Minted) -> Value {
    let keys: Vec<Value> = minted.jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["kid"] != "attacker")
        .cloned()
        .collect();
    json!({ "keys": keys })
}

fn call(keyway: &Keyway, path: &str, token: &str) -> reqwest::blocking::Response {
    Client::new()
        .get(keyway.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap()
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn tokens_from_an_independent_implementation_pass_with_every_algorithm() {
    let minted = mint(&json!({
        "keys": keys(),
        "tokens": [
            {"name": "RS256", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({}))},
            {"name": "PS256", "key": "rsa-1", "alg": "PS256", "claims": claims(json!({}))},
            {"name": "ES256", "key": "ec-1", "alg": "ES256", "claims": claims(json!({}))},
            {"name": "EdDSA", "key": "ed-1", "alg": "EdDSA", "claims": claims(json!({"sub": "ed-user"}))},
        ]
    }));
    let jwks = JwksServer::start(&published(&minted));
    let backend = Backend::start();
    let keyway = Keyway::start(&jwt_config(backend.address, &jwks.url(), ""), &[]);
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let path = format!("/api/chat/{alg}");
        let response = call(&keyway, &path, minted.token(alg));
        assert_eq!(response.status(), 200, "{alg}");
        let seen = backend.only(&path);
        let subject = if alg == "EdDSA" { "ed-user" } else { "user-42" };
        assert_eq!(seen.values("x-auth-subject"), vec![subject], "{alg}");
        assert_eq!(seen.values("x-auth-roles"), vec!["agent,admin"]);
        assert_eq!(seen.values("x-auth-org"), vec!["org-7"]);
        assert!(
            seen.values("authorization").is_empty(),
            "the bearer token stays at the gateway"
        );
    }
}

#[test]
fn the_attack_table_is_refused_and_nothing_is_forwarded() {
    // The JWKS server also serves the attacker's key set: it counts any fetch of it.
    let jwks = JwksServer::start(&json!({"keys": []}));
    let attacker_url = format!("http://{}/attacker.json", jwks.address);
    let past = unix_now() - 61 - 60;
    let tokens = json!([
        {"name": "hs256 with the public key", "key": "hmac-from-public", "alg": "HS256", "header": {"kid": "rsa-1"}, "claims": claims(json!({}))},
        {"name": "jku to an attacker key", "key": "attacker", "alg": "RS256", "header": {"jku": attacker_url}, "claims": claims(json!({}))},
        {"name": "x5u to an attacker key", "key": "attacker", "alg": "RS256", "header": {"x5u": attacker_url}, "claims": claims(json!({}))},
        {"name": "embedded jwk", "key": "attacker", "alg": "RS256", "header": {"kid": null, "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, "claims": claims(json!({}))},
        {"name": "kid path traversal", "key": "rsa-1", "alg": "RS256", "header": {"kid": "../../../../etc/passwd"}, "claims": claims(json!({}))},
        {"name": "kid sql", "key": "rsa-1", "alg": "RS256", "header": {"kid": "' OR '1'='1"}, "claims": claims(json!({}))},
        {"name": "kid empty", "key": "rsa-1", "alg": "RS256", "header": {"kid": ""}, "claims": claims(json!({}))},
        {"name": "kid number", "key": "rsa-1", "alg": "RS256", "header": {"kid": 7}, "claims": claims(json!({}))},
        {"name": "kid object", "key": "rsa-1", "alg": "RS256", "header": {"kid": {"$ne": ""}}, "claims": claims(json!({}))},
        {"name": "crit", "key": "rsa-1", "alg": "RS256", "header": {"crit": ["b64"], "b64": true}, "claims": claims(json!({}))},
        {"name": "aud missing", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"aud": null}))},
        {"name": "aud number", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"aud": 1}))},
        {"name": "aud empty", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"aud": []}))},
        {"name": "aud other", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"aud": "billing"}))},
        {"name": "iss missing", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"iss": null}))},
        {"name": "iss trailing slash", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"iss": format!("{ISSUER}/")}))},
        {"name": "iss other case", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"iss": ISSUER.to_uppercase()}))},
        {"name": "iss other tenant", "key": "ec-1", "alg": "ES256", "claims": claims(json!({"iss": OTHER_ISSUER}))},
        {"name": "exp missing", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"exp": null}))},
        {"name": "exp string", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"exp": (unix_now() + 600).to_string()}))},
        {"name": "exp past leeway", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"exp": past}))},
        {"name": "nbf future", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"nbf": unix_now() + 3600}))},
        {"name": "iat future", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"iat": unix_now() + 3600}))},
        {"name": "9 KB", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"pad": "x".repeat(9 * 1024)}))},
        {"name": "valid", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({}))},
        {"name": "inside leeway", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"exp": unix_now() - 30}))},
    ]);
    let minted = mint(&json!({ "keys": keys(), "tokens": tokens }));
    jwks.serve_keys(&published(&minted));
    let backend = Backend::start();
    let keyway = Keyway::start(&jwt_config(backend.address, &jwks.url(), ""), &[]);

    let valid = minted.token("valid").to_owned();
    let (header, rest) = valid.split_once('.').unwrap();
    let (payload, _signature) = rest.split_once('.').unwrap();
    let mut attacks: Vec<(String, String)> = minted
        .tokens
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "valid" | "inside leeway"))
        .map(|(name, token)| (name.clone(), token.clone()))
        .collect();
    for alg in ["none", "None", "NONE"] {
        let forged = format!(
            "{}.{payload}.",
            b64(&json!({"alg": alg, "kid": "rsa-1"}).to_string())
        );
        attacks.push((format!("alg {alg}"), forged.clone()));
        attacks.push((format!("alg {alg} with signature"), format!("{forged}c2ln")));
    }
    attacks.extend([
        ("2 segments".to_owned(), format!("{header}.{payload}")),
        ("4 segments".to_owned(), format!("{valid}.{payload}")),
        (
            "JWE, 5 segments".to_owned(),
            format!("{header}.AAAA.{payload}.AAAA.AAAA"),
        ),
        ("trailing xyz".to_owned(), format!("{valid} xyz")),
    ]);
    for (name, token) in &attacks {
        let response = call(&keyway, "/api/chat/attack", token);
        assert_eq!(response.status(), 401, "{name}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let (body_id, code, _) = envelope(&response.bytes().unwrap());
        assert_eq!((body_id, code.as_str()), (request_id, "401-01"), "{name}");
    }
    assert!(
        backend.received().is_empty(),
        "an attack reached the upstream: {:?}",
        backend.received()
    );
    assert_eq!(jwks.attacker_fetches(), 0);

    assert_eq!(
        call(&keyway, "/api/chat/ok", &valid).status(),
        200,
        "the untouched token passes"
    );
    assert_eq!(
        call(&keyway, "/api/chat/leeway", minted.token("inside leeway")).status(),
        200
    );
}

#[test]
fn a_token_of_another_customer_is_refused_on_this_customers_route() {
    let minted = mint(&json!({
        "keys": keys(),
        "tokens": [{"name": "other", "key": "ec-1", "alg": "ES256", "claims": claims(json!({"iss": OTHER_ISSUER}))}]
    }));
    let jwks = JwksServer::start(&published(&minted));
    let backend = Backend::start();
    let keyway = Keyway::start(&jwt_config(backend.address, &jwks.url(), ""), &[]);
    let token = minted.token("other");
    assert_eq!(
        call(&keyway, "/api/chat/x", token).status(),
        401,
        "customer123's route"
    );
    assert_eq!(
        call(&keyway, "/api/other/x", token).status(),
        200,
        "its own customer's route"
    );
    assert_eq!(
        call(&keyway, "/api/chat/again", token).status(),
        401,
        "a cache hit keeps the scope"
    );
}

#[test]
fn a_refused_token_sent_again_is_refused_from_memory_unless_time_may_lift_it() {
    let expired = unix_now() - 61 - 60;
    let minted = mint(&json!({
        "keys": keys(),
        "tokens": [
            {"name": "valid", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({}))},
            {"name": "expired", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"exp": expired}))},
            {"name": "not yet", "key": "rsa-1", "alg": "RS256", "claims": claims(json!({"nbf": unix_now() + 3600}))},
        ]
    }));
    let jwks = JwksServer::start(&published(&minted));
    let backend = Backend::start();
    let keyway = Keyway::start(&jwt_config(backend.address, &jwks.url(), ""), &[]);
    let valid = minted.token("valid");
    let (head, signature) = valid.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{head}.{first}{}", &signature[1..]);
    let refused = [&tampered, minted.token("expired"), minted.token("not yet")];
    for round in 0..10 {
        for token in refused {
            assert_eq!(call(&keyway, "/api/chat/x", token).status(), 401, "{round}");
        }
    }
    let series = |result: &str| {
        let name =
            format!(r#"keyway_cache_requests_total{{cache="jwt_refused",result="{result}"}}"#);
        crate::support::metric(&keyway, &name)
    };
    assert_eq!(
        (series("miss"), series("hit")),
        (2.0, 18.0),
        "the bad signature and the expired token are checked once each; \
         a token not valid yet is never remembered"
    );
    assert_eq!(call(&keyway, "/api/chat/x", valid).status(), 200);
    assert_eq!(
        backend.received().len(),
        1,
        "only the valid token went upstream"
    );
}

#[test]
fn rotation_refetches_once_and_unknown_kid_floods_are_bounded() {
    let minted = mint(&json!({
        "keys": [{"kid": "old", "kty": "EC", "crv": "P-256"}, {"kid": "new", "kty": "EC", "crv": "P-256"}, {"kid": "attacker", "kty": "EC", "crv": "P-256"}],
        "tokens": [
            {"name": "old", "key": "old", "alg": "ES256", "claims": claims(json!({}))},
            {"name": "new", "key": "new", "alg": "ES256", "claims": claims(json!({}))},
        ]
    }));
    let public = |kid: &str| json!({"keys": minted.jwks["keys"].as_array().unwrap().iter().filter(|key| key["kid"] == kid).collect::<Vec<_>>()});
    let jwks = JwksServer::start(&public("old"));
    let backend = Backend::start();
    let keyway = Keyway::start(
        &jwt_config(
            backend.address,
            &jwks.url(),
            "refetch_cooldown_seconds = 30",
        ),
        &[],
    );
    assert_eq!(
        call(&keyway, "/api/chat/old", minted.token("old")).status(),
        200
    );
    let before_rotation = jwks.fetches();

    jwks.serve_keys(&public("new"));
    assert_eq!(
        call(&keyway, "/api/chat/new", minted.token("new")).status(),
        200,
        "the new kid passes"
    );
    assert_eq!(
        jwks.fetches(),
        before_rotation + 1,
        "after exactly one refetch"
    );

    let flood: Vec<Value> = (0..25)
        .map(|n| json!({"name": format!("flood-{n}"), "key": "attacker", "alg": "ES256", "header": {"kid": format!("kid-{n}")}, "claims": claims(json!({}))}))
        .collect();
    let flood =
        mint(&json!({"keys": [{"kid": "attacker", "kty": "EC", "crv": "P-256"}], "tokens": flood}));
    let before_flood = jwks.fetches();
    for token in flood.tokens.values() {
        assert_eq!(call(&keyway, "/api/chat/flood", token).status(), 401);
    }
    assert!(
        jwks.fetches() <= before_flood + 1,
        "{} fetches for one cooldown",
        jwks.fetches() - before_flood
    );
}

fn readyz(keyway: &Keyway) -> u16 {
    reqwest::blocking::get(keyway.admin_url("/readyz"))
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn jwks_down_at_start_then_down_later_then_garbage() {
    let minted = mint(&json!({
        "keys": [{"kid": "ec-1", "kty": "EC", "crv": "P-256"}],
        "tokens": (0..3).map(|n| json!({"name": format!("t{n}"), "key": "ec-1", "alg": "ES256", "claims": claims(json!({"sub": format!("user-{n}")}))})).collect::<Vec<_>>()
    }));
    let jwks = JwksServer::start(&minted.jwks);
    jwks.set(Reply {
        status: 500,
        body: "down".into(),
        cache_control: None,
    });
    let backend = Backend::start();
    let timing = "refresh_seconds = 1\nmin_refresh_seconds = 1";
    let keyway = Keyway::launch(&jwt_config(backend.address, &jwks.url(), timing), &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(readyz(&keyway), 503, "not ready without keys");
    let unavailable = call(&keyway, "/api/chat/x", minted.token("t0"));
    assert_eq!(unavailable.status(), 503);
    assert_eq!(envelope(&unavailable.bytes().unwrap()).1, "503-01");

    jwks.serve_keys(&minted.jwks);
    keyway.wait_ready();
    assert_eq!(
        call(&keyway, "/api/chat/x", minted.token("t0")).status(),
        200
    );

    // Down later, then garbage: each uncached token still verifies with the last good keys.
    for (reply, token) in [
        (
            Reply {
                status: 500,
                body: "down".into(),
                cache_control: None,
            },
            "t1",
        ),
        (
            Reply {
                status: 200,
                body: "<html>maintenance</html>".into(),
                cache_control: None,
            },
            "t2",
        ),
    ] {
        let failures = jwks.fetches();
        jwks.set(reply);
        let deadline = Instant::now() + Duration::from_secs(10);
        while jwks.fetches() < failures + 2 {
            assert!(Instant::now() < deadline, "keyway stopped refreshing");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            call(&keyway, "/api/chat/y", minted.token(token)).status(),
            200,
            "{token}"
        );
        assert_eq!(readyz(&keyway), 200);
    }
    let metrics = reqwest::blocking::get(keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"keyway_jwks_refresh_total{provider="customer123:456",result="error"}"#),
        "{metrics}"
    );
}

#[test]
fn keys_by_discovery_and_not_past_the_stale_window() {
    let jwks = JwksServer::start(&json!({"keys": []}));
    let issuer = format!("http://{}", jwks.address);
    let tokens: Vec<Value> = (0..2)
        .map(|n| json!({"name": format!("t{n}"), "key": "ec-1", "alg": "ES256", "claims": claims(json!({"iss": issuer}))}))
        .collect();
    let minted =
        mint(&json!({"keys": [{"kid": "ec-1", "kty": "EC", "crv": "P-256"}], "tokens": tokens}));
    jwks.serve_keys(&minted.jwks);
    let backend = Backend::start();
    let routes = format!(
        r#"
[[identity_providers]]
customer_id = "discovered"
provider_id = 1
issuer = "{issuer}"
audiences = ["chat"]
algorithms = ["ES256"]
refresh_seconds = 1
min_refresh_seconds = 1
max_stale_seconds = 2

[[routes]]
name = "chat"
path_prefix = "/api/chat/"
upstream = "backend"
auth = ["jwt"]
"#
    );
    let keyway = Keyway::start(&crate::support::config(backend.address, &routes), &[]);
    assert_eq!(
        call(&keyway, "/api/chat/a", minted.token("t0")).status(),
        200,
        "keys found through discovery"
    );

    jwks.set(Reply {
        status: 500,
        body: "down".into(),
        cache_control: None,
    });
    std::thread::sleep(Duration::from_millis(3500));
    let stale = call(&keyway, "/api/chat/b", minted.token("t1"));
    assert_eq!(
        stale.status(),
        503,
        "keys older than max_stale are not used"
    );
    assert_eq!(envelope(&stale.bytes().unwrap()).1, "503-01");
    assert_eq!(readyz(&keyway), 503);
}
