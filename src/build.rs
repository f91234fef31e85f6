//! THE wiring step: validated [`Settings`] -> the immutable [`Runtime`] the proxy reads (every
//! route holding its resolved upstream or endpoint, authenticators and header policy) and what
//! runs beside it (background services, readiness checks).
//!
//! Everything that can fail when keyway starts fails here, with the key at fault named: DNS
//! look-ups, CA and key files, the store, the mail outbox. Building twice from the same
//! settings gives two independent runtimes (a reload builds a new one and swaps it).

use crate::api_keys::ApiKeyRegistry;
use crate::auth::{self, AuthChain, Instrumented};
use crate::config::{ProviderSettings, RouteSpec, Settings, StoreSettings, TargetSpec};
use crate::converse::ConverseService;
use crate::endpoints::{Endpoint, EndpointServices};
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use crate::http_policy::body_schema::BodySchema;
use crate::http_policy::normalise_name;
use crate::identity::AuthKind;
use crate::jwt::jwks::{JwksService, ProviderKeys, ProviderRegistry};
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
use std::sync::{Arc, Mutex, OnceLock};
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

/// What outlives every reload, made once at start-up: the store (opened when a config first
/// needs it), the counters, and the identity providers' keys. Settings that would change these
/// (the `[store]` table) need a restart.
pub struct Foundation {
    metrics: Arc<Metrics>,
    store_settings: StoreSettings,
    /// Set once, by the first build that needs the store.
    store: Arc<OnceLock<Arc<dyn Store>>>,
    counters: OnceLock<CounterBackend>,
    opening: Mutex<()>,
    providers: Arc<ProviderRegistry>,
}

impl Foundation {
    pub fn new(settings: &Settings, metrics: &Arc<Metrics>) -> Foundation {
        Foundation {
            metrics: metrics.clone(),
            store_settings: settings.store.clone(),
            store: Arc::new(OnceLock::new()),
            counters: OnceLock::new(),
            opening: Mutex::new(()),
            providers: Arc::new(ProviderRegistry::new(metrics.clone())),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store, opened on first use with the start-up `[store]` settings.
    fn store(&self) -> Result<Arc<dyn Store>, BuildError> {
        let _opening = self.opening.lock().expect("store opening lock");
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        let opened = open_store(&self.store_settings, &self.metrics)?;
        let _ = self.counters.set(opened.counters);
        let _ = self.store.set(opened.store.clone());
        Ok(opened.store)
    }

    /// Login and email counters: in Redis when the store is there, else in this process (the
    /// same ones for every runtime, so a reload forgets no failure).
    fn counters(&self) -> CounterBackend {
        self.counters.get_or_init(CounterBackend::local).clone()
    }

    /// Deletes expired records every `interval`, once a store is open.
    pub fn purge_service(&self, interval: Duration) -> PurgeService {
        PurgeService {
            store: self.store.clone(),
            interval,
        }
    }

    /// Fetches and refreshes the identity providers' keys, across reloads.
    pub fn jwks_service(&self) -> JwksService {
        JwksService {
            registry: self.providers.clone(),
        }
    }
}

/// A built runtime and what `/readyz` waits for with it. Nothing is in use until
/// [`Built::commit`].
pub struct Built {
    pub runtime: Runtime,
    /// What `/readyz` waits for (identity providers' keys, the store).
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    providers: Vec<ProviderSettings>,
    provider_keys: Vec<Arc<ProviderKeys>>,
}

impl Built {
    /// Hands the providers' keys to the refresher and returns the runtime to serve and its
    /// readiness checks.
    pub fn commit(self, foundation: &Foundation) -> (Runtime, Vec<Arc<dyn ReadinessCheck>>) {
        foundation
            .providers
            .commit(&self.providers, &self.provider_keys);
        (self.runtime, self.readiness)
    }
}

/// How often expired records are purged: `[converse] purge_interval_seconds`, read at start.
pub fn purge_interval(settings: &Settings) -> Duration {
    settings
        .converse
        .as_ref()
        .map_or(DEFAULT_PURGE_INTERVAL, |converse| converse.purge_interval)
}

/// Wires `settings` into a runtime over the process's `foundation`.
pub fn build(settings: &Settings, foundation: &Foundation) -> Result<Built, BuildError> {
    let metrics = &foundation.metrics;
    let store = needs_store(settings)
        .then(|| foundation.store())
        .transpose()?;
    let counters = foundation.counters();
    let provider_keys = foundation
        .providers
        .prepare(&settings.identity_providers)
        .map_err(BuildError)?;
    let services = build_services(settings, metrics, store.clone(), &counters, &provider_keys)?;
    let routes = build_routes(settings, &services, metrics)?;
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
            .chain(store.map(|store| Arc::new(StoreReachable(store)) as Arc<dyn ReadinessCheck>))
            .collect(),
        providers: settings.identity_providers.clone(),
        provider_keys,
    })
}

fn needs_store(settings: &Settings) -> bool {
    settings.converse.is_some() || settings.exchange.is_some() || settings.hosted_email.is_some()
}

/// The configured store (timed, its failures counted and logged) and its counters.
struct OpenedStore {
    store: Arc<dyn Store>,
    counters: CounterBackend,
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
                counters: CounterBackend::local(),
            }
        }
        StoreSettings::Redis(settings) => {
            let redis =
                Redis::connect(settings, metrics).map_err(|error| BuildError(error.to_string()))?;
            OpenedStore {
                store: Arc::new(MeteredStore::new(Box::new(redis.store()), "redis", metrics)),
                counters: CounterBackend::Redis(redis),
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
    authenticators.extend(settings.api_keys.as_ref().map(|keys| {
        let registry = Arc::new(ApiKeyRegistry::new(keys, metrics));
        auth::api_key(
            registry,
            keys.id_header.as_str(),
            keys.secret_header.as_str(),
        )
    }));
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

fn build_routes(
    settings: &Settings,
    services: &Services,
    metrics: &Metrics,
) -> Result<RouteTable, BuildError> {
    let upstreams = settings
        .upstreams
        .iter()
        .map(|spec| {
            Ok((
                spec.name.clone(),
                Arc::new(
                    Upstream::build(spec, metrics.upstream_duration(&spec.name))
                        .map_err(BuildError)?,
                ),
            ))
        })
        .collect::<Result<HashMap<_, _>, BuildError>>()?;
    let mut stripped_everywhere = services.stripped_everywhere();
    stripped_everywhere.extend(injected_header_names(settings));
    let routes = settings
        .routes
        .iter()
        .map(|spec| {
            build_route(
                spec,
                settings,
                services,
                &upstreams,
                &stripped_everywhere,
                metrics,
            )
        })
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
    metrics: &Metrics,
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
    let request_schema = match &spec.request_schema {
        Some(schema) => Some(Arc::new(BodySchema::compile(&schema.document).map_err(
            |why| missing(format!("request_schema {}: {why}", schema.file.display())),
        )?)),
        None => None,
    };
    let resolved = Resolved {
        target,
        auth: AuthChain::new(auth),
        inject,
        stripped_everywhere: stripped_everywhere.to_vec(),
        request_schema,
        duration: metrics.request_duration(&spec.name),
    };
    Ok(Route::new(spec, resolved))
}
