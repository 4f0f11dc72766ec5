//! The control socket: a Unix socket speaking one JSON request and one JSON
//! response per connection (each a single line), used by `hafront status`
//! and `hafront reload`.
//!
//! The socket is created mode 0600 and every peer's credentials are checked:
//! only root and the daemon's own user are served, so a socket left with
//! looser permissions (or a directory that lets others reach it) still
//! exposes nothing.
//!
//! Requests are answered by the daemon's main loop ([`ControlRequest`]), so
//! a status always reflects one consistent configuration and a reload never
//! races another.

mod client;
mod diff;
mod server;
mod status;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use client::{ClientError, request};
pub use diff::{Action, Change, Section, diff};
pub use server::ControlServer;
pub(crate) use server::{accept_bounded, ask};
pub use status::{
    AlertsStatus, CheckStatus, DirectRelayStatus, DirectServerStatus, InstanceState,
    InstanceStatus, LeaderKey, PoolStatus, QuorumView, Refusals, RelayStatus, ServerRole,
    ServerState, ServerStatus, SinceTracker, Status, pool_statuses, queued_mails,
};

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's current [`Status`].
    Status,
    /// Re-read the configuration file and apply what changed; with
    /// `dry_run`, only report what would change.
    Reload {
        /// Report the changes without applying them.
        #[serde(default)]
        dry_run: bool,
    },
    /// Hand a pool's primary role to another server (planned switchover).
    Switchover {
        /// The pool.
        pool: String,
        /// The server to promote (default: the best replica).
        #[serde(default)]
        to: Option<String>,
    },
    /// Acknowledge a pool's last automatic failover, arming the next one.
    FailoverAck {
        /// The pool.
        pool: String,
    },
    /// Give a server no new clients; open connections finish (`pool/server`).
    Drain {
        /// The server, as `pool/server`.
        server: String,
    },
    /// Let a drained server take new clients again (`pool/server`).
    Enable {
        /// The server, as `pool/server`.
        server: String,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(Box<Status>),
    /// Answer to [`Request::Reload`].
    Reload(ReloadReport),
    /// Answer to an operator's action (switchover, acknowledgement, drain,
    /// enable): what was done.
    Done {
        /// What was done, in words.
        message: String,
    },
    /// The request could not be served (malformed, or peer not allowed).
    Error {
        /// Why, in words.
        message: String,
    },
}

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The configuration file the daemon read (the one it was started
    /// with, whatever file the asker named).
    #[serde(default)]
    pub config: PathBuf,
    /// What happened.
    pub outcome: ReloadOutcome,
    /// The differences between the running and the new configuration
    /// (empty when the new one was refused).
    pub changes: Vec<Change>,
    /// Configuration errors (one per line, `FILE:LINE:COL: KEY: MESSAGE`)
    /// when refused, or what could not be applied when incomplete.
    pub errors: Vec<String>,
}

/// The result of a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new configuration is running.
    Applied,
    /// Nothing was applied: the changes were only listed.
    DryRun,
    /// The new configuration is invalid; the running one stays.
    Refused,
    /// The new configuration was applied except for the parts in `errors`.
    Incomplete,
}

/// A request on its way to the daemon's main loop, with the way back.
#[derive(Debug)]
pub struct ControlRequest {
    /// What is asked.
    pub request: Request,
    /// Where the answer goes (the asker may have given up: ignore send errors).
    pub reply: oneshot::Sender<Response>,
}
