//! Request header hygiene: strip every client copy of a protected header, then inject ours.
//!
//! A header is protected when keyway owns its value upstream: injected credentials, identity
//! headers, `X-Request-Id`, and a route's `strip_request_headers`. Matching ignores case and
//! treats `_` as `-` (many servers do), every copy is removed, and so is any header the client
//! named in `Connection:` (a hop-by-hop nomination could otherwise make a later hop drop the
//! credential we inject).

use crate::http_policy::forwarded::ClientChain;
use crate::http_policy::{normalise_name, same_header};
use crate::identity::Principal;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// The request id header keyway sets on both legs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh request id: a random UUID, lower-case hyphenated, ready to send.
pub fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(id).expect("a UUID is a valid header value")
}

/// Hop-by-hop or proxy-only headers that never go upstream, and what a client could claim
/// about its origin: keyway writes `X-Forwarded-*` itself, from what it can vouch for.
const NEVER_FORWARDED: [&str; 9] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
];

/// Header names as Pingora writes them: handing it the bytes saves a title-cased copy of the
/// name on every insert (Pingora keeps a case map; lower case is as valid on the wire).
type WireName = Bytes;

const REQUEST_ID_WIRE: WireName = Bytes::from_static(b"x-request-id");
const X_FORWARDED_FOR: WireName = Bytes::from_static(b"x-forwarded-for");
const X_FORWARDED_PROTO: WireName = Bytes::from_static(b"x-forwarded-proto");
const X_FORWARDED_HOST: WireName = Bytes::from_static(b"x-forwarded-host");

fn wire_name(name: &HeaderName) -> WireName {
    Bytes::copy_from_slice(name.as_str().as_bytes())
}

/// Sets `X-Request-Id` on a response to the client.
pub fn set_response_request_id(
    response: &mut ResponseHeader,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    response.insert_header(REQUEST_ID_WIRE, request_id.clone())
}

/// Where a request came from, as keyway tells the upstream (values borrowed from the request
/// and the runtime: writing them costs one allocation, the `X-Forwarded-For` text).
#[derive(Debug)]
pub struct Forwarding<'a> {
    /// `X-Forwarded-For`: the client, trusted hops, the peer (`None` off TCP).
    pub chain: Option<&'a ClientChain>,
    /// `X-Forwarded-Proto`.
    pub proto: &'a HeaderValue,
    /// `X-Forwarded-Host`: the host the client asked for.
    pub host: Option<&'a HeaderValue>,
}

/// What one route does to request headers, compiled at start-up.
#[derive(Debug, Default, Clone)]
pub struct HeaderPolicy {
    /// Normalised names (lower case, `-`) removed from every client request.
    protected: Vec<String>,
    /// Credential headers injected upstream, values marked sensitive.
    inject: Vec<(WireName, HeaderValue)>,
    /// Identity headers: header name and the principal claim (dotted path) that fills it.
    identity: Vec<(WireName, String)>,
}

impl HeaderPolicy {
    /// `strip`: extra names to remove; `inject`: credential headers; `identity`: header <- claim.
    pub fn new<'a>(
        strip: impl IntoIterator<Item = &'a str>,
        inject: Vec<(HeaderName, HeaderValue)>,
        identity: Vec<(HeaderName, String)>,
    ) -> Self {
        let mut names: Vec<String> = strip.into_iter().map(normalise_name).collect();
        names.extend(inject.iter().map(|(name, _)| normalise_name(name.as_str())));
        names.extend(
            identity
                .iter()
                .map(|(name, _)| normalise_name(name.as_str())),
        );
        names.extend(
            [REQUEST_ID.as_str()]
                .into_iter()
                .chain(NEVER_FORWARDED)
                .map(normalise_name),
        );
        names.sort_unstable();
        names.dedup();
        let inject = inject
            .into_iter()
            .map(|(name, mut value)| {
                value.set_sensitive(true);
                (wire_name(&name), value)
            })
            .collect();
        let identity = identity
            .into_iter()
            .map(|(name, claim)| (wire_name(&name), claim))
            .collect();
        HeaderPolicy {
            protected: names,
            inject,
            identity,
        }
    }

    fn is_protected(&self, name: &str) -> bool {
        self.protected
            .iter()
            .any(|protected| same_header(name, protected))
    }

    /// Rewrites an upstream request: strip, then set the request id, the origin, credentials
    /// and identity.
    pub fn apply(
        &self,
        request: &mut RequestHeader,
        request_id: &HeaderValue,
        principal: &Principal,
        forwarding: &Forwarding<'_>,
    ) {
        let keep_upgrade = strip_connection_nominees(request);
        let doomed: Vec<HeaderName> = request
            .headers
            .keys()
            .filter(|name| self.is_protected(name.as_str()))
            .cloned()
            .collect();
        for name in doomed {
            request.remove_header(&name);
        }
        if keep_upgrade {
            let connection = Bytes::from_static(b"connection");
            insert(request, &connection, HeaderValue::from_static("upgrade"));
        }
        insert(request, &REQUEST_ID_WIRE, request_id.clone());
        forwarding.apply(request);
        for (name, value) in &self.inject {
            insert(request, name, value.clone());
        }
        for (name, claim) in &self.identity {
            let value = principal
                .claim_text(claim)
                .and_then(|text| HeaderValue::try_from(text).ok());
            if let Some(value) = value {
                insert(request, name, value);
            }
        }
    }
}

impl Forwarding<'_> {
    fn apply(&self, request: &mut RequestHeader) {
        let chain = self.chain.map(|chain| {
            HeaderValue::from_maybe_shared(Bytes::from(chain.header_value()))
                .expect("addresses are header text")
        });
        if let Some(chain) = chain {
            insert(request, &X_FORWARDED_FOR, chain);
        }
        insert(request, &X_FORWARDED_PROTO, self.proto.clone());
        if let Some(host) = self.host {
            insert(request, &X_FORWARDED_HOST, host.clone());
        }
    }
}

fn insert(request: &mut RequestHeader, name: &WireName, value: HeaderValue) {
    request
        .insert_header(name.clone(), value)
        .expect("a valid header name and value always insert");
}

/// Removes `Connection` and every header it nominates; says whether it asked for an upgrade.
fn strip_connection_nominees(request: &mut RequestHeader) -> bool {
    let mut upgrade = false;
    let mut nominees = Vec::new();
    for value in request.headers.get_all(http::header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            } else if !token.is_empty() {
                nominees.push(normalise_name(token));
            }
        }
    }
    request.remove_header(&http::header::CONNECTION);
    if !nominees.is_empty() {
        let doomed: Vec<HeaderName> = request
            .headers
            .keys()
            .filter(|name| {
                nominees
                    .iter()
                    .any(|nominee| same_header(name.as_str(), nominee))
            })
            .cloned()
            .collect();
        for name in doomed {
            request.remove_header(&name);
        }
    }
    upgrade && request.headers.contains_key(http::header::UPGRADE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HeaderPolicy {
        HeaderPolicy::new(
            ["x-auth-subject"],
            vec![(
                HeaderName::from_static("asapp-api-secret"),
                HeaderValue::from_static("configured"),
            )],
            vec![(HeaderName::from_static("x-auth-email"), "email".to_owned())],
        )
    }

    #[test]
    fn strips_every_variant_and_injects_once() {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in [
            ("ASAPP-API-SECRET", "a"),
            ("asapp_api_secret", "b"),
            ("asapp-api-secret", "c"),
            ("X_Auth_Subject", "root"),
            ("x-request-id", "spoofed"),
            ("Connection", "asapp-api-secret, x-keep"),
            ("x-keep", "gone"),
            ("x-other", "stays"),
        ] {
            request.append_header(name.to_owned(), value).unwrap();
        }
        let principal = Principal::with_claims(
            [("email".to_owned(), "a@example.com".into())]
                .into_iter()
                .collect(),
        );
        request
            .append_header("X-Auth-Email", "spoofed@example.com")
            .unwrap();
        request.append_header("X-Forwarded-For", "6.6.6.6").unwrap();
        request.append_header("X_Real_IP", "6.6.6.6").unwrap();
        request.append_header("Forwarded", "for=6.6.6.6").unwrap();
        let trusted = ["127.0.0.1/32".parse().unwrap()];
        let chain = crate::http_policy::forwarded::client_chain(
            "127.0.0.1".parse().unwrap(),
            ["6.6.6.6, 203.0.113.9"].into_iter(),
            &trusted,
        );
        let (proto, host) = (
            HeaderValue::from_static("https"),
            HeaderValue::from_static("gateway.test"),
        );
        let forwarding = Forwarding {
            chain: Some(&chain),
            proto: &proto,
            host: Some(&host),
        };
        policy().apply(
            &mut request,
            &HeaderValue::from_static("rid"),
            &principal,
            &forwarding,
        );
        let emails: Vec<_> = request.headers.get_all("x-auth-email").iter().collect();
        assert_eq!(emails, vec!["a@example.com"]);
        let values: Vec<_> = request.headers.get_all("asapp-api-secret").iter().collect();
        assert_eq!(values, vec!["configured"]);
        assert!(request.headers.get("asapp_api_secret").is_none());
        assert!(request.headers.get("x_auth_subject").is_none());
        assert!(request.headers.get("x-keep").is_none());
        assert!(request.headers.get("connection").is_none());
        assert_eq!(request.headers.get("x-request-id").unwrap(), "rid");
        assert_eq!(request.headers.get("x-other").unwrap(), "stays");
        let forwarded_for: Vec<_> = request.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded_for, vec!["203.0.113.9, 127.0.0.1"]);
        assert_eq!(request.headers.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(
            request.headers.get("x-forwarded-host").unwrap(),
            "gateway.test"
        );
        assert!(request.headers.get("forwarded").is_none());
        assert!(request.headers.get("x_real_ip").is_none());
    }

    #[test]
    fn injected_values_are_sensitive_in_debug_output() {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        let proto = HeaderValue::from_static("http");
        let forwarding = Forwarding {
            chain: None,
            proto: &proto,
            host: None,
        };
        policy().apply(
            &mut request,
            &HeaderValue::from_static("rid"),
            &Principal::anonymous(),
            &forwarding,
        );
        assert!(!format!("{request:?}").contains("configured"));
    }
}
