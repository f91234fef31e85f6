//! Compiled `[upstreams.NAME]`: pre-built peers with explicit timeouts, picked round-robin.

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use std::net::SocketAddr;
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
}

impl Upstream {
    pub fn new(name: String, addresses: &[SocketAddr], settings: &PeerSettings) -> Self {
        let pool = pool_group(&name);
        let peers = addresses
            .iter()
            .map(|address| build_peer(*address, settings, pool))
            .collect();
        Upstream {
            name,
            peers,
            next: AtomicUsize::new(0),
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
        let upstream = Upstream::new("u".into(), &addresses, &settings);
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
