//! Log set-up (text or JSON via `tracing`) and the one access-log line per request.

use crate::metrics::{Metrics, method_label};
use crate::proxy::RequestCtx;
use pingora::proxy::Session;
use tracing::info;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (also capturing Pingora's `log` records). `RUST_LOG`, when
/// set, overrides `level`.
///
/// Lines are written by a background thread (request threads only format them); the writer
/// blocks rather than drop lines when it falls behind. [`flush`] before exiting.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    *WRITER_GUARD.lock().expect("log guard lock") = Some(guard);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(writer);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests, embedding) keeps the first subscriber.
    drop(installed);
}

/// Keeps the log writer thread alive; dropping it flushes every pending line.
static WRITER_GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out every pending log line (call before `process::exit`).
pub fn flush() {
    let guard = WRITER_GUARD.lock().map(|mut guard| guard.take());
    drop(guard);
}

/// Per-request metrics and, when enabled, the access-log line.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    pub enabled: bool,
}

impl AccessLog {
    /// The path is logged without its query: queries can carry one-time secrets.
    pub fn record(&self, session: &Session, ctx: &RequestCtx, metrics: &Metrics) {
        let request = session.req_header();
        let status = session
            .response_written()
            .map_or(0, |header| header.status.as_u16());
        let code = ctx.code.as_deref().unwrap_or("");
        let method = method_label(&request.method);
        let elapsed = ctx.started.elapsed();
        let route = ctx.route_name();
        let path = request.uri.path();
        let path = ctx
            .route
            .as_ref()
            .map_or(path.into(), |matched| matched.loggable_path(path));
        metrics.observe_request(
            if route.is_empty() { "-" } else { route },
            method,
            status,
            code,
            elapsed,
        );
        if !self.enabled {
            return;
        }
        info!(
            target: "keyway::access",
            request_id = ctx.request_id(),
            route,
            method,
            path = %path,
            status,
            code,
            upstream = ctx.route.as_ref().map_or("", |route| route.target.upstream_name()),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_ms = ctx.upstream_elapsed.map(|elapsed| elapsed.as_secs_f64() * 1000.0),
            client = session.client_addr().map(|addr| addr.to_string()),
            "request"
        );
    }
}
