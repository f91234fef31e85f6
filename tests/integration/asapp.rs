//! The ASAPP row (seed 000): its authenticate operation as a template route, its body checked
//! against the shipped schema before anything goes upstream, and partners calling with API
//! keys of their own that keyway exchanges for the configured pair.

use crate::support::keyway::repository_file;
use crate::support::{Backend, Keyway, envelope};
use reqwest::blocking::{Client, Response};
use serde_json::json;

const OPERATION: &str = "/conversation/v1/conversations/c-1/authenticate";
const PARTNER_ID: &str = "ak_partner_a";
const PARTNER_SECRET: &str = "partner-a-secret-Zx81-kq0Lw3vN7pT2";
const REAL_ID: &str = "real-asapp-id";
const REAL_SECRET: &str = "real-asapp-secret-kept-by-keyway";

/// The seed's operation behind a template route (upstream `operation`), the rest of the API
/// behind a prefix route (upstream `rest`); both take partners' keys and inject the real pair.
struct Asapp {
    operation: Backend,
    rest: Backend,
    keyway: Keyway,
}

fn start() -> Asapp {
    let (operation, rest) = (Backend::start(), Backend::start());
    let schema = repository_file("schemas/asapp-authenticate.json");
    let digest = keyway::api_keys::hex(&keyway::api_keys::digest_of(PARTNER_SECRET));
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[log]
level = "debug"

[api_keys]
[[api_keys.clients]]
name = "partner-a"
id = "{PARTNER_ID}"
secret_sha256 = "{digest}"

[upstreams.operation]
addresses = ["{operation}"]
[upstreams.rest]
addresses = ["{rest}"]

[credentials.asapp]
"asapp-api-id" = "{REAL_ID}"
"asapp-api-secret" = "{REAL_SECRET}"

[[routes]]
name = "authenticate"
path = "/conversation/v1/conversations/{{conversationId}}/authenticate"
methods = ["POST"]
upstream = "operation"
auth = ["api_key"]
credentials = "asapp"
request_schema = "{schema}"
identity_headers = {{ "x-auth-client" = "client" }}

[[routes]]
name = "conversation"
path_prefix = "/conversation/v1/"
upstream = "rest"
auth = ["api_key"]
credentials = "asapp"
"#,
        operation = operation.address,
        rest = rest.address,
        schema = schema.display(),
    );
    let keyway = Keyway::start(&config, &[]);
    Asapp {
        operation,
        rest,
        keyway,
    }
}

impl Asapp {
    /// A POST with the partner's pair and `headers`, the body as given.
    fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Client::new()
            .post(self.keyway.url(path))
            .header("asapp-api-id", PARTNER_ID)
            .header("asapp-api-secret", PARTNER_SECRET)
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .unwrap()
    }

    fn forwarded(&self) -> usize {
        self.operation.received().len() + self.rest.received().len()
    }
}

/// A body the route must refuse: what it is, its `Content-Type`, its bytes, the answer.
type Refused = (&'static str, &'static str, Vec<u8>, (u16, &'static str));

fn code_of(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, envelope(&response.bytes().unwrap()).1)
}

/// Acceptance 1: valid bodies reach the upstream byte for byte; invalid ones are refused
/// with the envelope and the upstream receives nothing.
#[test]
fn the_operation_s_bodies_are_checked_before_anything_goes_upstream() {
    let asapp = start();
    let auth_fields = [
        json!({"body": {"password": "p"}}),
        json!({"cookies": {"sid": "s"}}),
        json!({"headers": {"x-user": "u"}}),
        json!({"token": "cGFzc3dvcmQ="}),
    ];
    let mut sent = 0;
    for auth in &auth_fields {
        for stream in [None, Some("97555020-0276-435f-8104-c378221ba292")] {
            let mut body = json!({"customerExternalId": "customer-xyz", "auth": auth});
            if let Some(stream) = stream {
                body["streamId"] = json!(stream);
            }
            let bytes = serde_json::to_vec_pretty(&body).unwrap();
            let response = asapp.post(OPERATION, "application/json", bytes.clone());
            assert_eq!(response.status(), 200, "{body}");
            sent += 1;
            let received = asapp.operation.received();
            assert_eq!(received.len(), sent);
            assert_eq!(received[sent - 1].body, bytes, "forwarded unchanged");
        }
    }
    let two_megabytes = format!(
        r#"{{"customerExternalId":"c","auth":{{"token":"{}"}}}}"#,
        "a".repeat(2 << 20)
    );
    let refused: [Refused; 10] = [
        (
            "no customerExternalId",
            "application/json",
            br#"{"auth":{"token":"t"}}"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "auth {}",
            "application/json",
            br#"{"customerExternalId":"c","auth":{}}"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "auth a string",
            "application/json",
            br#"{"customerExternalId":"c","auth":"t"}"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "customerExternalId a number",
            "application/json",
            br#"{"customerExternalId":5,"auth":{"token":"t"}}"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "not JSON",
            "application/json",
            b"customerExternalId: c".to_vec(),
            (400, "400-01"),
        ),
        (
            "a trailing byte",
            "application/json",
            br#"{"customerExternalId":"c","auth":{"token":"t"}}x"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "a form body",
            "application/x-www-form-urlencoded",
            b"customerExternalId=c&auth=t".to_vec(),
            (400, "400-01"),
        ),
        (
            "JSON sent as text/plain",
            "text/plain",
            br#"{"customerExternalId":"c","auth":{"token":"t"}}"#.to_vec(),
            (400, "400-01"),
        ),
        // The seed's own example has `token` at the top level and no `auth`: its normative
        // schema requires `auth`, and keyway follows the schema.
        (
            "the seed's example",
            "application/json",
            br#"{"customerExternalId": "customer-xyz", "token": "cGFzc3dvcmQ="}"#.to_vec(),
            (400, "400-01"),
        ),
        (
            "a 2 MB body",
            "application/json",
            two_megabytes.into_bytes(),
            (413, "413-01"),
        ),
    ];
    for (what, content_type, body, expected) in refused {
        let (status, code) = code_of(asapp.post(OPERATION, content_type, body));
        assert_eq!((status, code.as_str()), expected, "{what}");
        assert_eq!(asapp.forwarded(), sent, "{what} reached the upstream");
    }
    let logs = asapp.keyway.logs();
    assert!(
        logs.contains("request body refused by the route's request_schema"),
        "{logs}"
    );
    assert!(!logs.contains("cGFzc3dvcmQ="), "a body value was logged");
}

/// Acceptance 2: the template matches one operation's paths only; everything else falls to
/// the prefix route, the path policy or 404.
#[test]
fn the_template_route_serves_its_operation_only() {
    let asapp = start();
    let valid = br#"{"customerExternalId":"c","auth":{"token":"t"}}"#;
    assert_eq!(
        asapp
            .post(OPERATION, "application/json", valid.to_vec())
            .status(),
        200
    );
    assert_eq!(
        asapp.operation.only(OPERATION).values("x-auth-client"),
        ["partner-a"]
    );
    // Not the template: the prefix route takes them, without the schema.
    for path in [
        "/conversation/v1/conversations/c-1/authenticate/x",
        "/conversation/v1/conversations/c-1",
    ] {
        let response = asapp.post(path, "text/plain", b"anything".to_vec());
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(asapp.rest.only(path).body, b"anything", "{path}");
    }
    // An empty segment is not a `{conversationId}`; the path policy refuses `//` anyway.
    let (status, code) = code_of(asapp.post(
        "/conversation/v1/conversations//authenticate",
        "application/json",
        valid.to_vec(),
    ));
    assert_eq!((status, code.as_str()), (400, "400-01"));
    let (status, code) = code_of(asapp.post("/elsewhere", "application/json", valid.to_vec()));
    assert_eq!((status, code.as_str()), (404, "404-01"));
    assert_eq!(asapp.operation.received().len(), 1);
    assert_eq!(asapp.rest.received().len(), 2);
}

/// Acceptance 3: the partner's pair is exchanged for the configured one; every wrong or
/// ambiguous pair is the same 401; the partner's secret is in no log line.
#[test]
fn a_partner_key_is_exchanged_for_the_configured_pair() {
    let asapp = start();
    let path = "/conversation/v1/conversations/c-1/messages";
    let response = asapp.post(path, "application/json", b"{}".to_vec());
    assert_eq!(response.status(), 200);
    let seen = asapp.rest.only(path);
    assert_eq!(seen.values("asapp-api-id"), [REAL_ID]);
    assert_eq!(seen.values("asapp-api-secret"), [REAL_SECRET]);
    let wrong_secret = "partner-a-secret-Zx81-kq0Lw3vN7pT3";
    let pairs: [(&str, &[(&str, &str)]); 7] = [
        (
            "wrong secret",
            &[
                ("asapp-api-id", PARTNER_ID),
                ("asapp-api-secret", wrong_secret),
            ],
        ),
        (
            "unknown id",
            &[
                ("asapp-api-id", "ak_nobody"),
                ("asapp-api-secret", PARTNER_SECRET),
            ],
        ),
        ("no id", &[("asapp-api-secret", PARTNER_SECRET)]),
        ("no secret", &[("asapp-api-id", PARTNER_ID)]),
        ("no pair", &[]),
        (
            "two ids",
            &[
                ("asapp-api-id", PARTNER_ID),
                ("asapp-api-id", PARTNER_ID),
                ("asapp-api-secret", PARTNER_SECRET),
            ],
        ),
        (
            "an id in '_' spelling too",
            &[
                ("asapp-api-id", PARTNER_ID),
                ("asapp_api_id", "ak_nobody"),
                ("asapp-api-secret", PARTNER_SECRET),
            ],
        ),
    ];
    let client = Client::new();
    for (what, headers) in pairs {
        let mut request = client.get(asapp.keyway.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, code) = code_of(request.send().unwrap());
        assert_eq!((status, code.as_str()), (401, "401-01"), "{what}");
    }
    assert_eq!(asapp.forwarded(), 1, "no refused pair reached the upstream");
    let metrics = reqwest::blocking::get(asapp.keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"keyway_api_key_requests_total{client="partner-a"} 1"#),
        "{metrics}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = asapp.keyway.logs();
    assert!(logs.contains("API key refused"), "{logs}");
    for secret in [PARTNER_SECRET, wrong_secret, REAL_SECRET] {
        assert!(!logs.contains(secret), "{secret} reached the log");
        assert!(!metrics.contains(secret), "{secret} reached the metrics");
    }
}

/// `keyway new-api-key` prints a pair whose digest `keyway hash-api-key` reproduces; a short
/// secret is refused.
#[test]
fn the_key_commands_agree() {
    let keyway = env!("CARGO_BIN_EXE_keyway");
    let output = std::process::Command::new(keyway)
        .arg("new-api-key")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value_of = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {text}"))
            .trim_matches('"')
            .to_owned()
    };
    let (secret, digest) = (value_of("secret = "), value_of("secret_sha256 = "));
    let hash = |input: &str| {
        let mut child = std::process::Command::new(keyway)
            .arg("hash-api-key")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
        )
    };
    assert_eq!(hash(&secret), (Some(0), format!("{digest}\n")));
    assert_eq!(hash("too-short").0, Some(2));
    assert_eq!(digest.len(), 64);
}
