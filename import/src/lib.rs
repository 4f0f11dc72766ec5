//! Translates a keepalived or HAProxy configuration into an equivalent
//! hafront YAML configuration. What has no hafront equivalent becomes a
//! comment naming its file and line, never silence:
//!
//! ```text
//! # hafront import: keepalived.conf:12: use_vmac — not translated: hafront does not use a virtual MAC
//! ```
//!
//! ```no_run
//! let translation = hafront_import::keepalived(std::path::Path::new("/etc/keepalived/keepalived.conf"))
//!     .unwrap_or_else(|error| panic!("{error}"));
//! print!("{}", translation.yaml);
//! ```

mod haproxy;
mod keepalived;
mod source;
mod yaml;

use std::path::Path;

/// The directory where imported secrets are expected, one file each.
pub const SECRETS_DIR: &str = "/etc/hafront/secrets";

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The hafront configuration, with a comment for every line not translated.
    pub yaml: String,
    /// How many source lines (or parts of lines) were not translated.
    pub untranslated: usize,
    /// Secret files the configuration names and the user must create
    /// (the passwords are never copied into the output).
    pub secret_files: Vec<String>,
    /// Whether anything besides comments was translated: when false, the
    /// output configures nothing and `hafront check` refuses it.
    pub configures_something: bool,
}

/// Why an import failed: the input cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file (the input or an included one) cannot be read.
    #[error("{file}: cannot read: {error}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The input's syntax is broken.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Translates the keepalived configuration at `path` (following its
/// `include` directives).
pub fn keepalived(path: &Path) -> Result<Translation, ImportError> {
    let parsed = keepalived::parse::read(path)?;
    let mut document =
        keepalived::translate::translate(&path.display().to_string(), &parsed.statements);
    document.header.extend(parsed.include_problems);
    Ok(finish(document))
}

/// Translates the HAProxy configuration at `path`.
pub fn haproxy(path: &Path) -> Result<Translation, ImportError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ImportError::Read {
        file: file.clone(),
        error,
    })?;
    let sections = haproxy::parse::parse(&file, &text);
    Ok(finish(haproxy::translate::translate(&file, &sections)))
}

/// Renders a translated document and counts what it says.
fn finish(document: yaml::Document) -> Translation {
    let comments = document.comments();
    let untranslated = comments
        .iter()
        .filter(|comment| matches!(comment, source::Comment::Untranslated(_)))
        .count();
    let mut secret_files = document.secret_files.clone();
    secret_files.sort();
    secret_files.dedup();
    Translation {
        yaml: document.render(),
        untranslated,
        secret_files,
        configures_something: document.configures_something(),
    }
}
