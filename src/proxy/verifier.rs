//! The PKCE `codeVerifier` of `exchange` routes: read from the query or the JSON body for the
//! authenticator, and removed from what goes upstream (query parameter or body field).
//!
//! A JSON body is read before authentication with Pingora's retry buffering on, so Pingora
//! still forwards it; its size is capped by that buffer (64 KiB).

use super::ctx::RequestCtx;
use crate::auth::exchange::query_param;
use crate::error::GatewayError;
use crate::jwt::strict_json;
use bytes::Bytes;
use http::{Uri, header};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use serde_json::{Map, Value};

/// Pingora's retry buffer: the largest body that can be read first and still forwarded.
const MAX_CREDENTIAL_BODY: u64 = 64 * 1024;
const VERIFIER: &str = "codeVerifier";

/// How the upstream request differs from the client's.
#[derive(Debug, Default)]
pub struct ForwardRewrite {
    path_and_query: Option<Uri>,
    body: Option<Bytes>,
}

/// The JSON body of a request on an `exchange` route, if it has one. It is read even when the
/// query carries the credentials, so that a verifier in the body is removed too.
pub async fn read_json_body(
    session: &mut Session,
    limit: u64,
) -> Result<Option<Map<String, Value>>, GatewayError> {
    if session.is_body_empty() {
        return Ok(None);
    }
    let limit = limit.min(MAX_CREDENTIAL_BODY);
    session.as_mut().enable_retry_buffering();
    let body = super::endpoint::read_body(session, limit).await?;
    Ok(strict_json::parse_object(&body))
}

/// The request without its verifier: query parameter and body field.
pub fn without_verifier(
    request: &RequestHeader,
    body: Option<&Map<String, Value>>,
) -> ForwardRewrite {
    let path_and_query = request
        .uri
        .query()
        .filter(|query| query_param(Some(query), VERIFIER).is_some())
        .and_then(|query| {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| pair.split('=').next() != Some(VERIFIER))
                .collect();
            let path = request.uri.path();
            let rebuilt = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            rebuilt.parse().ok()
        });
    let body = body.filter(|body| body.contains_key(VERIFIER)).map(|body| {
        let mut kept = body.clone();
        kept.remove(VERIFIER);
        Bytes::from(serde_json::to_vec(&kept).expect("a JSON object serialises"))
    });
    ForwardRewrite {
        path_and_query,
        body,
    }
}

/// `upstream_request_filter`: the rewritten target and body length.
pub fn apply_to_head(
    rewrite: &ForwardRewrite,
    upstream: &mut RequestHeader,
) -> pingora::Result<()> {
    if let Some(path_and_query) = &rewrite.path_and_query {
        upstream.set_uri(path_and_query.clone());
    }
    if let Some(body) = &rewrite.body {
        upstream.remove_header(&header::TRANSFER_ENCODING);
        upstream.insert_header(header::CONTENT_LENGTH, body.len())?;
    }
    Ok(())
}

/// `request_body_filter`: the original body is swallowed and the rewritten one sent at its end.
pub fn apply_to_body(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end_of_stream: bool) {
    if let Some(rewritten) = &ctx.rewrite.body {
        *body = end_of_stream.then(|| rewritten.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_removed_from_query_and_body() {
        let request = RequestHeader::build(
            "POST",
            b"/route/q1?userInfoId=usr_a&codeVerifier=secret&x=1",
            None,
        )
        .unwrap();
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"userInfoId":"usr_a","codeVerifier":"secret","n":2}"#)
                .unwrap();
        let rewrite = without_verifier(&request, Some(&body));
        assert_eq!(
            rewrite.path_and_query.unwrap(),
            "/route/q1?userInfoId=usr_a&x=1"
        );
        let forwarded: Value = serde_json::from_slice(&rewrite.body.unwrap()).unwrap();
        assert_eq!(
            forwarded,
            serde_json::json!({"userInfoId": "usr_a", "n": 2})
        );

        let plain = RequestHeader::build("GET", b"/route?a=1", None).unwrap();
        let untouched = without_verifier(&plain, None);
        assert!(untouched.path_and_query.is_none() && untouched.body.is_none());
    }
}
