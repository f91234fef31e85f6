//! Helpers for the Converse token API: a config with users, log in, call with a token.

use super::{Keyway, TestStore};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::OnceLock;

pub const USER: &str = "user@example.com";
pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "password1";

/// One argon2id hash of `PASSWORD`, made by keyway's own `hash-password`.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// A config with the token API, two users, a protected route and extra `[converse]` keys.
pub fn config(backend: SocketAddr, store: &TestStore, converse_extra: &str) -> String {
    config_on(backend, &store.section(), converse_extra)
}

/// [`config`] with the `[store]` table given.
pub fn config_on(backend: SocketAddr, store_section: &str, converse_extra: &str) -> String {
    super::config(
        backend,
        &format!(
            r#"
{store}
[cache]
ttl_seconds = 30

[converse]
{converse_extra}

{users}
[[routes]]
name = "chat"
path_prefix = "/api/chat/"
upstream = "backend"
auth = ["converse"]
identity_headers = {{ "x-auth-email" = "email", "x-auth-admin" = "admin" }}
"#,
            store = store_section,
            users = users(),
        ),
    )
}

/// `USER` and the administrator `ADMIN`, both with `PASSWORD`, as `[[converse.users]]`.
pub fn users() -> String {
    let hash = password_hash();
    format!(
        r#"[[converse.users]]
email = "{USER}"
password_hash = "{hash}"

[[converse.users]]
email = "{ADMIN}"
password_hash = "{hash}"
admin = true
"#
    )
}

/// `POST /api/user/verify?createToken=true` with the given body.
pub fn login(client: &Client, keyway: &Keyway, body: &Value) -> Response {
    client
        .post(keyway.url("/api/user/verify?createToken=true"))
        .json(body)
        .send()
        .unwrap()
}

/// A fresh token for `email` (asserts success).
pub fn token_for(
    client: &Client,
    keyway: &Keyway,
    email: &str,
    timeout: i64,
    auto_renew: bool,
) -> String {
    let body =
        json!({"email": email, "password": PASSWORD, "timeout": timeout, "autoRenew": auto_renew});
    let response = login(client, keyway, &body);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().unwrap();
    answer["token"].as_str().expect("a token").to_owned()
}

/// `GET {path}` with the token header.
pub fn get_with(client: &Client, keyway: &Keyway, path: &str, token: &str) -> Response {
    client
        .get(keyway.url(path))
        .header("X-CONVERSE-TOKEN", token)
        .send()
        .unwrap()
}

/// `DELETE /api/user/token/{target}` as `caller`.
pub fn delete_token(client: &Client, keyway: &Keyway, target: &str, caller: &str) -> Response {
    let url = keyway.url(&format!("/api/user/token/{target}"));
    client
        .delete(url)
        .header("X-CONVERSE-TOKEN", caller)
        .send()
        .unwrap()
}

/// `POST /api/user/token/verify {"token": candidate}` as `caller`.
pub fn verify_token(client: &Client, keyway: &Keyway, candidate: &str, caller: &str) -> Response {
    client
        .post(keyway.url("/api/user/token/verify"))
        .header("X-CONVERSE-TOKEN", caller)
        .json(&serde_json::json!({ "token": candidate }))
        .send()
        .unwrap()
}
