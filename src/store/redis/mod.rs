//! The Redis backend (Redis 7.0+ or Valkey, standalone or under Sentinel): one truth for a
//! fleet of keyway instances.
//!
//! Records expire natively (no purge job); single-use consumption has exactly one winner
//! across instances (the `DEL` result); every write is a Lua script, and with `wait_replicas`
//! it is acknowledged by that many replicas (`WAIT`) before a client hears it succeeded.
//! Keys, under `key_prefix` (see the README for operators):
//!
//! - `{prefix}rec:{namespace}:{sha256 hex}`: a record (hash `v`, `o`), expiring with it;
//! - `{prefix}own:{namespace}:{owner sha256 hex}`: a user's records, for "log out everywhere";
//! - `{prefix}lock:{account|client}:{id}`, `{prefix}slots:{account|client}:{id}`: login attempts;
//! - `{prefix}rate:{address|client}:{id}`: email limits;
//! - channel `{prefix}invalidations`: changed records, in `pubsub` invalidation mode.
//!
//! No raw token, password or email is in a key: records, owners and accounts are named by
//! SHA-256 digests (a record's value is what SQLite would hold: the token's user and lifetime).

mod counters;
mod invalidation;
mod link;
mod scripts;

pub use counters::{RedisAttempts, RedisRateLimiter};

use super::{InvalidationSink, Namespace, Record, SecretKey, Store, StoreError, StoreResult};
use crate::config::{RedisServer, RedisSettings, SentinelSettings};
use crate::metrics::{Metrics, StoreSeries};
use async_trait::async_trait;
use invalidation::Invalidations;
use link::{Link, Server};
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, Script};
use std::sync::{Arc, Weak};

/// Worker threads of the store's own runtime (the connections' I/O and the watcher).
const RUNTIME_THREADS: usize = 2;

/// Every key keyway writes, under the configured prefix; computed once.
#[derive(Clone)]
pub(super) struct KeyLayout {
    prefix: String,
    /// `{prefix}rec:{namespace}:` and `{prefix}own:{namespace}:`, by [`Namespace::ALL`] order.
    records: Vec<String>,
    owners: Vec<String>,
    channel: String,
}

impl KeyLayout {
    fn new(prefix: &str) -> Self {
        let per_namespace = |kind: &str| {
            Namespace::ALL
                .iter()
                .map(|namespace| format!("{prefix}{kind}:{}:", namespace.as_str()))
                .collect()
        };
        KeyLayout {
            prefix: prefix.to_owned(),
            records: per_namespace("rec"),
            owners: per_namespace("own"),
            channel: format!("{prefix}invalidations"),
        }
    }

    fn index(namespace: Namespace) -> usize {
        Namespace::ALL
            .iter()
            .position(|known| *known == namespace)
            .expect("every namespace is in ALL")
    }

    fn record_prefix(&self, namespace: Namespace) -> &str {
        &self.records[Self::index(namespace)]
    }

    fn owner_prefix(&self, namespace: Namespace) -> &str {
        &self.owners[Self::index(namespace)]
    }

    fn record(&self, namespace: Namespace, key: &SecretKey) -> String {
        format!("{}{}", self.record_prefix(namespace), key.to_hex())
    }

    /// What `CLIENT TRACKING ... BCAST PREFIX` watches: every record.
    fn tracked_prefix(&self) -> String {
        format!("{}rec:", self.prefix)
    }

    fn channel(&self) -> &str {
        &self.channel
    }

    /// The namespace and digest of a record key, if it is one.
    fn parse_record(&self, redis_key: &[u8]) -> Option<(Namespace, SecretKey)> {
        let rest = redis_key.strip_prefix(self.prefix.as_bytes())?;
        let rest = rest.strip_prefix(b"rec:")?;
        let colon = rest.iter().position(|&byte| byte == b':')?;
        let namespace = Namespace::named(std::str::from_utf8(&rest[..colon]).ok()?)?;
        Some((namespace, SecretKey::from_hex(&rest[colon + 1..])?))
    }

    fn counter(&self, kind: &str, name: &str, id: &str) -> String {
        format!("{}{kind}:{name}:{id}", self.prefix)
    }
}

/// The store's own Tokio runtime, shut down without blocking when the store goes.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// One Redis, shared by the store and the counters of an instance.
pub struct Redis {
    link: Arc<Link>,
    keys: KeyLayout,
    invalidations: Arc<Invalidations>,
    /// `''`, or the channel write scripts announce changes on (`pubsub` mode).
    announce_on: String,
    wait_replicas: u32,
    series: StoreSeries,
    /// Last: dropped after everything that runs on it.
    _runtime: OwnedRuntime,
}

impl Redis {
    /// Sets up the connections (made in the background: keyway starts, unready, while Redis
    /// is away) and the invalidation watcher.
    pub fn connect(settings: &RedisSettings, metrics: &Metrics) -> StoreResult<Arc<Redis>> {
        // rediss:// needs a process-wide rustls provider; keyway's is aws-lc-rs.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("keyway-redis")
            .enable_all()
            .build()
            .map_err(|error| StoreError(format!("cannot start the redis runtime: {error}")))?;
        let server = server(&settings.server)?;
        let link = Link::new(server, settings.timeout, runtime.handle().clone());
        // Connect now, not on the first request: that one would pay the connection's set-up
        // within its `timeout_ms`.
        link.connect_in_background();
        let keys = KeyLayout::new(&settings.key_prefix);
        let invalidations = Arc::new(Invalidations::new(keys.clone(), metrics));
        runtime.spawn(invalidation::watch_forever(
            link.clone(),
            Arc::downgrade(&invalidations),
            settings.invalidation,
        ));
        let announce_on = match settings.invalidation {
            crate::config::InvalidationMode::Tracking => String::new(),
            crate::config::InvalidationMode::Pubsub => keys.channel().to_owned(),
        };
        Ok(Arc::new(Redis {
            link,
            invalidations,
            announce_on,
            wait_replicas: settings.wait_replicas,
            series: metrics.store_series("redis", &super::OPERATIONS),
            keys,
            _runtime: OwnedRuntime(Some(runtime)),
        }))
    }

    /// The record store over this Redis.
    pub fn store(self: &Arc<Self>) -> RedisStore {
        RedisStore(self.clone())
    }

    pub(super) fn attempt_counters(self: &Arc<Self>, kind: &'static str) -> RedisAttempts {
        RedisAttempts::new(self.clone(), kind)
    }

    pub(super) fn rate_limiter(
        self: &Arc<Self>,
        name: &'static str,
        burst: std::num::NonZeroU32,
        period: std::time::Duration,
    ) -> RedisRateLimiter {
        RedisRateLimiter::new(self.clone(), name, burst, period)
    }

    /// Runs a script; a write also waits for `wait_replicas` acknowledgements.
    async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
        write: bool,
    ) -> StoreResult<T> {
        let wait = (write && self.wait_replicas > 0).then_some(self.wait_replicas);
        let timeout_ms = self.link.timeout().as_millis() as u64;
        let (value, replicas) = self
            .link
            .call(|mut connection| async move {
                let mut pipeline = redis::pipe();
                pipeline.add_command(eval(script, keys, args));
                if let Some(replicas) = wait {
                    pipeline.cmd("WAIT").arg(replicas).arg(timeout_ms);
                }
                let result = pipeline.query_async(&mut connection).await;
                let result = match result {
                    Err(error)
                        if error.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        script.prepare_invoke().load_async(&mut connection).await?;
                        pipeline.query_async(&mut connection).await
                    }
                    other => other,
                };
                let values: Vec<redis::Value> = result?;
                let mut values = values.into_iter();
                let value = values.next().unwrap_or(redis::Value::Nil);
                let replicas = values
                    .next()
                    .map(redis::from_redis_value::<u32>)
                    .transpose()?;
                Ok((redis::from_redis_value::<T>(value)?, replicas))
            })
            .await?;
        if let (Some(wanted), Some(acknowledged)) = (wait, replicas)
            && acknowledged < wanted
        {
            return Err(StoreError(format!(
                "redis: {acknowledged} of {wanted} replicas acknowledged the write in {timeout_ms} ms"
            )));
        }
        Ok(value)
    }
}

/// `EVALSHA` of `script` (loaded on first `NOSCRIPT`).
fn eval(script: &Script, keys: &[&str], args: &[&[u8]]) -> redis::Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        command.arg(*key);
    }
    for arg in args {
        command.arg(*arg);
    }
    command
}

/// The redis-rs server description of the settings; nothing here connects.
fn server(settings: &RedisServer) -> StoreResult<Server> {
    match settings {
        // The message never quotes the URL: it may hold a password.
        RedisServer::Url(url) => Client::open(url.expose())
            .map(Server::Fixed)
            .map_err(|error| StoreError(format!("store.url: {}", error.category()))),
        RedisServer::Sentinel(sentinel) => sentinel_client(sentinel)
            .map(|client| Server::Sentinel(tokio::sync::Mutex::new(client)))
            .map_err(|error| StoreError(format!("store.sentinels: {error}"))),
    }
}

fn sentinel_client(
    settings: &SentinelSettings,
) -> redis::RedisResult<redis::sentinel::SentinelClient> {
    let addresses = settings.sentinels.iter().map(|address| {
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "26379"));
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ConnectionAddr::Tcp(host.to_owned(), port.parse().unwrap_or(26379))
    });
    let mut builder =
        SentinelClientBuilder::new(addresses, &settings.master_name, SentinelServerType::Master)?;
    if let Some(username) = &settings.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.set_client_to_redis_password(password.expose());
    }
    if let Some(password) = &settings.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password.expose());
    }
    builder.build()
}

/// The [`Store`] over one [`Redis`].
pub struct RedisStore(Arc<Redis>);

/// Milliseconds as a script argument; `''`: never.
fn expiry_arg(expires_at_ms: Option<i64>) -> Vec<u8> {
    expires_at_ms.map_or_else(Vec::new, |ms| ms.to_string().into_bytes())
}

#[async_trait]
impl Store for RedisStore {
    async fn put(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        record: &Record,
        owner: Option<&SecretKey>,
    ) -> StoreResult<()> {
        let redis = &self.0;
        let record_key = redis.keys.record(namespace, key);
        let owner_hex = owner.map(SecretKey::to_hex).unwrap_or_default();
        let index = format!("{}{owner_hex}", redis.keys.owner_prefix(namespace));
        let mut keys = vec![record_key.as_str()];
        if owner.is_some() {
            keys.push(&index);
        }
        let (expiry, digest) = (expiry_arg(record.expires_at_ms), key.to_hex());
        let args: [&[u8]; 4] = [
            &record.value,
            &expiry,
            digest.as_bytes(),
            owner_hex.as_bytes(),
        ];
        let created: i64 = redis.run_script(&scripts::PUT, &keys, &args, true).await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError(
                "redis: a record with this key exists".to_owned(),
            ))
        }
    }

    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>> {
        let record_key = self.0.keys.record(namespace, key);
        let (value, expiry): (Option<Vec<u8>>, i64) = self
            .0
            .link
            .call(|mut connection| async move {
                redis::pipe()
                    .hget(&record_key, "v")
                    .cmd("PEXPIRETIME")
                    .arg(&record_key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        // -2: gone between the two reads; -1: no expiry.
        Ok(match (value, expiry) {
            (Some(value), -1) => Some(Record {
                value,
                expires_at_ms: None,
            }),
            (Some(value), expiry) if expiry >= 0 => Some(Record {
                value,
                expires_at_ms: Some(expiry),
            }),
            _ => None,
        })
    }

    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool> {
        let redis = &self.0;
        let record_key = redis.keys.record(namespace, key);
        let digest = key.to_hex();
        let args: [&[u8]; 3] = [
            redis.keys.owner_prefix(namespace).as_bytes(),
            digest.as_bytes(),
            redis.announce_on.as_bytes(),
        ];
        let removed: i64 = redis
            .run_script(&scripts::REMOVE, &[&record_key], &args, true)
            .await?;
        Ok(removed == 1)
    }

    async fn remove_owned_by(
        &self,
        namespace: Namespace,
        owner: &SecretKey,
    ) -> StoreResult<Vec<SecretKey>> {
        let redis = &self.0;
        let index = format!("{}{}", redis.keys.owner_prefix(namespace), owner.to_hex());
        let args: [&[u8]; 2] = [
            redis.keys.record_prefix(namespace).as_bytes(),
            redis.announce_on.as_bytes(),
        ];
        let removed: Vec<Vec<u8>> = redis
            .run_script(&scripts::REMOVE_OWNED_BY, &[&index], &args, true)
            .await?;
        Ok(removed
            .iter()
            .filter_map(|digest| SecretKey::from_hex(digest))
            .collect())
    }

    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool> {
        let redis = &self.0;
        let record_key = redis.keys.record(namespace, key);
        let (expiry, digest) = (expiry_arg(expires_at_ms), key.to_hex());
        let args: [&[u8]; 4] = [
            &expiry,
            redis.keys.owner_prefix(namespace).as_bytes(),
            digest.as_bytes(),
            redis.announce_on.as_bytes(),
        ];
        let updated: i64 = redis
            .run_script(&scripts::SET_EXPIRY, &[&record_key], &args, true)
            .await?;
        Ok(updated == 1)
    }

    /// Redis expires records by itself.
    async fn purge_expired(&self, _now_ms: i64) -> StoreResult<u64> {
        Ok(0)
    }

    fn watch(&self, namespace: Namespace, sink: Weak<dyn InvalidationSink>) {
        self.0.invalidations.watch(namespace, sink);
    }

    /// Reachable while the invalidation connection answers its checks.
    fn is_reachable(&self) -> bool {
        self.0.invalidations.is_trusted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_and_others_are_not_records() {
        let keys = KeyLayout::new("kw:");
        let key = SecretKey::of(b"token");
        let redis_key = keys.record(Namespace::ConverseToken, &key);
        assert!(redis_key.starts_with("kw:rec:converse_token:"));
        assert!(redis_key.starts_with(&keys.tracked_prefix()));
        assert_eq!(
            keys.parse_record(redis_key.as_bytes()),
            Some((Namespace::ConverseToken, key))
        );
        for other in [
            "kw:own:converse_token:00",
            "kw:rec:nope:00",
            "other:rec:converse_token:00",
            "kw:rec:converse_token:zz",
        ] {
            assert_eq!(keys.parse_record(other.as_bytes()), None, "{other}");
        }
    }
}
