//! Regressions of the attack review (issue 12): each test names its finding and fails on the
//! code before the fix.

use crate::support::{Backend, Keyway, StoreKind, TestStore, config, envelope, metric, raw_http};

/// A public catch-all and a protected route on the same prefix for one host.
const HOST_ROUTES: &str = r#"
[converse]

[[routes]]
name = "admin"
path_prefix = "/x/"
host = "admin.test"
upstream = "backend"
auth = ["converse"]

[[routes]]
name = "public"
path_prefix = "/x/"
upstream = "backend"
auth = ["none"]
"#;

fn get_with_host(keyway: &Keyway, host: &str) -> raw_http::RawResponse {
    let request = format!("GET /x/page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    raw_http::send(keyway.proxy, request.as_bytes())
}

#[test]
fn finding_5_a_trailing_dot_case_or_port_does_not_escape_the_host_route() {
    let backend = Backend::start();
    let keyway = Keyway::start(&config(backend.address, HOST_ROUTES), &[]);
    for host in [
        "admin.test",
        "admin.test.",
        "ADMIN.Test.:8080",
        "admin.test:443",
    ] {
        let response = get_with_host(&keyway, host);
        assert_eq!(response.status, 401, "{host}: {response:?}");
    }
    for host in [
        "admin..test",
        "adm%69n.test",
        "admin.tést",
        "admin.test:x",
        "[zz]:80",
        ".",
    ] {
        let response = get_with_host(&keyway, host);
        assert_eq!(response.status, 400, "{host}: {response:?}");
        assert_eq!(envelope(&response.body).1, "400-01", "{host}");
    }
    assert!(backend.received().is_empty(), "{:?}", backend.received());
    assert_eq!(get_with_host(&keyway, "public.test").status, 200);
}

#[test]
fn finding_6_framing_headers_spelled_with_underscores_are_refused() {
    let backend = Backend::start();
    let keyway = Keyway::start(&config(backend.address, crate::support::API_ROUTE), &[]);
    for disguised in [
        "Transfer_Encoding: chunked",
        "Content_Length: 5",
        "transfer_encoding: identity",
        "Keep_Alive: timeout=5",
    ] {
        let request = format!(
            "POST /api/x HTTP/1.1\r\nHost: gateway.test\r\n{disguised}\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let response = raw_http::send(keyway.proxy, request.as_bytes());
        assert_eq!(response.status, 400, "{disguised}: {response:?}");
        assert_eq!(envelope(&response.body).1, "400-01", "{disguised}");
    }
    assert!(backend.received().is_empty(), "{:?}", backend.received());
}

#[test]
fn finding_4_headers_any_route_injects_are_stripped_on_every_route() {
    let routes = r#"
[credentials.asapp]
"asapp-api-id" = "id"
"asapp-api-secret" = "secret"

[[routes]]
name = "conversation"
path_prefix = "/conversation/"
upstream = "backend"
auth = ["none"]
credentials = "asapp"
identity_headers = { "x-auth-email" = "email", "x-auth-client" = "client" }

[[routes]]
name = "catch-all"
path_prefix = "/"
upstream = "backend"
auth = ["none"]
"#;
    let backend = Backend::start();
    let keyway = Keyway::start(&config(backend.address, routes), &[]);
    let request = "GET /static/page HTTP/1.1\r\nHost: gateway.test\r\n\
                   X-Auth-Email: ceo@example.com\r\nx_auth_client: trusted\r\n\
                   asapp-api-secret: forged\r\nASAPP_API_ID: forged\r\n\
                   Connection: close\r\n\r\n";
    let response = raw_http::send(keyway.proxy, request.as_bytes());
    assert_eq!(response.status, 200, "{response:?}");
    let seen = backend.only("/static/page");
    for name in [
        "x-auth-email",
        "x-auth-client",
        "asapp-api-secret",
        "asapp-api-id",
    ] {
        let copies: Vec<&str> = seen
            .headers
            .keys()
            .map(|header| header.as_str())
            .filter(|header| header.replace('_', "-") == name)
            .collect();
        assert!(
            copies.is_empty(),
            "{name} reached the catch-all route: {copies:?}"
        );
    }
}

/// Credentials in every place a failure could print them.
const SECRETS: [&str; 6] = [
    "PK-SECRET-1",
    "UT-SECRET-2",
    "usr_SECRET3",
    "CV-SECRET-4",
    "AT-SECRET-5",
    "BEARER-SECRET-6",
];

#[test]
fn finding_2_failure_paths_log_no_query_and_no_credential() {
    let down = crate::support::closed_port();
    let routes = format!(
        r#"
[log]
level = "trace"

[upstreams.down]
addresses = ["{down}"]

[upstreams.sluggish]
addresses = ["BACKEND"]
read_timeout_ms = 300

[[routes]]
name = "down"
path_prefix = "/down/"
upstream = "down"
auth = ["none"]

[[routes]]
name = "slow"
path_prefix = "/sluggish/"
upstream = "sluggish"
auth = ["none"]
{api}"#,
        api = crate::support::API_ROUTE
    );
    let backend = Backend::start();
    let routes = routes.replace("BACKEND", &backend.address.to_string());
    let keyway = Keyway::start(&config(backend.address, &routes), &[]);
    let query = format!(
        "passkey={}&user={}&userInfoId={}&codeVerifier={}&authtoken={}",
        SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3], SECRETS[4]
    );
    let head = |method: &str, path: &str, extra: &str| {
        format!(
            "{method} {path}?{query} HTTP/1.1\r\nHost: gateway.test\r\n\
             Authorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
            SECRETS[5]
        )
    };
    // 502: the upstream refuses; 504: it does not answer in time.
    assert_eq!(
        raw_http::send(keyway.proxy, head("GET", "/down/x", "").as_bytes()).status,
        502
    );
    let slow = head("GET", "/sluggish/slow/2000", "");
    assert_eq!(raw_http::send(keyway.proxy, slow.as_bytes()).status, 504);
    // The client gives up half way through its body, and a body that is not valid chunking.
    use std::io::Write;
    let mut aborted = std::net::TcpStream::connect(keyway.proxy).unwrap();
    let partial = head("POST", "/api/upload", "Content-Length: 1000\r\n");
    aborted.write_all(partial.as_bytes()).unwrap();
    aborted.write_all(b"only ten b").unwrap();
    drop(aborted);
    let broken =
        head("POST", "/api/upload", "Transfer-Encoding: chunked\r\n") + "zz\r\nhello\r\n0\r\n\r\n";
    let response = raw_http::send(keyway.proxy, broken.as_bytes());
    assert!(response.status >= 400, "{response:?}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logs = keyway.logs();
    assert!(
        logs.contains("Fail to proxy"),
        "the failures were logged:\n{logs}"
    );
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} reached the log:\n{logs}");
    }
    assert!(
        !logs.contains("passkey="),
        "a query reached the log:\n{logs}"
    );
}

/// A converse config whose lockout locks a client after 3 failures, with `server_extra` in
/// `[server]` and a public route to see what reaches the upstream.
fn lockout_config(backend: &Backend, store: &TestStore, server_extra: &str) -> String {
    let converse = "[converse.lockout]\nmax_failures = 100\nip_max_failures = 3\nbase_seconds = 60";
    crate::support::converse::config(backend.address, store, converse).replace(
        "grace_period_seconds = 10",
        &format!("grace_period_seconds = 10\n{server_extra}"),
    ) + crate::support::API_ROUTE
}

/// A wrong login for `account` that claims to come from `forwarded_for`.
fn wrong_login(keyway: &Keyway, account: &str, forwarded_for: &str) -> u16 {
    let body = serde_json::json!({"email": account, "password": "guess"});
    reqwest::blocking::Client::new()
        .post(keyway.url("/api/user/verify"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn behind_a_trusted_proxy_the_per_ip_lockout_counts_the_forwarded_client() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let config = lockout_config(&backend, &store, r#"trusted_proxies = ["127.0.0.1/32"]"#);
    let keyway = Keyway::start(&config, &[]);
    for n in 0..3 {
        assert_eq!(
            wrong_login(&keyway, &format!("a{n}@example.com"), "203.0.113.7"),
            401
        );
    }
    assert_eq!(wrong_login(&keyway, "a9@example.com", "203.0.113.7"), 429);
    // What the client writes left of the address the proxy saw proves nothing.
    assert_eq!(
        wrong_login(&keyway, "a9@example.com", "203.0.113.8, 203.0.113.7"),
        429
    );
    // Another client behind the same proxy is not locked.
    assert_eq!(wrong_login(&keyway, "b0@example.com", "203.0.113.8"), 401);

    let response = reqwest::blocking::Client::new()
        .get(keyway.url("/api/x"))
        .header("X-Forwarded-For", "6.6.6.6, 203.0.113.7")
        .header("X-Forwarded-Proto", "https")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = backend.only("/api/x");
    assert_eq!(
        seen.values("x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(seen.values("x-forwarded-proto"), vec!["https"]);
}

#[test]
fn from_an_untrusted_peer_a_forged_forwarded_for_is_ignored() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let keyway = Keyway::start(&lockout_config(&backend, &store, ""), &[]);
    for n in 0..3 {
        let forged = format!("198.51.100.{n}");
        assert_eq!(
            wrong_login(&keyway, &format!("c{n}@example.com"), &forged),
            401
        );
    }
    assert_eq!(wrong_login(&keyway, "c9@example.com", "198.51.100.99"), 429);

    let request = "GET /api/x HTTP/1.1\r\nHost: gateway.test:8080\r\nX-Forwarded-For: 6.6.6.6\r\n\
                   X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\
                   Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_http::send(keyway.proxy, request.as_bytes()).status, 200);
    let seen = backend.only("/api/x");
    assert_eq!(seen.values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.values("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.values("x-forwarded-host"), vec!["gateway.test:8080"]);
    assert!(seen.values("forwarded").is_empty());
    assert!(seen.values("x-real-ip").is_empty());
}

/// A public route with tight client limits.
fn limited(backend: &Backend) -> Keyway {
    let limits = "grace_period_seconds = 10\nheader_timeout_ms = 800\nkeepalive_timeout_ms = 500\n\
                  body_timeout_ms = 500\nwrite_timeout_ms = 500\nmax_header_bytes = 4096\n\
                  max_headers = 20\nmax_connections = 4";
    let config = config(backend.address, crate::support::API_ROUTE)
        .replace("grace_period_seconds = 10", limits);
    Keyway::start(&config, &[])
}

fn connect(keyway: &Keyway) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(keyway.proxy).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes (or 5 s pass).
fn read_all(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn finding_3_a_trickled_head_is_cut_off_with_408() {
    use std::io::Write;
    let backend = Backend::start();
    let keyway = limited(&backend);
    let mut stream = connect(&keyway);
    stream.write_all(b"GET /api/x HTTP/1.1\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut trickle = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for byte in b"X-Slow: ".iter().cycle().take(15) {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if trickle.write_all(&[*byte]).is_err() {
                return;
            }
        }
    });
    let answer = read_all(&mut stream);
    let elapsed = started.elapsed();
    writer.join().unwrap();
    assert_eq!(
        status_of(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        elapsed < std::time::Duration::from_millis(2000),
        "{elapsed:?}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("\"408-01\""));
    assert!(backend.received().is_empty());
}

#[test]
fn finding_3_idle_connections_and_stalled_bodies_end() {
    use std::io::{BufRead, BufReader, Write};
    let backend = Backend::start();
    let keyway = limited(&backend);
    // A kept-alive connection is closed once idle for keepalive_timeout_ms.
    let mut stream = connect(&keyway);
    stream
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    // The rest of the answer, then the close: read_to_end returns at the close, or fails at
    // the 5 s read timeout if the connection is still held.
    let started = std::time::Instant::now();
    let _ = read_all(&mut stream);
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "still open after {elapsed:?}"
    );

    // A body that stops half way is 408 after body_timeout_ms.
    let mut stream = connect(&keyway);
    stream
        .write_all(
            b"POST /api/upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 10\r\n\r\nhalf!",
        )
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_all(&mut stream);
    assert_eq!(
        status_of(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn finding_3_a_client_that_stops_reading_is_dropped() {
    use std::io::Write;
    let backend = Backend::start();
    let keyway = limited(&backend);
    let open = |keyway: &Keyway| metric(keyway, "keyway_client_connections");
    let mut stream = connect(&keyway);
    stream
        .write_all(b"GET /api/big/50000000 HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .unwrap();
    // The client never reads; keyway gives up after write_timeout_ms per write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        open(&keyway),
        1.0,
        "the connection is open while it streams"
    );
    while open(&keyway) > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        open(&keyway),
        0.0,
        "a client that stopped reading was still held"
    );
    drop(stream);
}

#[test]
fn finding_3_large_heads_are_431_and_connections_beyond_the_limit_503() {
    use std::io::Write;
    let backend = Backend::start();
    let keyway = limited(&backend);
    // Every connection is a file: the open-file limit was raised and said so at start-up.
    assert!(keyway.logs().contains("open_files"), "{}", keyway.logs());
    let big = format!(
        "GET /api/x HTTP/1.1\r\nHost: gateway.test\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let many: String = (0..30).map(|n| format!("X-H{n}: v\r\n")).collect();
    let many = format!("GET /api/x HTTP/1.1\r\nHost: gateway.test\r\n{many}\r\n");
    for head in [big, many] {
        let mut stream = connect(&keyway);
        stream.write_all(head.as_bytes()).unwrap();
        let answer = read_all(&mut stream);
        assert_eq!(
            status_of(&answer),
            431,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert!(String::from_utf8_lossy(&answer).contains("\"431-01\""));
    }
    // Four idle connections take every place; a fifth is answered at once, not left waiting.
    let idle: Vec<_> = (0..4).map(|_| connect(&keyway)).collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    let mut fifth = connect(&keyway);
    fifth
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .unwrap();
    let answer = read_all(&mut fifth);
    assert_eq!(
        status_of(&answer),
        503,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Idle connections that send nothing are closed after header_timeout_ms; then it serves.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(raw_http::get(keyway.proxy, b"/api/x").status, 200);
    assert!(
        backend
            .received()
            .iter()
            .all(|request| request.target == "/api/x")
    );
    drop(idle);
}
