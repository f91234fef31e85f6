//! Credentials carried as request parameters (the PKCE `codeVerifier` of `exchange` routes,
//! the user token of `hosted_email` routes): read from the query or the body for the
//! authenticators, and removed from what goes upstream, under the one parameter rule of
//! `http_policy::params` (so whatever is read is also what is removed).
//!
//! A JSON or form body is read before authentication (`held_body`), so its size is capped by
//! Pingora's retry buffer (64 KiB).

use super::ctx::RequestCtx;
use crate::http_policy::params::{self, is_named};
use crate::http_policy::{is_form_urlencoded, strict_json};
use bytes::Bytes;
use http::{Uri, header};
use pingora::http::RequestHeader;
use serde_json::{Map, Value};

/// A body read for its credential parameters.
pub(super) struct CredentialBody {
    /// Form fields, or the JSON object's top-level string members: what authenticators read.
    pub(super) parameters: Vec<(String, String)>,
    raw: Bytes,
    /// The JSON object, for a JSON body (`None`: a form body).
    json: Option<Map<String, Value>>,
}

/// Its fields are credentials: `Debug` shows the field names only.
impl std::fmt::Debug for CredentialBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .parameters
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        f.debug_struct("CredentialBody")
            .field("parameters", &names)
            .field("form", &self.json.is_none())
            .finish_non_exhaustive()
    }
}

/// How the upstream request differs from the client's.
#[derive(Debug, Default)]
pub(super) struct ForwardRewrite {
    path_and_query: Option<Uri>,
    body: Option<Bytes>,
}

/// The credential parameters of a JSON or form body read by `held_body::hold` (on a route
/// whose credentials may be parameters, even when the query carries them, so that a copy in
/// the body is removed too). `None`: neither form nor a JSON object.
pub(super) fn parse_body(headers: &http::HeaderMap, raw: &Bytes) -> Option<CredentialBody> {
    if is_form_urlencoded(headers) {
        return Some(CredentialBody {
            parameters: params::pairs(raw),
            raw: raw.clone(),
            json: None,
        });
    }
    strict_json::parse_object(raw).map(|object| CredentialBody {
        parameters: object
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
            .collect(),
        raw: raw.clone(),
        json: Some(object),
    })
}

/// The request without the parameters named in `secrets`, in its query and its body.
pub(super) fn without_secrets(
    request: &RequestHeader,
    body: Option<&CredentialBody>,
    secrets: &[&str],
) -> ForwardRewrite {
    let is_secret = |name: &str| secrets.iter().any(|secret| is_named(name, secret));
    let path_and_query = request
        .uri
        .query()
        .and_then(|query| params::without(query.as_bytes(), secrets))
        .and_then(|kept| String::from_utf8(kept).ok())
        .and_then(|kept| {
            let path = request.uri.path();
            let rebuilt = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{kept}")
            };
            rebuilt.parse().ok()
        });
    let body = body.and_then(|body| match &body.json {
        None => params::without(&body.raw, secrets).map(Bytes::from),
        Some(object) if object.keys().any(|name| is_secret(name)) => {
            let mut kept = object.clone();
            kept.retain(|name, _| !is_secret(name));
            Some(Bytes::from(
                serde_json::to_vec(&kept).expect("a JSON object serialises"),
            ))
        }
        Some(_) => None,
    });
    ForwardRewrite {
        path_and_query,
        body,
    }
}

/// `upstream_request_filter`: the rewritten target and body length.
pub(super) fn apply_to_head(
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
pub(super) fn apply_to_body(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end_of_stream: bool) {
    if let Some(rewritten) = &ctx.rewrite.body {
        *body = end_of_stream.then(|| rewritten.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_body(text: &str) -> CredentialBody {
        let object = strict_json::parse_object(text.as_bytes()).unwrap();
        CredentialBody {
            parameters: Vec::new(),
            raw: Bytes::copy_from_slice(text.as_bytes()),
            json: Some(object),
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
        let body = json_body(r#"{"userInfoId":"usr_a","codeverifier":"secret","n":2}"#);
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
            parameters: params::pairs(raw.as_bytes()),
            raw: Bytes::from_static(raw.as_bytes()),
            json: None,
        };
        let request = RequestHeader::build("POST", b"/submit?user=tok&only=1", None).unwrap();
        let rewrite = without_secrets(&request, Some(&body), &["user"]);
        assert_eq!(rewrite.path_and_query.unwrap(), "/submit?only=1");
        assert_eq!(
            rewrite.body.unwrap(),
            "rating=5&ReviewText=a%20b+c&passkey=p"
        );
        // What was removed is exactly what a reader finds under the same name.
        let read = params::Parameters::new(Some("user=tok&only=1"), &body.parameters).all("user");
        assert_eq!(read, ["tok", "tok", "tok2"]);
    }
}
