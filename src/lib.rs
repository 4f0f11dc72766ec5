//! The hafront daemon: relays, daemon wiring, alerts, failover glue and control.
//! The command line lives in `main.rs`; VRRP, health checks and the
//! configuration schema live in their own crates.

pub mod alerts;
pub mod control;
pub mod daemon;
pub mod direct;
pub mod failover;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod quorum;
pub mod relay;
pub mod startup;
pub mod vrrp;
