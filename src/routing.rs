//! Route matching: the compiled route table and its lookup. Routes hold resolved handles (the
//! upstream, the built-in endpoint, the authenticators, the header policy), so a request never
//! looks anything up by name. Matching is on the path exactly as forwarded, after the target
//! passed `http_policy::check_request_target`.

use crate::auth::AuthChain;
use crate::config::{RoutePath, RouteSpec};
use crate::endpoints::Endpoint;
use crate::headers::HeaderPolicy;
use crate::http_policy::body_schema::BodySchema;
use crate::identity::TenantScope;
use crate::upstream::Upstream;
use http::{HeaderName, HeaderValue, Method};
use prometheus::Histogram;
use std::sync::Arc;

/// Where an admitted request goes.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    Upstream(Arc<Upstream>),
    /// A built-in API answered by keyway itself.
    Endpoint(Endpoint),
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

/// What the build step resolved for a route's spec: the handles it holds.
pub struct Resolved {
    pub target: RouteTarget,
    pub auth: AuthChain,
    /// The route's credential set, ready to inject.
    pub inject: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed on every route (normalised names): credential headers only keyway may
    /// see, and every header name some route injects.
    pub stripped_everywhere: Vec<String>,
    /// The route's `request_schema`, compiled.
    pub request_schema: Option<Arc<BodySchema>>,
    /// The route's request-duration series.
    pub duration: Histogram,
}

/// One compiled `[[routes]]` entry, or a built-in endpoint's route.
pub struct Route {
    pub name: String,
    pub path: RoutePath,
    pub host: Option<String>,
    pub methods: Option<Vec<Method>>,
    pub target: RouteTarget,
    /// Any-of: see [`AuthChain::authenticate`].
    pub auth: AuthChain,
    pub headers: HeaderPolicy,
    pub max_body_bytes: u64,
    /// The path below the prefix is a secret (e.g. a token to delete): never log it.
    pub secret_path_tail: bool,
    /// Which identity providers' credentials a `jwt` or `exchange` route accepts.
    pub tenants: TenantScope,
    /// Query and body parameters that carry a credential of one of the route's
    /// authenticators: read before authenticating, never forwarded. Empty for most routes.
    pub secret_parameters: Vec<&'static str>,
    /// Every body must satisfy this schema before it goes upstream.
    pub request_schema: Option<Arc<BodySchema>>,
    /// The `Allow` header for a 405 on this route's (host, prefix).
    allow: HeaderValue,
    /// `keyway_request_duration_seconds{route=…}`, resolved once.
    pub duration: Histogram,
}

impl Route {
    /// Derives what the route strips and removes from where its authenticators' credentials
    /// travel: their headers, every header stripped everywhere, and their secret parameters.
    pub fn new(spec: &RouteSpec, resolved: Resolved) -> Self {
        let carried = resolved
            .auth
            .carriers()
            .flat_map(|carriers| carriers.headers.iter().map(String::as_str));
        let stripped = spec
            .strip_request_headers
            .iter()
            .map(HeaderName::as_str)
            .chain(carried)
            .chain(resolved.stripped_everywhere.iter().map(String::as_str));
        let identity = spec.identity_headers.clone();
        let headers = HeaderPolicy::new(stripped, resolved.inject, identity);
        let mut secret_parameters: Vec<&'static str> = resolved
            .auth
            .carriers()
            .flat_map(|carriers| carriers.secret_parameters.iter().copied())
            .collect();
        secret_parameters.sort_unstable();
        secret_parameters.dedup();
        Route {
            name: spec.name.clone(),
            path: spec.path.clone(),
            host: spec.host.clone(),
            methods: spec.methods.clone(),
            target: resolved.target,
            auth: resolved.auth,
            headers,
            max_body_bytes: spec.max_body_bytes,
            secret_path_tail: spec.secret_path_tail,
            tenants: spec.tenants.clone(),
            secret_parameters,
            request_schema: resolved.request_schema,
            allow: HeaderValue::from_static(""),
            duration: resolved.duration,
        }
    }

    /// Whether the body is read before the request goes upstream (to check it against the
    /// schema, or for credential parameters).
    pub fn holds_body(&self) -> bool {
        self.request_schema.is_some() || !self.secret_parameters.is_empty()
    }

    /// The request path as it may appear in a log line.
    pub fn loggable_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.path {
            RoutePath::Prefix(prefix) if self.secret_path_tail && path.len() > prefix.len() => {
                std::borrow::Cow::Owned(format!("{prefix}<redacted>"))
            }
            _ => std::borrow::Cow::Borrowed(path),
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method))
    }

    /// A prefix is segment-aware: `/api` matches `/api` and `/api/x` but not `/apix`; `/api/`
    /// matches `/api/x`. A template matches whole paths only.
    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            RoutePath::Prefix(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
            RoutePath::Template(template) => template.matches(path),
        }
    }

    /// Most specific first: templates (more literal segments first), then longer prefixes.
    fn specificity(&self) -> (bool, usize, usize, bool) {
        match &self.path {
            RoutePath::Template(template) => {
                (true, template.literal_count(), 0, self.host.is_some())
            }
            RoutePath::Prefix(prefix) => (false, 0, prefix.len(), self.host.is_some()),
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
        self.path == other.path && self.host == other.host
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("path", &self.path.as_str())
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

/// Routes ordered so that the first match is the best: templates (most literal segments
/// first), then the longest prefix; host-specific before any host.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
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
