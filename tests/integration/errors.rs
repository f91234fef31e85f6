//! Every error keyway answers is an envelope whose requestId is the response's X-Request-Id.

use crate::support::{Backend, Keyway, closed_port, config, envelope, raw_http};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn error_routes(refused: std::net::SocketAddr, backend: std::net::SocketAddr) -> String {
    format!(
        r#"
[upstreams.down]
addresses = ["{refused}"]
connect_timeout_ms = 500

[upstreams.sluggish]
addresses = ["{backend}"]
read_timeout_ms = 300

[[routes]]
name = "api"
path_prefix = "/api/"
methods = ["GET", "POST"]
upstream = "backend"
auth = ["none"]
max_body_bytes = 1024

[[routes]]
name = "down"
path_prefix = "/down/"
upstream = "down"
auth = ["none"]

[[routes]]
name = "sluggish"
path_prefix = "/sluggish/"
upstream = "sluggish"
auth = ["none"]
"#
    )
}

/// A backend and a keyway in front of it with the routes above.
fn start_gateway() -> (Backend, Keyway) {
    let backend = Backend::start();
    let routes = error_routes(closed_port(), backend.address);
    let keyway = Keyway::start(&config(backend.address, &routes), &[]);
    (backend, keyway)
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    message: &'static str,
}

#[test]
fn failures_are_envelopes_with_the_response_request_id() {
    let (_backend, keyway) = start_gateway();
    let cases = [
        Case {
            name: "no route",
            method: "GET",
            path: "/nowhere",
            body: None,
            status: 404,
            code: "404-01",
            message: "Not Found",
        },
        Case {
            name: "wrong method",
            method: "DELETE",
            path: "/api/x",
            body: None,
            status: 405,
            code: "405-01",
            message: "Method Not Allowed",
        },
        Case {
            name: "upstream refused",
            method: "GET",
            path: "/down/x",
            body: None,
            status: 502,
            code: "502-01",
            message: "Bad Gateway",
        },
        Case {
            name: "upstream silent",
            method: "GET",
            path: "/sluggish/slow/3000",
            body: None,
            status: 504,
            code: "504-01",
            message: "Gateway Timeout",
        },
        Case {
            name: "upstream 500 plain text",
            method: "GET",
            path: "/api/status/500/plain",
            body: None,
            status: 500,
            code: "500-00",
            message: "Internal Server Error",
        },
        Case {
            name: "upstream 404 empty",
            method: "GET",
            path: "/api/status/404/empty",
            body: None,
            status: 404,
            code: "404-00",
            message: "Not Found",
        },
        Case {
            name: "declared body too large",
            method: "POST",
            path: "/api/upload",
            body: Some(vec![b'x'; 2048]),
            status: 413,
            code: "413-01",
            message: "Payload Too Large",
        },
    ];
    let client = reqwest::blocking::Client::new();
    for case in cases {
        let started = Instant::now();
        let url = keyway.url(case.path);
        let mut request = client.request(case.method.parse().unwrap(), &url);
        if let Some(body) = case.body.clone() {
            request = request.body(body);
        }
        let response = request.send().unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/json", "{}", case.name);
        let body = response.bytes().unwrap();
        let (request_id, code, message) = envelope(&body);
        assert_eq!(
            request_id,
            headers["x-request-id"].to_str().unwrap(),
            "{}",
            case.name
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            (case.code, case.message),
            "{}",
            case.name
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("stack trace"),
            "{}",
            case.name
        );
        if case.name == "wrong method" {
            assert_eq!(headers["allow"], "GET, HEAD, POST");
        }
        // Issue 12, finding 12: a replaced upstream error keeps only what describes keyway's
        // body and what a client acts on, never the upstream's own debug headers.
        assert!(headers.get("x-backend-debug").is_none(), "{}", case.name);
        if case.name == "upstream 500 plain text" {
            assert_eq!(headers["retry-after"], "7");
            assert_eq!(headers["cache-control"], "no-store");
        }
        if case.name == "upstream silent" {
            assert!(
                elapsed < Duration::from_millis(2500),
                "504 took {elapsed:?}"
            );
        }
    }
}

#[test]
fn bad_target_sent_raw_is_400_01() {
    let (backend, keyway) = start_gateway();
    // reqwest normalises dot segments itself, so send this one raw.
    let response = raw_http::get(keyway.proxy, b"/api/../x");
    assert_eq!(response.status, 400);
    let (request_id, code, _) = envelope(&response.body);
    assert_eq!(code, "400-01");
    assert_eq!(Some(request_id.as_str()), response.header("x-request-id"));
    assert!(backend.received().is_empty());
}

#[test]
fn an_upstream_envelope_passes_through_unchanged() {
    let (_backend, keyway) = start_gateway();
    let response = reqwest::blocking::get(keyway.url("/api/status/409/envelope")).unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.text().unwrap(),
        r#"{"error":{"requestId":"upstream-rid","code":"409-07","message":"Conversation closed"}}"#
    );
}

#[test]
fn a_streamed_body_over_the_limit_is_413() {
    let (_backend, keyway) = start_gateway();
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /api/upload HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = raw_http::send(keyway.proxy, request.as_bytes());
    assert_eq!(response.status, 413, "{response:?}");
    let (request_id, code, _) = envelope(&response.body);
    assert_eq!(code, "413-01");
    assert_eq!(Some(request_id.as_str()), response.header("x-request-id"));
}

/// A client that sends all of a body announced over the limit reads its 413: keyway answers
/// early, then reads and drops the rest before it closes, so the close is not a reset that
/// would destroy the answer (seen as a flaky broken pipe in CI before the lingering close).
#[test]
fn a_large_body_sent_in_full_gets_its_413_and_not_a_reset() {
    let (_backend, keyway) = start_gateway();
    let body = "x".repeat(2 * 1024 * 1024);
    let request = format!(
        "POST /api/upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for round in 0..5 {
        let response = raw_http::send(keyway.proxy, request.as_bytes());
        assert_eq!(response.status, 413, "round {round}: {response:?}");
        let (_, code, _) = envelope(&response.body);
        assert_eq!(code, "413-01", "round {round}");
        assert_eq!(
            response.header("connection"),
            Some("close"),
            "round {round}"
        );
    }
}

/// Reads one response with a Content-Length body from a kept-alive connection.
fn read_one(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, body)
}

#[test]
fn a_denial_keeps_the_client_connection_usable() {
    let (backend, keyway) = start_gateway();
    let mut stream = TcpStream::connect(keyway.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"GET /nowhere HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .unwrap();
    let (status, body) = read_one(&mut reader);
    assert_eq!(status, 404);
    assert_eq!(envelope(&body).1, "404-01");
    stream
        .write_all(b"GET /api/again HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .unwrap();
    let (status, _) = read_one(&mut reader);
    assert_eq!(status, 200, "the same connection serves the next request");
    backend.only("/api/again");
}
