//! Log set-up: text or JSON lines via `tracing`, written off the request threads. (The
//! access-log line itself is the proxy's: `proxy::access_log`.)
//!
//! Pingora's own debug and trace records print request heads (targets with their queries,
//! headers with their credentials): they are never written, whatever the configured level.

use tracing::level_filters::LevelFilter;
use tracing_log::AsLog;
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
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    };
    // A second init (tests, embedding) keeps the first subscriber.
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        bridge_log_records();
    }
}

/// Crates that log through `log` (Pingora) reach the subscriber up to `info` at most: Pingora's
/// debug and trace records print whole request heads (queries, credentials). The cap also keeps
/// their disabled records as cheap as a level comparison.
fn bridge_log_records() {
    let level = LevelFilter::current().min(LevelFilter::INFO);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(level.as_log())
        .init();
}

/// Keeps the log writer thread alive; dropping it flushes every pending line.
static WRITER_GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out every pending log line (call before `process::exit`).
pub fn flush() {
    let guard = WRITER_GUARD.lock().map(|mut guard| guard.take());
    drop(guard);
}
