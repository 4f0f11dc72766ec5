//! The monitor: one probe task per (pool, server), shared health state, and a
//! broadcast of every status or role change.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hafront_config::{Check, Config, Role, Server};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::probe::probe;
use crate::rise_fall::{RiseFall, Verdict};
use crate::state::{HealthEvent, ServerHealth, Status};

/// Events kept for a slow subscriber before it starts missing some.
const EVENT_BACKLOG: usize = 1024;

/// Shortest interval between probe starts (guards against `interval: 0s`).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Why a configuration cannot be monitored.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A pool names a check that `checks:` does not define.
    #[error("pool {pool:?} uses check {check:?}, which is not defined under checks")]
    UnknownCheck {
        /// The pool.
        pool: String,
        /// The missing check's name.
        check: String,
    },
}

/// Identity of a probe task across reloads: the same server in the same pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    pool: String,
    name: String,
    address: SocketAddr,
}

/// A running probe task and what it was started with.
struct ProbeTask {
    check: Check,
    server: Server,
    health: Arc<ServerHealth>,
    handle: JoinHandle<()>,
}

impl Drop for ProbeTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Runs the health checks of every pool and owns their shared state.
///
/// Each server gets its own task, so a hung server never delays another's
/// probes. Relays read [`ServerHealth`] through [`Monitor::pool`]; alerts and
/// VRRP tracking follow [`Monitor::subscribe`]. Dropping the monitor (or
/// calling [`Monitor::stop`]) stops every probe task.
pub struct Monitor {
    events: broadcast::Sender<HealthEvent>,
    pools: BTreeMap<String, Arc<[Arc<ServerHealth>]>>,
    tasks: HashMap<ServerKey, ProbeTask>,
}

impl Monitor {
    /// Starts probing every server of every pool of `config`. Must be called
    /// within a Tokio runtime. Servers start [`Status::Unknown`]; each one's
    /// first probe decides up or down.
    ///
    /// Probes may finish before a later [`Monitor::subscribe`]; to see every
    /// server's first event, use [`Monitor::new`], subscribe, then
    /// [`Monitor::reload`].
    pub fn start(config: &Config) -> Result<Monitor, MonitorError> {
        let mut monitor = Monitor::new();
        monitor.reload(config)?;
        Ok(monitor)
    }

    /// A monitor with no pools yet; [`Monitor::reload`] starts the probes.
    pub fn new() -> Monitor {
        Monitor {
            events: broadcast::channel(EVENT_BACKLOG).0,
            pools: BTreeMap::new(),
            tasks: HashMap::new(),
        }
    }

    /// Applies a new configuration. Servers whose pool, name, address, check
    /// and settings are unchanged keep their task and state untouched. A
    /// server whose check or weight/backup changed gets a new task that
    /// continues from its current status and role. Servers no longer
    /// configured stop being probed. On error nothing changes.
    ///
    /// Unchanged servers keep the same `Arc<ServerHealth>`; replaced and
    /// removed ones stop updating, so holders of [`Monitor::pool`] slices
    /// must fetch them again after a reload. Carried-over states publish no
    /// event; new servers start [`Status::Unknown`] and publish their first.
    pub fn reload(&mut self, config: &Config) -> Result<(), MonitorError> {
        let mut wanted = Vec::new();
        for (pool_name, pool) in &config.pools {
            let check =
                config
                    .checks
                    .get(&pool.check)
                    .ok_or_else(|| MonitorError::UnknownCheck {
                        pool: pool_name.clone(),
                        check: pool.check.clone(),
                    })?;
            wanted.push((pool_name, pool, check));
        }

        let mut previous = std::mem::take(&mut self.tasks);
        let mut pools = BTreeMap::new();
        for (pool_name, pool, check) in wanted {
            let mut members = Vec::with_capacity(pool.servers.len());
            for server in &pool.servers {
                let key = ServerKey {
                    pool: pool_name.clone(),
                    name: server.display_name(),
                    address: server.address,
                };
                if self.tasks.contains_key(&key) {
                    tracing::warn!(pool = %pool_name, server = %key.name, "server listed twice; probing it once");
                    continue;
                }
                let task = match previous.remove(&key) {
                    Some(task) if task.check == *check && task.server == *server => task,
                    Some(old) => {
                        let health = Arc::clone(&old.health);
                        // Stop the old task before its state is copied.
                        drop(old);
                        self.spawn(pool_name, server, check, Some(&health))
                    }
                    None => self.spawn(pool_name, server, check, None),
                };
                members.push(Arc::clone(&task.health));
                self.tasks.insert(key, task);
            }
            pools.insert(pool_name.clone(), Arc::from(members));
        }
        self.pools = pools;
        // Whatever is left in `previous` is no longer configured; dropping it
        // aborts its task.
        drop(previous);
        Ok(())
    }

    /// The servers of a pool, in configured order.
    pub fn pool(&self, name: &str) -> Option<Arc<[Arc<ServerHealth>]>> {
        self.pools.get(name).cloned()
    }

    /// Every pool by name, for status reports.
    pub fn pools(&self) -> impl Iterator<Item = (&str, &Arc<[Arc<ServerHealth>]>)> {
        self.pools
            .iter()
            .map(|(name, servers)| (name.as_str(), servers))
    }

    /// A receiver of every status or role change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Stops every probe task; the last known state stays readable.
    pub fn stop(&mut self) {
        self.tasks.clear();
    }

    fn spawn(
        &self,
        pool: &str,
        server: &Server,
        check: &Check,
        carried_over: Option<&Arc<ServerHealth>>,
    ) -> ProbeTask {
        let health = Arc::new(ServerHealth::new(pool, server));
        let debouncer = match carried_over {
            Some(old) => {
                health.set_role(old.reported_role());
                health.set_fenced(old.is_fenced());
                health.set_drained(old.is_drained());
                health.set_status(old.status());
                if let Some(result) = old.last_probe() {
                    health.set_last_probe(result);
                }
                RiseFall::resume(check.rise, check.fall, old.status(), old.reported_role())
            }
            None => RiseFall::new(check.rise, check.fall),
        };
        let handle = tokio::spawn(run_probes(
            Arc::clone(&health),
            check.clone(),
            debouncer,
            self.events.clone(),
        ));
        ProbeTask {
            check: check.clone(),
            server: server.clone(),
            health,
            handle,
        }
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("pools", &self.pools)
            .field("probe_tasks", &self.tasks.len())
            .finish()
    }
}

/// Probes one server forever, one probe every `check.interval` (measured
/// between starts; a slow probe delays only its own server's next one).
async fn run_probes(
    health: Arc<ServerHealth>,
    check: Check,
    mut debouncer: RiseFall,
    events: broadcast::Sender<HealthEvent>,
) {
    let mut ticker = tokio::time::interval(check.interval.max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = probe(&check.kind, &health, check.timeout).await;
        let verdict = if result.ok {
            Verdict::Pass(result.role)
        } else {
            Verdict::Fail
        };
        tracing::debug!(
            pool = %health.pool,
            server = %health.name,
            ok = result.ok,
            reason = %result.reason,
            latency = ?result.latency,
            "probe"
        );
        let reason = result.reason.clone();
        health.set_last_probe(result);
        let Some(transition) = debouncer.observe(verdict) else {
            continue;
        };
        // Readers that see Up must see the role that came with it.
        if transition.new == Status::Up {
            health.set_role(transition.role);
            health.set_status(Status::Up);
        } else {
            health.set_status(transition.new);
            health.set_role(transition.role);
        }
        let role = transition.role.map(|role| match role {
            Role::Primary => "primary",
            Role::Replica => "replica",
        });
        if transition.new == Status::Down {
            tracing::warn!(pool = %health.pool, server = %health.name, address = %health.address, old = %transition.old, reason = %reason, "server down");
        } else if transition.old == transition.new {
            tracing::info!(pool = %health.pool, server = %health.name, address = %health.address, role = role.unwrap_or("none"), reason = %reason, "server role changed");
        } else {
            tracing::info!(pool = %health.pool, server = %health.name, address = %health.address, old = %transition.old, role = role.unwrap_or("none"), reason = %reason, "server up");
        }
        // No subscriber is not an error: the state above is what relays read.
        let _ = events.send(HealthEvent {
            pool: health.pool.clone(),
            server: health.name.clone(),
            address: health.address,
            old: transition.old,
            new: transition.new,
            role: transition.role,
            reason,
            at: SystemTime::now(),
        });
    }
}
