//! Deletes expired records in the background, so the store does not grow without bound.

use super::{Store, now_ms};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::{debug, warn};

/// Purges the store once it is open (a reload may be the first to need it); Redis expires
/// its records by itself and purges nothing.
pub struct PurgeService {
    pub store: Arc<OnceLock<Arc<dyn Store>>>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for PurgeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
            let Some(store) = self.store.get() else {
                continue;
            };
            match store.purge_expired(now_ms()).await {
                Ok(purged) => debug!(purged, "expired records purged"),
                Err(error) => warn!(%error, "purging expired records failed"),
            }
        }
    }
}
