//! Prometheus metrics: one registry per keyway instance, rendered by the admin listener.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// Buckets from 0.5 ms to 30 s: a gateway's own work is sub-millisecond, upstreams are not.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    auth: IntCounterVec,
    auth_duration: HistogramVec,
    cache_requests: IntCounterVec,
    store_duration: HistogramVec,
    store_errors: IntCounterVec,
    cache_invalidations: IntCounterVec,
    api_key_requests: IntCounterVec,
    cache_trusted: IntGauge,
    config_reloads: IntCounterVec,
    config_last_reload_success: Gauge,
    config_hash: Gauge,
    tokens_issued: IntCounter,
    tokens_revoked: IntCounter,
    jwks_refresh: IntCounterVec,
    jwks_last_success: GaugeVec,
    emails: IntCounterVec,
    login_attempts: IntCounterVec,
    client_connections: IntGauge,
    connections_refused: IntCounterVec,
    /// The `route="-"` duration series, resolved at the first request no route matched.
    unrouted_duration: OnceLock<Histogram>,
}

/// The `route` label of requests no route matched.
pub const UNROUTED: &str = "-";

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        let r = &registry;
        Metrics {
            requests: counter_vec(
                r,
                "keyway_requests_total",
                "Requests answered, by route, method, status and error code",
                &["route", "method", "status", "code"],
            ),
            request_duration: histogram(
                r,
                "keyway_request_duration_seconds",
                "Time from request head to the end of the response, by route",
                "route",
            ),
            upstream_duration: histogram(
                r,
                "keyway_upstream_duration_seconds",
                "Time from choosing an upstream peer to its response head, by upstream",
                "upstream",
            ),
            auth: counter_vec(
                r,
                "keyway_auth_total",
                "Authenticator verdicts (allow, deny, absent)",
                &["authenticator", "result"],
            ),
            auth_duration: histogram(
                r,
                "keyway_auth_duration_seconds",
                "Time spent in each authenticator",
                "authenticator",
            ),
            cache_requests: counter_vec(
                r,
                "keyway_cache_requests_total",
                "Credential cache lookups (hit, miss)",
                &["cache", "result"],
            ),
            store_duration: histogram_with(
                r,
                "keyway_store_operation_duration_seconds",
                "Time of each store operation (its _count: the calls), by backend and operation",
                &["backend", "op"],
            ),
            store_errors: counter_vec(
                r,
                "keyway_store_errors_total",
                "Store operations that failed (unreachable, timed out, refused), by operation",
                &["op"],
            ),
            api_key_requests: counter_vec(
                r,
                "keyway_api_key_requests_total",
                "Requests admitted with an API key, by the client's configured name",
                &["client"],
            ),
            cache_invalidations: counter_vec(
                r,
                "keyway_cache_invalidations_total",
                "Cached credentials dropped because the store said they changed, by reason (local: this instance changed it; remote: another did; flush: the store was emptied; untrusted: changes could no longer be heard)",
                &["reason"],
            ),
            cache_trusted: gauge(
                r,
                "keyway_cache_trusted",
                "1 while the credential caches may answer from memory; 0 while every credential is checked against the store",
            ),
            config_reloads: counter_vec(
                r,
                "keyway_config_reloads_total",
                "Config reloads (SIGHUP), by result (success, failure: the previous config kept serving)",
                &["result"],
            ),
            config_last_reload_success: float_gauge(
                r,
                "keyway_config_last_reload_success_timestamp_seconds",
                "Unix time the config in force was loaded (at start or by a reload)",
            ),
            config_hash: float_gauge(
                r,
                "keyway_config_hash",
                "The first 48 bits of the SHA-256 of the config file in force, as a number: equal on instances that run the same file",
            ),
            tokens_issued: counter(r, "keyway_tokens_issued_total", "Converse tokens created"),
            tokens_revoked: counter(r, "keyway_tokens_revoked_total", "Converse tokens deleted"),
            client_connections: gauge(
                r,
                "keyway_client_connections",
                "Client connections open on the proxy listeners",
            ),
            connections_refused: counter_vec(
                r,
                "keyway_client_connections_closed_total",
                "Client connections answered and closed by keyway itself, by reason (limit, slow_header, large_header)",
                &["reason"],
            ),
            login_attempts: counter_vec(
                r,
                "keyway_login_attempts_total",
                "Converse logins by result (success, wrong: the password was checked; locked, busy, unavailable, invalid: it was not)",
                &["result"],
            ),
            emails: counter_vec(
                r,
                "keyway_emails_total",
                "Hosted-email authentication emails by result (sent, failed)",
                &["result"],
            ),
            jwks_refresh: counter_vec(
                r,
                "keyway_jwks_refresh_total",
                "JWKS fetches by provider and result (ok, error)",
                &["provider", "result"],
            ),
            jwks_last_success: {
                let gauge = GaugeVec::new(
                    Opts::new(
                        "keyway_jwks_last_success_timestamp_seconds",
                        "Unix time of the last good JWKS fetch",
                    ),
                    &["provider"],
                )
                .expect("valid metric");
                r.register(Box::new(gauge.clone())).expect("unique metric");
                gauge
            },
            registry,
            unrouted_duration: OnceLock::new(),
        }
    }

    /// The hit and miss counters of one cache, resolved once.
    pub fn cache_series(&self, cache: &str) -> CacheSeries {
        let series = |result: &str| self.cache_requests.with_label_values(&[cache, result]);
        CacheSeries {
            hit: series("hit"),
            miss: series("miss"),
        }
    }

    /// The duration and error series of every store operation of `backend`, resolved once.
    pub fn store_series(&self, backend: &str, ops: &[&'static str]) -> StoreSeries {
        StoreSeries {
            ops: ops
                .iter()
                .map(|&op| {
                    let duration = self.store_duration.with_label_values(&[backend, op]);
                    (op, duration, self.store_errors.with_label_values(&[op]))
                })
                .collect(),
        }
    }

    /// Counts cached credentials dropped for `reason` (`local`, `remote`, `flush`, `untrusted`).
    pub fn cache_invalidation(&self, reason: &str) -> IntCounter {
        self.cache_invalidations.with_label_values(&[reason])
    }

    /// Counts requests admitted with the API key of the client named `client` (a configured
    /// name, never a presented value).
    pub fn api_key_requests(&self, client: &str) -> IntCounter {
        self.api_key_requests.with_label_values(&[client])
    }

    /// Counts config reloads by `result` (`success`, `failure`).
    pub fn config_reloads(&self, result: &str) -> IntCounter {
        self.config_reloads.with_label_values(&[result])
    }

    pub fn config_last_reload_success(&self) -> Gauge {
        self.config_last_reload_success.clone()
    }

    pub fn config_hash(&self) -> Gauge {
        self.config_hash.clone()
    }

    /// The gauge that says whether the caches are trusted (1) or bypassed (0).
    pub fn cache_trusted(&self) -> IntGauge {
        self.cache_trusted.clone()
    }

    pub fn observe_jwks_refresh(&self, provider: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.jwks_refresh
            .with_label_values(&[provider, result])
            .inc();
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |elapsed| elapsed.as_secs_f64());
            self.jwks_last_success
                .with_label_values(&[provider])
                .set(now);
        }
    }

    pub fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    pub fn email(&self, sent: bool) {
        let result = if sent { "sent" } else { "failed" };
        self.emails.with_label_values(&[result]).inc();
    }

    pub fn token_revoked(&self) {
        self.tokens_revoked.inc();
    }

    /// Counts one answered request. Its duration goes to `duration`, the route's series
    /// resolved at build time ([`Metrics::request_duration`]); `None`: no route matched.
    pub fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        code: &str,
        (elapsed, duration): (Duration, Option<&Histogram>),
    ) {
        let status = status_label(status);
        self.requests
            .with_label_values(&[route, method, status.as_str(), code])
            .inc();
        let unrouted = || {
            self.unrouted_duration
                .get_or_init(|| self.request_duration(UNROUTED))
        };
        duration
            .unwrap_or_else(unrouted)
            .observe(elapsed.as_secs_f64());
    }

    /// The duration series of one route's requests, resolved once when the route is built.
    pub fn request_duration(&self, route: &str) -> Histogram {
        self.request_duration.with_label_values(&[route])
    }

    /// The response-head time series of one upstream, resolved once when it is built.
    pub fn upstream_duration(&self, upstream: &str) -> Histogram {
        self.upstream_duration.with_label_values(&[upstream])
    }

    /// The open-connection gauge of the proxy listeners.
    pub fn client_connections(&self) -> IntGauge {
        self.client_connections.clone()
    }

    /// The counter of connections keyway closed for `reason`, resolved once.
    pub fn connections_closed(&self, reason: &str) -> IntCounter {
        self.connections_refused.with_label_values(&[reason])
    }

    /// The login counters, resolved once.
    pub fn login_series(&self) -> LoginSeries {
        let series = |result: &str| self.login_attempts.with_label_values(&[result]);
        LoginSeries {
            success: series("success"),
            wrong: series("wrong"),
            locked: series("locked"),
            busy: series("busy"),
            unavailable: series("unavailable"),
            invalid: series("invalid"),
        }
    }

    /// The verdict counters and duration histogram of one authenticator, resolved once.
    pub fn auth_series(&self, authenticator: &str) -> AuthSeries {
        let verdict = |result: &str| self.auth.with_label_values(&[authenticator, result]);
        AuthSeries {
            allow: verdict("allow"),
            deny: verdict("deny"),
            absent: verdict("absent"),
            duration: self.auth_duration.with_label_values(&[authenticator]),
        }
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to a Vec cannot fail");
        out
    }
}

/// `keyway_store_operation_duration_seconds` and `keyway_store_errors_total` of one backend.
pub struct StoreSeries {
    ops: Vec<(&'static str, Histogram, IntCounter)>,
}

impl StoreSeries {
    /// Records one call of `op` (one of the names the series was made with).
    pub fn observe(&self, op: &str, elapsed: Duration, ok: bool) {
        if let Some((_, duration, errors)) = self.ops.iter().find(|(name, ..)| *name == op) {
            duration.observe(elapsed.as_secs_f64());
            if !ok {
                errors.inc();
            }
        }
    }
}

/// `keyway_cache_requests_total` of one cache: the request path counts without label lookups.
#[derive(Clone)]
pub struct CacheSeries {
    hit: IntCounter,
    miss: IntCounter,
}

impl CacheSeries {
    pub fn observe(&self, hit: bool) {
        if hit { &self.hit } else { &self.miss }.inc();
    }
}

/// `keyway_login_attempts_total`, one counter per result.
#[derive(Clone)]
pub struct LoginSeries {
    pub success: IntCounter,
    pub wrong: IntCounter,
    pub locked: IntCounter,
    pub busy: IntCounter,
    pub unavailable: IntCounter,
    pub invalid: IntCounter,
}

/// `keyway_auth_total` and `keyway_auth_duration_seconds` of one authenticator.
#[derive(Clone)]
pub struct AuthSeries {
    allow: IntCounter,
    deny: IntCounter,
    absent: IntCounter,
    duration: Histogram,
}

/// An authenticator's verdict, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    Absent,
}

impl AuthSeries {
    pub fn observe(&self, verdict: Verdict, elapsed: Duration) {
        match verdict {
            Verdict::Allow => &self.allow,
            Verdict::Deny => &self.deny,
            Verdict::Absent => &self.absent,
        }
        .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, label: &str) -> HistogramVec {
    histogram_with(registry, name, help, &[label])
}

fn histogram_with(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let metric = Gauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn status_label(status: u16) -> String {
    if status == 0 {
        "none".to_owned()
    } else {
        status.to_string()
    }
}

/// Known methods keep their name; anything else is `OTHER`, so clients cannot mint label values.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_requests() {
        let metrics = Metrics::new();
        let chat = metrics.request_duration("chat");
        let elapsed = Duration::from_millis(3);
        metrics.observe_request("chat", "GET", 200, "", (elapsed, Some(&chat)));
        metrics.observe_request(UNROUTED, "GET", 404, "404-01", (elapsed, None));
        let text = String::from_utf8(metrics.render()).unwrap();
        for line in [
            r#"keyway_requests_total{code="",method="GET",route="chat",status="200"} 1"#,
            r#"keyway_request_duration_seconds_count{route="chat"} 1"#,
            r#"keyway_request_duration_seconds_count{route="-"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(
            method_label(&http::Method::from_bytes(b"BREW").unwrap()),
            "OTHER"
        );
    }
}
