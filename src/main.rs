//! The `keyway` command: `run` (default) and `check-config`.

use clap::{Parser, Subcommand};
use keyway::config::Config;
use keyway::logging::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Run,
    /// Validate the config, print every problem found, and exit non-zero if there are any.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprint!("{error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            println!(
                "{}: OK ({} routes)",
                cli.config.display(),
                config.routes.routes().len()
            );
            ExitCode::SUCCESS
        }
        Command::Run => {
            logging::init(cli.log_format, &config.log.level);
            match keyway::app::run(config) {
                Ok(never) => match never {},
                Err(error) => {
                    tracing::error!(%error, "keyway could not start");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
