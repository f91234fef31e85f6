//! Raw config -> compiled [`Config`]: every check, every problem named by its key.

use super::converse::{ConverseSettings, compile_cache, compile_converse, compile_store};
use super::hosted_email::{HostedEmailSettings, compile_hosted_email};
use super::identity::{ExchangeSettings, ProviderSettings, compile_exchange, compile_providers};
use super::raw::{RawConfig, RawRoute, RawServer, RawUpstream};
use super::secret::Secret;
use super::{AdminSettings, Config, ConfigProblem, LogSettings, ServerSettings, TlsFiles};
use crate::auth::{AuthKind, Available};
use crate::endpoints::EndpointKind;
use crate::endpoints::hosted_email::{AUTHENTICATE_USER_PATH, REQUEST_EMAIL_PATH};
use crate::headers::{HeaderPolicy, RESERVED, normalise_name};
use crate::routing::{Route, RouteTable, RouteTarget, validate_prefix};
use crate::upstream::{PeerSettings, Upstream};
use http::{HeaderName, HeaderValue, Method};
use pingora::utils::tls::{WrappedX509, parse_x509};
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Collects problems while compiling.
struct Checker<'a> {
    problems: &'a mut Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    /// Records `Err` as a problem at `key`; passes `Ok` through.
    fn check<T>(&mut self, key: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.fail(key, message)).ok()
    }
}

pub fn compile(raw: RawConfig, base: &Path, problems: &mut Vec<ConfigProblem>) -> Config {
    let mut checker = Checker { problems };
    let server = compile_server(&raw.server, base, &mut checker);
    let admin = AdminSettings {
        listen: checker
            .check(
                "admin.listen",
                parse_listen(&raw.admin.listen).map(|_| raw.admin.listen.clone()),
            )
            .unwrap_or_default(),
    };
    if server.listen.contains(&admin.listen) && !admin.listen.ends_with(":0") {
        checker.fail(
            "admin.listen",
            "must differ from every server.listen address",
        );
    }
    let log = LogSettings {
        level: checker
            .check(
                "log.level",
                tracing_subscriber::EnvFilter::try_new(&raw.log.level)
                    .map(|_| raw.log.level.clone())
                    .map_err(|_| format!("invalid log filter {:?}", raw.log.level)),
            )
            .unwrap_or_default(),
        access_log: raw.log.access_log,
    };
    let store = compile_store(&raw.store, base, checker.problems);
    let cache = compile_cache(&raw.cache, checker.problems);
    let converse = raw
        .converse
        .as_ref()
        .map(|converse| compile_converse(converse, checker.problems));
    let identity_providers = compile_providers(&raw.identity_providers, base, checker.problems);
    let exchange = raw
        .exchange
        .as_ref()
        .map(|exchange| compile_exchange(exchange, &identity_providers, checker.problems));
    let hosted_email = raw
        .hosted_email
        .as_ref()
        .map(|hosted| compile_hosted_email(hosted, base, checker.problems));
    let upstreams = compile_upstreams(&raw.upstreams, base, &mut checker);
    let credentials = compile_credentials(&raw.credentials, &mut checker);
    let context = RouteContext {
        upstreams: &upstreams,
        credentials: &credentials,
        default_body_limit: raw.server.max_body_bytes,
        converse: converse.as_ref(),
        providers: &identity_providers,
        exchange: exchange.as_ref(),
        hosted_email: hosted_email.as_ref(),
    };
    let routes = compile_routes(&raw, &context, &mut checker);
    Config {
        server,
        admin,
        log,
        routes,
        store,
        cache,
        converse,
        identity_providers,
        exchange,
        hosted_email,
    }
}

fn compile_server(raw: &RawServer, base: &Path, checker: &mut Checker) -> ServerSettings {
    if raw.listen.is_empty() {
        checker.fail("server.listen", "at least one address is required");
    }
    for (index, address) in raw.listen.iter().enumerate() {
        checker.check(format!("server.listen[{index}]"), parse_listen(address));
        if raw.listen[..index].contains(address) {
            checker.fail(
                format!("server.listen[{index}]"),
                format!("{address:?} is listed twice"),
            );
        }
    }
    if !(1..=256).contains(&raw.threads) {
        checker.fail("server.threads", "must be between 1 and 256");
    }
    if raw.grace_period_seconds > 3600 {
        checker.fail("server.grace_period_seconds", "must be at most 3600");
    }
    if raw.max_body_bytes == 0 {
        checker.fail("server.max_body_bytes", "must be at least 1");
    }
    let tls = raw.tls.as_ref().map(|tls| TlsFiles {
        cert: existing_file(base, &tls.cert, "server.tls.cert", checker),
        key: existing_file(base, &tls.key, "server.tls.key", checker),
    });
    ServerSettings {
        listen: raw.listen.clone(),
        threads: raw.threads,
        tls,
        grace_period: Duration::from_secs(raw.grace_period_seconds),
        upstream_keepalive_pool_size: raw.upstream_keepalive_pool_size,
    }
}

fn parse_listen(address: &str) -> Result<SocketAddr, String> {
    address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP:port address (e.g. \"0.0.0.0:8080\")"))
}

fn existing_file(base: &Path, file: &str, key: &str, checker: &mut Checker) -> std::path::PathBuf {
    let path = base.join(file);
    if !path.is_file() {
        checker.fail(
            key,
            format!("file {:?} does not exist", path.display().to_string()),
        );
    }
    path
}

fn compile_upstreams(
    raw: &BTreeMap<String, RawUpstream>,
    base: &Path,
    checker: &mut Checker,
) -> HashMap<String, Arc<Upstream>> {
    raw.iter()
        .map(|(name, upstream)| {
            let key = format!("upstreams.{name}");
            let addresses = resolve_addresses(&key, &upstream.addresses, checker);
            let mut settings = peer_settings(&key, upstream, checker);
            if let Some(file) = &upstream.ca_file {
                let path = base.join(file);
                settings.ca = checker.check(format!("{key}.ca_file"), load_ca_file(&path));
            }
            (
                name.clone(),
                Arc::new(Upstream::new(name.clone(), &addresses, &settings)),
            )
        })
        .collect()
}

fn resolve_addresses(key: &str, addresses: &[String], checker: &mut Checker) -> Vec<SocketAddr> {
    if addresses.is_empty() {
        checker.fail(
            format!("{key}.addresses"),
            "at least one address is required",
        );
    }
    let mut resolved = Vec::new();
    for (index, address) in addresses.iter().enumerate() {
        match address.to_socket_addrs().map(|mut all| all.next()) {
            Ok(Some(first)) => resolved.push(first),
            _ => checker.fail(
                format!("{key}.addresses[{index}]"),
                format!("{address:?} is not a resolvable host:port"),
            ),
        }
    }
    if resolved.is_empty() {
        // Keep the compiled upstream well-formed; the problem above already fails the load.
        resolved.push(SocketAddr::from(([127, 0, 0, 1], 9)));
    }
    resolved
}

fn peer_settings(key: &str, raw: &RawUpstream, checker: &mut Checker) -> PeerSettings {
    if raw.tls && raw.sni.is_empty() {
        checker.fail(format!("{key}.sni"), "is required when tls = true");
    }
    let mut timeout = |name: &str, ms: u64| {
        if !(1..=3_600_000).contains(&ms) {
            checker.fail(
                format!("{key}.{name}"),
                "must be between 1 and 3600000 milliseconds",
            );
        }
        Duration::from_millis(ms.max(1))
    };
    PeerSettings {
        tls: raw.tls,
        sni: raw.sni.clone(),
        verify_cert: raw.verify_cert,
        ca: None,
        connect_timeout: timeout("connect_timeout_ms", raw.connect_timeout_ms),
        read_timeout: timeout("read_timeout_ms", raw.read_timeout_ms),
        write_timeout: timeout("write_timeout_ms", raw.write_timeout_ms),
        idle_timeout: timeout("idle_timeout_ms", raw.idle_timeout_ms),
    }
}

/// Reads the PEM certificates of an upstream's `ca_file`.
fn load_ca_file(path: &Path) -> Result<Arc<[WrappedX509]>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|_| format!("cannot read PEM file \"{shown}\""))?
        .map(|certificate| {
            certificate
                .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
                .map_err(|_| format!("\"{shown}\" holds an invalid certificate"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if certificates.is_empty() {
        return Err(format!("\"{shown}\" holds no certificate"));
    }
    Ok(certificates.into())
}

type CredentialSet = Vec<(HeaderName, HeaderValue)>;

fn compile_credentials(
    raw: &BTreeMap<String, BTreeMap<String, Secret>>,
    checker: &mut Checker,
) -> HashMap<String, CredentialSet> {
    raw.iter()
        .map(|(set_name, headers)| {
            if headers.is_empty() {
                checker.fail(
                    format!("credentials.{set_name}"),
                    "must name at least one header",
                );
            }
            let compiled = headers
                .iter()
                .filter_map(|(header, secret)| {
                    let key = format!("credentials.{set_name}.{header}");
                    let name = checker.check(&key, header_name(header))?;
                    // The value is a secret: the message must not quote it.
                    let value = checker.check(
                        &key,
                        HeaderValue::from_str(secret.expose())
                            .map_err(|_| "value is not a valid HTTP header value".to_owned()),
                    )?;
                    Some((name, value))
                })
                .collect();
            (set_name.clone(), compiled)
        })
        .collect()
}

/// A header name keyway may strip or set: valid, and not one it must own itself.
fn header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if RESERVED.contains(&normalise_name(name).as_str()) {
        return Err(format!(
            "{name:?} is managed by keyway and cannot be configured"
        ));
    }
    Ok(parsed)
}

/// What every route is compiled against.
struct RouteContext<'a> {
    upstreams: &'a HashMap<String, Arc<Upstream>>,
    credentials: &'a HashMap<String, CredentialSet>,
    default_body_limit: u64,
    converse: Option<&'a ConverseSettings>,
    providers: &'a [ProviderSettings],
    exchange: Option<&'a ExchangeSettings>,
    hosted_email: Option<&'a HostedEmailSettings>,
}

impl RouteContext<'_> {
    /// Headers stripped on every route: a client's Converse token is keyway's business only.
    fn always_stripped(&self) -> Option<&str> {
        self.converse.map(|converse| converse.header.as_str())
    }
}

fn compile_routes(raw: &RawConfig, context: &RouteContext, checker: &mut Checker) -> RouteTable {
    if raw.routes.is_empty() {
        checker.fail("routes", "at least one [[routes]] entry is required");
    }
    let mut compiled = Vec::new();
    for (index, route) in raw.routes.iter().enumerate() {
        let key = format!("routes[{index}]");
        check_unique_route(index, route, &raw.routes, checker);
        compiled.extend(compile_route(&key, route, context, checker));
    }
    let mut builtin = Vec::new();
    if let Some(converse) = context.converse {
        builtin.extend(
            converse_routes(converse, context)
                .into_iter()
                .map(|route| ("converse.api_prefix", route)),
        );
    }
    if let Some(exchange) = context.exchange {
        builtin.push(("exchange.api_prefix", exchange_route(exchange, context)));
    }
    if context.hosted_email.is_some() {
        builtin.extend(
            hosted_email_routes(context)
                .into_iter()
                .map(|route| ("hosted_email", route)),
        );
    }
    for (key, route) in builtin {
        let taken = compiled
            .iter()
            .any(|user: &Route| user.path_prefix == route.path_prefix && user.host.is_none());
        if taken {
            checker.fail(
                key,
                format!(
                    "a [[routes]] entry already uses {:?}, which a built-in API needs",
                    route.path_prefix
                ),
            );
        }
        compiled.push(route);
    }
    RouteTable::new(compiled)
}

/// One route of a built-in API: a single method, no upstream, no credentials injected.
struct Builtin<'a> {
    name: &'a str,
    path: String,
    method: Method,
    kind: EndpointKind,
    auth: AuthKind,
    max_body_bytes: u64,
}

impl RouteContext<'_> {
    fn builtin_route(&self, builtin: Builtin<'_>) -> Route {
        Route::new(
            builtin.name.to_owned(),
            builtin.path,
            None,
            Some(vec![builtin.method]),
            RouteTarget::Endpoint(builtin.kind),
            vec![builtin.auth],
            HeaderPolicy::new(self.always_stripped(), Vec::new(), Vec::new()),
            builtin.max_body_bytes,
        )
    }
}

/// The exchange API: public (the token in the body is the credential).
fn exchange_route(exchange: &ExchangeSettings, context: &RouteContext) -> Route {
    context.builtin_route(Builtin {
        name: "exchange.authenticate",
        path: format!("{}/", exchange.api_prefix),
        method: Method::POST,
        kind: EndpointKind::ExchangeAuthenticate,
        auth: AuthKind::None,
        max_body_bytes: 64 * 1024,
    })
}

/// The hosted email APIs: public routes (the passkey in the call is checked by the API).
fn hosted_email_routes(context: &RouteContext) -> Vec<Route> {
    let route = |name, path: &str, kind| {
        context.builtin_route(Builtin {
            name,
            path: path.to_owned(),
            method: Method::POST,
            kind,
            auth: AuthKind::None,
            max_body_bytes: 16 * 1024,
        })
    };
    vec![
        route(
            "hosted_email.request",
            REQUEST_EMAIL_PATH,
            EndpointKind::HostedEmailRequest,
        ),
        route(
            "hosted_email.authenticate",
            AUTHENTICATE_USER_PATH,
            EndpointKind::HostedEmailAuthenticate,
        ),
    ]
}

/// The token API's routes: verify is public, the token calls need a Converse token.
fn converse_routes(converse: &ConverseSettings, context: &RouteContext) -> Vec<Route> {
    let prefix = &converse.api_prefix;
    let route = |name, path, method, kind, auth| {
        context.builtin_route(Builtin {
            name,
            path,
            method,
            kind,
            auth,
            max_body_bytes: converse.max_body_bytes,
        })
    };
    vec![
        route(
            "converse.verify",
            format!("{prefix}/verify"),
            Method::POST,
            EndpointKind::ConverseVerifyUser,
            AuthKind::None,
        ),
        route(
            "converse.token.verify",
            format!("{prefix}/token/verify"),
            Method::POST,
            EndpointKind::ConverseVerifyToken,
            AuthKind::Converse,
        ),
        route(
            "converse.token.delete",
            format!("{prefix}/token/"),
            Method::DELETE,
            EndpointKind::ConverseDeleteToken,
            AuthKind::Converse,
        )
        .with_secret_path_tail(),
    ]
}

fn check_unique_route(index: usize, route: &RawRoute, all: &[RawRoute], checker: &mut Checker) {
    let key = format!("routes[{index}]");
    if route.name.trim().is_empty() {
        checker.fail(format!("{key}.name"), "must not be empty");
    }
    if let Some(first) = all[..index]
        .iter()
        .position(|other| other.name == route.name)
    {
        checker.fail(
            format!("{key}.name"),
            format!("{:?} is already used by routes[{first}]", route.name),
        );
    }
    let overlaps = |other: &RawRoute| {
        other.path_prefix == route.path_prefix
            && other.host == route.host
            && match (&other.methods, &route.methods) {
                (Some(a), Some(b)) => a
                    .iter()
                    .any(|m| b.iter().any(|n| n.eq_ignore_ascii_case(m))),
                _ => true,
            }
    };
    if let Some(first) = all[..index].iter().position(overlaps) {
        checker.fail(
            format!("{key}.path_prefix"),
            format!(
                "routes[{first}] already serves this path_prefix and host for some of these methods"
            ),
        );
    }
}

fn compile_route(
    key: &str,
    raw: &RawRoute,
    context: &RouteContext,
    checker: &mut Checker,
) -> Option<Route> {
    let prefix = checker.check(
        format!("{key}.path_prefix"),
        validate_prefix(&raw.path_prefix),
    );
    let host = raw.host.as_ref().map(|host| host.to_ascii_lowercase());
    if host
        .as_deref()
        .is_some_and(|host| host.is_empty() || host.contains([':', '/', ' ']))
    {
        checker.fail(
            format!("{key}.host"),
            "must be a bare host name without port",
        );
    }
    let methods = compile_methods(key, raw.methods.as_deref(), checker);
    let upstream = context.upstreams.get(&raw.upstream).cloned();
    if upstream.is_none() {
        checker.fail(
            format!("{key}.upstream"),
            format!("unknown upstream {:?}", raw.upstream),
        );
    }
    let available = Available {
        converse: context.converse.is_some(),
        jwt: !context.providers.is_empty(),
        exchange: context.exchange.is_some(),
        hosted_email: context.hosted_email.is_some(),
    };
    let auth = compile_auth(key, &raw.auth, available, checker);
    check_tenant_scope(key, raw, &auth, context.providers, checker);
    let inject = match &raw.credentials {
        Some(name) => context.credentials.get(name).cloned().or_else(|| {
            checker.fail(
                format!("{key}.credentials"),
                format!("unknown credentials {name:?}"),
            );
            None
        }),
        None => Some(Vec::new()),
    };
    let identity = compile_identity_headers(key, &raw.identity_headers, checker);
    for (index, name) in raw.strip_request_headers.iter().enumerate() {
        checker.check(
            format!("{key}.strip_request_headers[{index}]"),
            header_name(name),
        );
    }
    if raw.max_body_bytes == Some(0) {
        checker.fail(format!("{key}.max_body_bytes"), "must be at least 1");
    }
    // A bearer token or a user token stays at the gateway: the upstream gets identity
    // headers instead.
    let bearer = auth.contains(&AuthKind::Jwt).then_some("authorization");
    let user_token = auth
        .contains(&AuthKind::HostedEmail)
        .then_some(crate::auth::hosted_email::USER_TOKEN_HEADER);
    let stripped = raw
        .strip_request_headers
        .iter()
        .map(String::as_str)
        .chain(bearer)
        .chain(user_token);
    let headers = HeaderPolicy::new(stripped.chain(context.always_stripped()), inject?, identity);
    let route = Route::new(
        raw.name.clone(),
        prefix.map(|_| raw.path_prefix.clone())?,
        host,
        methods,
        RouteTarget::Upstream(upstream?),
        auth,
        headers,
        raw.max_body_bytes.unwrap_or(context.default_body_limit),
    );
    Some(route.with_tenant_scope(raw.customers.clone(), raw.providers.clone()))
}

/// `customers` / `providers` only make sense on `jwt` routes and must name configured ones.
fn check_tenant_scope(
    key: &str,
    raw: &RawRoute,
    auth: &[AuthKind],
    providers: &[ProviderSettings],
    checker: &mut Checker,
) {
    let scoped = auth
        .iter()
        .any(|kind| matches!(kind, AuthKind::Jwt | AuthKind::Exchange));
    if (!raw.customers.is_empty() || !raw.providers.is_empty()) && !scoped {
        checker.fail(
            format!("{key}.customers"),
            "customers and providers restrict \"jwt\" and \"exchange\" routes only",
        );
    }
    for (index, customer) in raw.customers.iter().enumerate() {
        if !providers
            .iter()
            .any(|provider| &provider.customer_id == customer)
        {
            checker.fail(
                format!("{key}.customers[{index}]"),
                format!("no identity provider for customer {customer:?}"),
            );
        }
    }
    for (index, id) in raw.providers.iter().enumerate() {
        if !providers.iter().any(|provider| provider.provider_id == *id) {
            checker.fail(
                format!("{key}.providers[{index}]"),
                format!("no identity provider with provider_id {id}"),
            );
        }
    }
}

fn compile_methods(
    key: &str,
    raw: Option<&[String]>,
    checker: &mut Checker,
) -> Option<Vec<Method>> {
    let raw = raw?;
    if raw.is_empty() {
        checker.fail(
            format!("{key}.methods"),
            "must list at least one method, or be left out to allow all",
        );
    }
    let mut methods: Vec<Method> = raw
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            checker.check(
                format!("{key}.methods[{index}]"),
                Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("{name:?} is not an HTTP method")),
            )
        })
        .collect();
    // HEAD is GET without a body; allowing one allows the other.
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    Some(methods)
}

fn compile_auth(
    key: &str,
    names: &[String],
    available: Available,
    checker: &mut Checker,
) -> Vec<AuthKind> {
    if names.is_empty() {
        checker.fail(
            format!("{key}.auth"),
            "must list at least one authenticator (\"none\" for a public route)",
        );
    }
    let kinds: Vec<AuthKind> = names
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            checker.check(
                format!("{key}.auth[{index}]"),
                AuthKind::parse(name).ok_or_else(|| {
                    format!("unknown authenticator {name:?} (known: none, converse, jwt, exchange, hosted_email)")
                }),
            )
        })
        .collect();
    if kinds.contains(&AuthKind::None) && kinds.len() > 1 {
        checker.fail(
            format!("{key}.auth"),
            "\"none\" cannot be combined with other authenticators",
        );
    }
    for (index, kind) in kinds.iter().enumerate() {
        checker.check(
            format!("{key}.auth[{index}]"),
            kind.check_available(available),
        );
    }
    kinds
}

fn compile_identity_headers(
    key: &str,
    raw: &BTreeMap<String, String>,
    checker: &mut Checker,
) -> Vec<(HeaderName, String)> {
    raw.iter()
        .filter_map(|(header, claim)| {
            let header_key = format!("{key}.identity_headers.{header}");
            if claim.is_empty() || claim.split('.').any(str::is_empty) {
                checker.fail(&header_key, "must name a claim, e.g. \"sub\" or \"org.id\"");
            }
            Some((
                checker.check(header_key, header_name(header))?,
                claim.clone(),
            ))
        })
        .collect()
}

/// `routes[2].upstrem` from serde_ignored's path.
pub fn key_of(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_of(parent)),
        Path::Map { parent, key } => {
            let parent = key_of(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_of(parent),
    }
}
