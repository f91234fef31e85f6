//! Credentials carried as request parameters (the PKCE `codeVerifier` of `exchange` routes,
//! the user token of `hosted_email` routes): read from the query or the body for the
//! authenticators, and removed from what goes upstream.
//!
//! A JSON or form body is read before authentication with Pingora's retry buffering on, so
//! Pingora still forwards it; its size is capped by that buffer (64 KiB).

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::headers::is_form_urlencoded;
use crate::jwt::strict_json;
use bytes::Bytes;
use http::{Uri, header};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use serde_json::{Map, Value};

/// Pingora's retry buffer: the largest body that can be read first and still forwarded.
const MAX_CREDENTIAL_BODY: u64 = 64 * 1024;

/// A body read for its credential fields.
pub struct CredentialBody {
    /// JSON members, or form fields as strings (a repeated form field keeps its last value).
    pub fields: Map<String, Value>,
    raw: Bytes,
    form: bool,
}

/// Its fields are credentials: `Debug` shows the field names only.
impl std::fmt::Debug for CredentialBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialBody")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("form", &self.form)
            .finish_non_exhaustive()
    }
}

/// How the upstream request differs from the client's.
#[derive(Debug, Default)]
pub struct ForwardRewrite {
    path_and_query: Option<Uri>,
    body: Option<Bytes>,
}

/// The JSON or form body of a request on a route whose credentials may be parameters. It is
/// read even when the query carries them, so that a copy in the body is removed too.
pub async fn read_body(
    session: &mut Session,
    limit: u64,
) -> Result<Option<CredentialBody>, GatewayError> {
    if session.is_body_empty() {
        return Ok(None);
    }
    let form = is_form_urlencoded(&session.req_header().headers);
    let limit = limit.min(MAX_CREDENTIAL_BODY);
    session.as_mut().enable_retry_buffering();
    let raw = super::endpoint::read_body(session, limit).await?;
    let fields = if form {
        Some(
            url::form_urlencoded::parse(&raw)
                .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
                .collect(),
        )
    } else {
        strict_json::parse_object(&raw)
    };
    Ok(fields.map(|fields| CredentialBody { fields, raw, form }))
}

/// The request without the parameters named in `secrets` (query and body; names compared
/// without regard to case).
pub fn without_secrets(
    request: &RequestHeader,
    body: Option<&CredentialBody>,
    secrets: &[&str],
) -> ForwardRewrite {
    let is_secret = |name: &str| {
        secrets
            .iter()
            .any(|secret| secret.eq_ignore_ascii_case(name))
    };
    let path_and_query = request
        .uri
        .query()
        .and_then(|query| without_form_fields(query.as_bytes(), &is_secret))
        .and_then(|kept| {
            let path = request.uri.path();
            let rebuilt = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{kept}")
            };
            rebuilt.parse().ok()
        });
    let body = body.and_then(|body| {
        if body.form {
            without_form_fields(&body.raw, &is_secret).map(Bytes::from)
        } else if body.fields.keys().any(|name| is_secret(name)) {
            let mut kept = body.fields.clone();
            kept.retain(|name, _| !is_secret(name));
            Some(Bytes::from(
                serde_json::to_vec(&kept).expect("a JSON object serialises"),
            ))
        } else {
            None
        }
    });
    ForwardRewrite {
        path_and_query,
        body,
    }
}

/// `a=1&b=2` without the fields `is_secret` names (decoded), the others kept byte for byte;
/// `None` when there was nothing to remove.
fn without_form_fields(encoded: &[u8], is_secret: &impl Fn(&str) -> bool) -> Option<String> {
    let text = std::str::from_utf8(encoded).ok()?;
    let secret_pair = |pair: &&str| {
        let name = pair.split('=').next().unwrap_or("");
        url::form_urlencoded::parse(name.as_bytes())
            .next()
            .is_some_and(|(decoded, _)| is_secret(&decoded))
    };
    if !text.split('&').any(|pair| secret_pair(&pair)) {
        return None;
    }
    let kept: Vec<&str> = text.split('&').filter(|pair| !secret_pair(pair)).collect();
    Some(kept.join("&"))
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

    fn json_body(text: &str) -> CredentialBody {
        CredentialBody {
            fields: serde_json::from_str(text).unwrap(),
            raw: Bytes::copy_from_slice(text.as_bytes()),
            form: false,
        }
    }

    #[test]
    fn the_verifier_is_removed_from_query_and_json_body() {
        let request = RequestHeader::build(
            "POST",
            b"/route/q1?userInfoId=usr_a&codeVerifier=secret&x=1",
            None,
        )
        .unwrap();
        let body = json_body(r#"{"userInfoId":"usr_a","codeVerifier":"secret","n":2}"#);
        let rewrite = without_secrets(&request, Some(&body), &["codeVerifier"]);
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
        let untouched = without_secrets(&plain, None, &["codeVerifier"]);
        assert!(untouched.path_and_query.is_none() && untouched.body.is_none());
    }

    #[test]
    fn a_form_field_is_removed_in_any_spelling_and_the_rest_kept_byte_for_byte() {
        let raw = "rating=5&%75ser=tok&ReviewText=a%20b+c&USER=tok2&passkey=p";
        let body = CredentialBody {
            fields: Map::new(),
            raw: Bytes::from_static(raw.as_bytes()),
            form: true,
        };
        let request = RequestHeader::build("POST", b"/submit?user=tok&only=1", None).unwrap();
        let rewrite = without_secrets(&request, Some(&body), &["user"]);
        assert_eq!(rewrite.path_and_query.unwrap(), "/submit?only=1");
        assert_eq!(
            rewrite.body.unwrap(),
            "rating=5&ReviewText=a%20b+c&passkey=p"
        );
    }
}
