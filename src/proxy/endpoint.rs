//! Built-in endpoints on the proxy listener: read the bounded body, call the API, answer.

use super::ctx::RequestCtx;
use super::respond::OwnResponse;
use crate::endpoints::{Endpoint, EndpointRequest};
use crate::error::GatewayError;
use crate::http_policy::forwarded::ClientChain;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// Serves an admitted request on a built-in route; errors are left to the caller to answer.
pub(super) async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    endpoint: &Endpoint,
) -> Result<(), GatewayError> {
    let limit = ctx.route.as_ref().map_or(0, |route| route.max_body_bytes);
    let body = read_body(session, limit).await?;
    let request = session.req_header();
    let principal = ctx.principal.as_ref().ok_or(GatewayError::Internal)?;
    let endpoint_request = EndpointRequest {
        path: request.uri.path(),
        query: request.uri.query(),
        headers: &request.headers,
        body,
        principal,
        client_ip: ctx.client.as_ref().map(ClientChain::client),
    };
    let response = endpoint.serve(endpoint_request).await?;
    OwnResponse::json(response.status, response.body.as_ref())
        .send(session, &ctx.request_id)
        .await
        .map_err(|_| GatewayError::Internal)
}

/// The whole request body, refused with 413 as soon as it passes `limit`.
pub(super) async fn read_body(session: &mut Session, limit: u64) -> Result<Bytes, GatewayError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|_| GatewayError::BadRequest)?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(GatewayError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
