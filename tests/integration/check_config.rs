//! `keyway check-config`: every problem at once, each with its key; the shipped config passes.

use crate::support::keyway::{keyway_command, repository_file};

fn check(config: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let (_dir, mut command) = keyway_command(config, &["check-config"], env);
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn three_mistakes_are_all_reported_with_their_keys() {
    let config = r#"
[server]
listen = ["127.0.0.1:8080"]

[admin]
listen = "localhost-admin"

[upstreams.chat]
addresses = ["127.0.0.1:9000"]

[[routes]]
name = "a"
path_prefix = "/a/"
upstream = "chat"
auth = ["none"]

[[routes]]
name = "b"
path_prefix = "/b/"
upstream = "chat"
auth = ["none"]

[[routes]]
name = "c"
path_prefix = "/c/"
upstream = "chats"
auth = ["none"]
read_timeout = 5
"#;
    let (ok, _, stderr) = check(config, &[]);
    assert!(!ok, "a bad config must fail");
    for expected in [
        r#"routes[2].upstream: unknown upstream "chats""#,
        "routes[2].read_timeout: unknown key",
        r#"admin.listen: "localhost-admin" is not an IP:port address"#,
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 problems"), "{stderr}");
}

#[test]
fn shipped_config_passes() {
    // The file itself, where it is: its demo keys and schema are found beside it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("--config")
        .arg(repository_file("config.toml"))
        .arg("check-config")
        .envs(crate::support::SHIPPED_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "shipped config.toml failed:\n{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));
}

#[test]
fn request_schemas_and_api_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bad_schema = dir.path().join("bad.json");
    std::fs::write(&bad_schema, r#"{"type": "no-such-type"}"#).unwrap();
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{").unwrap();
    let good = repository_file("schemas/asapp-authenticate.json");
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:8080"]
[admin]
listen = "127.0.0.1:9090"
[api_keys]
id_header = "x-key"
secret_header = "X-Key"
[[api_keys.clients]]
name = "two words"
id = "ak_1"
secret_sha256 = "+f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[upstreams.chat]
addresses = ["127.0.0.1:9000"]
[[routes]]
name = "bad-schema"
path = "/a/{{id}}"
upstream = "chat"
auth = ["api_key"]
request_schema = "{bad}"
[[routes]]
name = "not-json"
path = "/b"
upstream = "chat"
auth = ["api_key"]
request_schema = "{not_json}"
[[routes]]
name = "too-big"
path = "/c"
upstream = "chat"
auth = ["api_key"]
request_schema = "{good}"
max_body_bytes = 1048576
customers = ["nobody"]
"#,
        bad = bad_schema.display(),
        not_json = not_json.display(),
        good = good.display(),
    );
    let (ok, _, stderr) = check(&config, &[]);
    assert!(!ok);
    for expected in [
        r#"routes[0].request_schema: route "bad-schema": "#,
        "is not a valid draft 2020-12 JSON Schema",
        r#"routes[1].request_schema: route "not-json": "#,
        "routes[2].max_body_bytes: a route with request_schema holds each body before forwarding it: at most 65536",
        r#"routes[2].customers[0]: no identity provider or API-key client for customer "nobody""#,
        "api_keys.secret_header: must differ from api_keys.id_header",
        "api_keys.clients[0].name: must be 1-64 letters, digits",
        "api_keys.clients[0].secret_sha256: must be 64 hex digits",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn a_missing_variable_is_named_and_its_value_never_printed() {
    let config = r#"
[server]
listen = ["127.0.0.1:8080"]
[admin]
listen = "127.0.0.1:9090"
[upstreams.chat]
addresses = ["127.0.0.1:9000"]
[credentials.asapp]
"asapp-api-id" = "${KEYWAY_TEST_UNSET_ID}"
"asapp-api-secret" = "${KEYWAY_TEST_BAD_SECRET}"
[[routes]]
name = "a"
path_prefix = "/"
upstream = "chat"
auth = ["none", "hosted_email"]
credentials = "asapp"
"#;
    // A value that is not a valid header value: the error must name the key, not the value.
    let (ok, _, stderr) = check(config, &[("KEYWAY_TEST_BAD_SECRET", "s3cr3t\u{1}value")]);
    assert!(!ok);
    assert!(
        stderr.contains(r#"credentials.asapp.asapp-api-id: environment variable "KEYWAY_TEST_UNSET_ID" is not set"#),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("credentials.asapp.asapp-api-secret: value is not a valid HTTP header value"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert!(
        stderr.contains(r#"routes[0].auth: "none" cannot be combined"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"authenticator "hosted_email" needs a [hosted_email] section"#),
        "{stderr}"
    );
}

#[test]
fn a_type_error_an_unknown_key_and_an_unknown_upstream_are_reported_together() {
    let routes = r#"
[[routes]]
name = "a"
path_prefix = "/a/"
upstream = "backend"
auth = ["none"]

[[routes]]
name = "b"
path_prefix = 17
upstream = "backend"
auth = ["none"]
retries = 3

[[routes]]
name = "c"
path_prefix = "/c/"
upstream = "chats"
auth = ["none", "basic"]
"#;
    let config = crate::support::config(crate::support::closed_port(), routes);
    let (ok, _, stderr) = check(&config, &[]);
    assert!(!ok, "a bad config must fail");
    for expected in [
        "routes[1].path_prefix: invalid type: integer `17`, expected a string",
        "routes[1].retries: unknown key",
        r#"routes[2].upstream: unknown upstream "chats""#,
        "routes[2].auth[1]: unknown variant `basic`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problems"), "{stderr}");
}

#[test]
fn check_config_looks_nothing_up_and_starting_names_what_does_not_resolve() {
    // `check-config` checks the shape of an address; resolving it is left to start-up, which
    // fails with the key at fault.
    let backend = crate::support::closed_port();
    let config = crate::support::config(backend, crate::support::API_ROUTE)
        .replace(&backend.to_string(), "no-such-host.invalid:9000");
    let (ok, stdout, stderr) = check(&config, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("OK (1 routes)"), "{stdout}");
    let (_dir, mut command) = keyway_command(&config, &["run"], &[]);
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("upstreams.backend.addresses[0]") && printed.contains("not a resolvable"),
        "{printed}"
    );
}

#[test]
fn path_templates_are_checked_and_ambiguity_is_refused() {
    let route = |name: &str, path: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"u\"\nauth = [\"none\"]\n"
        )
    };
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\n[admin]\nlisten = \"127.0.0.1:9090\"\n\
         [upstreams.u]\naddresses = [\"127.0.0.1:9000\"]\n{}{}{}{}{}",
        route(
            "ok",
            "/conversation/v1/conversations/{conversationId}/authenticate"
        ),
        route("left", "/a/{x}/c"),
        route("right", "/a/b/{y}"),
        route("broken", "/a/x{y}"),
        "[[routes]]\nname = \"both\"\npath = \"/p\"\npath_prefix = \"/p/\"\nupstream = \"u\"\nauth = [\"none\"]\n",
    );
    let (ok, _, stderr) = check(&config, &[]);
    assert!(!ok);
    for expected in [
        "routes[2].path: ambiguous with routes[1] (\"/a/{x}/c\")",
        "routes[3].path: segment \"x{y}\"",
        "routes[4].path: give path_prefix or path, not both",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 problems"), "{stderr}");
}
