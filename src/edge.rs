//! Client connections before Pingora's HTTP app: how many may be open, and how long and how
//! large each request head may be.
//!
//! Pingora times each read of a head, not the whole head, caps heads at 1 MiB and keeps idle
//! connections for a fixed time, so a client trickling a byte every few seconds, or sending a
//! megabyte of headers, or holding a connection open, pins a task and its memory. [`Edge`] reads
//! each request head itself (within `header_timeout`, `max_header_bytes` and `max_headers`, after
//! at most `keepalive_timeout` of idleness), then hands the session to the proxy with the head
//! as already-read bytes, with body-read and write timeouts set. A connection beyond
//! `max_connections`, a slow head and a large head are answered with the envelope (503-01,
//! 408-01, 431-01) and closed: never left to hang.

use crate::config::ClientLimits;
use crate::error::GatewayError;
use crate::headers::new_request_id;
use crate::metrics::Metrics;
use crate::proxy::OwnResponse;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::prelude::timeout;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// How long an answer written by the edge may take before the connection is dropped anyway.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP app behind the limits (keyway's proxy), and the limits.
pub struct Edge<A> {
    app: Arc<A>,
    limits: ClientLimits,
    connections: Arc<Semaphore>,
    open: IntGauge,
    refused: Refusals,
}

/// `keyway_client_connections_closed_total` by reason, resolved once.
struct Refusals {
    limit: IntCounter,
    slow_header: IntCounter,
    large_header: IntCounter,
}

/// How reading a request head ended.
enum Head {
    /// A whole head (and any body bytes read with it).
    Read(BytesMut),
    /// The client closed, went idle, or the service is shutting down: close quietly.
    Gone,
    /// The head did not arrive within `header_timeout`.
    TooSlow,
    /// Larger than `max_header_bytes`, or more than `max_headers` headers.
    TooLarge,
}

impl<A> Edge<A> {
    pub fn new(app: A, limits: ClientLimits, metrics: &Metrics) -> Self {
        Edge {
            app: Arc::new(app),
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            open: metrics.client_connections(),
            refused: Refusals {
                limit: metrics.connections_closed("limit"),
                slow_header: metrics.connections_closed("slow_header"),
                large_header: metrics.connections_closed("large_header"),
            },
        }
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Edge<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_permit) = self.connections.clone().try_acquire_owned() else {
            self.refused.limit.inc();
            answer(&mut stream, &GatewayError::ServiceUnavailable).await;
            return None;
        };
        self.open.inc();
        let _open = OpenConnection(self.open.clone());
        // A new connection gets `header_timeout` for its first byte; a kept-alive one, its idle time.
        let mut idle = self.limits.header_timeout;
        loop {
            let head = read_head(&mut stream, idle, &self.limits).await;
            let prefix = match head {
                Head::Read(prefix) => prefix,
                Head::Gone => return None,
                Head::TooSlow => {
                    self.refused.slow_header.inc();
                    answer(&mut stream, &GatewayError::RequestTimeout).await;
                    return None;
                }
                Head::TooLarge => {
                    self.refused.large_header.inc();
                    answer(&mut stream, &GatewayError::HeadersTooLarge).await;
                    return None;
                }
            };
            let session = self.session(stream, prefix);
            stream = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume()
                .0;
            idle = self.limits.keepalive_timeout;
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

impl<A> Edge<A> {
    /// An HTTP/1 session whose head is already read, with the body and write timeouts set.
    fn session(&self, stream: Stream, head: BytesMut) -> ServerSession {
        let mut session = ServerSession::new_http1(stream);
        session.set_pipelined_prefix(head);
        let keepalive_seconds = self.limits.keepalive_timeout.as_secs().max(1);
        session.set_keepalive(Some(keepalive_seconds));
        session.set_read_timeout(Some(self.limits.body_timeout));
        session.set_write_timeout(Some(self.limits.write_timeout));
        session
    }
}

/// Reads one request head: its first byte within `idle`, the rest within `header_timeout`.
/// (An idle connection does not hold up a shutdown: keyway exits once no request is in flight.)
/// Timers are Pingora's cheap ones: this runs for every request.
async fn read_head(stream: &mut Stream, idle: Duration, limits: &ClientLimits) -> Head {
    let mut head = BytesMut::with_capacity(4096);
    let first = timeout(idle, stream.read_buf(&mut head)).await;
    if !matches!(first, Ok(Ok(read)) if read > 0) {
        return Head::Gone;
    }
    let deadline = Instant::now() + limits.header_timeout;
    let mut scanned = 0;
    loop {
        if let Some(end) = head_end(&head, scanned) {
            let lines = memchr::memchr_iter(b'\n', &head[..end]).count();
            // The request line and the blank line are not headers.
            let too_many = lines.saturating_sub(2) > limits.max_headers;
            return if too_many || end > limits.max_header_bytes {
                Head::TooLarge
            } else {
                Head::Read(head)
            };
        }
        if head.len() > limits.max_header_bytes {
            return Head::TooLarge;
        }
        scanned = head.len();
        head.reserve((limits.max_header_bytes + 1 - head.len()).min(4096));
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read_buf(&mut head)).await {
            Err(_) => return Head::TooSlow,
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Gone,
            Ok(Ok(_)) => {}
        }
    }
}

/// Where the head ends (after its blank line), searching from `scanned` (less the three bytes
/// a terminator could straddle): the first line feed followed by an empty line, `\r\n` or a
/// bare `\n`, as HTTP parsers accept both. Every request's head passes through here, and a
/// bearer token makes it long: the search jumps from line feed to line feed (`memchr`).
fn head_end(bytes: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    memchr::memchr_iter(b'\n', &bytes[from..])
        .map(|at| from + at + 1)
        .find_map(|line_start| match &bytes[line_start..] {
            [b'\n', ..] => Some(line_start + 1),
            [b'\r', b'\n', ..] => Some(line_start + 2),
            _ => None,
        })
}

/// Writes the envelope for `error` and closes, giving up after [`ANSWER_TIMEOUT`].
async fn answer(stream: &mut Stream, error: &GatewayError) {
    let request_id = new_request_id();
    let wire = OwnResponse::error(&request_id, error).into_http1_closing(&request_id);
    let _ = timeout(ANSWER_TIMEOUT, async {
        stream.write_all(&wire).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_blank_line_wherever_reads_split_it() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(head_end(head, 0), Some(head.len() - 4));
        assert_eq!(
            head_end(head, 25),
            Some(head.len() - 4),
            "straddling two reads"
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), Some(24));
        assert_eq!(
            head_end(b"GET / HTTP/1.1\nHost: a\n\r\n", 0),
            Some(25),
            "a bare line feed, then an empty CRLF line"
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
    }
}
