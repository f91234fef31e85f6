//! Hosted email authentication (seed 002) against a real SMTP server (aiosmtpd): request an
//! email, follow the link's authtoken, trade it for a user token, submit with it. The tests in
//! `on_both_stores!` run on SQLite and on Redis.

use crate::support::smtp::SmtpServer;
use crate::support::{Backend, Keyway, StoreKind, TestStore, envelope};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::time::Duration;

pub const PASSKEY_A: &str = "passkey-client-a-0123456789";
const PASSKEY_B: &str = "passkey-client-b-0123456789";
pub const CALLBACK: &str = "https://reviews.example.com/confirm";

/// `[hosted_email]` with clients a and b; `keys` is the `encryption_keys` array body.
pub fn hosted_config(
    backend: &Backend,
    store: &TestStore,
    delivery: &str,
    extra: &str,
    keys: &str,
) -> String {
    let tables = format!(
        r#"
{store}
[hosted_email]
{delivery}
from = "Reviews <no-reply@reviews.example.com>"
encryption_keys = [{keys}]
{extra}

[[hosted_email.clients]]
name = "client-a"
passkey = "${{PASSKEY_A}}"
callback_urls = ["{CALLBACK}", "https://shop.example.com/"]
api_versions = ["5.4"]

[[hosted_email.clients]]
name = "client-b"
passkey = "${{PASSKEY_B}}"
callback_urls = ["https://b.example.com/"]
api_versions = ["5.4", "5.5"]

[[routes]]
name = "submit"
path_prefix = "/data/submitreview.json"
upstream = "backend"
auth = ["hosted_email"]
identity_headers = {{ "x-auth-email" = "email", "x-auth-client" = "client" }}
"#,
        store = store.section()
    );
    crate::support::config(backend.address, &tables)
}

on_both_stores!(
    the_whole_flow_from_email_to_submission,
    authtokens_are_single_use_and_bad_ones_are_400_with_both_error_forms,
    an_expired_authtoken_and_an_expired_user_token_are_refused,
    bad_apiversion_passkey_and_callback_urls_are_refused_and_send_nothing,
    an_email_that_cannot_be_sent_is_503_and_its_authtoken_is_not_kept,
);

struct Setup {
    backend: Backend,
    smtp: SmtpServer,
    keyway: Keyway,
    store: TestStore,
}

pub const ENV: [(&str, &str); 4] = [
    ("PASSKEY_A", PASSKEY_A),
    ("PASSKEY_B", PASSKEY_B),
    ("KEY_OLD", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
    ("KEY_NEW", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="),
];

fn start_with_on(kind: StoreKind, extra: &str, keys: &str) -> Setup {
    let backend = Backend::start();
    let smtp = SmtpServer::start();
    let store = TestStore::new(kind);
    let delivery = format!("smtp_url = \"{}\"", smtp.url());
    let config = hosted_config(&backend, &store, &delivery, extra, keys);
    let keyway = Keyway::start(&config, &ENV);
    Setup {
        backend,
        smtp,
        keyway,
        store,
    }
}

pub const OLD_KEY: &str = r#"{ id = "old", key = "${KEY_OLD}" }"#;

fn start_on(kind: StoreKind) -> Setup {
    start_with_on(kind, "", OLD_KEY)
}

fn start() -> Setup {
    start_on(StoreKind::Sqlite)
}

pub fn request_email(keyway: &Keyway, query: &str, body: &Value) -> Response {
    Client::new()
        .post(keyway.url(&format!("/api/hostedauthentication{query}")))
        .json(body)
        .send()
        .unwrap()
}

pub fn authenticate(keyway: &Keyway, passkey: &str, authtoken: Option<&str>) -> Response {
    let mut query = format!("?apiversion=5.4&passkey={passkey}");
    if let Some(authtoken) = authtoken {
        query.push_str(&format!("&authtoken={authtoken}"));
    }
    Client::new()
        .post(keyway.url(&format!("/data/authenticateuser.json{query}")))
        .send()
        .unwrap()
}

/// Requests an email for `email` as client a and returns the authtoken from the link in it.
fn authtoken_by_email(setup: &Setup, email: &str) -> String {
    let before = setup.smtp.mails().len();
    let response = request_email(
        &setup.keyway,
        &format!("?apiversion=5.4&passkey={PASSKEY_A}"),
        &json!({"email": email, "callbackUrl": format!("{CALLBACK}?product=7")}),
    );
    assert_eq!(response.status(), 202);
    let mails = setup.smtp.wait_for(before + 1);
    assert_eq!(mails.len(), before + 1, "exactly one email per request");
    let mail = mails.last().unwrap();
    assert_eq!(mail.to, vec![email.to_owned()]);
    assert_eq!(mail.subject, "Confirm your email address");
    assert!(
        mail.data
            .contains("From: Reviews <no-reply@reviews.example.com>")
    );
    link_authtoken(&mail.text, &format!("{CALLBACK}?product=7&authtoken="))
}

/// The authtoken after `link_prefix` in an email's text.
pub fn link_authtoken(text: &str, link_prefix: &str) -> String {
    let start = text
        .find(link_prefix)
        .unwrap_or_else(|| panic!("no link {link_prefix} in:\n{text}"))
        + link_prefix.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn user_token(setup: &Setup, email: &str) -> String {
    let authtoken = authtoken_by_email(setup, email);
    let response = authenticate(&setup.keyway, PASSKEY_A, Some(&authtoken));
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    body["Authentication"]["User"].as_str().unwrap().to_owned()
}

fn submit(keyway: &Keyway, query: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Client::new().post(keyway.url(&format!("/data/submitreview.json{query}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body("").send().unwrap()
}

/// How many authtokens the store holds (only their SHA-256 is there).
pub fn stored_authtokens(store: &TestStore) -> i64 {
    store.records("hosted_email_authtoken")
}

/// A 400 that both kinds of client can read: keyway's envelope and the seed's error list.
fn assert_bad_authtoken(response: Response, case: &str) {
    assert_eq!(response.status(), 400, "{case}");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "400-02", "{case}: {body}");
    assert!(body["error"]["requestId"].is_string(), "{case}");
    assert_eq!(body["HasErrors"], true, "{case}");
    assert_eq!(body["Errors"][0]["Code"], "ERROR_BAD_REQUEST", "{case}");
    assert!(body["Errors"][0]["Message"].is_string(), "{case}");
}

fn the_whole_flow_from_email_to_submission(kind: StoreKind) {
    let setup = start_on(kind);
    let authtoken = authtoken_by_email(&setup, "ann@example.com");
    assert!(authtoken.len() >= 43, "256-bit authtoken: {authtoken}");
    assert_eq!(stored_authtokens(&setup.store), 1);
    let metrics = reqwest::blocking::get(setup.keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains(r#"keyway_emails_total{result="sent"} 1"#));
    let bytes = setup.store.raw_bytes();
    assert!(
        !bytes
            .windows(authtoken.len())
            .any(|window| window == authtoken.as_bytes()),
        "the authtoken is stored in clear"
    );

    let response = authenticate(&setup.keyway, PASSKEY_A, Some(&authtoken));
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["HasErrors"], false);
    assert_eq!(body["Errors"], json!([]));
    assert_eq!(body["Form"], json!([]));
    assert_eq!(body["Data"], json!({}));
    assert_eq!(body["Authentication"]["Email"], "ann@example.com");
    let token = body["Authentication"]["User"].as_str().unwrap().to_owned();
    assert!(token.starts_with("old."), "{token}");

    // The user token in the query: forwarded without it, with the identity headers.
    let response = submit(
        &setup.keyway,
        &format!("?apiversion=5.4&passkey={PASSKEY_A}&user={token}&rating=5"),
        &[("x-auth-email", "forged@evil.example")],
    );
    assert_eq!(response.status(), 200);
    let received = setup.backend.received().pop().unwrap();
    assert_eq!(received.values("x-auth-email"), ["ann@example.com"]);
    assert_eq!(received.values("x-auth-client"), ["client-a"]);
    assert_eq!(
        received.target,
        format!("/data/submitreview.json?apiversion=5.4&passkey={PASSKEY_A}&rating=5")
    );

    // In the X-User-Token header: the header is not forwarded.
    let response = submit(
        &setup.keyway,
        &format!("?passkey={PASSKEY_A}"),
        &[("X-User-Token", &token)],
    );
    assert_eq!(response.status(), 200);
    let received = setup.backend.received().pop().unwrap();
    assert!(received.values("x-user-token").is_empty());
    assert_eq!(received.values("x-auth-email"), ["ann@example.com"]);

    // In a form body: the field is removed, the rest of the body arrives byte for byte.
    let form = format!("passkey={PASSKEY_A}&user={token}&ReviewText=Great+stuff%21");
    let response = Client::new()
        .post(setup.keyway.url("/data/submitreview.json"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = setup.backend.received().pop().unwrap();
    assert_eq!(
        String::from_utf8(received.body.clone()).unwrap(),
        format!("passkey={PASSKEY_A}&ReviewText=Great+stuff%21")
    );
    assert_eq!(received.values("x-auth-client"), ["client-a"]);

    // No token at all: 401 envelope, nothing forwarded.
    let forwarded = setup.backend.received().len();
    let response = submit(&setup.keyway, &format!("?passkey={PASSKEY_A}"), &[]);
    assert_eq!(response.status(), 401);
    assert_eq!(envelope(&response.bytes().unwrap()).1, "401-01");
    assert_eq!(setup.backend.received().len(), forwarded);
}

fn authtokens_are_single_use_and_bad_ones_are_400_with_both_error_forms(kind: StoreKind) {
    let setup = start_on(kind);
    let authtoken = authtoken_by_email(&setup, "bo@example.com");
    // Another client cannot use it, and trying does not use it up.
    assert_bad_authtoken(
        authenticate(&setup.keyway, PASSKEY_B, Some(&authtoken)),
        "other client",
    );
    assert_eq!(
        authenticate(&setup.keyway, PASSKEY_A, Some(&authtoken)).status(),
        200
    );
    assert_bad_authtoken(
        authenticate(&setup.keyway, PASSKEY_A, Some(&authtoken)),
        "replay",
    );
    assert_bad_authtoken(
        authenticate(
            &setup.keyway,
            PASSKEY_A,
            Some("bWFkZS11cC10b2tlbi1tYWRlLXVwLXRva2VuLW1hZGU"),
        ),
        "made up",
    );
    assert_bad_authtoken(authenticate(&setup.keyway, PASSKEY_A, None), "missing");

    // The parameters may come as a form body instead of the query.
    let authtoken = authtoken_by_email(&setup, "form@example.com");
    let form = |authtoken: &str| {
        Client::new()
            .post(setup.keyway.url("/data/authenticateuser.json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "apiversion=5.4&passkey={PASSKEY_A}&authtoken={authtoken}"
            ))
            .send()
            .unwrap()
    };
    let response = form(&authtoken);
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["Authentication"]["Email"], "form@example.com");
    assert_bad_authtoken(form(&authtoken), "replay by form");
    assert_bad_authtoken(authenticate(&setup.keyway, PASSKEY_A, Some("")), "empty");

    // Two concurrent exchanges of one authtoken: exactly one wins (repeated on 5 tokens).
    for round in 0..5 {
        let authtoken = authtoken_by_email(&setup, &format!("race{round}@example.com"));
        let url = setup.keyway.url(&format!(
            "/data/authenticateuser.json?apiversion=5.4&passkey={PASSKEY_A}&authtoken={authtoken}"
        ));
        let statuses = crate::support::race_two_posts(&url);
        assert_eq!(statuses, [200, 400], "round {round}");
    }
}

fn an_expired_authtoken_and_an_expired_user_token_are_refused(kind: StoreKind) {
    let setup = start_with_on(
        kind,
        "authtoken_ttl_seconds = 1\nuser_token_ttl_seconds = 1",
        r#"{ id = "old", key = "${KEY_OLD}" }"#,
    );
    let stale = authtoken_by_email(&setup, "cy@example.com");
    let fresh = authtoken_by_email(&setup, "cy@example.com");
    let token = {
        let response = authenticate(&setup.keyway, PASSKEY_A, Some(&fresh));
        assert_eq!(response.status(), 200);
        response.json::<Value>().unwrap()["Authentication"]["User"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let query = format!("?passkey={PASSKEY_A}&user={token}");
    assert_eq!(submit(&setup.keyway, &query, &[]).status(), 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_bad_authtoken(
        authenticate(&setup.keyway, PASSKEY_A, Some(&stale)),
        "expired authtoken",
    );
    let response = submit(&setup.keyway, &query, &[]);
    assert_eq!(response.status(), 401, "expired user token");
    assert_eq!(envelope(&response.bytes().unwrap()).1, "401-01");
}

fn bad_apiversion_passkey_and_callback_urls_are_refused_and_send_nothing(kind: StoreKind) {
    let setup = start_with_on(
        kind,
        "emails_per_address_per_hour = 2",
        r#"{ id = "old", key = "${KEY_OLD}" }"#,
    );
    let good_body = json!({"email": "dee@example.com", "callbackUrl": CALLBACK});
    let cases: Vec<(String, Value, u16, &str)> = vec![
        (
            format!("?passkey={PASSKEY_A}"),
            good_body.clone(),
            400,
            "400-01",
        ),
        (
            format!("?apiversion=&passkey={PASSKEY_A}"),
            good_body.clone(),
            400,
            "400-01",
        ),
        (
            format!("?apiversion=4.0&passkey={PASSKEY_A}"),
            good_body.clone(),
            400,
            "400-01",
        ),
        (
            "?apiversion=5.4".to_owned(),
            good_body.clone(),
            401,
            "401-01",
        ),
        (
            "?apiversion=5.4&passkey=not-a-passkey-at-all".to_owned(),
            good_body.clone(),
            401,
            "401-01",
        ),
        (
            format!("?apiversion=5.4&passkey={PASSKEY_A}&passkey={PASSKEY_B}"),
            good_body.clone(),
            400,
            "400-01",
        ),
        (
            format!("?apiversion=5.4&passkey={PASSKEY_A}"),
            json!({"email": "not an address", "callbackUrl": CALLBACK}),
            422,
            "422-01",
        ),
        (
            format!("?apiversion=5.4&passkey={PASSKEY_A}"),
            json!({"email": "dee@example.com"}),
            422,
            "422-01",
        ),
    ];
    let tricks = [
        "//evil.com/confirm",
        "/\\evil.com",
        "https://reviews.example.com.evil.com/confirm",
        "https://reviews.example.com@evil.com/confirm",
        "https://evil.com@reviews.example.com/confirm",
        "https://reviews.example.com/confirmation",
        "https://reviews.example.com\\@evil.com/confirm",
        "javascript://reviews.example.com/confirm",
        "http://reviews.example.com/confirm",
        "https://b.example.com/",
        "https://reviews.example.com/confirm#x",
        "https://reviews.example.com/confirm/../../admin",
    ];
    let trick_cases = tricks.iter().map(|trick| {
        (
            format!("?apiversion=5.4&passkey={PASSKEY_A}"),
            json!({"email": "dee@example.com", "callbackUrl": trick}),
            422,
            "422-01",
        )
    });
    for (query, body, status, code) in cases.into_iter().chain(trick_cases) {
        let response = request_email(&setup.keyway, &query, &body);
        assert_eq!(response.status(), status, "{query} {body}");
        assert_eq!(
            envelope(&response.bytes().unwrap()).1,
            code,
            "{query} {body}"
        );
    }
    // A passkey checks the exchange call too.
    let response = authenticate(&setup.keyway, "not-a-passkey-at-all", Some("x"));
    assert_eq!(response.status(), 401);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        setup.smtp.mails().is_empty(),
        "a refused request sent an email"
    );

    // Two emails an hour per address; the third is 429 with Retry-After, and not sent.
    let query = format!("?apiversion=5.4&passkey={PASSKEY_A}");
    assert_eq!(
        request_email(&setup.keyway, &query, &good_body).status(),
        202
    );
    assert_eq!(
        request_email(&setup.keyway, &query, &good_body).status(),
        202
    );
    let response = request_email(&setup.keyway, &query, &good_body);
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(envelope(&response.bytes().unwrap()).1, "429-01");
    assert_eq!(setup.smtp.wait_for(2).len(), 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(setup.smtp.mails().len(), 2);
}

#[test]
fn tampered_foreign_and_unknown_key_user_tokens_are_denied_and_keys_rotate() {
    let setup = start();
    let old_token = user_token(&setup, "eve@example.com");
    let submit_as = |keyway: &Keyway, passkey: &str, token: &str| {
        submit(keyway, &format!("?passkey={passkey}&user={token}"), &[])
            .status()
            .as_u16()
    };
    assert_eq!(submit_as(&setup.keyway, PASSKEY_A, &old_token), 200);
    // Client b's passkey with client a's token.
    assert_eq!(submit_as(&setup.keyway, PASSKEY_B, &old_token), 401);
    // One character changed anywhere in the ciphertext.
    let (id, payload) = old_token.split_once('.').unwrap();
    for at in [0, payload.len() / 2, payload.len() - 2] {
        let mut bytes = payload.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{id}.{}", String::from_utf8(bytes).unwrap());
        assert_eq!(
            submit_as(&setup.keyway, PASSKEY_A, &tampered),
            401,
            "at {at}"
        );
    }
    assert_eq!(
        submit_as(&setup.keyway, PASSKEY_A, &format!("nokey.{payload}")),
        401
    );

    // Rotation by reload: a new key in front of the old one. Old tokens still work; new ones
    // use "new".
    let delivery = format!("smtp_url = \"{}\"", setup.smtp.url());
    let rotated = hosted_config(
        &setup.backend,
        &setup.store,
        &delivery,
        "",
        r#"{ id = "new", key = "${KEY_NEW}" }, { id = "old", key = "${KEY_OLD}" }"#,
    );
    crate::reload::reload(&setup.keyway, Some(&rotated), crate::reload::RELOADED);
    let rotated = &setup.keyway;
    let only_old_key = Keyway::start(
        &hosted_config(&setup.backend, &setup.store, &delivery, "", OLD_KEY),
        &ENV,
    );
    assert_eq!(submit_as(rotated, PASSKEY_A, &old_token), 200);
    let before = setup.smtp.mails().len();
    let response = request_email(
        rotated,
        &format!("?apiversion=5.4&passkey={PASSKEY_A}"),
        &json!({"email": "eve@example.com", "callbackUrl": CALLBACK}),
    );
    assert_eq!(response.status(), 202);
    let mail = setup.smtp.wait_for(before + 1).pop().unwrap();
    let authtoken = link_authtoken(&mail.text, &format!("{CALLBACK}?authtoken="));
    let response = authenticate(rotated, PASSKEY_A, Some(&authtoken));
    let new_token = response.json::<Value>().unwrap()["Authentication"]["User"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_token.starts_with("new."), "{new_token}");
    assert_eq!(submit_as(rotated, PASSKEY_A, &new_token), 200);
    // A keyway that only knows the old key cannot open a token sealed with the new one.
    assert_eq!(submit_as(&only_old_key, PASSKEY_A, &new_token), 401);
    assert_eq!(submit_as(&only_old_key, PASSKEY_A, &old_token), 200);
}

/// Acceptance 5: the shipped config.toml, with its outbox and no mail server, runs the flow
/// exactly as README shows it with curl.
#[test]
fn the_shipped_config_runs_the_flow_through_its_outbox() {
    let backend = Backend::start();
    let keyway = Keyway::start(
        &crate::support::shipped_config(backend.address),
        &crate::support::SHIPPED_ENV,
    );
    let passkey = "demo-reviews-passkey-0001";
    let response = request_email(
        &keyway,
        &format!("?apiversion=5.4&passkey={passkey}"),
        &json!({"email": "you@example.com", "callbackUrl": "http://localhost:8080/confirm"}),
    );
    assert_eq!(response.status(), 202);
    let outbox = keyway.dir().join("data/outbox");
    let emails: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    assert_eq!(emails.len(), 1, "one .eml in {}", outbox.display());
    let text = crate::support::smtp::eml_text(&emails[0]);
    let authtoken = link_authtoken(&text, "http://localhost:8080/confirm?authtoken=");
    let response = authenticate(&keyway, passkey, Some(&authtoken));
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().unwrap()["Authentication"]["User"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = submit(&keyway, &format!("?passkey={passkey}&user={token}"), &[]);
    assert_eq!(response.status(), 200);
    let received = backend.received().pop().unwrap();
    assert_eq!(received.values("x-auth-email"), ["you@example.com"]);
    assert_eq!(received.values("x-auth-client"), ["reviews-demo"]);
}

fn an_email_that_cannot_be_sent_is_503_and_its_authtoken_is_not_kept(kind: StoreKind) {
    let backend = Backend::start();
    let store = TestStore::new(kind);
    let closed = crate::support::closed_port();
    let config = hosted_config(
        &backend,
        &store,
        &format!("smtp_url = \"smtp://{closed}\""),
        "",
        r#"{ id = "old", key = "${KEY_OLD}" }"#,
    );
    let keyway = Keyway::start(&config, &ENV);
    let response = request_email(
        &keyway,
        &format!("?apiversion=5.4&passkey={PASSKEY_A}"),
        &json!({"email": "fay@example.com", "callbackUrl": CALLBACK}),
    );
    assert_eq!(response.status(), 503);
    assert_eq!(envelope(&response.bytes().unwrap()).1, "503-01");
    let logs = keyway.logs();
    assert!(logs.contains("authentication email not sent"), "{logs}");
    assert_eq!(stored_authtokens(&store), 0);
    let metrics = reqwest::blocking::get(keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"keyway_emails_total{result="failed"} 1"#),
        "{metrics}"
    );
    assert!(!logs.contains(PASSKEY_A), "the passkey reached the log");
}

#[test]
fn planted_authtokens_and_unusual_addresses_are_refused_without_sending() {
    // Issue 12, finding 8: a callback that already carries an authtoken put two in the link,
    // the planted one first. Finding 9: quoted local parts counted apart from the plain
    // address, and addresses lettre cannot send answered 503 and counted as a failed email.
    let setup = start_with_on(
        StoreKind::Sqlite,
        "emails_per_address_per_hour = 1",
        r#"{ id = "old", key = "${KEY_OLD}" }"#,
    );
    let query = format!("?apiversion=5.4&passkey={PASSKEY_A}");
    let planted = [
        format!("{CALLBACK}?authtoken=planted"),
        format!("{CALLBACK}?x=1&AuthToken=planted"),
        format!("{CALLBACK}?%61uthtoken=planted"),
    ];
    for callback in &planted {
        let body = json!({"email": "victim@example.com", "callbackUrl": callback});
        let response = request_email(&setup.keyway, &query, &body);
        assert_eq!(response.status(), 422, "{callback}");
        assert_eq!(
            envelope(&response.bytes().unwrap()).1,
            "422-01",
            "{callback}"
        );
    }
    for email in [
        "\"victim\"@example.com",
        "\"vic\\tim\"@example.com",
        "\"a b\"@example.com",
        "\"<script>alert(1)</script>\"@example.com",
        "v@[127.0.0.1]",
        &format!("{}@example.com", "v".repeat(300)),
    ] {
        let body = json!({"email": email, "callbackUrl": CALLBACK});
        let response = request_email(&setup.keyway, &query, &body);
        assert_eq!(response.status(), 422, "{email}");
        assert_eq!(envelope(&response.bytes().unwrap()).1, "422-01", "{email}");
    }
    // The plain address is counted once whatever its case: the second is over the limit.
    let body = json!({"email": "victim@example.com", "callbackUrl": CALLBACK});
    assert_eq!(request_email(&setup.keyway, &query, &body).status(), 202);
    let body = json!({"email": "Victim@EXAMPLE.com", "callbackUrl": CALLBACK});
    assert_eq!(request_email(&setup.keyway, &query, &body).status(), 429);
    assert_eq!(setup.smtp.wait_for(1).len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        setup.smtp.mails().len(),
        1,
        "only the plain request was sent"
    );
    let metrics = reqwest::blocking::get(setup.keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !metrics.contains(r#"keyway_emails_total{result="failed"}"#),
        "{metrics}"
    );
}
