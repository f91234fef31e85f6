//! The admin listener: `GET /metrics` (Prometheus text), `/healthz` (alive), `/readyz` (ready).

use crate::error::GatewayError;
use crate::headers::new_request_id;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::proxy::OwnResponse;
use async_trait::async_trait;
use http::{HeaderValue, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

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
        let request_id = new_request_id();
        let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
        let response = if known && method != Method::GET && method != Method::HEAD {
            let allow = HeaderValue::from_static("GET, HEAD");
            OwnResponse::error(&request_id, &GatewayError::MethodNotAllowed { allow })
        } else {
            self.page(path, &request_id)
        };
        response.into_http(&request_id)
    }

    fn page(&self, path: &str, request_id: &HeaderValue) -> OwnResponse {
        let json = |body: &'static [u8]| OwnResponse::new(StatusCode::OK, "application/json", body);
        match path {
            "/metrics" => OwnResponse::new(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            "/healthz" => json(br#"{"status":"ok"}"#),
            "/readyz" if self.lifecycle.is_ready() => json(br#"{"status":"ready"}"#),
            "/readyz" => OwnResponse::error(request_id, &GatewayError::ServiceUnavailable),
            _ => OwnResponse::error(request_id, &GatewayError::NotFound),
        }
    }
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
        assert_eq!(refused.headers()[http::header::ALLOW], "GET, HEAD");
    }
}
