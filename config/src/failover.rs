//! The `failover` block of a MySQL/MariaDB pool: what hafront may do to the servers when
//! the primary dies or an operator asks for a switchover.

use std::time::Duration;

use serde::Deserialize;

use crate::Secret;

/// Automatic failover and planned switchover of a MariaDB pool with GTID replication.
///
/// Two deployments: on a front tier (no `local`) the hafront that is master of `vrrp` (or
/// the only hafront, without `vrrp`) acts on the whole pool; co-located (`local` names the
/// server on this host) the VRRP state drives it: MASTER promotes the local server,
/// BACKUP/FAULT fences it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// Administrative user hafront logs in as to promote, fence and re-point servers.
    pub user: String,
    /// That user's password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The replication user a rejoining server replicates as.
    pub replication_user: String,
    /// That user's password.
    #[serde(default)]
    pub replication_password: Option<Secret>,
    /// Servers that may be promoted, by name (default: every server of the pool).
    #[serde(default)]
    pub candidates: Option<Vec<String>>,
    /// A replica further behind than this when the primary fails is not promoted.
    #[serde(
        default = "default_max_lag",
        deserialize_with = "crate::value::duration"
    )]
    pub max_lag: Duration,
    /// How long a candidate may take to apply the relay log it received before it is given up.
    #[serde(
        default = "default_catch_up_timeout",
        deserialize_with = "crate::value::duration"
    )]
    pub catch_up_timeout: Duration,
    /// How long hafront waits for the replicas to confirm that they lost the primary too.
    #[serde(
        default = "default_confirm_timeout",
        deserialize_with = "crate::value::duration"
    )]
    pub confirm_timeout: Duration,
    /// Replication heartbeat period set on replicas hafront points: a live primary sends
    /// at least this often, so a replica that heard nothing for a few periods lost it.
    #[serde(
        default = "default_heartbeat",
        deserialize_with = "crate::value::duration"
    )]
    pub heartbeat: Duration,
    /// After a failover, no other automatic one for this long unless acknowledged
    /// (`hafront failover ack POOL`).
    #[serde(default = "default_block", deserialize_with = "crate::value::duration")]
    pub block: Duration,
    /// Make a returning old primary a replica of the new one when it has no transaction
    /// the new primary lacks.
    #[serde(default = "default_true")]
    pub auto_rejoin: bool,
    /// During a switchover, how long the primary's running writes may take to finish before
    /// their sessions are ended.
    #[serde(
        default = "default_write_drain",
        deserialize_with = "crate::value::duration"
    )]
    pub write_drain: Duration,
    /// Act only while this VRRP instance is MASTER on this node.
    #[serde(default)]
    pub vrrp: Option<String>,
    /// Co-located: the server of the pool that runs on this host (needs `vrrp`).
    #[serde(default)]
    pub local: Option<String>,
}

fn default_max_lag() -> Duration {
    Duration::from_secs(10)
}

fn default_catch_up_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_confirm_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_heartbeat() -> Duration {
    Duration::from_millis(100)
}

fn default_block() -> Duration {
    Duration::from_secs(3600)
}

fn default_write_drain() -> Duration {
    Duration::from_secs(2)
}

fn default_true() -> bool {
    true
}
