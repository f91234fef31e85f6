//! Bodies keyway reads before they go upstream: to check them against a route's
//! `request_schema`, and to read credential parameters. Pingora's retry buffer holds what was
//! read and replays it upstream, so such a body is at most [`MAX_HELD_BODY_BYTES`].

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::http_policy::MAX_HELD_BODY_BYTES;
use crate::routing::Route;
use bytes::Bytes;
use pingora::proxy::Session;
use tracing::debug;

/// The whole body (`None`: the request has none), refused with 413 past `limit`.
pub(super) async fn hold(session: &mut Session, limit: u64) -> Result<Option<Bytes>, GatewayError> {
    if session.is_body_empty() {
        return Ok(None);
    }
    session.as_mut().enable_retry_buffering();
    let body = super::endpoint::read_body(session, limit.min(MAX_HELD_BODY_BYTES)).await?;
    Ok(Some(body))
}

/// The route's `request_schema`, if it has one: a body that is not JSON or fails the schema
/// is `400-01`. The log line says where it failed, never what the body held.
pub(super) fn check_schema(
    route: &Route,
    session: &Session,
    body: Option<&Bytes>,
    ctx: &RequestCtx,
) -> Result<(), GatewayError> {
    let Some(schema) = &route.request_schema else {
        return Ok(());
    };
    let body = body.map_or(&[][..], |body| &body[..]);
    schema
        .check(&session.req_header().headers, body)
        .map_err(|rejection| {
            debug!(
                request_id = ctx.request_id(),
                route = %route.name,
                ?rejection,
                "request body refused by the route's request_schema"
            );
            GatewayError::BadRequest
        })
}
