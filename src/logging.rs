//! Log set-up: text or JSON lines via `tracing`, written off the request threads. (The
//! access-log line itself is the proxy's: `proxy::access_log`.)
//!
//! Pingora's own debug and trace records print request heads (targets with their queries,
//! headers with their credentials): they are never written, whatever the configured level.

use std::cell::Cell;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::NonBlocking;
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
    let _ = LINE_OUTPUT.set(LineOutput {
        writer: writer.clone(),
        format,
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(writer);
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SET_FILTER.set(Box::new(move |filter| handle.reload(filter).is_ok()));
            Box::new(builder.finish())
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SET_FILTER.set(Box::new(move |filter| handle.reload(filter).is_ok()));
            Box::new(builder.finish())
        }
    };
    // A second init (tests, embedding) keeps the first subscriber.
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        bridge_log_records();
    }
}

/// Replaces the level filter of the installed subscriber.
static SET_FILTER: OnceLock<Box<dyn Fn(EnvFilter) -> bool + Send + Sync>> = OnceLock::new();

/// A reload's `[log] level` (a `tracing` filter directive, validated by the config); `RUST_LOG`,
/// when set, still wins. Says whether the level was applied.
pub fn set_level(level: &str) -> bool {
    if std::env::var_os("RUST_LOG").is_some() {
        return false;
    }
    match (SET_FILTER.get(), EnvFilter::try_new(level)) {
        (Some(set), Ok(filter)) => set(filter),
        _ => false,
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

/// Where lines formatted outside `tracing` go (the access log: formatting each request's line
/// through the generic field visitors cost more than the rest of keyway's work on a request).
/// Same writer, same order, same format as every other line.
pub struct LineOutput {
    writer: NonBlocking,
    format: LogFormat,
}

static LINE_OUTPUT: OnceLock<LineOutput> = OnceLock::new();

/// The output of pre-formatted lines, once logging is set up.
pub fn line_output() -> Option<&'static LineOutput> {
    LINE_OUTPUT.get()
}

impl LineOutput {
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Writes one whole line (ending in `\n`) as one message to the writer thread.
    pub fn write(&self, line: &[u8]) {
        let _ = self.writer.clone().write_all(line);
    }
}

/// `2026-12-01T07:46:07.018969Z`: the timestamp every line starts with, as `tracing` writes it.
/// The text up to the seconds is kept per thread and redone only when the second changes.
pub fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    LAST_SECOND.with(|last| {
        let (second, mut text) = last.get();
        if second != Some(seconds) {
            text = second_text(seconds);
            last.set((Some(seconds), text));
        }
        out.extend_from_slice(&text);
    });
    write_padded(out, u64::from(since_epoch.subsec_micros()), 6);
    out.push(b'Z');
}

thread_local! {
    /// The second this thread last wrote a timestamp in, and its text (`2026-12-01T07:46:07.`).
    static LAST_SECOND: Cell<(Option<u64>, [u8; 20])> = const { Cell::new((None, [0; 20])) };
}

/// `2026-12-01T07:46:07.`: a timestamp up to its fraction of a second (years 0-9999).
fn second_text(seconds: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    let fields = [
        (year as u64, 4, b'-'),
        (u64::from(month), 2, b'-'),
        (u64::from(day), 2, b'T'),
        (of_day / 3600, 2, b':'),
        (of_day / 60 % 60, 2, b':'),
        (of_day % 60, 2, b'.'),
    ];
    let mut out = Vec::with_capacity(20);
    for (value, width, after) in fields {
        write_padded(&mut out, value, width);
        out.push(after);
    }
    out.try_into().unwrap_or([b'0'; 20])
}

/// `value` in decimal, zero-padded to `width` digits.
fn write_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Keeps the log writer thread alive; dropping it flushes every pending line.
static WRITER_GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out every pending log line (call before `process::exit`).
pub fn flush() {
    let guard = WRITER_GUARD.lock().map(|mut guard| guard.take());
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |seconds: u64, micros: u32| {
            let mut out = Vec::new();
            let time = UNIX_EPOCH + Duration::new(seconds, micros * 1000);
            write_timestamp(&mut out, time);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_796_111_167, 18_969), "2026-12-01T07:46:07.018969Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        assert_eq!(
            at(4_102_444_799, 1),
            "2099-12-31T23:59:59.000001Z",
            "the same second again, from the kept text"
        );
        assert_eq!(
            at(1_796_111_167, 0),
            "2026-12-01T07:46:07.000000Z",
            "an earlier second"
        );
    }
}
