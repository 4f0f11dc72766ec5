//! hafront's configuration: the YAML schema with its defaults, loading with
//! file:line:column errors, and validation of cross-references.
//!
//! ```no_run
//! let config = hafront_config::load(std::path::Path::new("/etc/hafront/hafront.yaml"))
//!     .unwrap_or_else(|errors| {
//!         eprintln!("{errors}");
//!         std::process::exit(1)
//!     });
//! # let _ = config;
//! ```

mod document;
mod error;
mod failover;
mod loader;
pub mod program;
mod recover;
pub mod reference;
mod schema;
mod validate;
mod value;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, KeyPath, Position, Segment};
pub use schema::*;
pub use validate::looks_like_mail_address;

/// What [`parse_with`] checks besides the YAML itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Check that secret, key and certificate files exist, that secrets and
    /// keys are readable by their owner only and owned by root or the user
    /// running the check, and that programs to run exist, are executable and
    /// cannot be changed by anyone else. Turn off (`hafront check
    /// --skip-files`) to check a config written for another machine.
    pub check_files: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { check_files: true }
    }
}

/// Where the value at `path` is in the YAML `text`, to locate a problem found after loading
/// (a server refusing the failover's login, say); `None` when `text` does not parse.
pub fn locate(text: &str, path: &KeyPath) -> Option<Position> {
    document::Document::parse(text)
        .ok()
        .map(|document| document.value_position(path))
}

/// Reads, parses and validates the configuration file at `path`, with
/// every check (including files).
///
/// Errors name the file as `path` is written.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, ParseOptions::default())
}

/// Reads, parses and validates the configuration file at `path` with the
/// checks chosen in `options`. Relative secret, key, certificate and CA
/// file paths are taken relative to the directory holding `path`, not the
/// current directory (systemd starts the daemon in `/`).
pub fn load_with(path: &Path, options: ParseOptions) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let directory = std::path::absolute(path)
        .ok()
        .and_then(|path| path.parent().map(Path::to_path_buf));
    match std::fs::read_to_string(path) {
        Ok(text) => parse_in(&text, &file, options, directory.as_deref()),
        Err(error) => Err(ConfigErrors::single(ConfigError {
            file,
            position: None,
            key: KeyPath::root(),
            message: format!("cannot read the configuration: {error}"),
        })),
    }
}

/// Parses and validates a configuration held in `text`, with every check
/// (including files); `file_name` names it in errors.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, file_name, ParseOptions::default())
}

/// Parses and validates a configuration held in `text` with the checks
/// chosen in `options`; `file_name` names it in errors. Relative file
/// paths are left as written (relative to the current directory).
pub fn parse_with(
    text: &str,
    file_name: &str,
    options: ParseOptions,
) -> Result<Config, ConfigErrors> {
    parse_in(text, file_name, options, None)
}

/// [`parse_with`], taking relative file paths relative to `directory`
/// when one is given.
fn parse_in(
    text: &str,
    file_name: &str,
    options: ParseOptions,
    directory: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let document = match document::Document::parse(text) {
        Ok(document) => document,
        Err(error) => {
            let position = error.location().map(|location| Position {
                line: location.line(),
                column: location.column(),
            });
            return Err(ConfigErrors::single(ConfigError {
                file: file_name.to_owned(),
                position,
                key: KeyPath::root(),
                message: loader::parse_error_message(&error),
            }));
        }
    };
    let mut errors = Vec::new();
    let (mut config, repaired) = loader::read_config(text, &document, file_name, &mut errors);
    if let Some(directory) = directory {
        for file in config.files_mut() {
            if file.is_relative() {
                *file = directory.join(&*file);
            }
        }
    }
    validate::validate(
        &config,
        &document,
        &repaired,
        file_name,
        options,
        &mut errors,
    );
    match ConfigErrors::from_vec(errors) {
        Some(errors) => Err(errors),
        None => Ok(config),
    }
}
