//! Runs the Pingora server: the proxy service over the built runtime, the admin service and
//! the background services (lifecycle, store purge, JWKS refresh).

use crate::admin::AdminApp;
use crate::build::{Foundation, build, purge_interval};
use crate::config::{Settings, TlsFiles};
use crate::edge::Edge;
use crate::lifecycle::{Lifecycle, LifecycleService, write_pid_file};
use crate::listeners::ListenAddress;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::reload::ReloadService;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::sync::Arc;
use tracing::{info, warn};

/// Runtime shutdown timeout after the drain: tasks still running then are cancelled.
const RUNTIME_SHUTDOWN_SECONDS: u64 = 5;

/// Starts keyway and serves until SIGTERM (graceful), SIGQUIT (graceful, after handing the
/// listening sockets to a `--upgrade` process) or SIGINT (immediate); `config_path` is read
/// again on SIGHUP. With `upgrade`, the listening sockets come from the running keyway over
/// `server.upgrade_sock` (Pingora's hand-over). Never returns.
pub fn run(
    settings: Settings,
    config_path: &std::path::Path,
    upgrade: bool,
) -> Result<std::convert::Infallible, Box<dyn std::error::Error>> {
    raise_open_file_limit(settings.server.clients.max_connections);
    let proxy_addresses = settings
        .server
        .listen
        .iter()
        .map(|address| ListenAddress::resolve(*address))
        .collect::<Result<Vec<_>, _>>()?;
    let admin_address = ListenAddress::resolve(settings.admin.listen)?;

    let server_conf = ServerConf {
        threads: settings.server.threads,
        grace_period_seconds: Some(settings.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(RUNTIME_SHUTDOWN_SECONDS),
        upstream_keepalive_pool_size: settings.server.upstream_keepalive_pool_size,
        upgrade_sock: settings.server.upgrade_sock.to_string_lossy().into_owned(),
        pid_file: settings.server.pid_file.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    if let Some(directory) = settings.server.upgrade_sock.parent() {
        std::fs::create_dir_all(directory)?;
    }
    let options = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(options), server_conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let foundation = Arc::new(Foundation::new(&settings, &metrics));
    let (runtime, readiness) = build(&settings, &foundation)?.commit(&foundation);
    let lifecycle = Arc::new(Lifecycle::new(readiness));
    let gateway = Gateway::new(runtime, metrics.clone(), lifecycle.clone());
    let runtime_slot = gateway.runtime_slot();
    let edge = Edge::new(
        http_proxy(&server.configuration, gateway),
        settings.server.clients.clone(),
        &metrics,
    );
    let mut proxy = Service::new("keyway proxy".to_owned(), edge);
    for address in &proxy_addresses {
        add_listener(&mut proxy, address, settings.server.tls.as_ref())?;
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
        lifecycle: lifecycle.clone(),
        listeners: proxy_addresses
            .iter()
            .map(|address| address.address)
            .collect(),
        grace_period: settings.server.grace_period,
        pid_file: settings.server.pid_file.clone(),
    };
    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service("keyway lifecycle", lifecycle_service));
    let purge = foundation.purge_service(purge_interval(&settings));
    server.add_service(background_service("keyway store purge", purge));
    server.add_service(background_service("keyway jwks", foundation.jwks_service()));

    let proxy_list: Vec<String> = proxy_addresses
        .iter()
        .map(|address| address.address.to_string())
        .collect();
    write_pid_file(&settings.server.pid_file).map_err(|error| {
        format!(
            "server.pid_file: {}: {error}",
            settings.server.pid_file.display()
        )
    })?;
    info!(proxy = proxy_list.join(","), admin = %admin_address.address, "listening");
    let reload = ReloadService::new(
        config_path.to_owned(),
        settings,
        foundation,
        runtime_slot,
        lifecycle,
    );
    server.add_service(background_service("keyway reload", reload));
    // `proxy_addresses` and `admin_address` hold port reservations: keep them alive until exit.
    server.run_forever()
}

/// Every connection is a file: the soft limit (often 1024) is raised to the hard one, so that
/// `max_connections` clients and the upstream pools fit.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            info!(open_files = limit, "open-file limit");
            if (limit as usize) < max_connections + 256 {
                warn!(
                    open_files = limit,
                    max_connections, "the open-file limit is below max_connections + 256"
                );
            }
        }
        Err(error) => warn!(%error, "could not raise the open-file limit"),
    }
}

fn add_listener<A>(
    service: &mut Service<A>,
    address: &ListenAddress,
    tls: Option<&TlsFiles>,
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
