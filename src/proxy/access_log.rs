//! The one access-log line per request (target `keyway::access`), and the request metrics
//! counted with it. The path is logged without its query: queries can carry one-time secrets;
//! a route may also mark its path tail as secret (a token to delete).
//!
//! The line is formatted here, field by field, in the text or JSON layout every other line
//! has (`tracing`'s own formatter, with its generic visitors, cost more per request than the
//! rest of keyway's work), and written through the same writer, in order.

use super::ctx::RequestCtx;
use crate::http_policy::forwarded::write_address;
use crate::logging::{LineOutput, LogFormat, line_output, write_timestamp};
use crate::metrics::{Metrics, UNROUTED, method_label};
use pingora::proxy::Session;
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::time::SystemTime;

/// The `target` of access-log lines, for log filters (`keyway::access=off`).
const TARGET: &str = "keyway::access";

/// Counts the request and, when the runtime has the access log on, writes its line.
pub(super) fn record(session: &Session, ctx: &RequestCtx, metrics: &Metrics) {
    let request = session.req_header();
    let status = session
        .response_written()
        .map_or(0, |header| header.status.as_u16());
    let code = ctx.code.as_deref().unwrap_or("");
    let method = method_label(&request.method);
    let elapsed = ctx.started.elapsed();
    let route = ctx.route_name();
    metrics.observe_request(
        if route.is_empty() { UNROUTED } else { route },
        method,
        status,
        code,
        (elapsed, ctx.route.as_ref().map(|route| &route.duration)),
    );
    if !ctx.runtime.access_log || !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let Some(output) = line_output() else {
        return;
    };
    let line = AccessLine {
        request_id: ctx.request_id(),
        route,
        method,
        path: &loggable_path(session, ctx),
        status,
        code,
        upstream: ctx
            .route
            .as_ref()
            .map_or("", |route| route.target.upstream_name()),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        upstream_ms: ctx
            .upstream_elapsed
            .map(|elapsed| elapsed.as_secs_f64() * 1000.0),
        client: ctx.client.as_ref().map(|chain| chain.client()),
    };
    line.write_to(output);
}

/// The fields of one access-log line, in their order.
struct AccessLine<'a> {
    request_id: &'a str,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    code: &'a str,
    upstream: &'a str,
    duration_ms: f64,
    upstream_ms: Option<f64>,
    client: Option<IpAddr>,
}

thread_local! {
    /// One line's bytes, reused: a request thread formats one line at a time.
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLine<'_> {
    fn write_to(&self, output: &LineOutput) {
        BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            match output.format() {
                LogFormat::Text => self.text(buffer),
                LogFormat::Json => self.json(buffer),
            }
            output.write(buffer);
        });
    }

    /// `2026-…Z  INFO keyway::access: request request_id="…" route="…" … client=127.0.0.1`
    fn text(&self, out: &mut Vec<u8>) {
        write_timestamp(out, SystemTime::now());
        out.extend_from_slice(b"  INFO keyway::access: request request_id=\"");
        out.extend_from_slice(self.request_id.as_bytes());
        out.extend_from_slice(b"\" route=");
        debug_string(out, self.route);
        out.extend_from_slice(b" method=\"");
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(b"\" path=");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" status=");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b" code=\"");
        out.extend_from_slice(self.code.as_bytes());
        out.extend_from_slice(b"\" upstream=");
        debug_string(out, self.upstream);
        self.write_times(out, b" duration_ms=", b" upstream_ms=");
        if let Some(client) = self.client {
            out.extend_from_slice(b" client=");
            write_address(out, client);
        }
        out.push(b'\n');
    }

    /// `{"timestamp":"…","level":"INFO","message":"request","request_id":"…",…,"target":"keyway::access"}`
    fn json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(out, SystemTime::now());
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
        json_string(out, b",\"request_id\":\"", self.request_id);
        json_string(out, b",\"route\":\"", self.route);
        json_string(out, b",\"method\":\"", self.method);
        json_string(out, b",\"path\":\"", self.path);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        json_string(out, b",\"code\":\"", self.code);
        json_string(out, b",\"upstream\":\"", self.upstream);
        self.write_times(out, b",\"duration_ms\":", b",\"upstream_ms\":");
        if let Some(client) = self.client {
            out.extend_from_slice(b",\"client\":\"");
            write_address(out, client);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"target\":\"keyway::access\"}\n");
    }
}

impl AccessLine<'_> {
    /// The durations in milliseconds, as `serde_json` and `tracing` print floats.
    fn write_times(&self, out: &mut Vec<u8>, duration: &[u8], upstream: &[u8]) {
        out.extend_from_slice(duration);
        out.extend_from_slice(ryu::Buffer::new().format(self.duration_ms).as_bytes());
        if let Some(upstream_ms) = self.upstream_ms {
            out.extend_from_slice(upstream);
            out.extend_from_slice(ryu::Buffer::new().format(upstream_ms).as_bytes());
        }
    }
}

/// `value` quoted as `{:?}` writes it (as `tracing`'s text lines show strings), without the
/// formatting machinery when nothing in it needs escaping (route and upstream names).
fn debug_string(out: &mut Vec<u8>, value: &str) {
    let plain = |byte: &u8| (b' '..=b'~').contains(byte) && *byte != b'"' && *byte != b'\\';
    if value.as_bytes().iter().all(plain) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// `,"name":"value"` (the caller gives `,"name":"`) with the value escaped as JSON requires.
fn json_string(out: &mut Vec<u8>, opening: &[u8], value: &str) {
    out.extend_from_slice(opening);
    let needs_escape = |byte: &u8| *byte < 0x20 || *byte == b'"' || *byte == b'\\';
    if !value.as_bytes().iter().any(needs_escape) {
        out.extend_from_slice(value.as_bytes());
    } else {
        for &byte in value.as_bytes() {
            match byte {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                control if control < 0x20 => {
                    let _ = write!(out, "\\u{control:04x}");
                }
                other => out.push(other),
            }
        }
    }
    out.push(b'"');
}

/// The request's path as a log line may show it: without its query, and without a route's
/// secret path tail.
fn loggable_path<'a>(session: &'a Session, ctx: &RequestCtx) -> std::borrow::Cow<'a, str> {
    let path = session.req_header().uri.path();
    ctx.route
        .as_ref()
        .map_or(path.into(), |matched| matched.loggable_path(path))
}

/// The request as Pingora's error lines name it: method, loggable path and request id.
pub(super) fn summary(session: &Session, ctx: &RequestCtx) -> String {
    let method = method_label(&session.req_header().method);
    let path = loggable_path(session, ctx);
    format!("{method} {path}, request_id: {}", ctx.request_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> AccessLine<'static> {
        AccessLine {
            request_id: "6d50761f-21bb-424b-b2b0-0b293ee68726",
            route: "chat \"v1\"",
            method: "GET",
            path: "/api/x",
            status: 200,
            code: "",
            upstream: "chat",
            duration_ms: 0.472929,
            upstream_ms: Some(0.25),
            client: Some("127.0.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn the_json_line_is_json_with_every_field() {
        let mut out = Vec::new();
        line().json(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["message"], "request");
        assert_eq!(value["target"], "keyway::access");
        assert_eq!(value["route"], "chat \"v1\"");
        assert_eq!(value["status"], 200);
        assert_eq!(value["duration_ms"], 0.472929);
        assert_eq!(value["upstream_ms"], 0.25);
        assert_eq!(value["client"], "127.0.0.1");
        let timestamp = value["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with('Z') && timestamp.len() == 27,
            "{timestamp}"
        );
        let mut escaped = Vec::new();
        json_string(&mut escaped, b",\"k\":\"", "a\u{1}b\\");
        assert_eq!(escaped, br#","k":"a\u0001b\\""#);
    }

    #[test]
    fn names_are_quoted_as_debug_formatting_quotes_them() {
        for name in ["chat", "chat \"v1\"", "a\\b", "tab\there", "é", "", "it's"] {
            let mut out = Vec::new();
            debug_string(&mut out, name);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{name:?}"));
        }
    }

    #[test]
    fn the_text_line_reads_like_every_other_line() {
        let mut out = Vec::new();
        line().text(&mut out);
        let text = String::from_utf8(out).unwrap();
        let fields = text
            .split_once("  INFO keyway::access: request ")
            .unwrap()
            .1;
        assert_eq!(
            fields,
            "request_id=\"6d50761f-21bb-424b-b2b0-0b293ee68726\" route=\"chat \\\"v1\\\"\" \
             method=\"GET\" path=/api/x status=200 code=\"\" upstream=\"chat\" \
             duration_ms=0.472929 upstream_ms=0.25 client=127.0.0.1\n"
        );
    }
}
