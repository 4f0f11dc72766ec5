//! Log setup: tracing to stderr as text or JSON lines, or to journald with
//! structured fields, filtered by the config's `global.log.level` unless
//! `-v` or `RUST_LOG` says otherwise.

use hafront_config::{Log, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `verbosity` counts `-v` flags: one means
/// debug, two or more trace; they override the configured level.
pub fn init(log: &Log, verbosity: u8) {
    let filter = filter(log, verbosity);
    let stderr = || tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Text => registry.with(stderr()).init(),
        LogFormat::Json => registry.with(stderr().json().flatten_event(true)).init(),
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journald) => registry.with(journald).init(),
            Err(err) => {
                registry.with(stderr()).init();
                tracing::warn!("journald unavailable ({err}); logging to stderr");
            }
        },
    }
}

fn filter(log: &Log, verbosity: u8) -> EnvFilter {
    let directives = match verbosity {
        0 => std::env::var("RUST_LOG").unwrap_or_else(|_| log.level.clone()),
        1 => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|err| {
        eprintln!("hafront: invalid log filter {directives:?} ({err}); using \"info\"");
        EnvFilter::new("info")
    })
}
