//! The one writer of every response keyway sends itself: error envelopes, the built-in
//! endpoints' answers and the admin listener's pages all get their head here (status,
//! `Content-Type`, `Content-Length`, `Cache-Control: no-store`, `X-Request-Id`).

use super::ctx::RequestCtx;
use crate::error::{GatewayError, render_envelope};
use crate::headers::REQUEST_ID;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// The most request body keyway reads and drops to keep a connection after an error.
const DISCARD_LIMIT: usize = 256 * 1024;
/// How long it waits for that body.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(1);
/// After an early answer on a connection that closes: the most unread request body keyway
/// still reads and drops, so the close does not reset the client before it reads the answer
/// (nginx's lingering close). A body larger than this, or slower than [`LINGER_TIMEOUT`],
/// meets a reset, as it would at any proxy.
const LINGER_LIMIT: usize = 16 * 1024 * 1024;
/// How long keyway keeps reading that body after the answer.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

const JSON: &str = "application/json";

/// A response keyway writes itself.
#[derive(Debug)]
pub struct OwnResponse {
    status: StatusCode,
    /// `None` for an empty body.
    content_type: Option<&'static str>,
    body: Bytes,
    extra: Option<(HeaderName, HeaderValue)>,
}

impl OwnResponse {
    /// A body of `content_type`.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        OwnResponse {
            status,
            content_type: Some(content_type),
            body: body.into(),
            extra: None,
        }
    }

    /// A JSON answer, or an empty one.
    pub fn json(status: StatusCode, body: Option<&serde_json::Value>) -> Self {
        match body {
            Some(json) => {
                let body = serde_json::to_vec(json).expect("JSON values serialise");
                OwnResponse::new(status, JSON, body)
            }
            None => OwnResponse {
                status,
                content_type: None,
                body: Bytes::new(),
                extra: None,
            },
        }
    }

    /// The envelope for `error`, with the headers the error carries (`Allow`, `Retry-After`).
    pub fn error(request_id: &HeaderValue, error: &GatewayError) -> Self {
        let text = request_id
            .to_str()
            .expect("request ids are header-safe text");
        OwnResponse {
            extra: error.extra_headers(),
            ..OwnResponse::new(error.status(), JSON, render_envelope(text, error))
        }
    }

    /// The response head.
    pub fn head(&self, request_id: &HeaderValue) -> ResponseHeader {
        let mut head = ResponseHeader::build(self.status, Some(5)).expect("a valid status");
        let mut set = |name: HeaderName, value: HeaderValue| {
            head.insert_header(name, value)
                .expect("a valid HeaderName and HeaderValue always insert");
        };
        if let Some(content_type) = self.content_type {
            set(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        set(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        set(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        set(REQUEST_ID, request_id.clone());
        if let Some((name, value)) = &self.extra {
            set(name.clone(), value.clone());
        }
        head
    }

    /// As a plain `http` response (for Pingora's `ServeHttp` apps: the admin listener).
    pub fn into_http(self, request_id: &HeaderValue) -> http::Response<Vec<u8>> {
        let head = self.head(request_id);
        let mut response = http::Response::new(self.body.to_vec());
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers.clone();
        response
    }

    /// As HTTP/1.1 bytes that close the connection, for answers written before any HTTP
    /// session exists (a connection refused at the limit, a head too slow or too large).
    pub fn into_http1_closing(self, request_id: &HeaderValue) -> Vec<u8> {
        let mut head = self.head(request_id);
        head.insert_header(header::CONNECTION, HeaderValue::from_static("close"))
            .expect("a valid header");
        let reason = self.status.canonical_reason().unwrap_or("");
        let mut wire = format!("HTTP/1.1 {} {reason}\r\n", self.status.as_u16()).into_bytes();
        for (name, value) in head.headers.iter() {
            wire.extend_from_slice(name.as_str().as_bytes());
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(value.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&self.body);
        wire
    }

    /// Writes the whole response to the client.
    pub(super) async fn send(
        self,
        session: &mut Session,
        request_id: &HeaderValue,
    ) -> pingora::Result<()> {
        let head = self.head(request_id);
        let empty = self.body.is_empty();
        session.write_response_header(Box::new(head), empty).await?;
        if !empty {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// Answers the client with the envelope for `error`, and records its code on the request.
pub(super) async fn send_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    error: GatewayError,
) -> pingora::Result<()> {
    ctx.code = Some(error.code());
    let reusable = discard_request_body(session).await;
    if !reusable {
        session.set_keepalive(None);
    }
    OwnResponse::error(&ctx.request_id, &error)
        .send(session, &ctx.request_id)
        .await?;
    if !reusable {
        linger(session).await;
    }
    Ok(())
}

/// Reads and drops what the client still sends of its body after the answer, within
/// [`LINGER_LIMIT`] and [`LINGER_TIMEOUT`], so that the close that follows is a clean one.
/// A client awaiting `100-continue` sends nothing more: there is nothing to wait for.
async fn linger(session: &mut Session) {
    if !session.req_header().headers.contains_key(header::EXPECT) {
        drain(session, LINGER_LIMIT, LINGER_TIMEOUT).await;
    }
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
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    let expects_continue = request.headers.contains_key(header::EXPECT);
    if expects_continue || declared.is_some_and(|length| length > DISCARD_LIMIT) {
        return false;
    }
    drain(session, DISCARD_LIMIT, DISCARD_TIMEOUT).await
}

/// Reads and drops the rest of the request body: true if it ended within `limit` bytes and
/// `timeout`, false if it was larger, slower or broken.
async fn drain(session: &mut Session, limit: usize, timeout: Duration) -> bool {
    if session.is_body_done() {
        return true;
    }
    let mut remaining = limit;
    let drained = tokio::time::timeout(timeout, async {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_own_response_has_the_same_head() {
        let request_id = HeaderValue::from_static("rid-1");
        let allow = HeaderValue::from_static("GET, HEAD");
        let error = GatewayError::MethodNotAllowed { allow };
        let envelope = OwnResponse::error(&request_id, &error).into_http(&request_id);
        assert_eq!(envelope.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(envelope.headers()[header::ALLOW], "GET, HEAD");
        let page = OwnResponse::new(StatusCode::OK, "text/plain", "ok").into_http(&request_id);
        let empty = OwnResponse::json(StatusCode::OK, None).into_http(&request_id);
        for response in [&envelope, &page, &empty] {
            let headers = response.headers();
            assert_eq!(headers[REQUEST_ID], "rid-1");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                headers[header::CONTENT_LENGTH],
                response.body().len().to_string().as_str()
            );
        }
        assert_eq!(envelope.headers()[header::CONTENT_TYPE], JSON);
        assert!(empty.headers().get(header::CONTENT_TYPE).is_none());
        let value: serde_json::Value = serde_json::from_slice(envelope.body()).unwrap();
        assert_eq!(value["error"]["requestId"], "rid-1");
        let wire = OwnResponse::error(&request_id, &GatewayError::RequestTimeout)
            .into_http1_closing(&request_id);
        let text = String::from_utf8(wire).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: close\r\n") && text.contains("x-request-id: rid-1\r\n"));
        assert!(
            text.ends_with(r#""code":"408-01","message":"Request Timeout"}}"#),
            "{text}"
        );
    }
}
