//! Log set-up: text or JSON lines via `tracing`, written off the request threads. (The
//! access-log line itself is the proxy's: `proxy::access_log`.)
//!
//! Pingora's own debug and trace records print request heads (targets with their queries,
//! headers with their credentials): they are never written, whatever the configured level.

use tracing::{Event, Level, Metadata};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(writer);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter).with_filter(NoPingoraDetail))
        .try_init();
    // A second init (tests, embedding) keeps the first subscriber.
    drop(installed);
}

/// Drops Pingora's records below `info` (they print request heads, queries and credentials).
struct NoPingoraDetail;

fn is_pingora_detail(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("pingora") && *metadata.level() > Level::INFO
}

impl<S> Filter<S> for NoPingoraDetail {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !is_pingora_detail(metadata)
    }

    /// Pingora logs through `log`: its records arrive with their own target only once
    /// normalised.
    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        let normalized = event.normalized_metadata();
        !is_pingora_detail(normalized.as_ref().unwrap_or_else(|| event.metadata()))
    }
}

/// Keeps the log writer thread alive; dropping it flushes every pending line.
static WRITER_GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out every pending log line (call before `process::exit`).
pub fn flush() {
    let guard = WRITER_GUARD.lock().map(|mut guard| guard.take());
    drop(guard);
}
