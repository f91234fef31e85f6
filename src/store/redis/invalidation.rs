//! Fleet-wide cache invalidation: one dedicated RESP3 connection per instance hears of every
//! change to a record and evicts it from this instance's caches.
//!
//! In `tracking` mode the connection asks Redis for `CLIENT TRACKING ON BCAST PREFIX
//! <records>`: Redis pushes the name of every record key anyone changes (including deletes and
//! expiries in Redis itself), and a flush. In `pubsub` mode (servers without BCAST tracking) it
//! subscribes to the channel keyway's own write scripts publish to.
//!
//! The caches are trusted only while this connection is known to be alive: it is PINGed every
//! [`PING_EVERY`]; a failed PING, or the connection dropping, clears the caches and has every
//! credential checked against Redis until the connection is back. Since Redis answers a PING
//! after every push it sent before it, a good PING also proves no invalidation was lost.

use super::KeyLayout;
use super::link::Link;
use crate::config::InvalidationMode;
use crate::metrics::Metrics;
use crate::store::{InvalidationSink, Namespace};
use prometheus::{IntCounter, IntGauge};
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How often the invalidation connection is checked.
pub(super) const PING_EVERY: Duration = Duration::from_millis(500);
/// Waits between attempts to re-establish it.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The caches in front of the store, and whether they may be trusted.
pub(super) struct Invalidations {
    keys: KeyLayout,
    sinks: RwLock<Vec<(Namespace, Weak<dyn InvalidationSink>)>>,
    trusted: AtomicBool,
    remote: IntCounter,
    flush: IntCounter,
    untrusted: IntCounter,
    trusted_gauge: IntGauge,
}

impl Invalidations {
    pub(super) fn new(keys: KeyLayout, metrics: &Metrics) -> Self {
        let trusted_gauge = metrics.cache_trusted();
        trusted_gauge.set(0);
        Invalidations {
            keys,
            sinks: RwLock::new(Vec::new()),
            trusted: AtomicBool::new(false),
            remote: metrics.cache_invalidation("remote"),
            flush: metrics.cache_invalidation("flush"),
            untrusted: metrics.cache_invalidation("untrusted"),
            trusted_gauge,
        }
    }

    /// Registers a cache; it starts untrusted unless changes are being heard now.
    pub(super) fn watch(&self, namespace: Namespace, sink: Weak<dyn InvalidationSink>) {
        let mut sinks = self.sinks.write().expect("sinks lock");
        if let Some(cache) = sink.upgrade() {
            cache.set_trusted(self.trusted.load(Ordering::Acquire));
        }
        sinks.push((namespace, sink));
    }

    /// Whether changes are being heard now (the caches may answer).
    pub(super) fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    fn each_sink(&self, namespace: Option<Namespace>, apply: impl Fn(&dyn InvalidationSink)) {
        let sinks = self.sinks.read().expect("sinks lock");
        for (watched, sink) in sinks.iter() {
            if namespace.is_none_or(|namespace| namespace == *watched)
                && let Some(sink) = sink.upgrade()
            {
                apply(sink.as_ref());
            }
        }
    }

    /// A record key changed in Redis.
    fn changed(&self, redis_key: &[u8]) {
        if let Some((namespace, key)) = self.keys.parse_record(redis_key) {
            self.remote.inc();
            self.each_sink(Some(namespace), |sink| sink.invalidate(&key));
        }
    }

    fn flushed(&self) {
        self.flush.inc();
        self.each_sink(None, |sink| sink.invalidate_all());
    }

    fn set_trusted(&self, trusted: bool) {
        let was = self.trusted.swap(trusted, Ordering::AcqRel);
        if was == trusted {
            return;
        }
        if !trusted {
            self.untrusted.inc();
            tracing::warn!("cache invalidations lost: every credential is checked in redis");
        } else {
            tracing::info!("cache invalidations heard: caches trusted");
        }
        self.trusted_gauge.set(i64::from(trusted));
        self.each_sink(None, |sink| sink.set_trusted(trusted));
    }
}

/// One invalidation connection's state: pushes count only while it is the live one (a
/// connection given up on may still report its end later).
struct ConnectionState {
    live: AtomicBool,
    dropped: Notify,
}

/// Receives the connection's pushes on its I/O task: each is handled at once (an eviction is
/// a hash-map removal), so an invalidation takes effect before the next read of that key.
struct PushHandler {
    invalidations: Arc<Invalidations>,
    state: Arc<ConnectionState>,
}

impl AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if !self.state.live.load(Ordering::Acquire) {
            return Ok(());
        }
        let invalidations = &self.invalidations;
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        if let Value::BulkString(key) = key {
                            invalidations.changed(key);
                        }
                    }
                }
                _ => invalidations.flushed(),
            },
            PushKind::Message => {
                if let Some(Value::BulkString(key)) = info.data.get(1) {
                    invalidations.changed(key);
                }
            }
            PushKind::Disconnection => {
                invalidations.set_trusted(false);
                self.state.dropped.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

/// Keeps the invalidation connection up for as long as the store lives: connect, subscribe,
/// trust; PING; on any failure distrust, and connect again with backoff.
pub(super) async fn watch_forever(
    link: Arc<Link>,
    invalidations: Weak<Invalidations>,
    mode: InvalidationMode,
) {
    let mut retry = RETRY_FIRST;
    // The first failure of a streak is a warning; the retries after it are debug lines.
    let mut failing = false;
    loop {
        let Some(strong) = invalidations.upgrade() else {
            return;
        };
        let state = Arc::new(ConnectionState {
            live: AtomicBool::new(true),
            dropped: Notify::new(),
        });
        match subscribe(&link, &strong, mode, &state).await {
            Ok(mut connection) => {
                strong.set_trusted(true);
                retry = RETRY_FIRST;
                failing = false;
                watch_connection(&link, &state, &mut connection).await;
                state.live.store(false, Ordering::Release);
                strong.set_trusted(false);
                link.suspect();
            }
            Err(error) => {
                strong.set_trusted(false);
                if failing {
                    tracing::debug!(%error, "cannot connect to redis");
                } else {
                    tracing::warn!(%error, "cannot connect to redis");
                }
                failing = true;
                link.suspect();
            }
        }
        drop(strong);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Opens the RESP3 connection and asks for invalidations.
async fn subscribe(
    link: &Link,
    invalidations: &Arc<Invalidations>,
    mode: InvalidationMode,
    state: &Arc<ConnectionState>,
) -> Result<MultiplexedConnection, String> {
    let timeout = link.timeout();
    let established = tokio::time::timeout(timeout * 5, async {
        let client = link.client().await?;
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(PushHandler {
                invalidations: invalidations.clone(),
                state: state.clone(),
            });
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        match mode {
            InvalidationMode::Tracking => {
                redis::cmd("CLIENT")
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("BCAST")
                    .arg("PREFIX")
                    .arg(invalidations.keys.tracked_prefix())
                    .exec_async(&mut connection)
                    .await?
            }
            InvalidationMode::Pubsub => connection.subscribe(invalidations.keys.channel()).await?,
        }
        Ok::<_, redis::RedisError>(connection)
    })
    .await;
    match established {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Returns when the connection dropped or a check failed. The check is a PING; under Sentinel
/// a ROLE, so that a primary demoted to replica is left too.
async fn watch_connection(
    link: &Link,
    state: &ConnectionState,
    connection: &mut MultiplexedConnection,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PING_EVERY) => {}
            _ = state.dropped.notified() => return,
        }
        let check = async {
            if link.is_sentinel() {
                let role: Value = redis::cmd("ROLE").query_async(connection).await?;
                let is_primary = matches!(&role, Value::Array(items)
                    if matches!(items.first(), Some(Value::BulkString(role)) if role == b"master"));
                if !is_primary {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "no longer the primary",
                    )));
                }
                Ok(())
            } else {
                redis::cmd("PING").exec_async(connection).await
            }
        };
        match tokio::time::timeout(link.timeout(), check).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "redis invalidation connection failed its check");
                return;
            }
            Err(_) => {
                tracing::warn!("redis invalidation connection did not answer its check");
                return;
            }
        }
    }
}
