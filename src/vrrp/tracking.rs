//! Tracking: what lowers an instance's priority or forces FAULT (health-checked servers,
//! pools, interface links). The verdict is a pure function of those states; [`track`]
//! follows them and tells the driver.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hafront_config::VrrpInstance;
use hafront_health::{HealthEvent, Monitor, ServerHealth};
use hafront_vrrp::linux::{Control, LinkStates};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use super::instance::Board;

/// How often link states are re-read besides netlink's change notifications (one lost to
/// a full socket buffer is caught by this).
const LINK_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The tracked items of one instance, resolved against the monitor.
pub(super) struct Tracking {
    items: Vec<Tracked>,
}

struct Tracked {
    target: Target,
    /// Priority subtracted while down; FAULT when `None`.
    weight: Option<u8>,
}

enum Target {
    /// Down unless up (a server not probed yet counts as down).
    Server {
        name: String,
        health: Option<Arc<ServerHealth>>,
    },
    /// Down when no server of it is up.
    Pool {
        name: String,
        servers: Arc<[Arc<ServerHealth>]>,
    },
    /// Down when the link is down.
    Interface { name: String },
}

/// What tracking makes of the instance right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) priority: u8,
    pub(super) fault: bool,
    /// Tracked items down, in words.
    pub(super) down: Vec<String>,
}

impl Verdict {
    pub(super) fn commands(&self) -> [Control; 2] {
        [
            Control::SetPriority(self.priority),
            Control::SetFault(self.fault),
        ]
    }
}

impl Tracking {
    /// The instance's own interface (FAULT while its link is down, as keepalived does)
    /// and its `track` items.
    pub(super) fn resolve(config: &VrrpInstance, monitor: &Monitor) -> Tracking {
        let own_interface = Tracked {
            target: Target::Interface {
                name: config.interface.clone(),
            },
            weight: None,
        };
        let items = config
            .track
            .iter()
            .filter_map(|track| {
                let target = if let Some(server) = &track.server {
                    let health = server.split_once('/').and_then(|(pool, name)| {
                        monitor
                            .pool(pool)?
                            .iter()
                            .find(|health| health.name == name)
                            .cloned()
                    });
                    Target::Server {
                        name: server.clone(),
                        health,
                    }
                } else if let Some(pool) = &track.pool {
                    Target::Pool {
                        name: pool.clone(),
                        servers: monitor.pool(pool).unwrap_or_else(|| Arc::from(Vec::new())),
                    }
                } else {
                    Target::Interface {
                        name: track.interface.clone()?,
                    }
                };
                Some(Tracked {
                    target,
                    weight: track.weight,
                })
            })
            .collect::<Vec<_>>();
        Tracking {
            items: std::iter::once(own_interface).chain(items).collect(),
        }
    }

    /// keepalived's semantics: each item down subtracts its weight, or forces FAULT when it
    /// has none. The priority stays within 1..=configured. A pure function of the items'
    /// states and `link_up`, the links' states.
    pub(super) fn verdict(&self, configured: u8, link_up: &dyn Fn(&str) -> bool) -> Verdict {
        let mut verdict = Verdict {
            priority: configured,
            fault: false,
            down: Vec::new(),
        };
        for item in &self.items {
            let Some(why) = item.target.down(link_up) else {
                continue;
            };
            match item.weight {
                Some(weight) => verdict.priority = verdict.priority.saturating_sub(weight),
                None => verdict.fault = true,
            }
            verdict.down.push(why);
        }
        verdict.priority = verdict.priority.max(1);
        verdict
    }
}

impl Target {
    /// Why the item is down, or `None` when it is up.
    fn down(&self, link_up: &dyn Fn(&str) -> bool) -> Option<String> {
        match self {
            Target::Server { name, health } => match health {
                Some(health) if health.is_up() => None,
                Some(health) => Some(format!("server {name} {}", health.status())),
                None => Some(format!("server {name} not configured")),
            },
            Target::Pool { name, servers } => (!servers.iter().any(|server| server.is_up()))
                .then(|| format!("pool {name} has no server up")),
            Target::Interface { name } => {
                (!link_up(name)).then(|| format!("interface {name} down"))
            }
        }
    }
}

/// What an instance tracks, and the health events that say when to look again.
pub(super) struct Rules {
    /// The tracked items.
    pub(super) tracking: Tracking,
    /// The configured priority, which the tracked items lower.
    pub(super) configured: u8,
    /// The monitor's health events.
    pub(super) health: broadcast::Receiver<HealthEvent>,
}

/// Re-evaluates tracking on every health event and link change and tells the driver when
/// the verdict differs from `applied`, the one it has already. Link states come from
/// `links`, re-read every [`LINK_RECHECK_INTERVAL`] besides its notifications.
pub(super) async fn track(
    instance: String,
    mut rules: Rules,
    mut applied: Verdict,
    mut links: LinkStates,
    mut retracks: mpsc::Receiver<Rules>,
    control: mpsc::Sender<Control>,
    board: Arc<Mutex<Board>>,
) {
    let mut recheck = tokio::time::interval(LINK_RECHECK_INTERVAL);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notified = true;
    loop {
        let verdict = rules
            .tracking
            .verdict(rules.configured, &|name| links.is_up(name));
        if applied != verdict {
            if applied.down != verdict.down {
                info!(%instance, priority = verdict.priority, fault = verdict.fault, down = ?verdict.down, "VRRP tracking changed");
            }
            {
                let mut board = board.lock().unwrap_or_else(PoisonError::into_inner);
                board.effective_priority = verdict.priority;
                board.down = verdict.down.clone();
            }
            for command in verdict.commands() {
                if control.send(command).await.is_err() {
                    return;
                }
            }
            applied = verdict;
        }
        tokio::select! {
            Some(new) = retracks.recv() => rules = new,
            event = rules.health.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // The monitor is gone: the daemon is stopping.
                Err(RecvError::Closed) => return,
            },
            changed = links.changed(), if notified => if changed.is_none() {
                warn!(%instance, "netlink link notifications ended; subscribing again");
                notified = false;
            },
            _ = recheck.tick() => {
                if !notified {
                    match LinkStates::subscribe().await {
                        Ok(fresh) => {
                            links = fresh;
                            notified = true;
                        }
                        Err(err) => warn!(%instance, "cannot follow link states: {err}"),
                    }
                } else if let Err(err) = links.refresh().await {
                    warn!(%instance, "cannot read link states: {err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hafront_health::Status;

    use super::*;

    fn all_up(_: &str) -> bool {
        true
    }

    fn server(name: &str, status: Status) -> Arc<ServerHealth> {
        let health = ServerHealth::new(
            "pool",
            &hafront_config::Server {
                name: Some(name.to_owned()),
                address: "127.0.0.1:3306".parse().unwrap(),
                weight: 1,
                backup: false,
            },
        );
        health.set_status(status);
        Arc::new(health)
    }

    fn tracked(target: Target, weight: Option<u8>) -> Tracked {
        Tracked { target, weight }
    }

    fn server_target(status: Status) -> Target {
        Target::Server {
            name: "pool/db".to_owned(),
            health: Some(server("db", status)),
        }
    }

    #[test]
    fn everything_up_keeps_the_configured_priority() {
        let tracking = Tracking {
            items: vec![
                tracked(server_target(Status::Up), None),
                tracked(server_target(Status::Up), Some(50)),
            ],
        };
        let verdict = tracking.verdict(150, &all_up);
        assert_eq!(verdict.priority, 150);
        assert!(!verdict.fault);
        assert!(verdict.down.is_empty());
    }

    #[test]
    fn weights_of_down_items_add_up_and_the_priority_stays_at_least_1() {
        let tracking = Tracking {
            items: vec![
                tracked(server_target(Status::Down), Some(30)),
                tracked(server_target(Status::Up), Some(40)),
                tracked(server_target(Status::Down), Some(50)),
            ],
        };
        assert_eq!(tracking.verdict(150, &all_up).priority, 70);
        assert_eq!(tracking.verdict(60, &all_up).priority, 1);
        assert!(!tracking.verdict(150, &all_up).fault);
    }

    #[test]
    fn an_unprobed_server_without_weight_forces_fault() {
        let tracking = Tracking {
            items: vec![tracked(server_target(Status::Unknown), None)],
        };
        let verdict = tracking.verdict(150, &all_up);
        assert!(verdict.fault);
        assert_eq!(verdict.down, ["server pool/db unknown"]);
    }

    #[test]
    fn a_pool_is_down_only_when_no_server_is_up() {
        let pool = |statuses: &[Status]| Target::Pool {
            name: "replicas".to_owned(),
            servers: statuses
                .iter()
                .enumerate()
                .map(|(index, &status)| server(&format!("r{index}"), status))
                .collect(),
        };
        assert_eq!(pool(&[Status::Down, Status::Up]).down(&all_up), None);
        assert_eq!(
            pool(&[Status::Down, Status::Unknown])
                .down(&all_up)
                .as_deref(),
            Some("pool replicas has no server up")
        );
        assert!(pool(&[]).down(&all_up).is_some());
    }

    #[test]
    fn an_interface_is_down_when_its_link_is() {
        let tracking = Tracking {
            items: vec![
                tracked(
                    Target::Interface {
                        name: "eth0".to_owned(),
                    },
                    None,
                ),
                tracked(
                    Target::Interface {
                        name: "eth1".to_owned(),
                    },
                    Some(20),
                ),
            ],
        };
        let verdict = tracking.verdict(100, &|name| name != "eth1");
        assert_eq!((verdict.priority, verdict.fault), (80, false));
        assert_eq!(verdict.down, ["interface eth1 down"]);
        assert!(tracking.verdict(100, &|_| false).fault);
    }

    #[tokio::test]
    async fn link_states_come_from_netlink() {
        let links = LinkStates::subscribe().await.expect("netlink");
        // Loopback has carrier and reports operstate "unknown".
        assert!(links.is_up("lo"));
        assert!(!links.is_up("hft-no-such-if"));
    }
}
