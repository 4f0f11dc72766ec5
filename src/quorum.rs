//! The daemon's quorum (the `quorum:` section): one etcd session per node, whose leader
//! keys gate VRRP mastership. See the `hafront-quorum` crate for the rules.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hafront_config::{Config, ConfigError, KeyPath, OnQuorumLoss, Quorum as QuorumConfig};
use hafront_quorum::{ClaimState, Password, Quorum, QuorumStatus, Settings, TlsFiles};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use hafront_vrrp::linux::Control;

use crate::alerts::{AlertSender, EventKind};
use crate::control::{LeaderKey, QuorumView};

/// The node's quorum session and what to do when etcd is out of reach.
pub struct NodeQuorum {
    quorum: Quorum,
    on_loss: OnQuorumLoss,
}

impl NodeQuorum {
    /// Starts the session for `config` on the current runtime; `node` names this node when
    /// the section does not. Fails only when the password file cannot be read.
    pub fn start(config: &QuorumConfig, node: &str) -> Result<NodeQuorum, String> {
        let settings = settings(config, node)?;
        info!(
            endpoints = ?config.endpoints,
            ttl = %humantime::format_duration(config.ttl),
            node = %settings.node_name,
            on_quorum_loss = ?config.on_quorum_loss,
            "quorum through etcd: VRRP mastership needs the instance's leader key"
        );
        Ok(NodeQuorum {
            quorum: Quorum::start(settings),
            on_loss: config.on_quorum_loss,
        })
    }

    /// The leader key of VRRP instance `instance`.
    pub fn vrrp_claim(&self, instance: &str) -> hafront_quorum::Claim {
        self.quorum.claim(&format!("vrrp/{instance}"))
    }

    /// Whether this node holds the leader key `failover/<pool>`, followed live: for a pool
    /// whose failover follows no VRRP instance. The key is wanted while the receiver lives
    /// and given up (deleted if held) once it is dropped.
    pub fn failover_leadership(&self, pool: &str) -> watch::Receiver<bool> {
        let claim = self.quorum.claim(&format!("failover/{pool}"));
        claim.want(true);
        let (leader, receiver) = watch::channel(false);
        let on_loss = self.on_loss;
        let pool = pool.to_owned();
        tokio::spawn(async move {
            let mut state = claim.state();
            loop {
                let granted = grants(&state.borrow_and_update(), on_loss);
                if leader.send_if_modified(|current| std::mem::replace(current, granted) != granted)
                {
                    info!(%pool, leader = granted, "failover leadership (the pool's quorum key)");
                }
                tokio::select! {
                    () = leader.closed() => break,
                    changed = state.changed() => if changed.is_err() {
                        break;
                    },
                }
            }
            // Dropping the claim gives the key up.
            drop(claim);
        });
        receiver
    }

    /// What to do when etcd is out of reach.
    pub fn on_loss(&self) -> OnQuorumLoss {
        self.on_loss
    }

    /// The session's state with `keys`, for status and metrics.
    pub fn view(&self, keys: Vec<LeaderKey>) -> QuorumView {
        let status: QuorumStatus = self.quorum.status();
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        QuorumView {
            reachable: status.reachable,
            lease_id: status.lease_id,
            granted_ttl_ms: status.granted_ttl.map(millis),
            time_left_ms: status.time_left.map(millis),
            last_error: status.last_error,
            keys,
        }
    }

    /// Publishes `quorum_lost` when the lease is lost and `quorum_regained` when there is one
    /// again, through `alerts` (swapped on reload); nothing before the first lease.
    pub async fn report_reachability(self: Arc<Self>, alerts: Arc<Mutex<AlertSender>>) {
        let mut reachable = self.quorum.reachability();
        let mut known = false;
        while reachable.changed().await.is_ok() {
            let now = *reachable.borrow_and_update();
            if !known && !now {
                continue;
            }
            known = true;
            let detail = if now {
                "leader keys can be held again".to_owned()
            } else {
                let follows = match self.on_loss {
                    OnQuorumLoss::Resign => "every VRRP master here resigns until etcd answers",
                    OnQuorumLoss::Keep => {
                        "on_quorum_loss is keep: VRRP decides alone meanwhile (two masters are possible in a partition)"
                    }
                };
                match self.quorum.status().last_error {
                    Some(error) => format!("{follows}; last etcd error: {error}"),
                    None => follows.to_owned(),
                }
            };
            let sender = alerts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let sent = sender.send(crate::alerts::Event {
                at: SystemTime::now(),
                kind: EventKind::Quorum {
                    reachable: now,
                    detail,
                },
            });
            if !sent {
                warn!("alert queue full; quorum change not reported");
            }
        }
    }

    /// Revokes the lease: every key goes at once (graceful stop).
    pub async fn release_all(&self) {
        self.quorum.release_all().await;
    }
}

/// `hafront release` for the quorum: deletes the leader keys of `config` (its VRRP
/// instances', and those of failover pools that follow no instance) that `node` still
/// holds after its daemon ended, so another node takes over without waiting for the
/// lease. Returns the keys released; nothing without a `quorum` section.
pub async fn release_node_keys(config: &Config, node: &str) -> Result<Vec<String>, String> {
    let Some(quorum) = &config.quorum else {
        return Ok(Vec::new());
    };
    let settings = settings(quorum, node)?;
    let instances = config
        .vrrp
        .instances
        .keys()
        .map(|instance| format!("vrrp/{instance}"));
    let pools = config
        .pools
        .iter()
        .filter(|(_, pool)| {
            pool.failover
                .as_ref()
                .is_some_and(|failover| failover.vrrp.is_none())
        })
        .map(|(pool, _)| format!("failover/{pool}"));
    let keys: Vec<String> = instances.chain(pools).collect();
    hafront_quorum::release_node_keys(&settings, &keys).await
}

/// The crate's settings for `config`; `node` names this node when the section does not.
/// Fails only when the password file cannot be read.
fn settings(config: &QuorumConfig, node: &str) -> Result<Settings, String> {
    let ttl = config.ttl;
    let mut settings = Settings::new(
        config.endpoints.clone(),
        &config.prefix,
        ttl,
        config.node_name.as_deref().unwrap_or(node),
    );
    // A quarter of the TTL leaves two more keep-alives before the deadline; at least
    // 250 ms so a busy etcd is not taken for a dead one.
    settings.request_timeout = (ttl / 4).max(Duration::from_millis(250));
    settings.tls = config.tls.as_ref().map(|tls| TlsFiles {
        ca_file: tls.ca_file.clone(),
        cert_file: tls.cert_file.clone(),
        key_file: tls.key_file.clone(),
    });
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        let password = password
            .reveal()
            .map_err(|error| format!("quorum.password: cannot read it: {error}"))?;
        settings.credentials = Some((user.clone(), Password::new(password)));
    }
    Ok(settings)
}
/// `hafront check --connect` for the `quorum` section: etcd must answer and grant the TTL
/// asked for (etcd raises a TTL below 1.5 election timeouts, which would lengthen every
/// crash failover unnoticed).
pub async fn check_etcd(config: &Config, node: &str, file: &str, text: &str) -> Vec<ConfigError> {
    let Some(quorum) = &config.quorum else {
        return Vec::new();
    };
    let path = KeyPath::root().key("quorum");
    let error =
        |key: KeyPath, message: String| vec![crate::startup::located(file, text, key, message)];
    let settings = match settings(quorum, node) {
        Ok(settings) => settings,
        Err(problem) => return error(path.key("password"), problem),
    };
    match hafront_quorum::granted_ttl(&settings).await {
        Ok(granted) if granted == quorum.ttl => Vec::new(),
        Ok(granted) => error(
            path.key("ttl"),
            format!(
                "etcd grants {} for the {} asked (its minimum is 1.5 election timeouts): write \
                 ttl: {}, or lower etcd's --election-timeout",
                humantime::format_duration(granted),
                humantime::format_duration(quorum.ttl),
                humantime::format_duration(granted),
            ),
        ),
        Err(problem) => error(
            path.key("endpoints"),
            format!(
                "cannot get a lease from etcd at {}: {problem}; check that etcd runs there and \
                 that this host reaches it (`etcdctl --endpoints={} endpoint health`), and the \
                 quorum's TLS files, user and password",
                settings.endpoints.join(", "),
                settings.endpoints.join(",")
            ),
        ),
    }
}

/// The status line of leader key `key` in `state`.
pub fn leader_key(key: &str, state: &ClaimState) -> LeaderKey {
    let (state, holder) = match state {
        ClaimState::Held { until } if Instant::now() < *until => ("held", None),
        ClaimState::Held { .. } | ClaimState::Unreachable { .. } => ("unreachable", None),
        ClaimState::HeldBy { holder } => ("held_by", Some(holder.clone())),
        ClaimState::Free => ("free", None),
    };
    LeaderKey {
        key: key.to_owned(),
        state: state.to_owned(),
        holder,
    }
}

/// Whether `state` grants mastership under `on_loss`.
pub fn grants(state: &ClaimState, on_loss: OnQuorumLoss) -> bool {
    match state {
        ClaimState::Held { until } => Instant::now() < *until,
        ClaimState::Unreachable { .. } => on_loss == OnQuorumLoss::Keep,
        ClaimState::HeldBy { .. } | ClaimState::Free => false,
    }
}

/// Passes the claim's state on to a VRRP driver as mastership grants until the driver's
/// control channel closes. Under `keep`, losing etcd entirely is logged once per outage.
pub async fn grant_mastership(
    instance: String,
    mut state: watch::Receiver<ClaimState>,
    control: mpsc::Sender<Control>,
    on_loss: OnQuorumLoss,
) {
    let mut granted = None;
    loop {
        let current = state.borrow_and_update().clone();
        let grant = grants(&current, on_loss);
        if granted != Some(grant) {
            match &current {
                ClaimState::Unreachable { .. } if on_loss == OnQuorumLoss::Keep => warn!(
                    %instance,
                    "etcd out of reach: on_quorum_loss is keep, so VRRP decides alone (two masters are possible in a partition)"
                ),
                ClaimState::Unreachable { .. } => warn!(
                    %instance,
                    "etcd out of reach: no mastership until it answers (on_quorum_loss: resign)"
                ),
                ClaimState::HeldBy { holder } => {
                    info!(%instance, %holder, "the instance's leader key is held by another node")
                }
                ClaimState::Held { .. } | ClaimState::Free => {}
            }
            info!(%instance, granted = grant, "VRRP mastership grant");
            if control
                .send(Control::SetMastershipGrant(grant))
                .await
                .is_err()
            {
                return;
            }
            granted = Some(grant);
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_key_grants_mastership_unless_keep_covers_an_etcd_outage() {
        let later = Instant::now() + Duration::from_secs(1);
        let held = ClaimState::Held { until: later };
        let expired = ClaimState::Held {
            until: Instant::now(),
        };
        let unreachable = ClaimState::Unreachable {
            since: Instant::now(),
        };
        let other = ClaimState::HeldBy {
            holder: "n2".into(),
        };
        assert!(grants(&held, OnQuorumLoss::Resign));
        assert!(!grants(&expired, OnQuorumLoss::Keep));
        assert!(!grants(&unreachable, OnQuorumLoss::Resign));
        assert!(grants(&unreachable, OnQuorumLoss::Keep));
        assert!(!grants(&other, OnQuorumLoss::Keep));
        assert!(!grants(&ClaimState::Free, OnQuorumLoss::Keep));
    }
}
