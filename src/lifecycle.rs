//! Process lifecycle: readiness once listeners accept, and a bounded drain on SIGTERM.
//!
//! Pingora stops accepting on SIGTERM and then sleeps the whole grace period before exiting.
//! keyway counts in-flight requests instead and exits 0 as soon as the last one has finished
//! (or the grace period is over), so a deploy does not wait for nothing.

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tracing::info;

const POLL: Duration = Duration::from_millis(20);

/// Something keyway needs before it can serve (e.g. an identity provider's keys).
pub trait ReadinessCheck: Send + Sync {
    fn is_ready(&self) -> bool;
}

/// Shared process state: requests in flight, ready, draining.
#[derive(Default)]
pub struct Lifecycle {
    in_flight: AtomicUsize,
    listening: AtomicBool,
    draining: AtomicBool,
    /// Replaced as a whole by a reload.
    dependencies: ArcSwap<Vec<Arc<dyn ReadinessCheck>>>,
}

/// Counts one request as in flight until dropped.
pub struct InFlightGuard(Arc<Lifecycle>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lifecycle {
    /// A lifecycle that is ready only when every dependency is.
    pub fn new(dependencies: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Lifecycle {
            dependencies: ArcSwap::from_pointee(dependencies),
            ..Lifecycle::default()
        }
    }

    /// What readiness waits for from now on (a reloaded runtime's dependencies).
    pub fn set_dependencies(&self, dependencies: Vec<Arc<dyn ReadinessCheck>>) {
        self.dependencies.store(Arc::new(dependencies));
    }

    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Ready to serve: every proxy listener accepts, every dependency is ready, and no
    /// shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.listening.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
            && self
                .dependencies
                .load()
                .iter()
                .all(|dependency| dependency.is_ready())
    }
}

/// The background service that flips readiness on and drives the drain.
pub struct LifecycleService {
    pub lifecycle: Arc<Lifecycle>,
    /// The proxy listeners, as bound (port 0 already resolved).
    pub listeners: Vec<SocketAddr>,
    pub grace_period: Duration,
    /// Removed at exit if it still names this process (an upgrade's new process rewrote it).
    pub pid_file: std::path::PathBuf,
}

#[async_trait]
impl BackgroundService for LifecycleService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.wait_for_listeners() => {
                self.lifecycle.listening.store(true, Ordering::Release);
                info!("ready");
            }
            _ = shutdown.changed() => {}
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        self.drain().await;
    }
}

impl LifecycleService {
    async fn wait_for_listeners(&self) {
        for address in &self.listeners {
            let probe = SocketAddr::new(loopback_for(address.ip()), address.port());
            while tokio::net::TcpStream::connect(probe).await.is_err() {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    async fn drain(&self) -> ! {
        self.lifecycle.draining.store(true, Ordering::Release);
        info!(
            in_flight = self.lifecycle.in_flight(),
            "shutting down: draining in-flight requests"
        );
        let deadline = Instant::now() + self.grace_period;
        while self.lifecycle.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        info!(abandoned = self.lifecycle.in_flight(), "drained; exiting");
        remove_pid_file_if_ours(&self.pid_file);
        crate::logging::flush();
        std::process::exit(0)
    }
}

/// Writes this process's PID to `path` (creating its directory), replacing what was there.
pub fn write_pid_file(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// The PID named in `path`, if it holds one.
pub fn read_pid_file(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn remove_pid_file_if_ours(path: &std::path::Path) {
    if read_pid_file(path) == Some(std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Where to probe a listener bound to `ip` from this host.
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_in_flight() {
        let lifecycle = Arc::new(Lifecycle::default());
        let first = lifecycle.enter();
        let second = lifecycle.enter();
        assert_eq!(lifecycle.in_flight(), 2);
        drop(first);
        drop(second);
        assert_eq!(lifecycle.in_flight(), 0);
        assert!(!lifecycle.is_ready());
    }
}
