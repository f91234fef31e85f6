//! Log set-up: text or JSON lines via `tracing`, written off the request threads. (The
//! access-log line itself is the proxy's: `proxy::access_log`.)

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
