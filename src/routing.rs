//! Route matching: request-target checks, path-prefix validation and the compiled route table.
//!
//! keyway matches on exactly the bytes it forwards. Rather than normalising a path (and risking
//! that the upstream normalises it differently), any target whose meaning could change under
//! normalisation is refused with 400-01: dot segments, `//`, `;` parameters, backslashes,
//! control bytes, non-ASCII bytes, and percent-encodings of `/`, `\`, `%`, `;`, controls or
//! unreserved characters (`%2e`, `%61`, …). What remains decodes to the same segments it was
//! matched on, so a prefix route can be neither reached nor escaped by encoding tricks.

use crate::auth::AuthKind;
use crate::endpoints::EndpointKind;
use crate::headers::HeaderPolicy;
use crate::upstream::Upstream;
use http::{HeaderValue, Method};
use std::sync::Arc;

/// Why a request target was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRejection {
    /// Not origin-form (`/path?query`): absolute-form, authority-form or `*`.
    NotOriginForm,
    /// A byte that is not allowed unencoded (controls, space, `\`, non-ASCII, …).
    ForbiddenByte,
    /// `.` or `..` segment, or an empty segment (`//`).
    AmbiguousSegment,
    /// `;` path parameters, which some servers strip before routing.
    PathParameter,
    /// `%` not followed by two hex digits.
    MalformedEncoding,
    /// A percent-encoding that a server might decode into something that changes the match.
    DangerousEncoding,
}

/// Checks a raw request target and returns its path (the part before `?`).
pub fn check_request_target(target: &[u8]) -> Result<&str, TargetRejection> {
    if target.first() != Some(&b'/') {
        return Err(TargetRejection::NotOriginForm);
    }
    let path_len = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let (path, query) = target.split_at(path_len);
    check_path(path)?;
    if query.iter().any(|&b| !is_visible_ascii(b) || b == b'#') {
        return Err(TargetRejection::ForbiddenByte);
    }
    // Every byte was checked to be ASCII above.
    Ok(std::str::from_utf8(path).expect("checked ASCII"))
}

fn check_path(path: &[u8]) -> Result<(), TargetRejection> {
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let decoded = decode_hex_pair(path.get(i + 1..i + 3))?;
                if is_dangerous_when_decoded(decoded) {
                    return Err(TargetRejection::DangerousEncoding);
                }
                i += 3;
                continue;
            }
            b';' => return Err(TargetRejection::PathParameter),
            b if !is_path_byte(b) => return Err(TargetRejection::ForbiddenByte),
            _ => {}
        }
        i += 1;
    }
    let dot_segment = path.split(|&b| b == b'/').any(|s| s == b"." || s == b"..");
    if dot_segment || path.windows(2).any(|pair| pair == b"//") {
        return Err(TargetRejection::AmbiguousSegment);
    }
    Ok(())
}

fn decode_hex_pair(pair: Option<&[u8]>) -> Result<u8, TargetRejection> {
    let pair = pair.ok_or(TargetRejection::MalformedEncoding)?;
    let hex = |b: u8| {
        (b as char)
            .to_digit(16)
            .ok_or(TargetRejection::MalformedEncoding)
    };
    Ok((hex(pair[0])? * 16 + hex(pair[1])?) as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` without `%` (handled separately) and `;` (refused), plus `/`.
fn is_path_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn is_visible_ascii(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

fn is_dangerous_when_decoded(b: u8) -> bool {
    is_unreserved(b)
        || b < 0x20
        || b == 0x7f
        || matches!(b, b'/' | b'\\' | b'%' | b';' | b'?' | b'#')
}

/// Checks a configured `path_prefix`: literal, canonical, starting with `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err("must start with \"/\"".to_owned());
    }
    if !prefix.bytes().all(|b| is_unreserved(b) || b == b'/') {
        return Err("may contain only letters, digits, \"-._~\" and \"/\"".to_owned());
    }
    let probe = if prefix.ends_with('/') && prefix.len() > 1 {
        format!("{prefix}x")
    } else {
        prefix.to_owned()
    };
    check_path(probe.as_bytes())
        .map_err(|_| "must not contain \".\" or \"..\" segments or \"//\"".to_owned())
}

/// The customers and providers a route accepts tokens from; empty lists accept any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantScope {
    pub customers: Vec<String>,
    pub providers: Vec<i64>,
}

impl TenantScope {
    pub fn admits(&self, customer_id: &str, provider_id: i64) -> bool {
        (self.customers.is_empty()
            || self
                .customers
                .iter()
                .any(|customer| customer == customer_id))
            && (self.providers.is_empty() || self.providers.contains(&provider_id))
    }
}

/// Where an admitted request goes.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    Upstream(Arc<Upstream>),
    /// A built-in API answered by keyway itself.
    Endpoint(EndpointKind),
}

impl RouteTarget {
    /// The upstream's name, or `""` for a built-in endpoint.
    pub fn upstream_name(&self) -> &str {
        match self {
            RouteTarget::Upstream(upstream) => &upstream.name,
            RouteTarget::Endpoint(_) => "",
        }
    }
}

/// One compiled `[[routes]]` entry, or a built-in endpoint's route.
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    /// Lower-case host name without port; `None` matches any host.
    pub host: Option<String>,
    /// `None` allows every method.
    pub methods: Option<Vec<Method>>,
    pub target: RouteTarget,
    /// Any-of: the first authenticator that recognises a credential decides.
    pub auth: Vec<AuthKind>,
    pub headers: HeaderPolicy,
    pub max_body_bytes: u64,
    /// The path below the prefix is a secret (e.g. a token to delete): never log it.
    pub secret_path_tail: bool,
    /// Which identity providers' tokens a `jwt` route accepts.
    pub tenants: TenantScope,
    /// Query and body parameters that carry a credential of one of `auth`'s kinds: read before
    /// authenticating, never forwarded. Empty for most routes.
    pub secret_parameters: Vec<&'static str>,
    /// The `Allow` header for a 405 on this route's (host, prefix).
    allow: HeaderValue,
}

impl Route {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        path_prefix: String,
        host: Option<String>,
        methods: Option<Vec<Method>>,
        target: RouteTarget,
        auth: Vec<AuthKind>,
        headers: HeaderPolicy,
        max_body_bytes: u64,
    ) -> Self {
        let secret_parameters = auth
            .iter()
            .flat_map(|kind| kind.secret_parameters().iter().copied())
            .collect();
        Route {
            name,
            path_prefix,
            host,
            methods,
            target,
            secret_parameters,
            auth,
            headers,
            max_body_bytes,
            secret_path_tail: false,
            tenants: TenantScope::default(),
            allow: HeaderValue::from_static(""),
        }
    }

    /// Marks the path below the prefix as secret (see [`Route::loggable_path`]).
    pub fn with_secret_path_tail(mut self) -> Self {
        self.secret_path_tail = true;
        self
    }

    /// Restricts `jwt` to these customers and provider ids (empty: any).
    pub fn with_tenant_scope(mut self, customers: Vec<String>, providers: Vec<i64>) -> Self {
        self.tenants = TenantScope {
            customers,
            providers,
        };
        self
    }

    /// The request path as it may appear in a log line.
    pub fn loggable_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if self.secret_path_tail && path.len() > self.path_prefix.len() {
            std::borrow::Cow::Owned(format!("{}<redacted>", self.path_prefix))
        } else {
            std::borrow::Cow::Borrowed(path)
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method))
    }

    /// Segment-aware: `/api` matches `/api` and `/api/x` but not `/apix`; `/api/` matches `/api/x`.
    fn matches_path(&self, path: &str) -> bool {
        match path.strip_prefix(self.path_prefix.as_str()) {
            Some(rest) => {
                self.path_prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
            }
            None => false,
        }
    }

    fn matches_host(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(wanted), Some(host)) => wanted.eq_ignore_ascii_case(host),
            (Some(_), None) => false,
        }
    }

    fn same_group(&self, other: &Route) -> bool {
        self.path_prefix == other.path_prefix && self.host == other.host
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("path_prefix", &self.path_prefix)
            .field("host", &self.host)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The outcome of a route lookup.
#[derive(Debug)]
pub enum RouteMatch<'a> {
    Found(&'a Arc<Route>),
    MethodNotAllowed { allow: &'a HeaderValue },
    NotFound,
}

/// Routes ordered so that the first match is the best: longest prefix, then host-specific.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            (b.path_prefix.len(), b.host.is_some()).cmp(&(a.path_prefix.len(), a.host.is_some()))
        });
        let allows: Vec<HeaderValue> = routes
            .iter()
            .map(|route| group_allow(route, &routes))
            .collect();
        for (route, allow) in routes.iter_mut().zip(allows) {
            route.allow = allow;
        }
        RouteTable {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Finds the best route for `path` on `host`; among routes sharing that best (host, prefix),
    /// the first that allows `method`. A shorter prefix never catches a method the longer one refuses.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> RouteMatch<'_> {
        let mut candidates = self
            .routes
            .iter()
            .filter(|route| route.matches_host(host) && route.matches_path(path));
        let Some(best) = candidates.next() else {
            return RouteMatch::NotFound;
        };
        if best.allows(method) {
            return RouteMatch::Found(best);
        }
        match candidates
            .take_while(|route| route.same_group(best))
            .find(|route| route.allows(method))
        {
            Some(route) => RouteMatch::Found(route),
            None => RouteMatch::MethodNotAllowed { allow: &best.allow },
        }
    }
}

fn group_allow(route: &Route, all: &[Route]) -> HeaderValue {
    let mut methods: Vec<&str> = all
        .iter()
        .filter(|other| other.same_group(route))
        .flat_map(|other| other.methods.iter().flatten().map(Method::as_str))
        .collect();
    methods.sort_unstable();
    methods.dedup();
    HeaderValue::from_str(&methods.join(", ")).expect("method tokens are valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_targets() {
        assert_eq!(check_request_target(b"/api/x?a=1&b=%2F"), Ok("/api/x"));
        assert_eq!(check_request_target(b"/"), Ok("/"));
        assert_eq!(
            check_request_target(b"/api/caf%C3%A9/"),
            Ok("/api/caf%C3%A9/")
        );
        assert_eq!(check_request_target(b"/a/b.json"), Ok("/a/b.json"));
    }

    #[test]
    fn refuses_tricks() {
        use TargetRejection::*;
        let cases: &[(&[u8], TargetRejection)] = &[
            (b"/api/../admin", AmbiguousSegment),
            (b"/api/./x", AmbiguousSegment),
            (b"/api/..", AmbiguousSegment),
            (b"//admin", AmbiguousSegment),
            (b"/api//x", AmbiguousSegment),
            (b"/api/%2e%2e/admin", DangerousEncoding),
            (b"/api%2Fadmin", DangerousEncoding),
            (b"/%61dmin", DangerousEncoding),
            (b"/api/%252e", DangerousEncoding),
            (b"/api/%00", DangerousEncoding),
            (b"/api/%5c..", DangerousEncoding),
            (b"/api;x=1/", PathParameter),
            (b"/api\\..\\admin", ForbiddenByte),
            (b"/api/\x00", ForbiddenByte),
            (b"/api/\xc3\xa9", ForbiddenByte),
            (b"/api/%2", MalformedEncoding),
            (b"/api/%zz", MalformedEncoding),
            (b"http://evil/api", NotOriginForm),
            (b"*", NotOriginForm),
        ];
        for (target, expected) in cases {
            assert_eq!(
                check_request_target(target),
                Err(*expected),
                "{}",
                String::from_utf8_lossy(target)
            );
        }
    }

    #[test]
    fn prefix_validation() {
        assert!(validate_prefix("/api/").is_ok());
        assert!(validate_prefix("/").is_ok());
        assert!(validate_prefix("/api").is_ok());
        assert!(validate_prefix("api/").is_err());
        assert!(validate_prefix("/api/../x/").is_err());
        assert!(validate_prefix("/api//").is_err());
        assert!(validate_prefix("/a%2f/").is_err());
    }
}
