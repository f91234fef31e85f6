//! `request_filter`: target check, route match, declared body size, authentication, and the
//! body's schema where the route has one.

use super::ctx::RequestCtx;
use super::{credential_params, held_body};
use crate::auth::AuthRequest;
use crate::error::GatewayError;
use crate::headers::Forwarding;
use crate::http_policy::forwarded::{self, ClientChain, X_FORWARDED_FOR};
use crate::http_policy::params::Parameters;
use crate::http_policy::{check_request_target, is_disguised_framing_header, route_host};
use crate::routing::{Route, RouteMatch};
use http::header;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::sync::Arc;
use tracing::debug;

/// Decides whether a request may go upstream; on `Ok` the route and principal are in `ctx`.
pub(super) async fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    ctx.client = client_chain(session, ctx);
    refuse_disguised_framing(session.req_header(), ctx)?;
    let route = match_route(session.req_header(), ctx)?;
    ctx.route = Some(route.clone());
    check_declared_length(session.req_header(), route.max_body_bytes)?;
    let secrets = &route.secret_parameters;
    let held = if route.holds_body() {
        held_body::hold(session, route.max_body_bytes).await?
    } else {
        None
    };
    let request = session.req_header();
    let body = match &held {
        Some(raw) if !secrets.is_empty() => credential_params::parse_body(&request.headers, raw),
        _ => None,
    };
    let body_parameters = body.as_ref().map_or(&[][..], |body| &body.parameters);
    let auth_request = AuthRequest {
        headers: &request.headers,
        tenants: &route.tenants,
        parameters: Parameters::new(request.uri.query(), body_parameters),
    };
    let principal = route.auth.authenticate(&auth_request).await?;
    held_body::check_schema(&route, session, held.as_ref(), ctx)?;
    ctx.principal = Some(principal);
    if !secrets.is_empty() {
        ctx.rewrite = credential_params::without_secrets(request, body.as_ref(), secrets);
    }
    Ok(())
}

/// The client and the trusted proxies before keyway, when it connected over TCP.
fn client_chain(session: &Session, ctx: &RequestCtx) -> Option<ClientChain> {
    let peer = session.client_addr()?.as_inet()?.ip();
    if ctx.runtime.trusted_proxies.is_empty() {
        return Some(ClientChain::direct(peer));
    }
    let forwarded_for = session
        .req_header()
        .headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok());
    Some(forwarded::client_chain(
        peer,
        forwarded_for,
        &ctx.runtime.trusted_proxies,
    ))
}

/// What the upstream is told of the request's origin: the client chain, and the scheme and
/// host the client used (as a trusted proxy reported them, or as keyway saw them).
pub(super) fn forwarding<'a>(session: &'a Session, ctx: &'a RequestCtx) -> Forwarding<'a> {
    let request = session.req_header();
    let forwarded = ctx.client.as_ref().is_some_and(ClientChain::is_forwarded);
    // Looked up only when a trusted proxy is in front: the common case costs nothing.
    let reported = |name: &str| forwarded.then(|| request.headers.get(name)).flatten();
    Forwarding {
        chain: ctx.client.as_ref(),
        proto: reported("x-forwarded-proto").unwrap_or(&ctx.runtime.scheme),
        host: reported("x-forwarded-host").or_else(|| request.headers.get(header::HOST)),
    }
}

/// `Transfer_Encoding`, `Content_Length` and the like: a server behind keyway that folds `_`
/// into `-` would read them as framing. Such a request is refused, never forwarded.
fn refuse_disguised_framing(request: &RequestHeader, ctx: &RequestCtx) -> Result<(), GatewayError> {
    let disguised = request
        .headers
        .keys()
        .any(|name| is_disguised_framing_header(name.as_str()));
    if disguised {
        debug!(
            request_id = ctx.request_id(),
            "a framing header spelled with '_' refused"
        );
        return Err(GatewayError::BadRequest);
    }
    Ok(())
}

/// The route for a request whose target passes the path policy.
fn match_route(request: &RequestHeader, ctx: &RequestCtx) -> Result<Arc<Route>, GatewayError> {
    let path = check_request_target(request.raw_path()).map_err(|rejection| {
        debug!(
            request_id = ctx.request_id(),
            ?rejection,
            "request target refused"
        );
        GatewayError::BadRequest
    })?;
    let host = request_host(request)?;
    match ctx.runtime.routes.lookup(host, path, &request.method) {
        RouteMatch::Found(route) => Ok(route.clone()),
        RouteMatch::MethodNotAllowed { allow } => Err(GatewayError::MethodNotAllowed {
            allow: allow.clone(),
        }),
        RouteMatch::NotFound => Err(GatewayError::NotFound),
    }
}

/// The request's host as routes match it (see `http_policy::route_host`): one `Host` header,
/// or the HTTP/2 authority; a malformed one is a bad request.
fn request_host(request: &RequestHeader) -> Result<Option<&str>, GatewayError> {
    let mut hosts = request.headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(GatewayError::BadRequest),
        (Some(value), None) => value.to_str().map_err(|_| GatewayError::BadRequest)?,
        (None, _) => match request.uri.authority() {
            Some(authority) => authority.as_str(),
            None => return Ok(None),
        },
    };
    route_host(host)
        .map(Some)
        .map_err(|_| GatewayError::BadRequest)
}

/// Refuses a body announced as larger than the route allows, before reading any of it.
fn check_declared_length(request: &RequestHeader, limit: u64) -> Result<(), GatewayError> {
    let Some(length) = request.headers.get(header::CONTENT_LENGTH) else {
        return Ok(());
    };
    let length: u64 = length
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(GatewayError::BadRequest)?;
    if length > limit {
        return Err(GatewayError::PayloadTooLarge);
    }
    Ok(())
}

/// `request_body_filter`: counts streamed body bytes against the route's limit.
pub(super) fn count_body(
    ctx: &mut RequestCtx,
    chunk: Option<&bytes::Bytes>,
) -> Result<(), GatewayError> {
    ctx.body_bytes += chunk.map_or(0, |chunk| chunk.len() as u64);
    let limit = ctx
        .route
        .as_ref()
        .map_or(u64::MAX, |route| route.max_body_bytes);
    if ctx.body_bytes > limit {
        return Err(GatewayError::PayloadTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_as_routes_match_it() {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        request.append_header("Host", "Admin.Test.:8080").unwrap();
        assert_eq!(request_host(&request), Ok(Some("Admin.Test")));
        request.insert_header("Host", "admin..test").unwrap();
        assert_eq!(request_host(&request), Err(GatewayError::BadRequest));
    }

    #[test]
    fn duplicate_host_is_bad_request() {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        request.append_header("Host", "a").unwrap();
        request.append_header("Host", "b").unwrap();
        assert_eq!(request_host(&request), Err(GatewayError::BadRequest));
    }

    #[test]
    fn declared_length_limit() {
        let mut request = RequestHeader::build("POST", b"/", None).unwrap();
        request.insert_header("Content-Length", "11").unwrap();
        assert_eq!(
            check_declared_length(&request, 10),
            Err(GatewayError::PayloadTooLarge)
        );
        assert_eq!(check_declared_length(&request, 11), Ok(()));
    }
}
