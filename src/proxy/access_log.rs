//! The one access-log line per request (target `keyway::access`), and the request metrics
//! counted with it. The path is logged without its query: queries can carry one-time secrets;
//! a route may also mark its path tail as secret (a token to delete).

use super::ctx::RequestCtx;
use crate::metrics::{Metrics, method_label};
use pingora::proxy::Session;
use tracing::info;

/// Counts the request and, when the runtime has the access log on, writes its line.
pub(super) fn record(session: &Session, ctx: &RequestCtx, metrics: &Metrics) {
    let request = session.req_header();
    let status = session
        .response_written()
        .map_or(0, |header| header.status.as_u16());
    let code = ctx.code.as_deref().unwrap_or("");
    let method = method_label(&request.method);
    let elapsed = ctx.started.elapsed();
    let route = ctx.route_name();
    metrics.observe_request(
        if route.is_empty() { "-" } else { route },
        method,
        status,
        code,
        elapsed,
    );
    if !ctx.runtime.access_log {
        return;
    }
    let path = loggable_path(session, ctx);
    info!(
        target: "keyway::access",
        request_id = ctx.request_id(),
        route,
        method,
        path = %path,
        status,
        code,
        upstream = ctx.route.as_ref().map_or("", |route| route.target.upstream_name()),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        upstream_ms = ctx.upstream_elapsed.map(|elapsed| elapsed.as_secs_f64() * 1000.0),
        client = ctx.client.as_ref().map(|chain| display(chain.client())),
        "request"
    );
}

/// The request's path as a log line may show it: without its query, and without a route's
/// secret path tail.
fn loggable_path<'a>(session: &'a Session, ctx: &RequestCtx) -> std::borrow::Cow<'a, str> {
    let path = session.req_header().uri.path();
    ctx.route
        .as_ref()
        .map_or(path.into(), |matched| matched.loggable_path(path))
}

/// The request as Pingora's error lines name it: method, loggable path and request id.
pub(super) fn summary(session: &Session, ctx: &RequestCtx) -> String {
    let method = method_label(&session.req_header().method);
    let path = loggable_path(session, ctx);
    format!("{method} {path}, request_id: {}", ctx.request_id())
}
