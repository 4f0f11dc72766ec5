//! Leader keys under an etcd lease, so that two nodes never act as leader at once, even in
//! a network partition.
//!
//! One [`Quorum`] per node holds one etcd lease, kept alive every TTL/3, reconnecting
//! forever. Each [`Claim`] is one leader key under the prefix (`vrrp/<instance>`,
//! `failover/<pool>`): wanted, it is taken with a transaction (`create_revision(key) == 0`
//! → `put(key, node, lease)`) and re-taken as soon as it is deleted or expires; not wanted,
//! it is deleted if held. Consumers follow [`Claim::state`].
//!
//! # Self-fencing by deadline
//!
//! [`ClaimState::Held`] ends at the latest at its `until`, by this crate's own timer, when
//! keep-alives fail: *send time of the last successful keep-alive + the TTL etcd granted −
//! a quarter of it* (see [`lease`]). etcd cannot expire the lease before TTL after the last
//! keep-alive it accepted, so the old holder stops acting before anyone else can take the
//! key.
//!
//! The rules are free of I/O in [`lease::Lease`]; the tasks only carry them out, with every
//! etcd request bounded by [`Settings::request_timeout`].

mod claim;
pub mod lease;
mod session;
mod settings;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use claim::{Claim, ClaimState, MAX_HOLDER_LEN};
pub use settings::{Password, Settings, TlsFiles};

use session::{Health, Session, bounded};

/// The node's etcd session; dropping it stops its tasks (the lease then expires on etcd).
pub struct Quorum {
    settings: Arc<Settings>,
    sessions: watch::Receiver<Option<Session>>,
    reachable: watch::Receiver<bool>,
    health: Arc<Mutex<Health>>,
    cancel: CancellationToken,
}

/// What [`Quorum::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// Whether this node holds a live lease.
    pub reachable: bool,
    /// The live lease's id.
    pub lease_id: Option<i64>,
    /// The TTL asked for (whole seconds).
    pub requested_ttl: Duration,
    /// The TTL etcd granted (it may raise a short one to its minimum).
    pub granted_ttl: Option<Duration>,
    /// How long the lease may still be acted on without a renewal.
    pub time_left: Option<Duration>,
    /// The last failure, in words.
    pub last_error: Option<String>,
}

impl Quorum {
    /// Starts the session's tasks on the current tokio runtime.
    pub fn start(settings: Settings) -> Quorum {
        let settings = Arc::new(settings);
        let (sessions_tx, sessions) = watch::channel(None);
        let (reachable_tx, reachable) = watch::channel(false);
        let health = Arc::new(Mutex::new(Health::default()));
        let cancel = CancellationToken::new();
        tokio::spawn(session::run(
            Arc::clone(&settings),
            sessions_tx,
            reachable_tx,
            Arc::clone(&health),
            cancel.clone(),
        ));
        Quorum {
            settings,
            sessions,
            reachable,
            health,
            cancel,
        }
    }

    /// A leader key under the prefix, not wanted yet.
    pub fn claim(&self, key: &str) -> Claim {
        Claim::start(
            Arc::clone(&self.settings),
            key,
            self.sessions.clone(),
            self.cancel.child_token(),
        )
    }

    /// Whether this node holds a live lease, followed live: false until the first grant,
    /// false again from a lease's deadline until the next grant.
    pub fn reachability(&self) -> watch::Receiver<bool> {
        self.reachable.clone()
    }

    /// The session's state now.
    pub fn status(&self) -> QuorumStatus {
        let health = self.health.lock().expect("quorum health");
        let now = Instant::now();
        let live = health.lease.as_ref().filter(|lease| lease.is_live(now));
        QuorumStatus {
            reachable: live.is_some(),
            lease_id: live.map(lease::Lease::id),
            requested_ttl: Duration::from_secs(
                lease::requested_seconds(self.settings.ttl).unsigned_abs(),
            ),
            granted_ttl: live.map(lease::Lease::ttl),
            time_left: live.map(|lease| lease.time_left(now)),
            last_error: health.last_error.clone(),
        }
    }

    /// Graceful stop: stops every claim and revokes the lease, so every key goes at once
    /// (no TTL wait). Bounded by the request timeout.
    pub async fn release_all(&self) {
        self.cancel.cancel();
        let session = self.sessions.borrow().clone();
        if let Some(Session {
            mut client, lease, ..
        }) = session
        {
            match bounded(self.settings.request_timeout, client.lease_revoke(lease)).await {
                Ok(_) => tracing::info!(lease, "quorum lease revoked: every key released"),
                Err(error) => {
                    tracing::warn!(lease, %error, "quorum lease not revoked: its keys expire with it")
                }
            }
        }
        self.health.lock().expect("quorum health").lease = None;
    }
}

/// Asks etcd for a lease of the TTL in `settings` and revokes it at once; returns the TTL
/// etcd granted (it may raise a short one), or why etcd could not be asked. For `hafront
/// check --connect`.
pub async fn granted_ttl(settings: &Settings) -> Result<Duration, String> {
    let timeout = settings.request_timeout;
    let mut client = bounded(timeout, session::connect(settings)).await?;
    let asked = lease::requested_seconds(settings.ttl);
    let granted = bounded(timeout, client.lease_grant(asked, None)).await?;
    let _ = bounded(timeout, client.lease_revoke(granted.id())).await;
    u64::try_from(granted.ttl())
        .ok()
        .filter(|&seconds| seconds > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| "etcd granted no time".to_owned())
}

/// Deletes each of `keys` whose value is this node's name, whatever lease holds it: the
/// keys a dead daemon of this node left (`hafront release`, run once the daemon has
/// exited), so that another node need not wait for the lease to expire. Returns the keys
/// deleted.
pub async fn release_node_keys(
    settings: &Settings,
    keys: &[String],
) -> Result<Vec<String>, String> {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let timeout = settings.request_timeout;
    let mut client = bounded(timeout, session::connect(settings)).await?;
    let mut released = Vec::new();
    for key in keys {
        let full = settings.key(key);
        let transaction = Txn::new()
            .when([Compare::value(
                full.clone(),
                CompareOp::Equal,
                settings.node_name.clone(),
            )])
            .and_then([TxnOp::delete(full, None)]);
        if bounded(timeout, client.txn(transaction)).await?.succeeded() {
            released.push(key.clone());
        }
    }
    Ok(released)
}

impl Drop for Quorum {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
