//! Micro-benchmarks of the per-request work keyway adds: target check, route match, header
//! strip/inject, envelope rendering and a Converse token cache hit. Run with
//! `cargo bench --bench hot_path`.

// A bench crate has no public API: `pub` in its modules only means "shared".
#![allow(unreachable_pub)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue, Method};
use keyway::auth::{self, AuthChain, Instrumented};
use keyway::config::{RoutePath, RouteSpec, Settings, TargetSpec};
use keyway::converse::{ConverseService, Lifetime, Login};
use keyway::error::{GatewayError, render_envelope};
use keyway::headers::{Forwarding, HeaderPolicy};
use keyway::http_policy::check_request_target;
use keyway::identity::{AuthKind, Principal, TenantScope};
use keyway::metrics::Metrics;
use keyway::routing::{Resolved, Route, RouteTable, RouteTarget};
use keyway::store::SqliteStore;
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
    let metrics = Metrics::new();
    let upstream = Arc::new(Upstream::new(
        "u".into(),
        &["127.0.0.1:9000".parse().unwrap()],
        &settings,
        metrics.upstream_duration("u"),
    ));
    let public = AuthChain::new(vec![Arc::new(Instrumented::new(auth::none(), &metrics))]);
    let routes = (0..20)
        .map(|n| {
            let spec = RouteSpec {
                name: format!("r{n}"),
                path: RoutePath::Prefix(format!("/service{n}/v1/")),
                host: None,
                methods: Some(vec![Method::GET, Method::POST]),
                target: TargetSpec::Upstream("u".to_owned()),
                auth: vec![AuthKind::None],
                credentials: None,
                identity_headers: Vec::new(),
                strip_request_headers: Vec::new(),
                max_body_bytes: 1 << 20,
                tenants: TenantScope::default(),
                secret_path_tail: false,
                request_schema: None,
            };
            let resolved = Resolved {
                target: RouteTarget::Upstream(upstream.clone()),
                auth: public.clone(),
                inject: Vec::new(),
                stripped_everywhere: Vec::new(),
                request_schema: None,
                duration: metrics.request_duration(&spec.name),
            };
            Route::new(&spec, resolved)
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

/// A Converse token service on a real SQLite file, and one token issued by logging in.
fn converse_with_token(dir: &std::path::Path) -> (ConverseService, String) {
    let hash = keyway::converse::password::hash_password("bench-password-1");
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[store]
path = "keyway.db"
[converse]
[[converse.users]]
email = "bench@example.com"
password_hash = "{hash}"
[upstreams.u]
addresses = ["127.0.0.1:9000"]
[[routes]]
name = "r"
path_prefix = "/"
upstream = "u"
auth = ["converse"]
"#
    );
    let config = Settings::from_toml(&text, dir, &|_| None).expect("a valid config");
    let store = Arc::new(SqliteStore::open(&dir.join("keyway.db")).unwrap());
    let metrics = Arc::new(Metrics::new());
    let service = ConverseService::new(
        config.converse.clone().unwrap(),
        &config.cache,
        store,
        &keyway::store::counters::CounterBackend::local(),
        metrics,
    );
    let login = Login {
        email: "bench@example.com",
        password: "bench-password-1",
        lifetime: Lifetime::Seconds(3600),
        auto_renew: false,
        create_token: true,
        client_ip: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(service.login(login)).unwrap().unwrap();
    (service, token.to_string())
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (converse, token) = converse_with_token(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The first use loads the token from the store; every later one is a cache hit.
    assert!(
        runtime
            .block_on(converse.authenticate(&token))
            .unwrap()
            .is_some()
    );
    c.bench_function("converse_token_cache_hit", |b| {
        b.iter(|| {
            let principal = common::completed(converse.authenticate(black_box(&token)));
            assert!(principal.unwrap().is_some());
        })
    });

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
    let principal = Principal::anonymous();
    let request_id = HeaderValue::from_static("8e033668-9f1a-11ec-b909-0242ac120002");
    let request = client_request();
    let chain = keyway::http_policy::forwarded::client_chain(
        "10.0.0.1".parse().unwrap(),
        std::iter::empty(),
        &[],
    );
    let (proto, host) = (
        HeaderValue::from_static("http"),
        HeaderValue::from_static("gateway.example.com"),
    );
    let forwarding = Forwarding {
        chain: Some(&chain),
        proto: &proto,
        host: Some(&host),
    };
    c.bench_function("header_strip_inject", |b| {
        b.iter_batched(
            || request.clone(),
            |mut request| policy.apply(&mut request, &request_id, &principal, &forwarding),
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
