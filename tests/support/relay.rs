//! Relay settings for the relay tests.

use std::time::Duration;

use hafront_config::{OnServerDown, Policy, RelayMode};

/// A relay in `mode` on an ephemeral 127.0.0.1 port for the pool `db`:
/// round robin, 2 s connect timeout, 60 s idle timeout, 1000 connections,
/// one connect attempt, open connections kept when a server goes down.
pub fn relay_config(mode: RelayMode) -> hafront_config::Relay {
    hafront_config::Relay {
        listen: vec!["127.0.0.1:0".parse().expect("address")],
        pool: "db".to_owned(),
        policy: Policy::RoundRobin,
        role: None,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1000,
        connect_attempts: 1,
        on_server_down: OnServerDown::Keep,
        mode,
        send_proxy: None,
        accept_proxy: false,
        accept_proxy_from: Vec::new(),
        forward: hafront_config::Forward::Proxy,
        hook: None,
    }
}
