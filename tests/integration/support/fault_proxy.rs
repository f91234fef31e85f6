//! A TCP proxy on loopback in front of one real server (the upstream, a JWKS server, SMTP,
//! Redis) that injects a fault on command. Every chunk, in either direction, meets the fault
//! in force when it arrives, so long-lived connections (Redis, pooled upstream connections)
//! see it as well as new ones; new connections meet it at accept.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the proxy does to the bytes passing through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass untouched.
    None,
    /// Connections are reset (RST): new ones at accept, open ones at their next chunk.
    Reset,
    /// Bytes are held, not delivered, until the fault ends: a server that stopped answering.
    Stall,
    /// Each chunk from the server reaches the client this much later.
    Slow(Duration),
    /// The server's side closes (FIN to the client) without answering; the client's side
    /// stays open: a half-closed connection.
    HalfClose,
}

/// The proxy; it stops with its runtime when dropped.
pub struct FaultProxy {
    pub address: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `target`, passing bytes untouched.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let (runtime, listener) = super::backend::runtime_and_listener();
        let address = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = fault.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target, shared.clone()));
            }
        });
        FaultProxy {
            address,
            fault,
            _runtime: runtime,
        }
    }

    /// Puts `fault` in force for every chunk and connection from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// One client connection: refused, half-closed or relayed according to the fault in force.
async fn relay(mut client: TcpStream, target: SocketAddr, fault: Arc<Mutex<Fault>>) {
    let current = *fault.lock().unwrap();
    match current {
        Fault::Reset => return reset(&client),
        Fault::HalfClose => return half_closed(client).await,
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return reset(&client);
    };
    let ended = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let upward = pump(client_read, server_write, &fault, Direction::ToServer);
        let downward = pump(server_read, client_write, &fault, Direction::ToClient);
        both_or_reset(upward, downward).await
    };
    if ended == Ended::Reset {
        reset(&client);
        reset(&server);
    }
}

/// How one direction of a relayed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Its source closed (or failed) and the close was passed on.
    Closed,
    /// A reset fault cut the connection.
    Reset,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Waits for both directions to close, or for either to be reset.
async fn both_or_reset(
    upward: impl std::future::Future<Output = Ended>,
    downward: impl std::future::Future<Output = Ended>,
) -> Ended {
    tokio::pin!(upward, downward);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let ended = tokio::select! {
            ended = &mut upward, if !up_done => { up_done = true; ended }
            ended = &mut downward, if !down_done => { down_done = true; ended }
        };
        if ended == Ended::Reset {
            return Ended::Reset;
        }
    }
    Ended::Closed
}

/// Copies one direction chunk by chunk, applying the fault in force to each chunk.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    fault: &Mutex<Fault>,
    direction: Direction,
) -> Ended {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Ended::Closed;
            }
            Ok(read) => read,
        };
        loop {
            let current = *fault.lock().unwrap();
            match current {
                Fault::None => break,
                Fault::Reset => return Ended::Reset,
                Fault::Stall => tokio::time::sleep(Duration::from_millis(10)).await,
                Fault::Slow(delay) if direction == Direction::ToClient => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Fault::Slow(_) => break,
                Fault::HalfClose if direction == Direction::ToClient => {
                    let _ = to.shutdown().await;
                    return discard(from).await;
                }
                Fault::HalfClose => break,
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return Ended::Closed;
        }
    }
}

/// A server that has half-closed: FIN to the client at once, and whatever it sends is dropped.
async fn half_closed(mut client: TcpStream) {
    let _ = client.shutdown().await;
    discard(client).await;
}

/// Reads and drops until the source closes.
async fn discard(mut from: impl AsyncRead + Unpin) -> Ended {
    let mut sink = vec![0u8; 16 * 1024];
    while matches!(from.read(&mut sink).await, Ok(read) if read > 0) {}
    Ended::Closed
}

/// Makes the coming close of `stream` a reset (RST) instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
