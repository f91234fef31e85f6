//! TLS on both legs: downstream listeners with `[server.tls]`, upstreams with `tls` + `ca_file`.

use crate::support::pki::Pki;
use crate::support::{Backend, Keyway, envelope};

#[test]
fn downstream_tls_listener_serves_https() {
    let pki = Pki::for_host("keyway.test");
    let backend = Backend::start();
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 1
[server.tls]
cert = "{cert}"
key = "{key}"

[admin]
listen = "127.0.0.1:0"

[upstreams.backend]
addresses = ["{backend}"]

[[routes]]
name = "api"
path_prefix = "/api/"
upstream = "backend"
auth = ["none"]
"#,
        cert = pki.cert_file.display(),
        key = pki.key_file.display(),
        backend = backend.address
    );
    let keyway = Keyway::start(&config, &[]);
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("keyway.test", keyway.proxy)
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "https://keyway.test:{}/api/secure",
            keyway.proxy.port()
        ))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    backend.only("/api/secure");
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::blocking::get(keyway.url("/api/plain"));
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    assert!(
        backend
            .received()
            .iter()
            .all(|request| request.target != "/api/plain")
    );
}

#[test]
fn upstream_tls_is_verified_against_ca_file() {
    let pki = Pki::for_host("upstream.test");
    let backend = Backend::start_tls(&pki.cert_pem, &pki.key_pem);
    let routes = format!(
        r#"
[upstreams.trusted]
addresses = ["{backend}"]
tls = true
sni = "upstream.test"
ca_file = "{ca}"

[upstreams.untrusted]
addresses = ["{backend}"]
tls = true
sni = "upstream.test"

[[routes]]
name = "trusted"
path_prefix = "/trusted/"
upstream = "trusted"
auth = ["none"]

[[routes]]
name = "untrusted"
path_prefix = "/untrusted/"
upstream = "untrusted"
auth = ["none"]
"#,
        backend = backend.address,
        ca = pki.ca_file.display()
    );
    let keyway = Keyway::start(&crate::support::config(backend.address, &routes), &[]);
    // The trusted upstream goes first: its verified connection must not be lent to the other.
    let trusted = reqwest::blocking::get(keyway.url("/trusted/x")).unwrap();
    assert_eq!(trusted.status(), 200);
    backend.only("/trusted/x");

    let untrusted = reqwest::blocking::get(keyway.url("/untrusted/x")).unwrap();
    assert_eq!(
        untrusted.status(),
        502,
        "a certificate outside the trusted roots is refused"
    );
    assert_eq!(envelope(&untrusted.bytes().unwrap()).1, "502-01");
    assert!(
        backend
            .received()
            .iter()
            .all(|request| request.target != "/untrusted/x")
    );
}
