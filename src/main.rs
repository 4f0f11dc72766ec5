//! The `hafront` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps a database service reachable when machines die: VRRP, health
/// checks, relays and alerts in one daemon.
#[derive(Parser)]
#[command(name = "hafront", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// More log detail: -v for debug, -vv for trace (overrides the config).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Validate a configuration file: prints OK, or every error with file:line:column.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

const DEFAULT_CONFIG: &str = "/etc/hafront/hafront.yaml";

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => match hafront_config::load(&config) {
            Ok(_) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, verbose } => {
            let loaded = match hafront_config::load(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            hafront::logging::init(&loaded.global.log, verbose);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("hafront: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hafront::daemon::run(config, loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
