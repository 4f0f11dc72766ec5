//! What failover tells the rest of hafront: one event per step, for alerts, notify scripts,
//! logs and status.

use std::fmt;
use std::time::SystemTime;

/// One step of a failover, switchover or rejoin, stamped with when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverEvent {
    /// When the step happened.
    pub at: SystemTime,
    /// The pool.
    pub pool: String,
    /// The step.
    pub step: Step,
    /// The server it concerns, when one.
    pub server: Option<String>,
    /// What happened, in words.
    pub detail: String,
}

/// The steps, named as notify scripts receive them (`HAFRONT_EVENT=failover_<step>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The primary went down: failover considered.
    Started,
    /// The replicas lost the primary too: it is dead.
    Confirmed,
    /// A replica was promoted.
    Promoted,
    /// A replica now replicates from the new primary.
    Repointed,
    /// A server was made read-only and its client sessions ended.
    Fenced,
    /// A former primary became a replica of the new one.
    Rejoined,
    /// Nothing was changed, and why (not confirmed, no candidate, lagging, blocked...).
    Refused,
    /// A step failed after the promotion (a replica not re-pointed, say).
    Problem,
    /// A planned switchover began.
    SwitchoverStarted,
    /// A planned switchover finished.
    SwitchedOver,
    /// An operator acknowledged the last failover: automatic failover is armed again.
    Acknowledged,
}

impl Step {
    /// The step's name in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Confirmed => "confirmed",
            Step::Promoted => "promoted",
            Step::Repointed => "repointed",
            Step::Fenced => "fenced",
            Step::Rejoined => "rejoined",
            Step::Refused => "refused",
            Step::Problem => "problem",
            Step::SwitchoverStarted => "switchover_started",
            Step::SwitchedOver => "switched_over",
            Step::Acknowledged => "acknowledged",
        }
    }

    /// The event's name for notify scripts (`HAFRONT_EVENT`).
    pub fn event_name(self) -> &'static str {
        match self {
            Step::Started => "failover_started",
            Step::Confirmed => "failover_confirmed",
            Step::Promoted => "failover_promoted",
            Step::Repointed => "failover_repointed",
            Step::Fenced => "failover_fenced",
            Step::Rejoined => "failover_rejoined",
            Step::Refused => "failover_refused",
            Step::Problem => "failover_problem",
            Step::SwitchoverStarted => "failover_switchover_started",
            Step::SwitchedOver => "failover_switched_over",
            Step::Acknowledged => "failover_acknowledged",
        }
    }

    /// Every step, for metrics.
    pub const ALL: [Step; 11] = [
        Step::Started,
        Step::Confirmed,
        Step::Promoted,
        Step::Repointed,
        Step::Fenced,
        Step::Rejoined,
        Step::Refused,
        Step::Problem,
        Step::SwitchoverStarted,
        Step::SwitchedOver,
        Step::Acknowledged,
    ];

    /// Whether an operator must look (mail even when nothing else changed).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Step::Started | Step::Promoted | Step::Refused | Step::Problem | Step::SwitchedOver
        )
    }
}

impl fmt::Display for FailoverEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failover of pool {} {}", self.pool, self.step.as_str())?;
        if let Some(server) = &self.server {
            write!(f, " ({server})")?;
        }
        write!(f, ": {}", self.detail)
    }
}
