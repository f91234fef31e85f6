//! Listen addresses, with port 0 resolved before Pingora binds.
//!
//! Pingora binds listeners itself and does not report the port it got. For `host:0`, keyway
//! binds (without listening) a socket with SO_REUSEPORT to learn a free port and keeps it
//! open, then gives Pingora the concrete address with SO_REUSEPORT set. Only sockets of this
//! process with SO_REUSEPORT can share the port (the reservation has no SO_REUSEADDR), and a
//! bound-but-not-listening socket receives no connections, so nothing is lost.

use pingora::listeners::TcpSocketOptions;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;

/// A listener address ready for Pingora.
#[derive(Debug)]
pub struct ListenAddress {
    pub address: SocketAddr,
    /// Holds the port for a `:0` address; Pingora's socket must then share it.
    reservation: Option<Socket>,
}

impl ListenAddress {
    pub fn resolve(address: SocketAddr) -> std::io::Result<Self> {
        if address.port() != 0 {
            return Ok(ListenAddress {
                address,
                reservation: None,
            });
        }
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
        socket.set_reuse_port(true)?;
        socket.bind(&address.into())?;
        let bound = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("reserved socket has no IP address"))?;
        Ok(ListenAddress {
            address: bound,
            reservation: Some(socket),
        })
    }

    /// Socket options Pingora must use for this address.
    pub fn socket_options(&self) -> Option<TcpSocketOptions> {
        self.reservation.as_ref().map(|_| {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            options
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_port_that_stays_reserved() {
        let reserved = ListenAddress::resolve("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(reserved.address.port(), 0);
        assert!(std::net::TcpListener::bind(reserved.address).is_err());
        assert!(reserved.socket_options().unwrap().so_reuseport.unwrap());
        let fixed = ListenAddress::resolve("127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(fixed.socket_options().is_none());
    }
}
