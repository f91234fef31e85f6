//! Config reload on `SIGHUP` (sent by `keyway reload` or systemd's `ExecReload`): the file is
//! read and validated again; if anything is wrong, the running runtime keeps serving and every
//! problem is logged (the text `check-config` prints); else a new runtime is built over the
//! same foundation (store, counters, identity providers' keys) and swapped in through the one
//! pointer the proxy reads. Requests in flight finish on the runtime they started with.
//!
//! Keys that only a restart or an upgrade can change (listeners, threads, TLS files, client
//! limits, the admin listener, the store) keep their running values, with a warning naming
//! each; everything else reloads.

use crate::build::{Foundation, build};
use crate::config::{ConfigProblem, Settings};
use crate::lifecycle::Lifecycle;
use crate::logging;
use crate::proxy::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{Gauge, IntCounter};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// Reloads the config on `SIGHUP`.
pub struct ReloadService {
    config_path: PathBuf,
    /// The settings in force.
    running: Mutex<Settings>,
    foundation: Arc<Foundation>,
    runtime: Arc<ArcSwap<Runtime>>,
    lifecycle: Arc<Lifecycle>,
    succeeded: IntCounter,
    failed: IntCounter,
    last_success: Gauge,
    config_hash: Gauge,
}

impl ReloadService {
    pub fn new(
        config_path: PathBuf,
        running: Settings,
        foundation: Arc<Foundation>,
        runtime: Arc<ArcSwap<Runtime>>,
        lifecycle: Arc<Lifecycle>,
    ) -> Self {
        let metrics = foundation.metrics().clone();
        let service = ReloadService {
            config_path,
            running: Mutex::new(running),
            foundation,
            runtime,
            lifecycle,
            succeeded: metrics.config_reloads("success"),
            failed: metrics.config_reloads("failure"),
            last_success: metrics.config_last_reload_success(),
            config_hash: metrics.config_hash(),
        };
        service.loaded();
        service
    }

    /// Records a config now in force: its time and the digest of its file.
    fn loaded(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_success.set(now.as_secs_f64());
        self.config_hash.set(file_digest(&self.config_path));
    }

    /// One reload; problems are logged and counted, the running runtime stays.
    pub fn reload(&self) {
        info!(config = %self.config_path.display(), "reloading the config");
        match self.try_reload() {
            Ok(()) => {
                self.succeeded.inc();
                self.loaded();
                info!("config reloaded");
            }
            Err(problems) => {
                self.failed.inc();
                for problem in &problems {
                    warn!(%problem, "config reload refused");
                }
                warn!(
                    problems = problems.len(),
                    "config not reloaded: still serving the previous one"
                );
            }
        }
    }

    fn try_reload(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut settings = Settings::load(&self.config_path).map_err(|error| error.problems)?;
        let mut running = self.running.lock().expect("running settings lock");
        for key in keep_restart_only_keys(&running, &mut settings) {
            warn!(
                key,
                "config reload: this key needs a restart or an upgrade; it keeps its running value"
            );
        }
        let built = build(&settings, &self.foundation)
            .map_err(|error| vec![ConfigProblem::new("", error.to_string())])?;
        let (runtime, readiness) = built.commit(&self.foundation);
        self.runtime.store(Arc::new(runtime));
        self.lifecycle.set_dependencies(readiness);
        if settings.log.level != running.log.level && !logging::set_level(&settings.log.level) {
            warn!(key = "log.level", "not applied: RUST_LOG is set");
        }
        *running = settings;
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                warn!(%error, "cannot listen for SIGHUP: reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => self.reload(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Puts the running values back into `next` where only a restart can change them; returns the
/// keys whose new value is thereby refused.
fn keep_restart_only_keys(running: &Settings, next: &mut Settings) -> Vec<&'static str> {
    let mut refused = Vec::new();
    let mut keep = |key: &'static str, running: String, next: String| {
        if running != next {
            refused.push(key);
        }
    };
    let (old, new) = (&running.server, &next.server);
    keep("server.listen", debug(&old.listen), debug(&new.listen));
    keep("server.threads", debug(&old.threads), debug(&new.threads));
    keep("server.tls", debug(&old.tls), debug(&new.tls));
    keep(
        "server.pid_file",
        debug(&old.pid_file),
        debug(&new.pid_file),
    );
    keep(
        "server.upgrade_sock",
        debug(&old.upgrade_sock),
        debug(&new.upgrade_sock),
    );
    keep(
        "server.grace_period_seconds",
        debug(&old.grace_period),
        debug(&new.grace_period),
    );
    keep(
        "server.upstream_keepalive_pool_size",
        debug(&old.upstream_keepalive_pool_size),
        debug(&new.upstream_keepalive_pool_size),
    );
    let (old_clients, new_clients) = (&old.clients, &new.clients);
    for (key, running, next) in [
        (
            "server.header_timeout_ms",
            debug(&old_clients.header_timeout),
            debug(&new_clients.header_timeout),
        ),
        (
            "server.keepalive_timeout_ms",
            debug(&old_clients.keepalive_timeout),
            debug(&new_clients.keepalive_timeout),
        ),
        (
            "server.body_timeout_ms",
            debug(&old_clients.body_timeout),
            debug(&new_clients.body_timeout),
        ),
        (
            "server.write_timeout_ms",
            debug(&old_clients.write_timeout),
            debug(&new_clients.write_timeout),
        ),
        (
            "server.max_header_bytes",
            debug(&old_clients.max_header_bytes),
            debug(&new_clients.max_header_bytes),
        ),
        (
            "server.max_headers",
            debug(&old_clients.max_headers),
            debug(&new_clients.max_headers),
        ),
        (
            "server.max_connections",
            debug(&old_clients.max_connections),
            debug(&new_clients.max_connections),
        ),
    ] {
        keep(key, running, next);
    }
    keep("admin.listen", debug(&running.admin), debug(&next.admin));
    keep("store", debug(&running.store), debug(&next.store));
    next.server = crate::config::ServerSettings {
        trusted_proxies: next.server.trusted_proxies.clone(),
        max_body_bytes: next.server.max_body_bytes,
        ..running.server.clone()
    };
    next.admin = running.admin.clone();
    next.store = running.store.clone();
    refused
}

fn debug(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

/// The first 48 bits of the config file's SHA-256, as a gauge value (exact in an f64): which
/// config an instance runs, comparable across a fleet. 0 if the file cannot be read.
fn file_digest(path: &std::path::Path) -> f64 {
    let Ok(text) = std::fs::read(path) else {
        return 0.0;
    };
    let digest = Sha256::digest(&text);
    let mut bytes = [0u8; 8];
    bytes[2..].copy_from_slice(&digest[..6]);
    u64::from_be_bytes(bytes) as f64
}
