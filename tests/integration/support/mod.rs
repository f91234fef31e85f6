//! Test helpers: a real upstream, a real keyway process, raw HTTP, envelope checks.

/// Runs each named test function (taking a [`redis::StoreKind`]) once per store backend, as
/// `sqlite::name` and `redis::name`.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() { super::$test($crate::support::redis::StoreKind::Sqlite) } )*
        }
        mod redis {
            $( #[test] fn $test() { super::$test($crate::support::redis::StoreKind::Redis) } )*
        }
    };
}

pub mod backend;
pub mod converse;
pub mod fault_proxy;
pub mod jose;
pub mod keyway;
pub mod load;
pub mod pki;
pub mod raw_http;
pub mod redis;
pub mod smtp;

pub use backend::Backend;
pub use keyway::Keyway;
pub use redis::{StoreKind, TestStore};

use std::net::SocketAddr;

/// Sends `signal` (`TERM`, `KILL`, `STOP`, ...) to a process the test started.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The PID a PID file names.
pub fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A loopback address nobody listens on.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One public route to the `backend` upstream.
pub const API_ROUTE: &str = r#"
[[routes]]
name = "api"
path_prefix = "/api/"
upstream = "backend"
auth = ["none"]
"#;

/// A config with one upstream `backend`, plus `routes` (and any other tables).
pub fn config(backend: SocketAddr, routes: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 1
grace_period_seconds = 10

[admin]
listen = "127.0.0.1:0"

[upstreams.backend]
addresses = ["{backend}"]
connect_timeout_ms = 500
read_timeout_ms = 2000

{routes}
"#
    )
}

/// Asserts the body is exactly an envelope; returns (requestId, code, message).
pub fn envelope(body: &[u8]) -> (String, String, String) {
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    let object = value.as_object().expect("an object");
    assert_eq!(object.len(), 1, "only the error key: {value}");
    let error = value["error"].as_object().expect("error object");
    assert_eq!(error.len(), 3, "requestId, code, message: {value}");
    let field = |name: &str| {
        error[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {value}"))
            .to_owned()
    };
    (field("requestId"), field("code"), field("message"))
}

/// The environment the shipped `config.toml` reads (the Makefile's demo values).
pub const SHIPPED_ENV: [(&str, &str); 4] = [
    ("ASAPP_API_ID", "id"),
    ("ASAPP_API_SECRET", "secret"),
    (
        "HOSTED_EMAIL_KEY",
        "ZGVtby1rZXktbm90LWZvci1wcm9kdWN0aW9uLTAwMDE=",
    ),
    ("HOSTED_EMAIL_PASSKEY", "demo-reviews-passkey-0001"),
];

/// The shipped `config.toml` on port 0 with `backend` as its demo upstream; the files it ships
/// with (`demo/`, `schemas/`) are the repository's, and its other relative paths (store,
/// outbox) resolve in the keyway process's own directory.
pub fn shipped_config(backend: SocketAddr) -> String {
    let shipped = |dir: &str| keyway::repository_file(dir).display().to_string();
    std::fs::read_to_string(keyway::repository_file("config.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("127.0.0.1:9000", &backend.to_string())
        .replace("= \"demo/", &format!("= \"{}/", shipped("demo")))
        .replace("= \"schemas/", &format!("= \"{}/", shipped("schemas")))
}

/// Two POSTs to `url` released at the same moment; their statuses, sorted.
pub fn race_two_posts(url: &str) -> Vec<u16> {
    race_posts(&[url.to_owned(), url.to_owned()])
}

/// POSTs to each of `urls` released at the same moment; their statuses, sorted.
pub fn race_posts(urls: &[String]) -> Vec<u16> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(urls.len()));
    let racers: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                client.post(url).send().unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses: Vec<u16> = racers
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    statuses.sort();
    statuses
}

/// The value of one Prometheus series (`name{labels}`) on keyway's admin listener; 0 if absent.
pub fn metric(keyway: &Keyway, series: &str) -> f64 {
    let text = reqwest::blocking::get(keyway.admin_url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
