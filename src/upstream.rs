//! `[upstreams.NAME]` at run time: addresses resolved and CA files read once at start-up,
//! peers built with explicit timeouts, picked round-robin.

use crate::config::UpstreamSpec;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{WrappedX509, parse_x509};
use prometheus::Histogram;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connection settings shared by every address of an upstream.
#[derive(Clone)]
pub struct PeerSettings {
    pub tls: bool,
    pub sni: String,
    pub verify_cert: bool,
    /// CA certificates trusted for this upstream; `None`: the system roots.
    pub ca: Option<Arc<[WrappedX509]>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
}

/// One upstream: its peers are built once at start-up and cloned per request.
pub struct Upstream {
    pub name: String,
    peers: Vec<HttpPeer>,
    next: AtomicUsize,
    /// `keyway_upstream_duration_seconds{upstream=…}`, resolved once.
    pub duration: Histogram,
}

impl Upstream {
    /// Resolves the spec's addresses (each to its first address) and reads its CA file; the
    /// error names the key at fault.
    pub fn build(spec: &UpstreamSpec, duration: Histogram) -> Result<Upstream, String> {
        let key = format!("upstreams.{}", spec.name);
        let addresses = spec
            .addresses
            .iter()
            .enumerate()
            .map(|(index, address)| {
                match address.to_socket_addrs() {
                    Ok(mut resolved) => resolved.next(),
                    Err(_) => None,
                }
                .ok_or_else(|| {
                    format!("{key}.addresses[{index}]: {address:?} is not a resolvable host:port")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ca = match &spec.ca_file {
            Some(path) => {
                Some(load_ca_file(path).map_err(|error| format!("{key}.ca_file: {error}"))?)
            }
            None => None,
        };
        let settings = PeerSettings {
            tls: spec.tls,
            sni: spec.sni.clone(),
            verify_cert: spec.verify_cert,
            ca,
            connect_timeout: spec.connect_timeout,
            read_timeout: spec.read_timeout,
            write_timeout: spec.write_timeout,
            idle_timeout: spec.idle_timeout,
        };
        Ok(Upstream::new(
            spec.name.clone(),
            &addresses,
            &settings,
            duration,
        ))
    }

    pub fn new(
        name: String,
        addresses: &[SocketAddr],
        settings: &PeerSettings,
        duration: Histogram,
    ) -> Self {
        let pool = pool_group(&name);
        let peers = addresses
            .iter()
            .map(|address| build_peer(*address, settings, pool))
            .collect();
        Upstream {
            name,
            peers,
            next: AtomicUsize::new(0),
            duration,
        }
    }

    /// The next peer in round-robin order.
    pub fn next_peer(&self) -> Box<HttpPeer> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len();
        Box::new(self.peers[index].clone())
    }

    pub fn address_count(&self) -> usize {
        self.peers.len()
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// Reads the PEM certificates of an upstream's `ca_file`.
fn load_ca_file(path: &Path) -> Result<Arc<[WrappedX509]>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|_| format!("cannot read PEM file \"{shown}\""))?
        .map(|certificate| {
            certificate
                .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
                .map_err(|_| format!("\"{shown}\" holds an invalid certificate"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if certificates.is_empty() {
        return Err(format!("\"{shown}\" holds no certificate"));
    }
    Ok(certificates.into())
}

/// The connection-pool group of an upstream. Pingora pools by address and SNI only, so two
/// upstreams naming the same server with different trust settings (`ca_file`, `verify_cert`)
/// would otherwise share connections verified under the other's rules.
fn pool_group(name: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// Every Pingora timeout is set: a `None` would let a silent upstream hold a request forever.
fn build_peer(address: SocketAddr, settings: &PeerSettings, pool: u64) -> HttpPeer {
    let mut peer = HttpPeer::new(address, settings.tls, settings.sni.clone());
    peer.group_key = pool;
    let options = &mut peer.options;
    options.connection_timeout = Some(settings.connect_timeout);
    options.total_connection_timeout = Some(settings.connect_timeout);
    options.read_timeout = Some(settings.read_timeout);
    options.write_timeout = Some(settings.write_timeout);
    options.idle_timeout = Some(settings.idle_timeout);
    options.verify_cert = settings.verify_cert;
    options.verify_hostname = settings.verify_cert;
    options.ca = settings.ca.clone();
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_with_every_timeout_set() {
        let settings = PeerSettings {
            tls: false,
            sni: String::new(),
            verify_cert: true,
            ca: None,
            connect_timeout: Duration::from_millis(100),
            read_timeout: Duration::from_millis(200),
            write_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(400),
        };
        let addresses: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let duration = crate::metrics::Metrics::new().upstream_duration("u");
        let upstream = Upstream::new("u".into(), &addresses, &settings, duration);
        let ports: Vec<u16> = (0..4)
            .map(|_| upstream.next_peer()._address.as_inet().unwrap().port())
            .collect();
        assert_eq!(ports, vec![1, 2, 1, 2]);
        let peer = upstream.next_peer();
        assert_eq!(peer.options.read_timeout, Some(Duration::from_millis(200)));
        assert_eq!(peer.options.write_timeout, Some(Duration::from_millis(300)));
        assert_eq!(
            peer.options.connection_timeout,
            Some(Duration::from_millis(100))
        );
    }
}
