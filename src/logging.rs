//! Log setup: tracing to stderr as text or JSON lines, or to journald with
//! structured fields, filtered by the config's `global.log.level` unless
//! `-v` or `RUST_LOG` says otherwise. A reload can change the configured
//! filter ([`reconfigure`]); the format is fixed at start.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::OnceLock;

use hafront_config::{Log, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// What [`reconfigure`] needs: the live filter and what it was set from.
struct Live {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `-v` or `RUST_LOG` chose the filter; the configuration does not.
    overridden: bool,
    format: LogFormat,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// Installs the global subscriber. `verbosity` counts `-v` flags: one means
/// debug, two or more trace; they override the configured level.
pub fn init(log: &Log, verbosity: u8) {
    let (filter, handle) = reload::Layer::new(filter(log, verbosity));
    let _ = LIVE.set(Live {
        filter: handle,
        overridden: verbosity > 0 || std::env::var_os("RUST_LOG").is_some(),
        format: log.format,
    });
    let colour = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let stderr = || {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
    };
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

/// Applies a reloaded configuration's `level` (unless `-v` or `RUST_LOG`
/// chose the filter). An invalid filter keeps the current one; a format
/// change is reported as needing a restart.
pub fn reconfigure(log: &Log) {
    let Some(live) = LIVE.get() else {
        return;
    };
    if log.format != live.format {
        tracing::warn!("the log format changes only when hafront restarts");
    }
    if live.overridden {
        return;
    }
    match EnvFilter::try_new(&log.level) {
        Ok(filter) => match live.filter.reload(filter) {
            Ok(()) => tracing::info!(level = %log.level, "log filter set"),
            Err(err) => tracing::warn!("cannot change the log filter: {err}"),
        },
        Err(err) => {
            tracing::warn!(level = %log.level, "invalid log filter ({err}); keeping the current one")
        }
    }
}

/// Whether text logs get ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsString::new())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
