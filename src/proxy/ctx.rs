//! `RequestCtx`: what one request carries from hook to hook.

use super::Runtime;
use super::credential_params::ForwardRewrite;
use super::upstream_errors::ErrorBodyRewrite;
use crate::error::GatewayError;
use crate::headers::new_request_id;
use crate::http_policy::forwarded::ClientChain;
use crate::identity::Principal;
use crate::lifecycle::InFlightGuard;
use crate::routing::{Route, RouteTarget};
use crate::upstream::Upstream;
use http::HeaderValue;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RequestCtx {
    /// The runtime this request started with; it finishes on it, whatever is swapped in.
    pub runtime: Arc<Runtime>,
    /// The request id as sent in `X-Request-Id` and every envelope.
    pub request_id: HeaderValue,
    pub started: Instant,
    pub route: Option<Arc<Route>>,
    /// Who the client is (forwarded-for aware); `None` before admission or off TCP.
    pub client: Option<ClientChain>,
    pub principal: Option<Principal>,
    /// An error keyway decided on, for `fail_to_proxy` to render instead of guessing.
    pub failure: Option<GatewayError>,
    /// The failure was keyway's decision, not a fault: no error-level log line for it.
    pub expected_failure: bool,
    /// The envelope code answered, if any (the `code` metric label and log field).
    pub code: Option<Cow<'static, str>>,
    pub body_bytes: u64,
    pub connect_attempts: usize,
    pub upstream_started: Option<Instant>,
    pub upstream_elapsed: Option<Duration>,
    /// Set when an upstream error response is being buffered to be normalised.
    pub(super) error_body: Option<ErrorBodyRewrite>,
    /// Changes to the upstream request (e.g. the PKCE verifier removed).
    pub(super) rewrite: ForwardRewrite,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    pub fn new(runtime: Arc<Runtime>, in_flight: InFlightGuard) -> Self {
        RequestCtx {
            runtime,
            request_id: new_request_id(),
            started: Instant::now(),
            route: None,
            client: None,
            principal: None,
            failure: None,
            expected_failure: false,
            code: None,
            body_bytes: 0,
            connect_attempts: 0,
            upstream_started: None,
            upstream_elapsed: None,
            error_body: None,
            rewrite: ForwardRewrite::default(),
            _in_flight: in_flight,
        }
    }

    pub fn request_id(&self) -> &str {
        self.request_id.to_str().expect("built from a UUID")
    }

    /// The upstream of the matched route, if it proxies (built-in endpoints do not).
    pub fn upstream(&self) -> Option<&Arc<Upstream>> {
        match &self.route.as_ref()?.target {
            RouteTarget::Upstream(upstream) => Some(upstream),
            RouteTarget::Endpoint(_) => None,
        }
    }

    pub fn route_name(&self) -> &str {
        self.route.as_ref().map_or("", |route| route.name.as_str())
    }
}
