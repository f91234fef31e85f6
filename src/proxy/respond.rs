//! Writing keyway's own answers (envelopes) to the client.

use super::ctx::RequestCtx;
use crate::error::{GatewayError, render_envelope};
use crate::headers::REQUEST_ID;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// The most request body keyway reads and drops to keep a connection after an error.
const DISCARD_LIMIT: usize = 256 * 1024;
/// How long it waits for that body.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(1);

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
        set(name, value);
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
    if !discard_request_body(session).await {
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

/// Reads and drops a small unread request body before an early answer, so the connection can
/// be reused and the client is not reset (unread data at close means RST) before it reads the
/// answer. Returns false when the body is too large, too slow, broken, or awaits
/// `100-continue`: the connection is then closed after the answer.
async fn discard_request_body(session: &mut Session) -> bool {
    if session.is_body_done() {
        return true;
    }
    let request = session.req_header();
    let declared = request
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    let expects_continue = request.headers.contains_key(http::header::EXPECT);
    if expects_continue || declared.is_some_and(|length| length > DISCARD_LIMIT) {
        return false;
    }
    let mut remaining = DISCARD_LIMIT;
    let drained = tokio::time::timeout(DISCARD_TIMEOUT, async {
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if chunk.len() <= remaining => remaining -= chunk.len(),
                Ok(None) => return true,
                _ => return false,
            }
        }
    })
    .await;
    matches!(drained, Ok(true))
}
