//! Builds and runs the Pingora server: proxy service, admin service, lifecycle service.

use crate::admin::AdminApp;
use crate::auth::jwt::JwtProvider;
use crate::auth::{AuthServices, Authenticators, JwtAuthenticator};
use crate::config::{Config, StoreSettings};
use crate::converse::ConverseService;
use crate::endpoints::Endpoints;
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use crate::jwks::{JwksService, ProviderKeys};
use crate::lifecycle::{Lifecycle, LifecycleService, ReadinessCheck};
use crate::listeners::ListenAddress;
use crate::logging::AccessLog;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::store::{MeteredStore, PurgeService, SqliteStore, Store};
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::info;

/// How often expired records are purged when `[converse]` does not say.
const DEFAULT_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Runtime shutdown timeout after the drain: tasks still running then are cancelled.
const RUNTIME_SHUTDOWN_SECONDS: u64 = 5;

/// Starts keyway and serves until SIGTERM (graceful) or SIGINT (immediate). Never returns.
pub fn run(config: Config) -> Result<std::convert::Infallible, Box<dyn std::error::Error>> {
    let proxy_addresses = resolve_all(&config.server.listen)?;
    let admin_address = ListenAddress::resolve(config.admin.listen.parse()?)?;

    let server_conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(RUNTIME_SHUTDOWN_SECONDS),
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let services = build_services(&config, &metrics)?;
    let lifecycle = Arc::new(Lifecycle::new(services.readiness));
    let access_log = AccessLog {
        enabled: config.log.access_log,
    };
    let gateway = Gateway::new(
        config.routes,
        services.endpoints,
        services.authenticators,
        metrics.clone(),
        lifecycle.clone(),
        access_log,
    );
    let mut proxy = http_proxy_service_with_name(&server.configuration, gateway, "keyway proxy");
    for address in &proxy_addresses {
        add_listener(&mut proxy, address, config.server.tls.as_ref())?;
    }

    let mut admin = Service::new(
        "keyway admin".to_owned(),
        AdminApp {
            metrics,
            lifecycle: lifecycle.clone(),
        },
    );
    admin.threads = Some(1);
    add_listener(&mut admin, &admin_address, None)?;

    let lifecycle_service = LifecycleService {
        lifecycle,
        listeners: proxy_addresses
            .iter()
            .map(|address| address.address)
            .collect(),
        grace_period: config.server.grace_period,
    };
    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service("keyway lifecycle", lifecycle_service));
    if let Some(purge) = services.purge {
        server.add_service(background_service("keyway store purge", purge));
    }
    if let Some(jwks) = services.jwks {
        server.add_service(background_service("keyway jwks", jwks));
    }

    let proxy_list: Vec<String> = proxy_addresses
        .iter()
        .map(|address| address.address.to_string())
        .collect();
    info!(proxy = proxy_list.join(","), admin = %admin_address.address, "listening");
    // `proxy_addresses` and `admin_address` hold port reservations: keep them alive until exit.
    server.run_forever()
}

/// What authenticators and built-in endpoints need, and what runs beside them.
struct Services {
    endpoints: Endpoints,
    authenticators: Authenticators,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    purge: Option<PurgeService>,
    jwks: Option<JwksService>,
}

fn build_services(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Services, Box<dyn std::error::Error>> {
    let needs_store =
        config.converse.is_some() || config.exchange.is_some() || config.hosted_email.is_some();
    let store = needs_store
        .then(|| open_store(config, metrics))
        .transpose()?;
    let purge = store.clone().map(|store| PurgeService {
        store,
        interval: config
            .converse
            .as_ref()
            .map_or(DEFAULT_PURGE_INTERVAL, |converse| converse.purge_interval),
    });
    let converse = config
        .converse
        .as_ref()
        .zip(store.clone())
        .map(|(settings, store)| {
            Arc::new(ConverseService::new(
                settings.clone(),
                &config.cache,
                store,
                metrics.clone(),
            ))
        });
    let provider_keys = config
        .identity_providers
        .iter()
        .map(|provider| ProviderKeys::new(provider, metrics.clone()).map(Arc::new))
        .collect::<Result<Vec<_>, String>>()?;
    let jwt = (!provider_keys.is_empty()).then(|| {
        let providers = config
            .identity_providers
            .iter()
            .zip(&provider_keys)
            .map(|(settings, keys)| JwtProvider::new(settings, keys.clone()))
            .collect();
        Arc::new(JwtAuthenticator::new(
            providers,
            config.jwt_claims_in_use(),
            &config.cache,
            metrics.clone(),
        ))
    });
    let exchange = config
        .exchange
        .as_ref()
        .zip(jwt.clone())
        .zip(store.clone())
        .map(|((settings, jwt), store)| {
            Arc::new(ExchangeService::new(
                settings.clone(),
                &config.identity_providers,
                jwt,
                store,
            ))
        });
    let hosted_email = match config.hosted_email.as_ref().zip(store) {
        Some((settings, store)) => Some(Arc::new(HostedEmailService::new(
            settings.clone(),
            store,
            metrics.clone(),
        )?)),
        None => None,
    };
    let readiness = provider_keys
        .iter()
        .map(|keys| keys.clone() as Arc<dyn ReadinessCheck>)
        .collect();
    Ok(Services {
        authenticators: Authenticators::new(
            AuthServices {
                converse: converse.clone(),
                jwt,
                exchange: exchange.clone(),
                hosted_email: hosted_email.clone(),
            },
            metrics,
        ),
        endpoints: Endpoints {
            converse,
            exchange,
            hosted_email,
        },
        readiness,
        purge,
        jwks: (!provider_keys.is_empty()).then_some(JwksService {
            providers: provider_keys,
        }),
    })
}

/// Opens the configured store, counting its operations.
fn open_store(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Ok(match &config.store {
        StoreSettings::Sqlite { path } => Arc::new(MeteredStore::new(
            Box::new(SqliteStore::open(path)?),
            metrics.clone(),
        )),
    })
}

fn resolve_all(listen: &[String]) -> Result<Vec<ListenAddress>, Box<dyn std::error::Error>> {
    listen
        .iter()
        .map(|address| Ok(ListenAddress::resolve(address.parse::<SocketAddr>()?)?))
        .collect()
}

fn add_listener<A>(
    service: &mut Service<A>,
    address: &ListenAddress,
    tls: Option<&crate::config::TlsFiles>,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = address.address.to_string();
    match (tls, address.socket_options()) {
        (Some(tls), options) => {
            let cert = tls.cert.to_string_lossy();
            let key = tls.key.to_string_lossy();
            let settings = TlsSettings::intermediate(&cert, &key)?;
            service.add_tls_with_settings(&text, options, settings);
        }
        (None, Some(options)) => service.add_tcp_with_settings(&text, options),
        (None, None) => service.add_tcp(&text),
    }
    Ok(())
}
