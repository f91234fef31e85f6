//! Micro-benchmarks of the per-request work keyway adds: target check, route match, header
//! strip/inject and envelope rendering. Run with `cargo bench --bench hot_path`.

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue, Method};
use keyway::auth::{AuthKind, Principal};
use keyway::error::{GatewayError, render_envelope};
use keyway::headers::HeaderPolicy;
use keyway::routing::{Route, RouteTable, RouteTarget, check_request_target};
use keyway::upstream::{PeerSettings, Upstream};
use pingora::http::RequestHeader;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn policy() -> HeaderPolicy {
    HeaderPolicy::new(
        ["x-internal-user"],
        vec![
            (
                HeaderName::from_static("asapp-api-id"),
                HeaderValue::from_static("id"),
            ),
            (
                HeaderName::from_static("asapp-api-secret"),
                HeaderValue::from_static("secret"),
            ),
        ],
        vec![(HeaderName::from_static("x-auth-subject"), "sub".to_owned())],
    )
}

fn table() -> RouteTable {
    let settings = PeerSettings {
        tls: false,
        sni: String::new(),
        verify_cert: true,
        ca: None,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
    };
    let upstream = Arc::new(Upstream::new(
        "u".into(),
        &["127.0.0.1:9000".parse().unwrap()],
        &settings,
    ));
    let routes = (0..20)
        .map(|n| {
            Route::new(
                format!("r{n}"),
                format!("/service{n}/v1/"),
                None,
                Some(vec![Method::GET, Method::POST]),
                RouteTarget::Upstream(upstream.clone()),
                vec![AuthKind::None],
                policy(),
                1 << 20,
            )
        })
        .collect();
    RouteTable::new(routes)
}

fn client_request() -> RequestHeader {
    let mut request =
        RequestHeader::build("POST", b"/service7/v1/conversations/c1/authenticate", None).unwrap();
    for (name, value) in [
        ("host", "gateway.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("asapp_api_secret", "forged"),
        ("x-forwarded-for", "10.0.0.1"),
    ] {
        request.append_header(name, value).unwrap();
    }
    request
}

fn benches(c: &mut Criterion) {
    let target = b"/service7/v1/conversations/c1/authenticate?x=1";
    c.bench_function("check_request_target", |b| {
        b.iter(|| check_request_target(black_box(target)))
    });

    let routes = table();
    c.bench_function("route_lookup_20_routes", |b| {
        b.iter(|| {
            routes.lookup(
                Some("gateway.example.com"),
                black_box("/service7/v1/conversations/c1"),
                &Method::POST,
            )
        })
    });

    let policy = policy();
    let principal = Principal::anonymous("none");
    let request_id = HeaderValue::from_static("8e033668-9f1a-11ec-b909-0242ac120002");
    let request = client_request();
    c.bench_function("header_strip_inject", |b| {
        b.iter_batched(
            || request.clone(),
            |mut request| policy.apply(&mut request, &request_id, &principal),
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("render_envelope", |b| {
        b.iter(|| {
            render_envelope(
                black_box("8e033668-9f1a-11ec-b909-0242ac120002"),
                &GatewayError::Unauthorized,
            )
        })
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
