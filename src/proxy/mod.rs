//! The Pingora `ProxyHttp` implementation: hooks in phase order, each a few lines that call
//! the module that owns the decision. Every request reads the [`Runtime`] it started with.

mod access_log;
mod credential_params;
mod ctx;
mod endpoint;
mod failure;
mod held_body;
mod request;
mod respond;
mod upstream_errors;

pub use ctx::RequestCtx;
pub use respond::OwnResponse;
#[cfg(any(test, fuzzing))]
pub use upstream_errors::rewrite_upstream_error;

use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::routing::{RouteTable, RouteTarget};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upstream_errors::HeadDecision;

/// Everything the request path reads, built in one step from the settings (`build`) and
/// never changed: a new configuration means a new `Runtime`, swapped in whole.
#[derive(Debug)]
pub struct Runtime {
    /// Every route, each holding its resolved upstream or endpoint, authenticators and header
    /// policy.
    pub routes: RouteTable,
    /// Whether each request writes an access-log line.
    pub access_log: bool,
    /// Peers whose `X-Forwarded-For` (and `X-Forwarded-Proto`/`-Host`) is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `https` when the listeners speak TLS, else `http`: `X-Forwarded-Proto` upstream.
    pub scheme: http::HeaderValue,
}

/// The proxy service: the current runtime behind one pointer, and the process-wide parts.
pub struct Gateway {
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
}

impl Gateway {
    pub fn new(runtime: Runtime, metrics: Arc<Metrics>, lifecycle: Arc<Lifecycle>) -> Self {
        Gateway {
            runtime: Arc::new(ArcSwap::from_pointee(runtime)),
            metrics,
            lifecycle,
        }
    }

    /// The pointer a reload stores a new runtime in; requests in flight keep the one they
    /// started with.
    pub fn runtime_slot(&self) -> Arc<ArcSwap<Runtime>> {
        self.runtime.clone()
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.runtime.load_full(), self.lifecycle.enter())
    }

    /// Expected denials are answered here (`Ok(true)`), keeping the client connection usable.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let admitted = request::admit(session, ctx).await;
        let endpoint = match ctx.route.as_deref().map(|route| &route.target) {
            Some(RouteTarget::Endpoint(endpoint)) => Some(endpoint.clone()),
            _ => None,
        };
        let answered = match (admitted, endpoint) {
            (Ok(()), None) => return Ok(false),
            (Ok(()), Some(endpoint)) => endpoint::serve(session, ctx, &endpoint).await,
            (Err(error), _) => Err(error),
        };
        if let Err(error) = answered {
            respond::send_error(session, ctx, error).await?;
        }
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        request::count_body(ctx, body.as_ref()).map_err(|error| failure::expected(ctx, error))?;
        credential_params::apply_to_body(ctx, body, end_of_stream);
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let upstream = ctx
            .upstream()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        let peer = upstream.next_peer();
        ctx.connect_attempts += 1;
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    /// Retries a failed connect on the next address, once per configured address.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut error: Box<Error>,
    ) -> Box<Error> {
        let addresses = ctx
            .upstream()
            .map_or(0, |upstream| upstream.address_count());
        error.set_retry(ctx.connect_attempts < addresses);
        error
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(route), Some(principal)) = (&ctx.route, &ctx.principal) {
            let forwarding = request::forwarding(session, ctx);
            route
                .headers
                .apply(upstream_request, &ctx.request_id, principal, &forwarding);
        }
        credential_params::apply_to_head(&ctx.rewrite, upstream_request)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.observe_upstream(ctx);
        match upstream_errors::on_upstream_head(&session.req_header().method, upstream_response) {
            HeadDecision::PassThrough => Ok(()),
            HeadDecision::Buffer(rewrite) => {
                ctx.error_body = Some(rewrite);
                Ok(())
            }
            HeadDecision::ReplaceNow(error) => Err(failure::expected(ctx, error)),
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        crate::headers::set_response_request_id(upstream_response, &ctx.request_id)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let RequestCtx {
            error_body,
            request_id,
            code,
            ..
        } = ctx;
        if let Some(rewrite) = error_body {
            let request_id = request_id.to_str().unwrap_or_default();
            if let Some(final_code) = rewrite.filter(body, end_of_stream, request_id) {
                *code = Some(final_code);
            }
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, _error: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::record(session, ctx, &self.metrics);
    }

    /// What Pingora's own error lines say about a request: never its query (it can carry
    /// credentials) nor a secret path tail.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        access_log::summary(session, ctx)
    }

    /// keyway's own decisions, and failures the client caused (it went away, or sent a broken
    /// body), are not faults: the access-log line records them, and a client cannot flood the
    /// error log. Upstream failures are logged at error level.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        ctx.expected_failure || *error.esource() == ErrorSource::Downstream
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        failure::answer(session, error, ctx).await
    }
}

impl Gateway {
    fn observe_upstream(&self, ctx: &mut RequestCtx) {
        if let (Some(started), Some(upstream)) = (ctx.upstream_started, ctx.upstream()) {
            let elapsed = started.elapsed();
            upstream.duration.observe(elapsed.as_secs_f64());
            ctx.upstream_elapsed = Some(elapsed);
        }
    }
}
