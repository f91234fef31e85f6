//! Who the client is behind trusted proxies: `X-Forwarded-For` is believed only from a peer in
//! `[server] trusted_proxies`, and then only up to the right-most address that is not a trusted
//! proxy itself (everything left of it was written by the client and proves nothing).

use ipnet::IpNet;
use std::net::IpAddr;

/// The header keyway reads the client's address from, and writes the chain to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client and the proxies between it and keyway, as far as they can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientChain {
    /// What trusted proxies reported, in order: the client first, then each trusted hop
    /// before the peer. Empty when the peer is the client (no allocation then).
    reported: Vec<IpAddr>,
    /// The socket peer.
    peer: IpAddr,
}

impl ClientChain {
    /// A client connected directly (no trusted proxy in front).
    pub fn direct(peer: IpAddr) -> Self {
        ClientChain {
            reported: Vec::new(),
            peer,
        }
    }

    /// The client's address: the socket peer, or the right-most untrusted address that a
    /// trusted peer reported.
    pub fn client(&self) -> IpAddr {
        self.reported.first().copied().unwrap_or(self.peer)
    }

    /// Whether the request came through a trusted proxy that reported where it came from.
    pub fn is_forwarded(&self) -> bool {
        !self.reported.is_empty()
    }

    /// The chain as `X-Forwarded-For` writes it: the client, the trusted hops, the peer.
    pub fn header_value(&self) -> Vec<u8> {
        let mut text = Vec::with_capacity((self.reported.len() + 1) * 17);
        for hop in &self.reported {
            write_address(&mut text, *hop);
            text.extend_from_slice(b", ");
        }
        write_address(&mut text, self.peer);
        text
    }
}

/// Appends an address as text; IPv4 without the formatting machinery (this runs for every
/// request, for `X-Forwarded-For` and the access log).
pub fn write_address(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|network| network.contains(&address))
}

/// The chain of a request from `peer` that carried these `X-Forwarded-For` values (in order).
/// From an untrusted peer the header is ignored. From a trusted one it is read right to left:
/// trusted proxies are passed, the first other address is the client; a value that is not an
/// address ends the walk, and the last trusted hop is then taken as the client.
pub fn client_chain<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> ClientChain {
    let mut reported = Vec::new();
    if !trusted.is_empty() && is_trusted(peer, trusted) {
        let entries = forwarded_for
            .rev()
            .flat_map(|value| value.rsplit(','))
            .map(|entry| entry.trim().parse::<IpAddr>());
        for entry in entries {
            let Ok(address) = entry else { break };
            reported.push(address);
            if !is_trusted(address, trusted) {
                break;
            }
        }
        reported.reverse();
    }
    ClientChain { reported, peer }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(peer: &str, values: &[&str], trusted: &[&str]) -> ClientChain {
        let trusted: Vec<IpNet> = trusted.iter().map(|net| net.parse().unwrap()).collect();
        client_chain(peer.parse().unwrap(), values.iter().copied(), &trusted)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let found = chain("198.51.100.4", &["203.0.113.9"], &["10.0.0.0/8"]);
        assert_eq!(found.client().to_string(), "198.51.100.4");
        assert!(!found.is_forwarded());
        assert_eq!(found.header_value(), b"198.51.100.4");
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let trusted = ["10.0.0.0/8", "127.0.0.1/32"];
        let found = chain("127.0.0.1", &["6.6.6.6, 203.0.113.9", "10.1.2.3"], &trusted);
        assert_eq!(found.client().to_string(), "203.0.113.9");
        assert_eq!(found.header_value(), b"203.0.113.9, 10.1.2.3, 127.0.0.1");
        // Only trusted hops: the left-most of them is as far as anyone can see.
        let found = chain("127.0.0.1", &["10.0.0.1"], &trusted);
        assert_eq!(found.client().to_string(), "10.0.0.1");
        // Garbage ends the walk at the last trusted hop.
        let found = chain("127.0.0.1", &["203.0.113.9, nonsense, 10.0.0.2"], &trusted);
        assert_eq!(found.client().to_string(), "10.0.0.2");
        assert_eq!(found.header_value(), b"10.0.0.2, 127.0.0.1");
        // No header: the peer.
        let found = chain("127.0.0.1", &[], &trusted);
        assert_eq!(found.header_value(), b"127.0.0.1");
        let found = chain("::1", &["10.0.0.1, 203.0.113.200"], &["::1/128"]);
        assert_eq!(found.header_value(), b"203.0.113.200, ::1");
        assert_eq!(
            ClientChain::direct("10.20.3.0".parse().unwrap()).header_value(),
            b"10.20.3.0"
        );
    }
}
