//! `[server]`, `[admin]`, `[log]`, `[store]` and `[cache]`: the process-wide settings.

use super::field::{Checker, Field, List};
use super::raw::{InvalidationMode, RawAdmin, RawCache, RawLog, RawServer, RawStore, StoreBackend};
use super::routes::check_host_port;
use super::secret::Secret;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    pub tls: Option<TlsFiles>,
    pub grace_period: Duration,
    pub max_body_bytes: u64,
    pub upstream_keepalive_pool_size: usize,
    /// Peers whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<IpNet>,
    pub clients: ClientLimits,
    /// Where the running process writes its PID (relative to the config file).
    pub pid_file: PathBuf,
    /// The Unix socket of the listener hand-over in a binary upgrade.
    pub upgrade_sock: PathBuf,
}

/// What a client connection may take: time, bytes, and how many at once.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `tracing` filter directive, checked to parse.
    pub level: String,
    pub access_log: bool,
}

/// Where durable state lives.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    Sqlite { path: PathBuf },
    Redis(RedisSettings),
}

/// `[store] backend = "redis"`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub server: RedisServer,
    /// Prepended to every key (non-empty, printable ASCII, no spaces).
    pub key_prefix: String,
    /// Every operation's bound: slower is a store failure (503-01), never a hang.
    pub timeout: Duration,
    /// Replicas that must acknowledge a write (`WAIT`) before it counts as done; 0: none.
    pub wait_replicas: u32,
    pub invalidation: InvalidationMode,
}

/// Which Redis server: one by URL, or the primary Sentinel names.
#[derive(Debug, Clone)]
pub enum RedisServer {
    /// A `redis://` or `rediss://` URL (checked for shape; it may hold a password).
    Url(Secret),
    Sentinel(SentinelSettings),
}

#[derive(Debug, Clone)]
pub struct SentinelSettings {
    /// `host:port` of each sentinel (at least one).
    pub sentinels: Vec<String>,
    pub master_name: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub sentinel_password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub capacity: u64,
    /// The documented staleness bound of every cached credential.
    pub ttl: Duration,
}

pub(super) fn compile_server(
    raw: RawServer,
    base: &Path,
    checker: &mut Checker,
) -> Option<ServerSettings> {
    let listen = checker.require_list(
        "server.listen",
        raw.listen,
        "at least one address is required",
    );
    let listen = listen.unwrap_or_default();
    let mut addresses = Vec::new();
    for (index, address) in listen.iter().enumerate() {
        let key = format!("server.listen[{index}]");
        if listen[..index].contains(address) {
            checker.fail(&key, format!("{address:?} is listed twice"));
        }
        addresses.extend(checker.check(key, parse_listen(address)));
    }
    let threads = checker.get("server.threads", raw.threads);
    if threads.is_some_and(|threads| !(1..=256).contains(&threads)) {
        checker.fail("server.threads", "must be between 1 and 256");
    }
    let grace = checker.get("server.grace_period_seconds", raw.grace_period_seconds);
    if grace.is_some_and(|seconds| seconds > 3600) {
        checker.fail("server.grace_period_seconds", "must be at most 3600");
    }
    let max_body_bytes = checker.get("server.max_body_bytes", raw.max_body_bytes);
    if max_body_bytes == Some(0) {
        checker.fail("server.max_body_bytes", "must be at least 1");
    }
    let pool = checker.get(
        "server.upstream_keepalive_pool_size",
        raw.upstream_keepalive_pool_size,
    );
    let trusted_proxies = compile_trusted_proxies(raw.trusted_proxies, checker);
    let limits = RawClientLimits {
        header_timeout_ms: raw.header_timeout_ms,
        keepalive_timeout_ms: raw.keepalive_timeout_ms,
        body_timeout_ms: raw.body_timeout_ms,
        write_timeout_ms: raw.write_timeout_ms,
        max_header_bytes: raw.max_header_bytes,
        max_headers: raw.max_headers,
        max_connections: raw.max_connections,
    };
    let clients = compile_client_limits(limits, checker);
    let pid_file = checker.get("server.pid_file", raw.pid_file);
    let upgrade_sock = checker.get("server.upgrade_sock", raw.upgrade_sock);
    let tls = match raw.tls {
        None => Some(None),
        Some(tls) => {
            let cert = checker.require("server.tls.cert", tls.cert);
            let key = checker.require("server.tls.key", tls.key);
            let cert = cert.map(|cert| existing_file(base, &cert, "server.tls.cert", checker));
            let key = key.map(|key| existing_file(base, &key, "server.tls.key", checker));
            cert.zip(key)
                .map(|(cert, key)| Some(TlsFiles { cert, key }))
        }
    };
    Some(ServerSettings {
        listen: addresses,
        threads: threads?,
        tls: tls?,
        grace_period: Duration::from_secs(grace?),
        max_body_bytes: max_body_bytes?,
        upstream_keepalive_pool_size: pool?,
        trusted_proxies: trusted_proxies?,
        clients: clients?,
        pid_file: base.join(pid_file?),
        upgrade_sock: base.join(upgrade_sock?),
    })
}

/// The client limit keys of `[server]`, as written.
struct RawClientLimits {
    header_timeout_ms: Field<u64>,
    keepalive_timeout_ms: Field<u64>,
    body_timeout_ms: Field<u64>,
    write_timeout_ms: Field<u64>,
    max_header_bytes: Field<usize>,
    max_headers: Field<usize>,
    max_connections: Field<usize>,
}

fn compile_client_limits(raw: RawClientLimits, checker: &mut Checker) -> Option<ClientLimits> {
    let mut timeout = |name: &str, field| {
        let key = format!("server.{name}");
        let ms = checker.get(&key, field)?;
        if !(1..=3_600_000).contains(&ms) {
            checker.fail(key, "must be between 1 and 3600000 milliseconds");
        }
        Some(Duration::from_millis(ms))
    };
    let header_timeout = timeout("header_timeout_ms", raw.header_timeout_ms);
    let keepalive_timeout = timeout("keepalive_timeout_ms", raw.keepalive_timeout_ms);
    let body_timeout = timeout("body_timeout_ms", raw.body_timeout_ms);
    let write_timeout = timeout("write_timeout_ms", raw.write_timeout_ms);
    // Pingora's own ceilings: a head under 1 MiB, at most 256 headers.
    let mut bounded = |name: &str, field, range: std::ops::RangeInclusive<usize>| {
        let key = format!("server.{name}");
        let value = checker.get(&key, field)?;
        if !range.contains(&value) {
            checker.fail(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            );
        }
        Some(value)
    };
    let max_header_bytes = bounded("max_header_bytes", raw.max_header_bytes, 1024..=1_048_575);
    let max_headers = bounded("max_headers", raw.max_headers, 1..=256);
    let max_connections = bounded("max_connections", raw.max_connections, 1..=1_000_000);
    Some(ClientLimits {
        header_timeout: header_timeout?,
        keepalive_timeout: keepalive_timeout?,
        body_timeout: body_timeout?,
        write_timeout: write_timeout?,
        max_header_bytes: max_header_bytes?,
        max_headers: max_headers?,
        max_connections: max_connections?,
    })
}

/// `["10.0.0.0/8", "192.0.2.7", "::1"]`: networks, or single addresses.
fn compile_trusted_proxies(raw: List<String>, checker: &mut Checker) -> Option<Vec<IpNet>> {
    let written = checker.list("server.trusted_proxies", raw)?;
    let networks: Vec<Option<IpNet>> = written
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{text:?} is not a network (CIDR) or an address"));
            checker.check(format!("server.trusted_proxies[{index}]"), parsed)
        })
        .collect();
    networks.into_iter().collect()
}

pub(super) fn compile_admin(
    raw: RawAdmin,
    server: Option<&ServerSettings>,
    checker: &mut Checker,
) -> Option<AdminSettings> {
    let listen = checker.require("admin.listen", raw.listen)?;
    let listen = checker.check("admin.listen", parse_listen(&listen))?;
    let shared = server.is_some_and(|server| server.listen.contains(&listen));
    if shared && listen.port() != 0 {
        checker.fail(
            "admin.listen",
            "must differ from every server.listen address",
        );
    }
    Some(AdminSettings { listen })
}

pub(super) fn compile_log(raw: RawLog, checker: &mut Checker) -> Option<LogSettings> {
    let level = checker.get("log.level", raw.level)?;
    let level = checker.check("log.level", check_log_filter(level));
    let access_log = checker.get("log.access_log", raw.access_log);
    Some(LogSettings {
        level: level?,
        access_log: access_log?,
    })
}

/// The longest `[log] level` accepted, in bytes.
const MAX_LOG_FILTER_BYTES: usize = 1024;

/// A `[log] level`: `level` and `target=level` directives, comma-separated, as `tracing`
/// parses them. Span and field filters (`target[span{field=value}]=level`) are refused: a field
/// value is a regular expression that `tracing` compiles to a DFA whose size can grow
/// exponentially with the pattern (the `config` fuzz target found a 238-byte filter that took
/// minutes to check), and a config check, a start or a reload must be quick.
fn check_log_filter(level: String) -> Result<String, String> {
    if level.len() > MAX_LOG_FILTER_BYTES {
        return Err(format!("must be at most {MAX_LOG_FILTER_BYTES} bytes"));
    }
    if level.contains(['[', ']', '{', '}']) {
        return Err(
            "span and field filters ([span{field=value}]) are not accepted: use \
                    level or target=level directives"
                .to_owned(),
        );
    }
    match tracing_subscriber::EnvFilter::try_new(&level) {
        Ok(_) => Ok(level),
        Err(_) => Err(format!("invalid log filter {level:?}")),
    }
}

pub(super) fn compile_store(
    mut raw: RawStore,
    base: &Path,
    checker: &mut Checker,
) -> Option<StoreSettings> {
    let backend = checker.get("store.backend", std::mem::take(&mut raw.backend));
    let path = checker.get("store.path", std::mem::take(&mut raw.path))?;
    if path.is_empty() {
        checker.fail("store.path", "must not be empty");
    }
    let redis = compile_redis(raw, backend == Some(StoreBackend::Redis), checker);
    match backend? {
        StoreBackend::Sqlite => {
            for key in redis.written {
                checker.fail(format!("store.{key}"), "only used with backend = \"redis\"");
            }
            Some(StoreSettings::Sqlite {
                path: base.join(path),
            })
        }
        StoreBackend::Redis => redis.settings.map(StoreSettings::Redis),
    }
}

/// The Redis settings when they are valid, and which Redis-only keys were written (a problem
/// when the backend is SQLite).
struct CompiledRedis {
    settings: Option<RedisSettings>,
    written: Vec<&'static str>,
}

fn compile_redis(keys: RawStore, wanted: bool, checker: &mut Checker) -> CompiledRedis {
    let written = [
        ("url", !matches!(keys.url, Field::Absent)),
        (
            "sentinels",
            !matches!(&keys.sentinels, Field::Valid(items) if items.is_empty()),
        ),
        ("master_name", !matches!(keys.master_name, Field::Absent)),
        ("username", !matches!(keys.username, Field::Absent)),
        ("password", !matches!(keys.password, Field::Absent)),
        (
            "sentinel_password",
            !matches!(keys.sentinel_password, Field::Absent),
        ),
    ]
    .into_iter()
    .filter_map(|(key, written)| written.then_some(key))
    .collect();
    if !wanted {
        return CompiledRedis {
            settings: None,
            written,
        };
    }
    let server = compile_redis_server(
        RedisServerKeys {
            url: keys.url,
            sentinels: keys.sentinels,
            master_name: keys.master_name,
            username: keys.username,
            password: keys.password,
            sentinel_password: keys.sentinel_password,
        },
        checker,
    );
    let key_prefix = checker.get("store.key_prefix", keys.key_prefix);
    if let Some(prefix) = &key_prefix
        && (prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()))
    {
        checker.fail(
            "store.key_prefix",
            "must be 1 to 64 printable ASCII characters without spaces",
        );
    }
    let timeout = checker.get("store.timeout_ms", keys.timeout_ms);
    if timeout.is_some_and(|ms| !(1..=60_000).contains(&ms)) {
        checker.fail("store.timeout_ms", "must be between 1 and 60000");
    }
    let wait_replicas = checker.get("store.wait_replicas", keys.wait_replicas);
    if wait_replicas.is_some_and(|replicas| replicas > 100) {
        checker.fail("store.wait_replicas", "must be at most 100");
    }
    let invalidation = checker.get("store.invalidation", keys.invalidation);
    let settings = (|| {
        Some(RedisSettings {
            server: server?,
            key_prefix: key_prefix?,
            timeout: Duration::from_millis(timeout?),
            wait_replicas: wait_replicas?,
            invalidation: invalidation?,
        })
    })();
    CompiledRedis { settings, written }
}

/// The `[store]` keys that say which Redis server to use.
struct RedisServerKeys {
    url: Field<Secret>,
    sentinels: List<String>,
    master_name: Field<String>,
    username: Field<String>,
    password: Field<Secret>,
    sentinel_password: Field<Secret>,
}

/// `url`, or `sentinels` with `master_name`: exactly one way to find the server.
fn compile_redis_server(keys: RedisServerKeys, checker: &mut Checker) -> Option<RedisServer> {
    let url = checker.get("store.url", keys.url);
    let sentinels = checker.list("store.sentinels", keys.sentinels);
    let master_name = checker.get("store.master_name", keys.master_name);
    let username = checker.get("store.username", keys.username);
    let password = checker.get("store.password", keys.password);
    let sentinel_password = checker.get("store.sentinel_password", keys.sentinel_password);
    let sentinels = sentinels.filter(|sentinels| !sentinels.is_empty());
    match (url, sentinels) {
        (Some(_), Some(_)) => {
            checker.fail("store.url", "give either url or sentinels, not both");
            None
        }
        (Some(url), None) => {
            for (key, written) in [
                ("store.master_name", master_name.is_some()),
                ("store.username", username.is_some()),
                ("store.password", password.is_some()),
                ("store.sentinel_password", sentinel_password.is_some()),
            ] {
                if written {
                    checker.fail(
                        key,
                        "only used with sentinels (a url carries its own user and password)",
                    );
                }
            }
            checker.check("store.url", check_redis_url(url.expose()))?;
            Some(RedisServer::Url(url))
        }
        (None, Some(sentinels)) => {
            for (index, address) in sentinels.iter().enumerate() {
                checker.check(
                    format!("store.sentinels[{index}]"),
                    check_host_port(address),
                );
            }
            let Some(master_name) = master_name.filter(|name| !name.is_empty()) else {
                checker.fail("store.master_name", "is required with sentinels");
                return None;
            };
            Some(RedisServer::Sentinel(SentinelSettings {
                sentinels,
                master_name,
                username,
                password,
                sentinel_password,
            }))
        }
        (None, None) => {
            checker.fail(
                "store.url",
                "the redis backend needs url, or sentinels and master_name",
            );
            None
        }
    }
}

/// A Redis URL in shape. The message never quotes it: it may hold a password.
fn check_redis_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("is not a URL ({error})"))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return Err("must start with redis:// or rediss://".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    let database = parsed.path().trim_start_matches('/');
    if !database.is_empty() && database.parse::<u16>().is_err() {
        return Err("its path must be a database number (/0)".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    Ok(())
}

pub(super) fn compile_cache(raw: RawCache, checker: &mut Checker) -> Option<CacheSettings> {
    let capacity = checker.get("cache.capacity", raw.capacity);
    if capacity == Some(0) {
        checker.fail("cache.capacity", "must be at least 1");
    }
    let ttl = checker.get("cache.ttl_seconds", raw.ttl_seconds);
    if ttl.is_some_and(|ttl| !(1..=3600).contains(&ttl)) {
        checker.fail("cache.ttl_seconds", "must be between 1 and 3600");
    }
    Some(CacheSettings {
        capacity: capacity?,
        ttl: Duration::from_secs(ttl?),
    })
}

fn parse_listen(address: &str) -> Result<SocketAddr, String> {
    address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP:port address (e.g. \"0.0.0.0:8080\")"))
}

/// `file` relative to the config file, which must exist (it is read when keyway starts).
pub(super) fn existing_file(base: &Path, file: &str, key: &str, checker: &mut Checker) -> PathBuf {
    let path = base.join(file);
    if !path.is_file() {
        checker.fail(
            key,
            format!("file {:?} does not exist", path.display().to_string()),
        );
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn log_filters_of_levels_and_targets_are_accepted() {
        for filter in [
            "info",
            "keyway=debug,info",
            "keyway::access=off,pingora_core=warn",
        ] {
            assert_eq!(check_log_filter(filter.to_owned()), Ok(filter.to_owned()));
        }
        assert!(check_log_filter("keyway=loud".to_owned()).is_err());
    }

    /// The `config` fuzz target's timeout input: a field filter whose value pattern made
    /// `tracing` build an enormous DFA. It is refused at once, as is any span or field filter.
    #[test]
    fn span_and_field_filters_are_refused_quickly() {
        let pathological = format!(
            "info[route{{q=000{}{}1}}]=debug",
            ".".repeat(29),
            "0".repeat(60)
        );
        let started = Instant::now();
        for filter in [
            pathological.as_str(),
            "keyway[request]=debug",
            "[{user=alice}]=trace",
        ] {
            let refused = check_log_filter(filter.to_owned()).unwrap_err();
            assert!(refused.contains("span and field filters"), "{refused}");
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let long = "keyway=info,".repeat(100);
        assert!(
            check_log_filter(long)
                .unwrap_err()
                .contains("at most 1024 bytes")
        );
    }
}
