//! One probe of one server, for each kind of check. Every probe is bounded by
//! the check's timeout and reports a [`ProbeResult`].

mod exec;
mod http;
mod mysql;
mod redis;
mod tcp;

pub use mysql::mysql_error;

use std::time::{Duration, Instant, SystemTime};

use hafront_config::{CheckKind, Role, Secret};

use crate::state::{ProbeResult, ServerHealth};

/// What a passing probe learned.
struct Pass {
    /// Role reported by a role-aware check.
    role: Option<Role>,
    /// Short description for status output.
    summary: String,
}

impl Pass {
    fn new(summary: impl Into<String>) -> Self {
        Pass {
            role: None,
            summary: summary.into(),
        }
    }
}

/// Probes `server` once with `kind`, giving up after `timeout`.
///
/// Never panics and never takes (much) longer than `timeout`: a server that
/// hangs mid-handshake counts as failed with a "timed out" reason, and an exec
/// check's whole process group is killed.
pub async fn probe(kind: &CheckKind, server: &ServerHealth, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, probe_kind(kind, server, timeout)).await;
    let latency = started.elapsed();
    let (ok, reason, role) = match outcome {
        Ok(Ok(pass)) => (true, pass.summary, pass.role),
        Ok(Err(reason)) => (false, reason, None),
        Err(_) => (false, format!("timed out after {timeout:?}"), None),
    };
    ProbeResult {
        ok,
        reason,
        role,
        latency,
        at: SystemTime::now(),
    }
}

async fn probe_kind(
    kind: &CheckKind,
    server: &ServerHealth,
    timeout: Duration,
) -> Result<Pass, String> {
    match kind {
        CheckKind::Tcp => tcp::probe(server.address).await,
        CheckKind::Mysql(check) => mysql::probe(check, server.address).await,
        CheckKind::Redis(check) => redis::probe(check, server.address, timeout).await,
        CheckKind::Http(check) => http::probe(check, server.address).await,
        CheckKind::Exec(check) => exec::probe(check, server).await,
    }
}

/// Reads a secret off the runtime's threads (a secret file may sit on slow
/// storage). Errors name the file but never the secret.
async fn reveal(secret: &Secret) -> Result<String, String> {
    let owned = secret.clone();
    let revealed = tokio::task::spawn_blocking(move || owned.reveal())
        .await
        .map_err(|error| format!("reading secret: {error}"))?;
    revealed.map_err(|error| match secret {
        Secret::File(path) => format!("reading secret file {}: {error}", path.display()),
        Secret::Value(_) => format!("reading secret: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_secret_file_is_an_error_naming_the_file() {
        let path = std::path::PathBuf::from("/nonexistent/hafront/secret");
        let error = reveal(&Secret::File(path)).await.unwrap_err();
        assert!(error.contains("/nonexistent/hafront/secret"), "{error}");
    }
}
