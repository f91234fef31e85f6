//! The admin listener: `GET /metrics` (Prometheus text), `/healthz` (alive), `/readyz` (ready).

use crate::error::{GatewayError, render_envelope};
use crate::headers::REQUEST_ID;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use async_trait::async_trait;
use http::{Method, Response, StatusCode, header};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use uuid::Uuid;

pub struct AdminApp {
    pub metrics: Arc<Metrics>,
    pub lifecycle: Arc<Lifecycle>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let request = session.req_header();
        self.respond(&request.method, request.uri.path())
    }
}

impl AdminApp {
    /// The admin answer for one request; errors use the same envelope as the proxy.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Vec<u8>> {
        let request_id = Uuid::new_v4().to_string();
        let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
        if known && method != Method::GET && method != Method::HEAD {
            let allow = http::HeaderValue::from_static("GET, HEAD");
            return envelope(&request_id, &GatewayError::MethodNotAllowed { allow });
        }
        match path {
            "/metrics" => reply(
                &request_id,
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            "/healthz" => reply(
                &request_id,
                StatusCode::OK,
                "application/json",
                br#"{"status":"ok"}"#.to_vec(),
            ),
            "/readyz" if self.lifecycle.is_ready() => reply(
                &request_id,
                StatusCode::OK,
                "application/json",
                br#"{"status":"ready"}"#.to_vec(),
            ),
            "/readyz" => envelope(&request_id, &GatewayError::ServiceUnavailable),
            _ => envelope(&request_id, &GatewayError::NotFound),
        }
    }
}

fn envelope(request_id: &str, error: &GatewayError) -> Response<Vec<u8>> {
    let mut response = reply(
        request_id,
        error.status(),
        "application/json",
        render_envelope(request_id, error).to_vec(),
    );
    if let Some((name, value)) = error.extra_headers() {
        response.headers_mut().insert(name, value);
    }
    response
}

fn reply(
    request_id: &str,
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .header(REQUEST_ID, request_id)
        .body(body)
        .expect("static parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_and_unknown_paths() {
        let app = AdminApp {
            metrics: Arc::new(Metrics::new()),
            lifecycle: Arc::new(Lifecycle::default()),
        };
        assert_eq!(
            app.respond(&Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            app.respond(&Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            app.respond(&Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        let refused = app.respond(&Method::POST, "/metrics");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(refused.headers()[header::ALLOW], "GET, HEAD");
    }
}
