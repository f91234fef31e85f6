//! `[server]`, `[admin]`, `[log]`, `[store]` and `[cache]`: the process-wide settings.

use super::field::{Checker, Field, List};
use super::raw::{RawAdmin, RawCache, RawLog, RawServer, RawStore, StoreBackend};
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
    let level = checker.check(
        "log.level",
        tracing_subscriber::EnvFilter::try_new(&level)
            .map(|_| level.clone())
            .map_err(|_| format!("invalid log filter {level:?}")),
    );
    let access_log = checker.get("log.access_log", raw.access_log);
    Some(LogSettings {
        level: level?,
        access_log: access_log?,
    })
}

pub(super) fn compile_store(
    raw: RawStore,
    base: &Path,
    checker: &mut Checker,
) -> Option<StoreSettings> {
    let backend = checker.get("store.backend", raw.backend);
    if backend == Some(StoreBackend::Redis) {
        checker.fail(
            "store.backend",
            "\"redis\" is not available in this version of keyway (available: \"sqlite\")",
        );
    }
    let path = checker.get("store.path", raw.path)?;
    if path.is_empty() {
        checker.fail("store.path", "must not be empty");
    }
    match backend? {
        StoreBackend::Sqlite => Some(StoreSettings::Sqlite {
            path: base.join(path),
        }),
        StoreBackend::Redis => None,
    }
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
