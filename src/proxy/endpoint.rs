//! Built-in endpoints on the proxy listener: read the bounded body, call the API, answer.

use super::Gateway;
use super::ctx::RequestCtx;
use crate::endpoints::{EndpointKind, EndpointRequest, EndpointResponse};
use crate::error::GatewayError;
use crate::headers::REQUEST_ID;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, header};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Serves an admitted request on a built-in route; errors are left to the caller to answer.
pub async fn serve(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    kind: EndpointKind,
) -> Result<(), GatewayError> {
    let limit = ctx.route.as_ref().map_or(0, |route| route.max_body_bytes);
    let body = read_body(session, limit).await?;
    let request = session.req_header();
    let principal = ctx.principal.as_ref().ok_or(GatewayError::Internal)?;
    let endpoint_request = EndpointRequest {
        method: &request.method,
        path: request.uri.path(),
        query: request.uri.query(),
        headers: &request.headers,
        body,
        principal,
        client_ip: super::request::client_ip(session),
    };
    let response = gateway.endpoints().serve(kind, endpoint_request).await?;
    write(session, ctx, response)
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

async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    response: EndpointResponse,
) -> pingora::Result<()> {
    let body = response
        .body
        .map(|json| Bytes::from(serde_json::to_vec(&json).expect("JSON values serialise")))
        .unwrap_or_default();
    let mut header = ResponseHeader::build(response.status, Some(5))?;
    if !body.is_empty() {
        header.insert_header(header::CONTENT_TYPE, "application/json")?;
    }
    header.insert_header(header::CONTENT_LENGTH, HeaderValue::from(body.len()))?;
    header.insert_header(header::CACHE_CONTROL, "no-store")?;
    header.insert_header(REQUEST_ID, ctx.request_id.clone())?;
    session
        .write_response_header(Box::new(header), body.is_empty())
        .await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
