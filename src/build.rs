//! THE wiring step: validated [`Settings`] -> the immutable [`Runtime`] the proxy reads (every
//! route holding its resolved upstream or endpoint, authenticators and header policy) and what
//! runs beside it (background services, readiness checks).
//!
//! Everything that can fail when keyway starts fails here, with the key at fault named: DNS
//! look-ups, CA and key files, the store, the mail outbox. Building twice from the same
//! settings gives two independent runtimes (a reload builds a new one and swaps it).

use crate::auth::{self, AuthChain, Instrumented};
use crate::config::{RouteSpec, Settings, StoreSettings, TargetSpec};
use crate::converse::ConverseService;
use crate::endpoints::{Endpoint, EndpointServices};
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use crate::http_policy::normalise_name;
use crate::identity::AuthKind;
use crate::jwt::jwks::{JwksService, ProviderKeys};
use crate::jwt::verifier::{JwtProvider, JwtVerifier};
use crate::lifecycle::ReadinessCheck;
use crate::metrics::Metrics;
use crate::proxy::Runtime;
use crate::routing::{Resolved, Route, RouteTable, RouteTarget};
use crate::store::counters::CounterBackend;
use crate::store::redis::Redis;
use crate::store::{MeteredStore, PurgeService, SqliteStore, Store};
use crate::upstream::Upstream;
use http::HeaderValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often expired records are purged when `[converse]` does not say.
const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Why keyway could not be built from valid settings (a name that does not resolve, a file
/// that cannot be read, a store that cannot be opened).
#[derive(Debug)]
pub struct BuildError(String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// A built keyway: the runtime and what runs beside it.
pub struct Built {
    pub runtime: Runtime,
    /// What `/readyz` waits for (identity providers' keys).
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Deletes expired records, when a store is in use.
    pub purge: Option<PurgeService>,
    /// Fetches and refreshes identity providers' keys, when any are configured.
    pub jwks: Option<JwksService>,
}

/// Wires `settings` into a runtime; `metrics` are shared by every runtime of the process.
pub fn build(settings: &Settings, metrics: &Arc<Metrics>) -> Result<Built, BuildError> {
    let opened = needs_store(settings)
        .then(|| open_store(&settings.store, metrics))
        .transpose()?;
    let counters = opened
        .as_ref()
        .map_or(CounterBackend::Local, |opened| opened.counters.clone());
    let store = opened.as_ref().map(|opened| opened.store.clone());
    let provider_keys = settings
        .identity_providers
        .iter()
        .map(|provider| {
            let keys = ProviderKeys::new(provider, metrics.clone());
            keys.map(Arc::new).map_err(|error| {
                BuildError(format!("identity provider {}: {error}", provider.label()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let services = build_services(settings, metrics, store.clone(), &counters, &provider_keys)?;
    let routes = build_routes(settings, &services)?;
    Ok(Built {
        runtime: Runtime {
            routes,
            access_log: settings.log.access_log,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            scheme: http::HeaderValue::from_static(if settings.server.tls.is_some() {
                "https"
            } else {
                "http"
            }),
        },
        readiness: provider_keys
            .iter()
            .map(|keys| keys.clone() as Arc<dyn ReadinessCheck>)
            .chain(
                store
                    .clone()
                    .map(|store| Arc::new(StoreReachable(store)) as Arc<dyn ReadinessCheck>),
            )
            .collect(),
        purge: opened
            .filter(|opened| opened.needs_purge)
            .map(|opened| PurgeService {
                store: opened.store,
                interval: settings
                    .converse
                    .as_ref()
                    .map_or(DEFAULT_PURGE_INTERVAL, |converse| converse.purge_interval),
            }),
        jwks: (!provider_keys.is_empty()).then_some(JwksService {
            providers: provider_keys,
        }),
    })
}

fn needs_store(settings: &Settings) -> bool {
    settings.converse.is_some() || settings.exchange.is_some() || settings.hosted_email.is_some()
}

/// The configured store (timed, its failures counted and logged) and its counters.
struct OpenedStore {
    store: Arc<dyn Store>,
    counters: CounterBackend,
    /// Whether expired records must be deleted by keyway (Redis expires them itself).
    needs_purge: bool,
}

/// `/readyz` waits for the store to be reachable.
struct StoreReachable(Arc<dyn Store>);

impl ReadinessCheck for StoreReachable {
    fn is_ready(&self) -> bool {
        self.0.is_reachable()
    }
}

fn open_store(store: &StoreSettings, metrics: &Arc<Metrics>) -> Result<OpenedStore, BuildError> {
    Ok(match store {
        StoreSettings::Sqlite { path } => {
            let sqlite = SqliteStore::open(path)
                .map_err(|error| BuildError(format!("store.path: {error}")))?;
            OpenedStore {
                store: Arc::new(MeteredStore::new(Box::new(sqlite), "sqlite", metrics)),
                counters: CounterBackend::Local,
                needs_purge: true,
            }
        }
        StoreSettings::Redis(settings) => {
            let redis =
                Redis::connect(settings, metrics).map_err(|error| BuildError(error.to_string()))?;
            OpenedStore {
                store: Arc::new(MeteredStore::new(Box::new(redis.store()), "redis", metrics)),
                counters: CounterBackend::Redis(redis),
                needs_purge: false,
            }
        }
    })
}

/// The configured services, and the authenticators and endpoints they back.
struct Services {
    endpoints: EndpointServices,
    authenticators: Vec<Arc<Instrumented>>,
}

impl Services {
    fn authenticator(&self, kind: AuthKind) -> Option<Arc<Instrumented>> {
        self.authenticators
            .iter()
            .find(|authenticator| authenticator.kind() == kind)
            .cloned()
    }

    /// Headers some authenticator wants stripped on every route.
    fn stripped_everywhere(&self) -> Vec<String> {
        self.authenticators
            .iter()
            .map(|authenticator| authenticator.carriers())
            .filter(|carriers| carriers.stripped_everywhere)
            .flat_map(|carriers| carriers.headers.iter().cloned())
            .collect()
    }
}

fn build_services(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    store: Option<Arc<dyn Store>>,
    counters: &CounterBackend,
    provider_keys: &[Arc<ProviderKeys>],
) -> Result<Services, BuildError> {
    let with_store = |section: &str| {
        store
            .clone()
            .ok_or_else(|| BuildError(format!("{section} needs the store")))
    };
    let converse = match &settings.converse {
        Some(converse) => Some(Arc::new(ConverseService::new(
            converse.clone(),
            &settings.cache,
            with_store("[converse]")?,
            counters,
            metrics.clone(),
        ))),
        None => None,
    };
    let jwt = (!provider_keys.is_empty()).then(|| {
        let providers = settings
            .identity_providers
            .iter()
            .zip(provider_keys)
            .map(|(provider, keys)| JwtProvider::new(provider, keys.clone()))
            .collect();
        let claims = jwt_claims_in_use(settings);
        Arc::new(JwtVerifier::new(
            providers,
            claims,
            &settings.cache,
            metrics,
        ))
    });
    let exchange = match (&settings.exchange, &jwt) {
        (Some(exchange), Some(jwt)) => Some(Arc::new(ExchangeService::new(
            exchange.clone(),
            &settings.identity_providers,
            jwt.clone(),
            with_store("[exchange]")?,
        ))),
        (Some(_), None) => {
            return Err(BuildError(
                "exchange: needs at least one identity provider".to_owned(),
            ));
        }
        (None, _) => None,
    };
    let hosted_email = match &settings.hosted_email {
        Some(hosted) => Some(Arc::new(
            HostedEmailService::new(
                hosted.clone(),
                with_store("[hosted_email]")?,
                counters,
                metrics.clone(),
            )
            .map_err(BuildError)?,
        )),
        None => None,
    };
    let mut authenticators = vec![auth::none()];
    authenticators.extend(converse.clone().map(auth::converse));
    authenticators.extend(jwt.map(auth::jwt));
    authenticators.extend(exchange.clone().map(auth::exchange));
    authenticators.extend(hosted_email.clone().map(auth::hosted_email));
    Ok(Services {
        authenticators: authenticators
            .into_iter()
            .map(|authenticator| Arc::new(Instrumented::new(authenticator, metrics)))
            .collect(),
        endpoints: EndpointServices {
            converse,
            exchange,
            hosted_email,
        },
    })
}

/// The top-level JWT claims something reads: identity headers on `jwt` and `exchange`
/// routes, and the exchange's stored claims and `exp`. A verified JWT keeps only these.
fn jwt_claims_in_use(settings: &Settings) -> Vec<String> {
    let mut names: Vec<String> = settings
        .routes
        .iter()
        .filter(|route| route.auth.iter().any(|kind| kind.has_tenant()))
        .flat_map(|route| route.identity_headers.iter().map(|(_, claim)| claim))
        .map(|path| path.split('.').next().unwrap_or(path).to_owned())
        .collect();
    if let Some(exchange) = &settings.exchange {
        names.extend(exchange.claims.iter().cloned());
        names.push("exp".to_owned());
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn build_routes(settings: &Settings, services: &Services) -> Result<RouteTable, BuildError> {
    let upstreams = settings
        .upstreams
        .iter()
        .map(|spec| {
            Ok((
                spec.name.clone(),
                Arc::new(Upstream::build(spec).map_err(BuildError)?),
            ))
        })
        .collect::<Result<HashMap<_, _>, BuildError>>()?;
    let mut stripped_everywhere = services.stripped_everywhere();
    stripped_everywhere.extend(injected_header_names(settings));
    let routes = settings
        .routes
        .iter()
        .map(|spec| build_route(spec, settings, services, &upstreams, &stripped_everywhere))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteTable::new(routes))
}

/// Every header name some route injects (identity headers and credential sets): a backend
/// that trusts `x-auth-email` from keyway on one route must never get a client's copy through
/// another, so these are stripped on every route.
fn injected_header_names(settings: &Settings) -> Vec<String> {
    let identity = settings
        .routes
        .iter()
        .flat_map(|route| route.identity_headers.iter().map(|(name, _)| name));
    let credentials = settings
        .routes
        .iter()
        .filter_map(|route| settings.credentials.get(route.credentials.as_ref()?))
        .flatten()
        .map(|(name, _)| name);
    identity
        .chain(credentials)
        .map(|name| normalise_name(name.as_str()))
        .collect()
}

fn build_route(
    spec: &RouteSpec,
    settings: &Settings,
    services: &Services,
    upstreams: &HashMap<String, Arc<Upstream>>,
    stripped_everywhere: &[String],
) -> Result<Route, BuildError> {
    let missing = |what: String| BuildError(format!("route {:?}: {what}", spec.name));
    let target = match &spec.target {
        TargetSpec::Upstream(name) => RouteTarget::Upstream(
            upstreams
                .get(name)
                .cloned()
                .ok_or_else(|| missing(format!("unknown upstream {name:?}")))?,
        ),
        TargetSpec::Endpoint(kind) => RouteTarget::Endpoint(
            Endpoint::resolve(*kind, &services.endpoints)
                .ok_or_else(|| missing(format!("{kind:?} is not configured")))?,
        ),
    };
    let auth = spec
        .auth
        .iter()
        .map(|kind| {
            services.authenticator(*kind).ok_or_else(|| {
                missing(format!("authenticator {:?} is not configured", kind.name()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inject = match &spec.credentials {
        Some(name) => settings
            .credentials
            .get(name)
            .ok_or_else(|| missing(format!("unknown credentials {name:?}")))?
            .iter()
            .map(|(header, secret)| {
                let value = HeaderValue::from_str(secret.expose())
                    .map_err(|_| missing(format!("credentials {name:?}: invalid header value")))?;
                Ok((header.clone(), value))
            })
            .collect::<Result<Vec<_>, BuildError>>()?,
        None => Vec::new(),
    };
    let resolved = Resolved {
        target,
        auth: AuthChain::new(auth),
        inject,
        stripped_everywhere: stripped_everywhere.to_vec(),
    };
    Ok(Route::new(spec, resolved))
}
