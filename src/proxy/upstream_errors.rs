//! Upstream error responses (status >= 400) leave as envelopes.
//!
//! An upstream body that already is an envelope passes through unchanged; anything else is
//! replaced by `<status>-00` with the status's reason phrase and our request id. The decision
//! needs the whole body, so error bodies are buffered (up to [`MAX_INSPECTED_BYTES`]; a larger
//! body cannot be an envelope worth keeping and is replaced). The head leaves before the body
//! is known, so every inspected error keeps only the headers that describe keyway's body and
//! [`KEPT_UPSTREAM_HEADERS`]: an upstream's debug headers never reach the client.

use crate::error::{GatewayError, is_envelope, render_envelope};
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, header};
use pingora::http::ResponseHeader;
use std::borrow::Cow;

pub(super) const MAX_INSPECTED_BYTES: usize = 64 * 1024;

/// Upstream headers an error response keeps: what a client needs to act on the error.
pub(super) const KEPT_UPSTREAM_HEADERS: [&str; 3] = ["retry-after", "www-authenticate", "allow"];

/// The `code` label of an upstream envelope that passed through unchanged.
pub(super) const UPSTREAM_ENVELOPE_CODE: &str = "upstream";

/// What to do with an upstream response, decided on its head.
#[derive(Debug)]
pub(super) enum HeadDecision {
    /// Not an error (or a HEAD response): forward as is.
    PassThrough,
    /// An error with a body: buffer it and decide at the end.
    Buffer(ErrorBodyRewrite),
    /// An error announced with an empty body: nothing to keep, answer the envelope now.
    ReplaceNow(GatewayError),
}

/// Inspects an upstream response head; for `Buffer` the head is already adjusted
/// (length and encoding removed, JSON content type) for the body that will follow.
pub(super) fn on_upstream_head(method: &Method, response: &mut ResponseHeader) -> HeadDecision {
    let status = response.status;
    if status.as_u16() < 400 || method == Method::HEAD {
        return HeadDecision::PassThrough;
    }
    let empty = response
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() == b"0");
    if empty {
        return HeadDecision::ReplaceNow(GatewayError::Upstream(status));
    }
    let dropped: Vec<http::HeaderName> = response
        .headers
        .keys()
        .filter(|name| !KEPT_UPSTREAM_HEADERS.contains(&name.as_str()))
        .cloned()
        .collect();
    for name in dropped {
        response.remove_header(&name);
    }
    for (name, value) in [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        response.insert_header(name, value).expect("valid header");
    }
    HeadDecision::Buffer(ErrorBodyRewrite {
        status,
        buffer: BytesMut::new(),
        overflowed: false,
    })
}

/// The buffered body of one upstream error response.
#[derive(Debug)]
pub(super) struct ErrorBodyRewrite {
    status: StatusCode,
    buffer: BytesMut,
    overflowed: bool,
}

impl ErrorBodyRewrite {
    /// Swallows body chunks; on the last one emits the final body and returns its code label.
    pub(super) fn filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        request_id: &str,
    ) -> Option<Cow<'static, str>> {
        if let Some(chunk) = body.take() {
            if self.buffer.len() + chunk.len() > MAX_INSPECTED_BYTES {
                self.overflowed = true;
                self.buffer = BytesMut::new();
            } else if !self.overflowed {
                self.buffer.extend_from_slice(&chunk);
            }
        }
        if !end_of_stream {
            return None;
        }
        if !self.overflowed && is_envelope(&self.buffer) {
            *body = Some(self.buffer.split().freeze());
            Some(Cow::Borrowed(UPSTREAM_ENVELOPE_CODE))
        } else {
            let error = GatewayError::Upstream(self.status);
            *body = Some(render_envelope(request_id, &error));
            Some(error.code())
        }
    }
}

/// The whole rewrite of one upstream error response of `status` whose body arrives in
/// `chunks` (request id `fuzz`): the body the client gets and the `code` label. For the
/// property tests and the fuzz targets (the `properties` module).
#[cfg(any(test, fuzzing))]
pub fn rewrite_upstream_error(status: u16, chunks: &[&[u8]]) -> (Bytes, String) {
    let mut response = ResponseHeader::build(status, None).expect("an error status");
    let HeadDecision::Buffer(mut rewrite) = on_upstream_head(&Method::GET, &mut response) else {
        unreachable!("an error without a length is buffered");
    };
    let (mut out, mut code) = (Bytes::new(), String::new());
    for (index, chunk) in chunks.iter().enumerate() {
        let mut body = Some(Bytes::copy_from_slice(chunk));
        if let Some(label) = rewrite.filter(&mut body, index + 1 == chunks.len(), "fuzz") {
            code = label.into_owned();
        }
        out = body.unwrap_or(out);
    }
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, length: Option<&str>) -> ResponseHeader {
        let mut response = ResponseHeader::build(status, None).unwrap();
        if let Some(length) = length {
            response.insert_header("content-length", length).unwrap();
        }
        response
    }

    fn run(status: u16, chunks: &[&[u8]]) -> (Bytes, Option<String>) {
        let (body, code) = rewrite_upstream_error(status, chunks);
        (body, Some(code))
    }

    #[test]
    fn plain_error_is_replaced() {
        let (body, code) = run(500, &[b"oops ", b"it broke"]);
        assert_eq!(code.as_deref(), Some("500-00"));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["requestId"], "fuzz");
        assert_eq!(value["error"]["message"], "Internal Server Error");
    }

    #[test]
    fn envelope_passes_through_byte_for_byte() {
        let original: &[u8] =
            br#"{"error":{"requestId":"theirs","code":"409-07","message":"Conflict"}}"#;
        let (body, code) = run(409, &[&original[..10], &original[10..]]);
        assert_eq!(&body[..], original);
        assert_eq!(code.as_deref(), Some(UPSTREAM_ENVELOPE_CODE));
    }

    #[test]
    fn oversized_body_is_replaced() {
        let big = vec![b' '; MAX_INSPECTED_BYTES];
        let (body, code) = run(
            502,
            &[br#"{"error":{"requestId":"a","message":"m"}}"#, &big],
        );
        assert_eq!(code.as_deref(), Some("502-00"));
        assert!(body.len() < 200);
    }

    #[test]
    fn head_decisions() {
        assert!(matches!(
            on_upstream_head(&Method::GET, &mut head(200, None)),
            HeadDecision::PassThrough
        ));
        assert!(matches!(
            on_upstream_head(&Method::HEAD, &mut head(500, None)),
            HeadDecision::PassThrough
        ));
        assert!(matches!(
            on_upstream_head(&Method::GET, &mut head(404, Some("0"))),
            HeadDecision::ReplaceNow(GatewayError::Upstream(StatusCode::NOT_FOUND))
        ));
        let mut response = head(500, Some("12"));
        response.insert_header("x-backend-debug", "db-7").unwrap();
        response.insert_header("retry-after", "5").unwrap();
        response.insert_header("set-cookie", "s=1").unwrap();
        assert!(matches!(
            on_upstream_head(&Method::GET, &mut response),
            HeadDecision::Buffer(_)
        ));
        assert!(response.headers.get("content-length").is_none());
        assert!(response.headers.get("x-backend-debug").is_none());
        assert!(response.headers.get("set-cookie").is_none());
        assert_eq!(response.headers.get("retry-after").unwrap(), "5");
        assert_eq!(
            response.headers.get("content-type").unwrap(),
            "application/json"
        );
    }
}
