//! `/metrics`, `/readyz`, `/healthz`, the access log, and secrets kept out of every log line.

use crate::support::{API_ROUTE, Backend, Keyway, closed_port, config};
use prometheus_parse::{Scrape, Value};

fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .map(|sample| match sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
            _ => panic!("{name} is not a counter"),
        })
        .sum()
}

#[test]
fn metrics_are_valid_prometheus_text_and_count_requests() {
    let backend = Backend::start();
    let keyway = Keyway::start(&config(backend.address, API_ROUTE), &[]);
    let client = reqwest::blocking::Client::new();
    assert_eq!(
        client
            .get(keyway.admin_url("/readyz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(keyway.admin_url("/healthz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    for _ in 0..3 {
        assert_eq!(
            client.get(keyway.url("/api/a")).send().unwrap().status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            client
                .get(keyway.url("/elsewhere"))
                .send()
                .unwrap()
                .status(),
            404
        );
    }
    // The access-log line is written after the response; give the last one a moment.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let text = client
        .get(keyway.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("valid exposition format");
    assert_eq!(
        counter(
            &scrape,
            "keyway_requests_total",
            &[("route", "api"), ("status", "200"), ("method", "GET")]
        ),
        3.0
    );
    assert_eq!(
        counter(
            &scrape,
            "keyway_requests_total",
            &[("route", "-"), ("status", "404"), ("code", "404-01")]
        ),
        2.0
    );
    assert_eq!(
        counter(
            &scrape,
            "keyway_auth_total",
            &[("authenticator", "none"), ("result", "allow")]
        ),
        3.0
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == "keyway_request_duration_seconds"
                && sample.labels.get("route") == Some("api")
        })
        .expect("request duration histogram");
    match &histogram.value {
        Value::Histogram(buckets) => assert_eq!(buckets.last().unwrap().count, 3.0),
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(scrape.samples.iter().any(|sample| sample.metric
        == "keyway_upstream_duration_seconds_count"
        || sample.metric == "keyway_upstream_duration_seconds"));
    assert!(
        scrape
            .samples
            .iter()
            .any(|sample| sample.metric == "process_resident_memory_bytes")
    );
}

#[test]
fn a_secret_from_the_environment_never_reaches_the_log() {
    const SECRET: &str = "log-canary-secret-5d1e9b";
    let backend = Backend::start();
    let routes = format!(
        r#"
[log]
level = "debug"

[upstreams.down]
addresses = ["{closed}"]

[credentials.asapp]
"asapp-api-secret" = "${{CANARY_SECRET}}"

[[routes]]
name = "api"
path_prefix = "/api/"
upstream = "backend"
auth = ["none"]
credentials = "asapp"

[[routes]]
name = "down"
path_prefix = "/down/"
upstream = "down"
auth = ["none"]
credentials = "asapp"
"#,
        closed = closed_port()
    );
    let keyway = Keyway::start(
        &config(backend.address, &routes),
        &[("CANARY_SECRET", SECRET)],
    );
    let client = reqwest::blocking::Client::new();
    let ok = client.get(keyway.url("/api/ok")).send().unwrap();
    let request_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        client
            .get(keyway.url("/api/status/500/plain"))
            .send()
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        client.get(keyway.url("/down/x")).send().unwrap().status(),
        502
    );
    assert_eq!(
        backend.only("/api/ok").values("asapp-api-secret"),
        vec![SECRET],
        "the secret was used"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = keyway.logs();
    assert!(
        logs.contains(&request_id),
        "the access log names the request id"
    );
    assert!(
        !logs.contains(SECRET),
        "secret leaked into the log:\n{logs}"
    );
}
