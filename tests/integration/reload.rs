//! Config reload on SIGHUP against the running binary: under load nothing fails and the
//! upstream sees each new credential at once; a bad file keeps the old runtime; secrets from
//! files rotate; providers, hosted-email clients and users come and go without a restart.

use crate::support::converse::{ADMIN, USER, get_with, password_hash, token_for, users};
use crate::support::jose::{ISSUER, JwksServer, mint, unix_now};
use crate::support::load::SteadyLoad;
use crate::support::{Backend, Keyway, StoreKind, TestStore, metric};
use reqwest::blocking::Client;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const RELOADED: &str = r#"keyway_config_reloads_total{result="success"}"#;
const REFUSED: &str = r#"keyway_config_reloads_total{result="failure"}"#;

/// Rewrites keyway's config file and sends SIGHUP; waits (bounded) until `series` counts one
/// more.
pub fn reload(keyway: &Keyway, config: Option<&str>, series: &str) {
    let before = metric(keyway, series);
    if let Some(config) = config {
        std::fs::write(keyway.dir().join("config.toml"), config).unwrap();
    }
    keyway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(keyway, series) <= before {
        assert!(
            Instant::now() < deadline,
            "no reload counted; logs:\n{}",
            keyway.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Routes of every kind, each injecting `[credentials.backend]`, whose value is `credential`.
fn routes(store: &TestStore, jwks: &JwksServer, credential: &str, extra: &str) -> String {
    format!(
        r#"
{store}
{extra}
[credentials.backend]
"x-backend-key" = "{credential}"

[converse]
{users}
[[identity_providers]]
customer_id = "customer123"
provider_id = 456
issuer = "{ISSUER}"
jwks_uri = "{jwks}"
audiences = ["chat"]
algorithms = ["RS256"]

[[routes]]
name = "open"
path_prefix = "/open/"
upstream = "backend"
auth = ["none"]
credentials = "backend"

[[routes]]
name = "chat"
path_prefix = "/api/chat/"
upstream = "backend"
auth = ["converse"]
credentials = "backend"

[[routes]]
name = "jwt"
path_prefix = "/jwt/"
upstream = "backend"
auth = ["jwt"]
credentials = "backend"
"#,
        store = store.section(),
        users = users(),
        jwks = jwks.url()
    )
}

fn rs256_token() -> (JwksServer, String) {
    let claims = json!({"iss": ISSUER, "aud": "chat", "sub": "jwt-user", "exp": unix_now() + 600});
    let minted = mint(&json!({
        "keys": [{"kid": "rsa", "kty": "RSA"}],
        "tokens": [{"name": "t", "key": "rsa", "alg": "RS256", "claims": claims}],
    }));
    (JwksServer::start(&minted.jwks), minted.tokens["t"].clone())
}

/// The generation a credential value names (`key-v{n}`).
fn generation_of(value: &str) -> usize {
    value.strip_prefix("key-v").unwrap().parse().unwrap()
}

#[test]
fn ten_reloads_under_load_lose_nothing_and_each_new_credential_is_seen_at_once() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let (jwks, jwt) = rs256_token();
    // The credential is a mounted secret: each reload reads the rewritten file.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("backend-key");
    std::fs::write(&secret_file, "key-v0\n").unwrap();
    let from_file = format!("${{file:{}}}", secret_file.display());
    let config = crate::support::config(backend.address, &routes(&store, &jwks, &from_file, ""));
    let keyway = Keyway::start(&config, &[]);
    let converse = token_for(&Client::new(), &keyway, USER, 600, false);

    // The generation every request sent from now on must see at least.
    let confirmed = Arc::new(AtomicUsize::new(0));
    // 64 keep-alive connections (one client each) through ten reloads a second apart.
    let load = {
        let (confirmed, base) = (confirmed.clone(), keyway.url(""));
        SteadyLoad::start(64, move |client, worker, n| {
            let generation = confirmed.load(Ordering::Acquire);
            let request = match (worker + n) % 3 {
                0 => client.get(format!("{base}/open/x")),
                1 => client
                    .get(format!("{base}/api/chat/x"))
                    .header("X-CONVERSE-TOKEN", &converse),
                _ => client.get(format!("{base}/jwt/x")).bearer_auth(&jwt),
            };
            request.header("x-test-generation", generation.to_string())
        })
    };

    std::thread::sleep(Duration::from_millis(300));
    for generation in 1..=10 {
        std::fs::write(&secret_file, format!("key-v{generation}\n")).unwrap();
        reload(&keyway, None, RELOADED);
        confirmed.store(generation, Ordering::Release);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let total = load.finish();
    println!("{total} requests on 64 connections during 10 reloads, none failed");
    assert!(total > 2000, "the load ran ({total} requests)");

    let received = backend.received();
    assert_eq!(
        received.len(),
        total,
        "every request reached the upstream once"
    );
    for request in &received {
        let sent_after: usize = request.values("x-test-generation")[0].parse().unwrap();
        let values = request.values("x-backend-key");
        assert_eq!(values.len(), 1, "exactly one credential");
        assert!(
            generation_of(&values[0]) >= sent_after,
            "a request sent after reload {sent_after} carried {}",
            values[0]
        );
    }
    assert_eq!(
        generation_of(&received.last().unwrap().values("x-backend-key")[0]),
        10
    );
    let logs = keyway.logs();
    assert!(
        !logs.contains("key-v"),
        "a credential reached the log:\n{logs}"
    );
    assert_eq!(metric(&keyway, REFUSED), 0.0);
}

#[test]
fn a_bad_file_keeps_the_old_runtime_and_names_every_problem() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let (jwks, _) = rs256_token();
    let good = |credential: &str| {
        crate::support::config(backend.address, &routes(&store, &jwks, credential, ""))
    };
    let keyway = Keyway::start(&good("first"), &[]);
    let client = Client::new();
    let seen = |path: &str| {
        assert_eq!(client.get(keyway.url(path)).send().unwrap().status(), 200);
        backend.received().last().unwrap().values("x-backend-key")
    };
    assert_eq!(seen("/open/a"), ["first"]);
    let hash_before = metric(&keyway, "keyway_config_hash");
    assert!(hash_before > 0.0);

    let three_mistakes = good("second")
        .replace("[converse]\n", "[converse]\nbogus_key = 1\n")
        .replace(
            "upstream = \"backend\"\nauth = [\"none\"]",
            "upstream = \"nowhere\"\nauth = [\"none\"]",
        )
        .replace(
            "grace_period_seconds = 10",
            "grace_period_seconds = \"ten\"",
        );
    assert_ne!(three_mistakes, good("second"));
    reload(&keyway, Some(&three_mistakes), REFUSED);
    let logs = keyway.logs();
    for key in [
        "converse.bogus_key",
        "nowhere",
        "server.grace_period_seconds",
    ] {
        assert!(logs.contains(key), "{key} not named in:\n{logs}");
    }
    assert_eq!(seen("/open/b"), ["first"], "the old runtime still serves");
    assert_eq!(metric(&keyway, RELOADED), 0.0);

    // A valid file reloads; a key that needs a restart is refused by name, the rest applies.
    let valid = good("third").replace("threads = 1", "threads = 3");
    reload(&keyway, Some(&valid), RELOADED);
    assert_eq!(seen("/open/c"), ["third"]);
    assert!(
        keyway.logs().contains("server.threads"),
        "{}",
        keyway.logs()
    );
    assert_ne!(metric(&keyway, "keyway_config_hash"), hash_before);
    assert!(
        metric(
            &keyway,
            "keyway_config_last_reload_success_timestamp_seconds"
        ) > 1.7e9
    );
}

#[test]
fn providers_clients_and_users_come_and_go_by_reload() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let (jwks, jwt) = rs256_token();
    let hosted = |clients: &str| {
        format!(
            r#"
[hosted_email]
outbox_dir = "outbox"
from = "Reviews <no-reply@reviews.example.com>"
encryption_keys = [{{ id = "k", key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" }}]
{clients}
"#
        )
    };
    let client_a = "[[hosted_email.clients]]\nname = \"a\"\npasskey = \"passkey-client-a-0123456789\"\ncallback_urls = [\"https://a.example.com/\"]\napi_versions = [\"5.4\"]\n";
    let client_b = client_a
        .replace("\"a\"", "\"b\"")
        .replace("client-a", "client-b")
        .replace("a.example", "b.example");
    let without_providers = |text: String| {
        let start = text.find("[[identity_providers]]").unwrap();
        let end = text.find("[[routes]]").unwrap();
        let jwt_route = text.find("[[routes]]\nname = \"jwt\"").unwrap();
        format!("{}{}", &text[..start], &text[end..jwt_route])
    };
    let before = crate::support::config(
        backend.address,
        &without_providers(routes(&store, &jwks, "v", &hosted(client_a))),
    );
    let keyway = Keyway::start(&before, &[]);
    let client = Client::new();
    let user_token = token_for(&client, &keyway, USER, 600, false);
    let admin_token = token_for(&client, &keyway, ADMIN, 600, false);
    for _ in 0..2 {
        assert_eq!(
            get_with(&client, &keyway, "/api/chat/x", &user_token).status(),
            200
        );
    }
    assert_eq!(
        client
            .get(keyway.url("/jwt/x"))
            .bearer_auth(&jwt)
            .send()
            .unwrap()
            .status(),
        404
    );
    let email_request = |passkey: &str| {
        client
            .post(keyway.url(&format!(
                "/api/hostedauthentication?apiversion=5.4&passkey={passkey}"
            )))
            .json(&json!({"email": "ann@example.com", "callbackUrl": "https://b.example.com/"}))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(email_request("passkey-client-b-0123456789"), 401);

    // The user leaves; a provider and a hosted-email client arrive.
    let hash = password_hash();
    let user_entry =
        format!("[[converse.users]]\nemail = \"{USER}\"\npassword_hash = \"{hash}\"\n\n");
    let after = crate::support::config(
        backend.address,
        &routes(
            &store,
            &jwks,
            "v",
            &hosted(&format!("{client_a}{client_b}")),
        ),
    )
    .replace(&user_entry, "");
    assert!(!after.contains(&format!("email = \"{USER}\"")));
    reload(&keyway, Some(&after), RELOADED);
    assert_eq!(
        get_with(&client, &keyway, "/api/chat/x", &user_token).status(),
        401,
        "a removed user's cached token fails on the next request"
    );
    assert_eq!(
        get_with(&client, &keyway, "/api/chat/x", &admin_token).status(),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .get(keyway.url("/jwt/x"))
            .bearer_auth(&jwt)
            .send()
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new provider never verified: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(email_request("passkey-client-b-0123456789"), 202);
}
