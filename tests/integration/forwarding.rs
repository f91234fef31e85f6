//! Requests on `none` routes reach the upstream with our request id and exactly one credential.

use crate::support::{Backend, Keyway, closed_port, config, raw_http};

const SECRET: &str = "asapp-secret-from-env-7f3a";
const API_ID: &str = "asapp-id-from-env-19c2";

fn credential_routes() -> String {
    r#"
[credentials.asapp]
"asapp-api-id" = "${TEST_ASAPP_ID}"
"asapp-api-secret" = "${TEST_ASAPP_SECRET}"

[[routes]]
name = "conversation"
path_prefix = "/conversation/"
methods = ["POST"]
upstream = "backend"
auth = ["none"]
credentials = "asapp"
strip_request_headers = ["x-internal-user"]
identity_headers = { "x-auth-subject" = "sub" }
"#
    .to_owned()
}

#[test]
fn upstream_sees_our_request_id_and_exactly_one_configured_credential() {
    let backend = Backend::start();
    let keyway = Keyway::start(
        &config(backend.address, &credential_routes()),
        &[("TEST_ASAPP_ID", API_ID), ("TEST_ASAPP_SECRET", SECRET)],
    );
    let body = r#"{"customerExternalId":"customer-xyz","auth":{"token":"cGFzc3dvcmQ="}}"#;
    let request = format!(
        "POST /conversation/v1/conversations/c1/authenticate HTTP/1.1\r\n\
         Host: gateway.test\r\n\
         ASAPP-API-SECRET: forged-upper\r\n\
         asapp_api_secret: forged-underscore\r\n\
         asapp-api-secret: forged-copy-1\r\n\
         asapp-api-secret: forged-copy-2\r\n\
         Asapp_Api_Id: forged-id\r\n\
         X-Request-Id: client-chosen-id\r\n\
         X_Internal_User: root\r\n\
         x-auth-subject: admin\r\n\
         Connection: asapp-api-secret, close\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = raw_http::send(keyway.proxy, request.as_bytes());
    assert_eq!(response.status, 200, "{response:?}");
    let request_id = response
        .header("x-request-id")
        .expect("X-Request-Id on the response");
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    assert_ne!(request_id, "client-chosen-id");

    let seen = backend.only("/conversation/v1/conversations/c1/authenticate");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.values("asapp-api-secret"), vec![SECRET]);
    assert_eq!(seen.values("asapp-api-id"), vec![API_ID]);
    assert_eq!(seen.values("x-request-id"), vec![request_id]);
    assert!(seen.values("x-internal-user").is_empty());
    assert!(
        seen.values("x-auth-subject").is_empty(),
        "anonymous principals carry no identity"
    );
    for name in seen.headers.keys() {
        assert!(
            !name.as_str().contains('_'),
            "an underscore variant reached upstream: {name}"
        );
    }
}

#[test]
fn every_request_gets_a_fresh_request_id() {
    let backend = Backend::start();
    let keyway = Keyway::start(
        &config(backend.address, &credential_routes()),
        &[("TEST_ASAPP_ID", API_ID), ("TEST_ASAPP_SECRET", SECRET)],
    );
    let client = reqwest::blocking::Client::new();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let response = client
                .post(keyway.url(&format!("/conversation/{n}")))
                .header("X-Request-Id", "same-each-time")
                .send()
                .unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            backend
                .only(&format!("/conversation/{n}"))
                .values("x-request-id"),
            vec![id.clone()]
        );
    }
}

#[test]
fn longest_prefix_and_host_pick_the_route_and_a_refused_address_is_skipped() {
    let backend = Backend::start();
    let routes = format!(
        r#"
[upstreams.pair]
addresses = ["{closed}", "{live}"]
connect_timeout_ms = 500

[credentials.root]
"x-which" = "root"
[credentials.api]
"x-which" = "api"
[credentials.special]
"x-which" = "special"

[[routes]]
name = "root"
path_prefix = "/"
upstream = "pair"
auth = ["none"]
credentials = "root"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "pair"
auth = ["none"]
credentials = "api"

[[routes]]
name = "special"
path_prefix = "/api"
host = "special.test"
upstream = "pair"
auth = ["none"]
credentials = "special"
"#,
        closed = closed_port(),
        live = backend.address
    );
    let keyway = Keyway::start(&config(backend.address, &routes), &[]);
    let client = reqwest::blocking::Client::new();
    let cases = [
        ("/api/v1", "gateway.test", "api"),
        ("/api", "gateway.test", "api"),
        ("/apiary", "gateway.test", "root"),
        ("/other", "gateway.test", "root"),
        ("/api/v2", "Special.Test:8443", "special"),
    ];
    for (path, host, expected) in cases {
        let response = client
            .get(keyway.url(path))
            .header("Host", host)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{path} on {host}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let seen = backend
            .received()
            .into_iter()
            .find(|request| request.values("x-request-id") == vec![request_id.clone()])
            .unwrap_or_else(|| panic!("{path} on {host} never reached the upstream"));
        assert_eq!(seen.values("x-which"), vec![expected], "{path} on {host}");
    }
}

#[test]
fn a_template_route_serves_one_operation_and_beats_the_prefix_route() {
    let (operation, catch_all) = (Backend::start(), Backend::start());
    let routes = format!(
        r#"
[upstreams.operation]
addresses = ["{}"]

[[routes]]
name = "authenticate"
path = "/conversation/v1/conversations/{{conversationId}}/authenticate"
upstream = "operation"
auth = ["none"]

[[routes]]
name = "conversations"
path_prefix = "/conversation/v1/"
upstream = "backend"
auth = ["none"]
"#,
        operation.address
    );
    let keyway = Keyway::start(&config(catch_all.address, &routes), &[]);
    let post = |path: &str| {
        reqwest::blocking::Client::new()
            .post(keyway.url(path))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("/conversation/v1/conversations/c-1/authenticate"), 200);
    assert_eq!(
        operation.received().len(),
        1,
        "the template route served it"
    );
    for (path, status) in [
        ("/conversation/v1/conversations/c-1/authenticate/x", 200),
        ("/conversation/v1/conversations/c-1", 200),
        // An empty segment is refused by the path policy before any route.
        ("/conversation/v1/conversations//authenticate", 400),
    ] {
        assert_eq!(post(path), status, "{path}");
    }
    assert_eq!(
        operation.received().len(),
        1,
        "no other path reached the operation"
    );
    assert_eq!(
        catch_all.received().len(),
        2,
        "the prefix route took the others"
    );
    assert_eq!(post("/elsewhere"), 404);
}
