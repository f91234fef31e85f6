//! A real upstream HTTP server (axum on its own runtime) that records what reaches it.
//!
//! Paths (anywhere in the path, so any route prefix works):
//! - `.../slow/{ms}`: answers 200 after `ms` milliseconds;
//! - `.../big/{bytes}`: answers 200 with that many bytes;
//! - `.../status/{code}/plain|empty|envelope`: an error in that body style, with a debug
//!   header (`x-backend-debug`) and `retry-after: 7`;
//! - anything else: 200 with a JSON echo of the path and headers.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    /// Every value of `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }
}

pub struct Backend {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Backend {
    /// A plain-HTTP backend.
    pub fn start() -> Backend {
        Backend::serve(|listener, app| async move { axum::serve(listener, app).await.unwrap() })
    }

    /// An HTTPS backend presenting the given certificate chain and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Backend {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Backend::serve(move |listener, app| async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        })
    }

    fn serve<F, Fut>(serve: F) -> Backend
    where
        F: FnOnce(tokio::net::TcpListener, Router) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (runtime, listener) = runtime_and_listener();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let app = Router::new().fallback(move |request: Request| handle(request, log.clone()));
        runtime.spawn(serve(listener, app));
        Backend {
            address,
            received,
            _runtime: runtime,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The single request whose target is `target`.
    pub fn only(&self, target: &str) -> Received {
        let matching: Vec<Received> = self
            .received()
            .into_iter()
            .filter(|request| request.target == target)
            .collect();
        assert_eq!(matching.len(), 1, "requests for {target}: {matching:?}");
        matching.into_iter().next().unwrap()
    }
}

/// A one-thread runtime for a test server, and a listener on a free loopback port.
pub fn runtime_and_listener() -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    (runtime, listener)
}

async fn handle(request: Request, log: Arc<Mutex<Vec<Received>>>) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |pq| pq.to_string());
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts.headers,
        body: body.to_vec(),
    };
    log.lock().unwrap().push(received);
    let segments: Vec<&str> = path.split('/').collect();
    if let Some(at) = segments.iter().position(|segment| *segment == "slow") {
        let millis: u64 = segments[at + 1].parse().unwrap();
        tokio::time::sleep(Duration::from_millis(millis)).await;
        return text(StatusCode::OK, "text/plain", "slow done".to_owned());
    }
    if let Some(at) = segments.iter().position(|segment| *segment == "big") {
        let bytes: usize = segments[at + 1].parse().unwrap();
        return text(StatusCode::OK, "text/plain", "x".repeat(bytes));
    }
    if let Some(at) = segments.iter().position(|segment| *segment == "status") {
        let status = StatusCode::from_u16(segments[at + 1].parse().unwrap()).unwrap();
        let mut response = match segments[at + 2] {
            "plain" => text(status, "text/plain", "upstream exploded: stack trace here".to_owned()),
            "empty" => text(status, "text/plain", String::new()),
            _ => text(
                status,
                "application/json",
                r#"{"error":{"requestId":"upstream-rid","code":"409-07","message":"Conversation closed"}}"#.to_owned(),
            ),
        };
        let headers = response.headers_mut();
        headers.insert("x-backend-debug", "db-primary-7:5432".parse().unwrap());
        headers.insert("retry-after", "7".parse().unwrap());
        return response;
    }
    let body = serde_json::json!({ "target": target });
    text(StatusCode::OK, "application/json", body.to_string())
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}
