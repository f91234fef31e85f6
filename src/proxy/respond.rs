//! Writing keyway's own answers (envelopes) to the client.

use super::ctx::RequestCtx;
use crate::error::{GatewayError, render_envelope};
use crate::headers::REQUEST_ID;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The envelope response head and body for `error`.
pub fn envelope_response(request_id: &str, error: &GatewayError) -> (ResponseHeader, bytes::Bytes) {
    let body = render_envelope(request_id, error);
    let mut header = ResponseHeader::build(error.status(), Some(5)).expect("a valid status");
    let mut set = |name: http::HeaderName, value: http::HeaderValue| {
        header.insert_header(name, value).expect("valid header");
    };
    set(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    set(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    set(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    set(
        REQUEST_ID,
        http::HeaderValue::from_str(request_id).expect("request ids are header-safe"),
    );
    if let Some((name, value)) = error.extra_headers() {
        set(name, value.clone());
    }
    (header, body)
}

/// Answers the client with the envelope for `error`, and records its code on the request.
pub async fn send_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    error: GatewayError,
) -> pingora::Result<()> {
    let (header, body) = envelope_response(ctx.request_id(), &error);
    ctx.code = Some(error.code());
    if matches!(
        error,
        GatewayError::PayloadTooLarge | GatewayError::BadRequest
    ) {
        // The unread body may be large or its framing broken: do not try to reuse the connection.
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}
