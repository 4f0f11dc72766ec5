//! What a [`crate::Quorum`] connects to and how.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach etcd and what to ask of it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// etcd client URLs (`http://10.0.0.1:2379`, or `https://` with [`Settings::tls`]).
    pub endpoints: Vec<String>,
    /// TLS files, read at every connection (so renewed certificates are picked up).
    pub tls: Option<TlsFiles>,
    /// etcd user and password, when etcd has authentication on.
    pub credentials: Option<(String, Password)>,
    /// Prefix of every key (`/hafront/`); a claim's key is appended to it.
    pub prefix: String,
    /// The lease TTL to ask for (etcd may grant more: the granted one is used).
    pub ttl: Duration,
    /// This node's name, the value of every key it holds.
    pub node_name: String,
    /// Longest wait for any one etcd request.
    pub request_timeout: Duration,
}

impl Settings {
    /// Settings with the default request timeout (a quarter of `ttl`, so a failed
    /// keep-alive is retried before the deadline) and no TLS or credentials.
    pub fn new(endpoints: Vec<String>, prefix: &str, ttl: Duration, node_name: &str) -> Settings {
        Settings {
            endpoints,
            tls: None,
            credentials: None,
            prefix: prefix.to_owned(),
            ttl,
            node_name: node_name.to_owned(),
            request_timeout: ttl / 4,
        }
    }

    /// The full etcd key of `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA certificate(s) that signed etcd's server certificates (default: system roots are
    /// not used; give the CA).
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

/// A password that never shows in logs or `Debug` output.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps `password`.
    pub fn new(password: String) -> Password {
        Password(password)
    }

    /// The password itself, to hand to etcd.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let mut settings = Settings::new(
            vec!["http://10.0.0.1:2379".into()],
            "/hafront/",
            Duration::from_secs(2),
            "n1",
        );
        settings.credentials = Some(("hafront".into(), Password::new("s3cret".into())));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(settings.key("vrrp/vip"), "/hafront/vrrp/vip");
        assert_eq!(settings.request_timeout, Duration::from_millis(500));
    }
}
