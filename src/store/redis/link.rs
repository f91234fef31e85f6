//! The data connection to Redis: one multiplexed connection (redis-rs's `ConnectionManager`,
//! which reconnects by itself) to the server a URL names, or to the primary the sentinels name.
//! Under Sentinel, any failure has the sentinels asked again (at most every
//! [`REDISCOVER_EVERY`]), and a new primary gets a new connection: a failover is followed.
//!
//! Every call is bounded by the configured timeout: a slow or absent Redis is a
//! [`StoreError`], never a hang. Connections are made on the store's own Tokio runtime, so
//! their I/O tasks never depend on a request's.

use super::super::{StoreError, StoreResult};
use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use redis::sentinel::SentinelClient;
use redis::{Client, RedisError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{Mutex, Notify};

/// The most often the sentinels are asked again after failures.
const REDISCOVER_EVERY: Duration = Duration::from_millis(250);

/// Where the server is.
pub(super) enum Server {
    /// One server, by URL.
    Fixed(Client),
    /// The primary a set of sentinels names.
    Sentinel(Mutex<SentinelClient>),
}

/// The connection in use, and the server it goes to.
struct Active {
    manager: ConnectionManager,
    address: String,
}

pub(super) struct Link {
    server: Server,
    active: ArcSwapOption<Active>,
    /// Set while a connection is being made; waiters are woken when it is done.
    connecting: AtomicBool,
    connected: Notify,
    last_discovery: std::sync::Mutex<Option<Instant>>,
    timeout: Duration,
    runtime: Handle,
}

impl Link {
    pub(super) fn new(server: Server, timeout: Duration, runtime: Handle) -> Arc<Link> {
        Arc::new(Link {
            server,
            active: ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            connected: Notify::new(),
            last_discovery: std::sync::Mutex::new(None),
            timeout,
            runtime,
        })
    }

    pub(super) fn is_sentinel(&self) -> bool {
        matches!(self.server, Server::Sentinel(_))
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Runs `call` on the data connection, within the timeout.
    pub(super) async fn call<T, F, Fut>(self: &Arc<Self>, call: F) -> StoreResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let outcome = tokio::time::timeout(self.timeout, async {
            let manager = self.manager().await;
            call(manager).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.suspect();
                Err(StoreError(format!("redis: {error}")))
            }
            Err(_) => {
                self.suspect();
                Err(StoreError(format!(
                    "redis: no answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }

    /// The connection in use; the first call (or one after a failed connect) makes one.
    async fn manager(self: &Arc<Self>) -> ConnectionManager {
        loop {
            if let Some(active) = self.active.load_full() {
                return active.manager.clone();
            }
            let connected = self.connected.notified();
            self.connect_in_background();
            connected.await;
        }
    }

    /// The client for the server to use now (under Sentinel: asked of the sentinels).
    pub(super) async fn client(&self) -> Result<Client, RedisError> {
        match &self.server {
            Server::Fixed(client) => Ok(client.clone()),
            Server::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }

    /// Makes a connection on the store's runtime unless one is being made.
    pub(super) fn connect_in_background(self: &Arc<Self>) {
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = self.clone();
        self.runtime.spawn(async move {
            match link.connect().await {
                Ok(active) => link.active.store(Some(Arc::new(active))),
                Err(error) => tracing::warn!(%error, "cannot connect to redis"),
            }
            link.connecting.store(false, Ordering::Release);
            link.connected.notify_waiters();
        });
    }

    async fn connect(&self) -> Result<Active, RedisError> {
        *self.last_discovery.lock().expect("discovery lock") = Some(Instant::now());
        let client = self.client().await?;
        self.connect_to(client).await
    }

    async fn connect_to(&self, client: Client) -> Result<Active, RedisError> {
        let address = client.get_connection_info().addr().to_string();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        tracing::info!(redis = %address, "connected to redis");
        Ok(Active { manager, address })
    }

    /// A call failed. One server reconnects by itself; under Sentinel the primary may have
    /// moved: ask again, and switch if it has.
    pub(super) fn suspect(self: &Arc<Self>) {
        if matches!(self.server, Server::Fixed(_)) {
            return;
        }
        {
            let mut last = self.last_discovery.lock().expect("discovery lock");
            if last.is_some_and(|at| at.elapsed() < REDISCOVER_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = self.clone();
        self.runtime.spawn(async move {
            link.follow_primary().await;
            link.connecting.store(false, Ordering::Release);
            link.connected.notify_waiters();
        });
    }

    async fn follow_primary(&self) {
        let current = self.active.load_full();
        let client = match self.client().await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "the sentinels did not name a primary");
                return;
            }
        };
        let address = client.get_connection_info().addr().to_string();
        if current
            .as_ref()
            .is_some_and(|active| active.address == address)
        {
            return;
        }
        match self.connect_to(client).await {
            Ok(active) => {
                tracing::info!(redis = %active.address, "following the new primary");
                self.active.store(Some(Arc::new(active)));
            }
            Err(error) => tracing::warn!(%error, "cannot connect to the new primary"),
        }
    }
}
