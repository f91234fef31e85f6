//! `[upstreams.NAME]`, `[credentials.NAME]` and `[[routes]]`, plus the routes of the configured
//! built-in APIs: validated into specs that name what they use (the build step resolves them).

use super::field::{Checker, Field, List};
use super::identity::{ExchangeSettings, ProviderSettings};
use super::raw::{RawRoute, RawUpstream};
use super::secret::Secret;
use super::server::existing_file;
use super::{ApiKeySettings, ConverseSettings};
use crate::http_policy::body_schema::BodySchema;
use crate::http_policy::template::PathTemplate;
use crate::http_policy::{MAX_HELD_BODY_BYTES, RESERVED_HEADERS, normalise_name, validate_prefix};
use crate::identity::{
    AuthKind, EndpointKind, HOSTED_EMAIL_AUTHENTICATE_PATH, HOSTED_EMAIL_REQUEST_PATH, TenantScope,
};
use http::{HeaderName, HeaderValue, Method};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One `[upstreams.NAME]`: where to connect and how; addresses are resolved when keyway starts.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    /// `host:port`, checked for shape (not looked up) here.
    pub addresses: Vec<String>,
    pub tls: bool,
    pub sni: String,
    pub verify_cert: bool,
    /// PEM CA certificates trusted instead of the system roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A `[credentials.NAME]` set: header names and their secret values, each checked to be a valid
/// header.
pub type CredentialSet = Vec<(HeaderName, Secret)>;

/// Where a route sends an admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// The named `[upstreams.NAME]`.
    Upstream(String),
    /// A built-in API answered by keyway itself.
    Endpoint(EndpointKind),
}

/// Which paths a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePath {
    /// `path_prefix`: the prefix and everything below it (segment-aware).
    Prefix(String),
    /// `path`: one operation, `{name}` matching one segment. Beats any prefix route.
    Template(PathTemplate),
}

impl RoutePath {
    /// As written in the config.
    pub fn as_str(&self) -> &str {
        match self {
            RoutePath::Prefix(prefix) => prefix,
            RoutePath::Template(template) => template.as_str(),
        }
    }
}

/// A route's `request_schema`: the file, and the JSON document read from it (checked to
/// compile; the build step compiles it for use).
#[derive(Debug, Clone)]
pub struct RequestSchemaSpec {
    pub file: PathBuf,
    pub document: Arc<serde_json::Value>,
}

/// One route, validated: a `[[routes]]` entry or a built-in API's route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub path: RoutePath,
    /// Lower-case host name without port; `None` matches any host.
    pub host: Option<String>,
    /// `None` allows every method; `GET` always brings `HEAD`.
    pub methods: Option<Vec<Method>>,
    pub target: TargetSpec,
    /// Any-of, in the written order.
    pub auth: Vec<AuthKind>,
    /// The `[credentials.NAME]` set injected upstream.
    pub credentials: Option<String>,
    /// Upstream header <- principal claim (dotted path).
    pub identity_headers: Vec<(HeaderName, String)>,
    pub strip_request_headers: Vec<HeaderName>,
    pub max_body_bytes: u64,
    /// Which identity providers' credentials a `jwt` or `exchange` route accepts.
    pub tenants: TenantScope,
    /// The path below the prefix is a secret (a token to delete): never logged.
    pub secret_path_tail: bool,
    /// Every body must satisfy this JSON Schema before it goes upstream.
    pub request_schema: Option<RequestSchemaSpec>,
}

/// The configured services routes may use, as far as they validated.
pub(super) struct Services<'a> {
    /// Outer: `[converse]` written; inner: valid.
    pub converse: Option<Option<&'a ConverseSettings>>,
    /// One entry per `[[identity_providers]]`, `None` where it did not validate.
    pub providers: &'a [Option<ProviderSettings>],
    pub exchange: Option<Option<&'a ExchangeSettings>>,
    pub hosted_email: bool,
    pub api_keys: Option<Option<&'a ApiKeySettings>>,
}

impl Services<'_> {
    /// Why `kind` cannot be used with what is configured, if it cannot.
    fn missing(&self, kind: AuthKind) -> Option<&'static str> {
        match kind {
            AuthKind::None => None,
            AuthKind::Converse if self.converse.is_none() => {
                Some("authenticator \"converse\" needs a [converse] section")
            }
            AuthKind::Jwt if self.providers.is_empty() => {
                Some("authenticator \"jwt\" needs at least one [[identity_providers]] entry")
            }
            AuthKind::Exchange if self.exchange.is_none() => {
                Some("authenticator \"exchange\" needs an [exchange] section")
            }
            AuthKind::HostedEmail if !self.hosted_email => {
                Some("authenticator \"hosted_email\" needs a [hosted_email] section")
            }
            AuthKind::ApiKey if self.api_keys.is_none() => {
                Some("authenticator \"api_key\" needs an [api_keys] section")
            }
            _ => None,
        }
    }

    fn provider_settings(&self) -> impl Iterator<Item = &ProviderSettings> {
        self.providers.iter().flatten()
    }

    /// Whether an identity provider or an API-key client serves `customer`.
    fn knows_customer(&self, customer: &str) -> bool {
        let clients = self
            .api_keys
            .flatten()
            .map_or(&[][..], |keys| &keys.clients);
        self.provider_settings()
            .any(|provider| provider.customer_id == customer)
            || clients
                .iter()
                .any(|client| client.customers.iter().any(|known| known == customer))
    }
}

/// What every route is validated against.
pub(super) struct RouteContext<'a> {
    pub upstream_names: Vec<&'a str>,
    pub credential_names: Vec<&'a str>,
    pub default_body_limit: u64,
    /// The config file's directory: relative file names start here.
    pub base: &'a Path,
    pub services: Services<'a>,
}

pub(super) fn compile_upstreams(
    raw: BTreeMap<String, RawUpstream>,
    base: &Path,
    checker: &mut Checker,
) -> Option<Vec<UpstreamSpec>> {
    // Every upstream is checked (collected first), then the set is valid only if each is.
    let compiled: Vec<Option<UpstreamSpec>> = raw
        .into_iter()
        .map(|(name, upstream)| compile_upstream(name, upstream, base, checker))
        .collect();
    compiled.into_iter().collect()
}

fn compile_upstream(
    name: String,
    raw: RawUpstream,
    base: &Path,
    checker: &mut Checker,
) -> Option<UpstreamSpec> {
    let key = |field: &str| format!("upstreams.{name}.{field}");
    let addresses = checker.require_list(
        &key("addresses"),
        raw.addresses,
        "at least one address is required",
    );
    for (index, address) in addresses.iter().flatten().enumerate() {
        checker.check(
            format!("{}[{index}]", key("addresses")),
            check_host_port(address),
        );
    }
    let tls = checker.get(&key("tls"), raw.tls);
    let sni = checker.get(&key("sni"), raw.sni);
    if tls == Some(true) && sni.as_deref() == Some("") {
        checker.fail(key("sni"), "is required when tls = true");
    }
    let verify_cert = checker.get(&key("verify_cert"), raw.verify_cert);
    let ca_file = checker
        .get(&key("ca_file"), raw.ca_file)
        .map(|file| existing_file(base, &file, &key("ca_file"), checker));
    let mut timeout = |field: &str, value| {
        let ms = checker.get(&key(field), value)?;
        if !(1..=3_600_000).contains(&ms) {
            checker.fail(key(field), "must be between 1 and 3600000 milliseconds");
        }
        Some(Duration::from_millis(ms))
    };
    let connect_timeout = timeout("connect_timeout_ms", raw.connect_timeout_ms);
    let read_timeout = timeout("read_timeout_ms", raw.read_timeout_ms);
    let write_timeout = timeout("write_timeout_ms", raw.write_timeout_ms);
    let idle_timeout = timeout("idle_timeout_ms", raw.idle_timeout_ms);
    Some(UpstreamSpec {
        addresses: addresses?,
        tls: tls?,
        sni: sni?,
        verify_cert: verify_cert?,
        ca_file,
        connect_timeout: connect_timeout?,
        read_timeout: read_timeout?,
        write_timeout: write_timeout?,
        idle_timeout: idle_timeout?,
        name,
    })
}

/// `host:port` in shape: a non-empty host (IPv6 in brackets) and a port number. Whether the
/// host resolves is found out when keyway starts, not by `check-config`.
pub(super) fn check_host_port(address: &str) -> Result<(), String> {
    let shaped = address.rsplit_once(':').is_some_and(|(host, port)| {
        let bracketed = host.starts_with('[') && host.ends_with(']');
        let host_ok = !host.is_empty() && (bracketed || !host.contains([':', '[', ']', '/']));
        host_ok && port.parse::<u16>().is_ok()
    });
    if shaped {
        Ok(())
    } else {
        Err(format!("{address:?} is not a host:port address"))
    }
}

pub(super) fn compile_credentials(
    raw: BTreeMap<String, BTreeMap<String, Field<Secret>>>,
    checker: &mut Checker,
) -> Option<BTreeMap<String, CredentialSet>> {
    let mut sets = BTreeMap::new();
    let mut valid = true;
    for (set_name, headers) in raw {
        if headers.is_empty() {
            checker.fail(
                format!("credentials.{set_name}"),
                "must name at least one header",
            );
        }
        let mut set = Vec::new();
        for (header, secret) in headers {
            let key = format!("credentials.{set_name}.{header}");
            let name = checker.check(&key, header_name(&header));
            let secret = checker.require(&key, secret);
            // The value is a secret: the message must not quote it.
            let secret = secret.and_then(|secret| {
                checker.check(
                    &key,
                    HeaderValue::from_str(secret.expose())
                        .map(|_| secret)
                        .map_err(|_| "value is not a valid HTTP header value".to_owned()),
                )
            });
            match name.zip(secret) {
                Some(pair) => set.push(pair),
                None => valid = false,
            }
        }
        sets.insert(set_name, set);
    }
    valid.then_some(sets)
}

/// A header name keyway may strip or set: valid, and not one it must own itself.
pub(super) fn header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&normalise_name(name).as_str()) {
        return Err(format!(
            "{name:?} is managed by keyway and cannot be configured"
        ));
    }
    Ok(parsed)
}

pub(super) fn compile_routes(
    raw: Vec<RawRoute>,
    context: &RouteContext,
    checker: &mut Checker,
) -> Option<Vec<RouteSpec>> {
    if raw.is_empty() {
        checker.fail("routes", "at least one [[routes]] entry is required");
    }
    let compiled: Vec<Option<RouteSpec>> = raw
        .into_iter()
        .enumerate()
        .map(|(index, route)| compile_route(&format!("routes[{index}]"), route, context, checker))
        .collect();
    check_unique_routes(&compiled, checker);
    let mut routes: Vec<RouteSpec> = compiled.into_iter().collect::<Option<_>>()?;
    for (key, builtin) in builtin_routes(&context.services) {
        let taken = routes
            .iter()
            .any(|user| user.path == builtin.path && user.host.is_none());
        if taken {
            checker.fail(
                key,
                format!(
                    "a [[routes]] entry already uses {:?}, which a built-in API needs",
                    builtin.path.as_str()
                ),
            );
        }
        routes.push(builtin);
    }
    Some(routes)
}

/// Names are unique; no two routes serve the same prefix (or template) and host for the same
/// method; no two templates could both serve a path with neither more specific.
fn check_unique_routes(routes: &[Option<RouteSpec>], checker: &mut Checker) {
    let same_methods = |a: &RouteSpec, b: &RouteSpec| match (&a.methods, &b.methods) {
        (Some(a), Some(b)) => a.iter().any(|method| b.contains(method)),
        _ => true,
    };
    let overlaps = |a: &RouteSpec, b: &RouteSpec| {
        a.host == b.host
            && same_methods(a, b)
            && match (&a.path, &b.path) {
                (RoutePath::Template(a), RoutePath::Template(b)) => a.is_ambiguous_with(b),
                (a, b) => a == b,
            }
    };
    for (index, route) in routes.iter().enumerate() {
        let Some(route) = route else { continue };
        let earlier = routes[..index]
            .iter()
            .enumerate()
            .filter_map(|(first, other)| Some((first, other.as_ref()?)));
        if let Some((first, _)) = earlier.clone().find(|(_, other)| other.name == route.name) {
            checker.fail(
                format!("routes[{index}].name"),
                format!("{:?} is already used by routes[{first}]", route.name),
            );
        }
        if let Some((first, other)) = earlier.clone().find(|(_, other)| overlaps(other, route)) {
            let (key, what) = match (&route.path, &other.path) {
                (RoutePath::Template(mine), RoutePath::Template(theirs)) if mine != theirs => (
                    "path",
                    format!(
                        "ambiguous with routes[{first}] ({:?}): a path could match both with neither more specific",
                        theirs.as_str()
                    ),
                ),
                (RoutePath::Template(_), _) => (
                    "path",
                    format!(
                        "routes[{first}] already serves this path and host for some of these methods"
                    ),
                ),
                (RoutePath::Prefix(_), _) => (
                    "path_prefix",
                    format!(
                        "routes[{first}] already serves this path_prefix and host for some of these methods"
                    ),
                ),
            };
            checker.fail(format!("routes[{index}].{key}"), what);
        }
    }
}

/// `path_prefix` or `path` (exactly one), validated.
fn compile_route_path(
    key: &str,
    prefix: Field<String>,
    path: Field<String>,
    checker: &mut Checker,
) -> Option<RoutePath> {
    let field = |name: &str| format!("{key}.{name}");
    // A value of the wrong type is reported by `get`; only two absent keys are "required".
    let both_absent = matches!((&prefix, &path), (Field::Absent, Field::Absent));
    let prefix = checker.get(&field("path_prefix"), prefix);
    let path = checker.get(&field("path"), path);
    match (prefix, path) {
        (Some(prefix), None) => checker.check(
            field("path_prefix"),
            validate_prefix(&prefix).map(|_| RoutePath::Prefix(prefix)),
        ),
        (None, Some(path)) => checker.check(
            field("path"),
            PathTemplate::parse(&path).map(RoutePath::Template),
        ),
        (Some(_), Some(_)) => {
            checker.fail(field("path"), "give path_prefix or path, not both");
            None
        }
        (None, None) => {
            if both_absent {
                checker.fail(
                    field("path_prefix"),
                    "required (or path, for one operation)",
                );
            }
            None
        }
    }
}

fn compile_route(
    key: &str,
    raw: RawRoute,
    context: &RouteContext,
    checker: &mut Checker,
) -> Option<RouteSpec> {
    let field = |name: &str| format!("{key}.{name}");
    let name = checker.require(&field("name"), raw.name);
    if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        checker.fail(field("name"), "must not be empty");
    }
    let path = compile_route_path(key, raw.path_prefix, raw.path, checker);
    let host = compile_host(
        &field("host"),
        checker.get(&field("host"), raw.host),
        checker,
    );
    let methods = compile_methods(&field("methods"), raw.methods, checker);
    let upstream = checker.require(&field("upstream"), raw.upstream);
    let upstream = upstream.filter(|upstream| {
        let known = context.upstream_names.contains(&upstream.as_str());
        if !known {
            checker.fail(field("upstream"), format!("unknown upstream {upstream:?}"));
        }
        known
    });
    let auth = compile_auth(&field("auth"), raw.auth, &context.services, checker);
    let tenants = compile_tenant_scope(
        key,
        raw.customers,
        raw.providers,
        auth.as_deref(),
        context,
        checker,
    );
    let credentials = checker.get(&field("credentials"), raw.credentials);
    let credentials_known = credentials.as_deref().is_none_or(|name| {
        let known = context.credential_names.contains(&name);
        if !known {
            checker.fail(
                field("credentials"),
                format!("unknown credentials {name:?}"),
            );
        }
        known
    });
    let identity_headers = compile_identity_headers(key, raw.identity_headers, checker);
    let strip = checker.list(&field("strip_request_headers"), raw.strip_request_headers);
    let strip: Option<Vec<HeaderName>> = strip.map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| {
                checker.check(
                    format!("{key}.strip_request_headers[{index}]"),
                    header_name(name),
                )
            })
            .collect()
    });
    let request_schema =
        compile_request_schema(key, name.as_deref(), raw.request_schema, context, checker);
    let max_body_bytes = compile_body_limit(
        &field("max_body_bytes"),
        raw.max_body_bytes,
        matches!(request_schema, Some(Some(_))),
        context.default_body_limit,
        checker,
    );
    // An unknown set was reported above; the route is not valid without it.
    credentials_known.then_some(())?;
    Some(RouteSpec {
        name: name?,
        path: path?,
        host: host?,
        methods: methods?,
        target: TargetSpec::Upstream(upstream?),
        auth: auth?,
        credentials,
        identity_headers: identity_headers?,
        strip_request_headers: strip?,
        max_body_bytes: max_body_bytes?,
        tenants: tenants?,
        secret_path_tail: false,
        request_schema: request_schema?,
    })
}

/// `max_body_bytes`, or the server's default. A route that validates bodies holds each one
/// before forwarding it, in Pingora's retry buffer: at most [`MAX_HELD_BODY_BYTES`].
fn compile_body_limit(
    key: &str,
    raw: Field<u64>,
    holds_body: bool,
    default: u64,
    checker: &mut Checker,
) -> Option<u64> {
    let written = matches!(raw, Field::Valid(_));
    let limit = checker.get(key, raw).unwrap_or(default);
    if limit == 0 {
        checker.fail(key, "must be at least 1");
    }
    if !holds_body {
        return Some(limit);
    }
    if written && limit > MAX_HELD_BODY_BYTES {
        checker.fail(
            key,
            format!("a route with request_schema holds each body before forwarding it: at most {MAX_HELD_BODY_BYTES}"),
        );
    }
    Some(limit.min(MAX_HELD_BODY_BYTES))
}

/// `request_schema`: a JSON file that compiles as a draft 2020-12 schema. `Some(None)`: none.
fn compile_request_schema(
    key: &str,
    route: Option<&str>,
    raw: Field<String>,
    context: &RouteContext,
    checker: &mut Checker,
) -> Option<Option<RequestSchemaSpec>> {
    let key = format!("{key}.request_schema");
    let Some(file) = checker.get(&key, raw) else {
        return Some(None);
    };
    let route = route.unwrap_or("?");
    let path = context.base.join(&file);
    let document = super::files::read_named_file(&path)
        .map_err(|error| format!("route {route:?}: cannot read {file:?}: {error}"))
        .and_then(|bytes| {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|error| format!("route {route:?}: {file:?} is not JSON: {error}"))
        })
        .and_then(|document| {
            BodySchema::compile(&document)
                .map(|_| document)
                .map_err(|why| format!("route {route:?}: {file:?} is {why}"))
        });
    let document = checker.check(key, document)?;
    Some(Some(RequestSchemaSpec {
        file: path,
        document: Arc::new(document),
    }))
}

/// A built-in API's `api_prefix`: a literal path, kept without its trailing slash.
pub(super) fn compile_api_prefix(
    key: &str,
    field: Field<String>,
    example: &str,
    checker: &mut Checker,
) -> Option<String> {
    let prefix = checker.get(key, field)?;
    let prefix = prefix.trim_end_matches('/').to_owned();
    if prefix.is_empty() || validate_prefix(&format!("{prefix}/")).is_err() {
        checker.fail(key, format!("must be a literal path such as {example:?}"));
        return None;
    }
    Some(prefix)
}

/// `Some(None)`: any host.
fn compile_host(key: &str, host: Option<String>, checker: &mut Checker) -> Option<Option<String>> {
    let Some(host) = host else {
        return Some(None);
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() || host.contains([':', '/', ' ']) {
        checker.fail(key, "must be a bare host name without port");
    }
    Some(Some(host))
}

/// `Some(None)`: every method.
fn compile_methods(
    key: &str,
    raw: List<super::raw::HttpMethod>,
    checker: &mut Checker,
) -> Option<Option<Vec<Method>>> {
    if matches!(raw, Field::Absent) {
        return Some(None);
    }
    let methods = checker.list(key, raw)?;
    if methods.is_empty() {
        checker.fail(
            key,
            "must list at least one method, or be left out to allow all",
        );
    }
    let mut methods: Vec<Method> = methods.into_iter().map(|method| method.0).collect();
    // HEAD is GET without a body; allowing one allows the other.
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    Some(Some(methods))
}

fn compile_auth(
    key: &str,
    raw: List<AuthKind>,
    services: &Services,
    checker: &mut Checker,
) -> Option<Vec<AuthKind>> {
    let kinds = checker.require_list(
        key,
        raw,
        "must list at least one authenticator (\"none\" for a public route)",
    )?;
    if kinds.contains(&AuthKind::None) && kinds.len() > 1 {
        checker.fail(key, "\"none\" cannot be combined with other authenticators");
    }
    for (index, kind) in kinds.iter().enumerate() {
        if let Some(message) = services.missing(*kind) {
            checker.fail(format!("{key}[{index}]"), message);
        }
    }
    Some(kinds)
}

/// `customers` / `providers` only make sense on `jwt` and `exchange` routes and must name
/// configured ones.
fn compile_tenant_scope(
    key: &str,
    customers: List<String>,
    providers: List<i64>,
    auth: Option<&[AuthKind]>,
    context: &RouteContext,
    checker: &mut Checker,
) -> Option<TenantScope> {
    let customers = checker.list(&format!("{key}.customers"), customers)?;
    let providers = checker.list(&format!("{key}.providers"), providers)?;
    let any_kind = |wanted: fn(AuthKind) -> bool| {
        auth.is_none_or(|kinds| kinds.iter().any(|kind| wanted(*kind)))
    };
    let scoped = any_kind(AuthKind::has_customers);
    if !customers.is_empty() && !scoped {
        checker.fail(
            format!("{key}.customers"),
            "customers restrict \"jwt\", \"exchange\" and \"api_key\" routes only",
        );
    }
    let tenanted = any_kind(AuthKind::has_tenant);
    if !providers.is_empty() && !tenanted {
        checker.fail(
            format!("{key}.providers"),
            "providers restrict \"jwt\" and \"exchange\" routes only",
        );
    }
    for (index, customer) in customers.iter().enumerate() {
        if !context.services.knows_customer(customer) {
            checker.fail(
                format!("{key}.customers[{index}]"),
                format!("no identity provider or API-key client for customer {customer:?}"),
            );
        }
    }
    let configured = || context.services.provider_settings();
    for (index, id) in providers.iter().enumerate() {
        if !configured().any(|provider| provider.provider_id == *id) {
            checker.fail(
                format!("{key}.providers[{index}]"),
                format!("no identity provider with provider_id {id}"),
            );
        }
    }
    Some(TenantScope {
        customers,
        providers,
    })
}

fn compile_identity_headers(
    key: &str,
    raw: Field<BTreeMap<String, String>>,
    checker: &mut Checker,
) -> Option<Vec<(HeaderName, String)>> {
    let raw = checker.get(&format!("{key}.identity_headers"), raw)?;
    let mut headers = Vec::new();
    for (header, claim) in raw {
        let header_key = format!("{key}.identity_headers.{header}");
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            checker.fail(&header_key, "must name a claim, e.g. \"sub\" or \"org.id\"");
        }
        if let Some(name) = checker.check(header_key, header_name(&header)) {
            headers.push((name, claim));
        }
    }
    Some(headers)
}

/// The routes of the configured built-in APIs, each with the config key that asked for it.
fn builtin_routes(services: &Services) -> Vec<(&'static str, RouteSpec)> {
    let mut routes = Vec::new();
    if let Some(Some(converse)) = services.converse {
        routes.extend(
            converse_routes(converse)
                .into_iter()
                .map(|route| ("converse.api_prefix", route)),
        );
    }
    if let Some(Some(exchange)) = services.exchange {
        let route = builtin(
            "exchange.authenticate",
            format!("{}/", exchange.api_prefix),
            (
                Method::POST,
                EndpointKind::ExchangeAuthenticate,
                AuthKind::None,
            ),
            64 * 1024,
        );
        routes.push(("exchange.api_prefix", route));
    }
    if services.hosted_email {
        let route = |name, path: &str, kind| {
            let endpoint = (Method::POST, kind, AuthKind::None);
            (
                "hosted_email",
                builtin(name, path.to_owned(), endpoint, 16 * 1024),
            )
        };
        routes.push(route(
            "hosted_email.request",
            HOSTED_EMAIL_REQUEST_PATH,
            EndpointKind::HostedEmailRequest,
        ));
        routes.push(route(
            "hosted_email.authenticate",
            HOSTED_EMAIL_AUTHENTICATE_PATH,
            EndpointKind::HostedEmailAuthenticate,
        ));
    }
    routes
}

/// The token API's routes: verify is public, the token calls need a Converse token.
fn converse_routes(converse: &ConverseSettings) -> Vec<RouteSpec> {
    let prefix = &converse.api_prefix;
    let route = |name, path, endpoint| builtin(name, path, endpoint, converse.max_body_bytes);
    let mut delete = route(
        "converse.token.delete",
        format!("{prefix}/token/"),
        (
            Method::DELETE,
            EndpointKind::ConverseDeleteToken,
            AuthKind::Converse,
        ),
    );
    delete.secret_path_tail = true;
    vec![
        route(
            "converse.tokens.delete",
            format!("{prefix}/tokens"),
            (
                Method::DELETE,
                EndpointKind::ConverseDeleteUserTokens,
                AuthKind::Converse,
            ),
        ),
        route(
            "converse.verify",
            format!("{prefix}/verify"),
            (
                Method::POST,
                EndpointKind::ConverseVerifyUser,
                AuthKind::None,
            ),
        ),
        route(
            "converse.token.verify",
            format!("{prefix}/token/verify"),
            (
                Method::POST,
                EndpointKind::ConverseVerifyToken,
                AuthKind::Converse,
            ),
        ),
        delete,
    ]
}

/// One route of a built-in API: a single method, no upstream, no credentials injected.
fn builtin(
    name: &str,
    path_prefix: String,
    (method, kind, auth): (Method, EndpointKind, AuthKind),
    max_body_bytes: u64,
) -> RouteSpec {
    RouteSpec {
        name: name.to_owned(),
        path: RoutePath::Prefix(path_prefix),
        host: None,
        methods: Some(vec![method]),
        target: TargetSpec::Endpoint(kind),
        auth: vec![auth],
        credentials: None,
        identity_headers: Vec::new(),
        strip_request_headers: Vec::new(),
        max_body_bytes,
        tenants: TenantScope::default(),
        secret_path_tail: false,
        request_schema: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_shapes() {
        for good in ["127.0.0.1:9000", "backend.internal:80", "[::1]:8080"] {
            assert!(check_host_port(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1",
            ":80",
            "host:port",
            "::1:80",
            "host:99999",
            "a/b:80",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
    }
}
