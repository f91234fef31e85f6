//! The `keyway` command: `run` (default), `check-config`, `reload`, and the helpers that make
//! config values (`hash-password`, `hash-api-key`, `new-api-key`).

use clap::{Parser, Subcommand};
use keyway::api_keys;
use keyway::config::{ConfigError, Settings};
use keyway::logging::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: measured faster than glibc malloc on the proxy's allocation pattern (see the
/// load benchmark, bench/load.py).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "A reverse-proxy authentication gateway on Pingora"
)]
struct Cli {
    /// Path to the configuration file.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the given config (the default).
    Run {
        /// Take the listening sockets over from the running keyway (through
        /// `server.upgrade_sock`) instead of binding them: start this first, then send SIGQUIT
        /// to the old process, which hands its sockets over and drains.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the config, print every problem found, and exit non-zero if there are any.
    CheckConfig,
    /// Read a password from stdin (one line) and print its argon2id PHC string.
    HashPassword,
    /// Read an API-key secret from stdin (one line) and print its SHA-256, for
    /// `[[api_keys.clients]] secret_sha256`.
    HashApiKey,
    /// Print a fresh API-key id and secret for a partner, and the config entry for it.
    NewApiKey,
    /// Ask the running keyway (named in `server.pid_file`) to reload its config (SIGHUP); it
    /// validates the file in its own environment and keeps the old config if it is wrong.
    Reload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::HashPassword => hash_password(),
        Command::HashApiKey => hash_api_key(),
        Command::NewApiKey => new_api_key(),
        Command::CheckConfig => match Settings::load(&cli.config) {
            Ok(settings) => {
                let routes = settings.routes.len();
                println!("{}: OK ({routes} routes)", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(error) => config_failure(&error),
        },
        Command::Reload => match Settings::pid_file_of(&cli.config) {
            Ok(pid_file) => signal_reload(&pid_file),
            Err(error) => config_failure(&error),
        },
        Command::Run { upgrade } => match Settings::load(&cli.config) {
            Ok(settings) => run(settings, &cli.config, upgrade, cli.log_format),
            Err(error) => config_failure(&error),
        },
    }
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprint!("{error}");
    ExitCode::from(2)
}

fn run(
    settings: Settings,
    config: &std::path::Path,
    upgrade: bool,
    log_format: LogFormat,
) -> ExitCode {
    logging::init(log_format, &settings.log.level);
    match keyway::app::run(settings, config, upgrade) {
        Ok(never) => match never {},
        Err(error) => {
            tracing::error!(%error, "keyway could not start");
            logging::flush();
            ExitCode::FAILURE
        }
    }
}

/// `keyway reload`: SIGHUP to the PID in `pid_file`.
fn signal_reload(pid_file: &std::path::Path) -> ExitCode {
    let Some(pid) = keyway::lifecycle::read_pid_file(pid_file) else {
        eprintln!("{}: no PID (is keyway running?)", pid_file.display());
        return ExitCode::FAILURE;
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        eprintln!("{}: not a PID", pid_file.display());
        return ExitCode::FAILURE;
    };
    // SAFETY: kill(2) with a PID and a signal number; no memory is shared.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let error = std::io::Error::last_os_error();
        eprintln!("cannot signal keyway (PID {pid}): {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "asked keyway (PID {pid}) to reload: its log says \"config reloaded\" or names each \
         problem (keyway_config_reloads_total counts both)"
    );
    ExitCode::SUCCESS
}

/// `keyway hash-password`: the password comes from stdin so it never lands in shell history.
fn hash_password() -> ExitCode {
    let Some(password) = read_stdin_line("password") else {
        return ExitCode::from(2);
    };
    println!("{}", keyway::converse::password::hash_password(&password));
    ExitCode::SUCCESS
}

/// `keyway hash-api-key`: the secret comes from stdin, like a password.
fn hash_api_key() -> ExitCode {
    let Some(secret) = read_stdin_line("secret") else {
        return ExitCode::from(2);
    };
    if secret.chars().count() < api_keys::MIN_SECRET_CHARS {
        eprintln!(
            "the secret is shorter than {} characters: use at least 128 random bits \
             (keyway new-api-key makes one)",
            api_keys::MIN_SECRET_CHARS
        );
        return ExitCode::from(2);
    }
    println!("{}", api_keys::hex(&api_keys::digest_of(&secret)));
    ExitCode::SUCCESS
}

/// `keyway new-api-key`: the pair to give the partner, and the entry for `config.toml`.
fn new_api_key() -> ExitCode {
    let (id, secret) = api_keys::new_key();
    let digest = api_keys::hex(&api_keys::digest_of(&secret));
    println!("# give the partner its id and secret (shown once; keyway keeps only the digest)");
    println!("id     = {id}");
    println!("secret = {secret}");
    println!();
    println!("[[api_keys.clients]]");
    println!("name = \"partner-name\"");
    println!("id = \"{id}\"");
    println!("secret_sha256 = \"{digest}\"");
    ExitCode::SUCCESS
}

/// One line of stdin without its line ending; `None` (reported) when unreadable or empty.
fn read_stdin_line(what: &str) -> Option<String> {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("could not read a {what} from stdin");
        return None;
    }
    let value = line.strip_suffix('\n').unwrap_or(&line);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        eprintln!("the {what} is empty");
        return None;
    }
    Some(value.to_owned())
}
