//! The running daemon: health monitor, relays and alerts wired together,
//! driven by signals (SIGTERM/SIGINT stop, SIGHUP reloads the config).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use hafront_config::Config;
use hafront_health::{Monitor, ServerHealth};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::alerts::{Alerts, AlertsHandle, Snapshot};
use crate::relay::Relay;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The health monitor refused the configuration.
    #[error("health checks: {0}")]
    Health(#[from] hafront_health::MonitorError),
    /// A relay could not start (typically an address that cannot be bound).
    #[error("{0}")]
    Relay(std::io::Error),
    /// The alerts subsystem could not start.
    #[error("alerts: {0}")]
    Alerts(#[from] crate::alerts::AlertsError),
    /// A signal handler could not be installed.
    #[error("signals: {0}")]
    Signal(std::io::Error),
}

/// The pools as last configured, shared with the alert mail's state summary.
type PoolBoard = Arc<RwLock<BTreeMap<String, Arc<[Arc<ServerHealth>]>>>>;

/// Everything the daemon runs, for one configuration at a time.
struct Daemon {
    node: String,
    config: Config,
    monitor: Monitor,
    relays: BTreeMap<String, Relay>,
    alerts: AlertsHandle,
    forwarder: JoinHandle<()>,
    board: PoolBoard,
}

/// Runs the daemon for `config` (read from `config_path`) until SIGTERM or
/// SIGINT. SIGHUP re-reads `config_path`; a bad file is logged and the
/// running configuration kept.
pub async fn run(config_path: PathBuf, config: Config) -> Result<(), DaemonError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let mut daemon = Daemon::start(config)?;
    info!(node = %daemon.node, config = %config_path.display(), "hafront running");
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => daemon.reload(&config_path).await,
        }
    }
    info!("stopping");
    daemon.stop().await;
    Ok(())
}

impl Daemon {
    fn start(config: Config) -> Result<Daemon, DaemonError> {
        let node = config.global.node.clone().unwrap_or_else(host_name);
        let monitor = Monitor::start(&config)?;
        let board: PoolBoard = Arc::new(RwLock::new(monitor_pools(&monitor)));
        let alerts = Alerts::start(node.clone(), &config, pool_summary(Arc::clone(&board)))?;
        let forwarder = forward_health_events(&monitor, &alerts);
        let mut relays = BTreeMap::new();
        for (name, relay_config) in &config.relays {
            let relay = start_relay(&monitor, name, relay_config).map_err(DaemonError::Relay)?;
            relays.insert(name.clone(), relay);
        }
        Ok(Daemon {
            node,
            config,
            monitor,
            relays,
            alerts,
            forwarder,
            board,
        })
    }

    /// Re-reads the configuration and applies only what changed. On any
    /// error the running configuration stays in force.
    async fn reload(&mut self, path: &Path) {
        info!(config = %path.display(), "reloading");
        let new = match hafront_config::load(path) {
            Ok(new) => new,
            Err(errors) => {
                error!("reload refused, keeping the running configuration:\n{errors}");
                return;
            }
        };
        if let Err(err) = self.apply(new).await {
            error!("reload incomplete: {err}");
        }
    }

    async fn apply(&mut self, new: Config) -> Result<(), DaemonError> {
        self.monitor.reload(&new)?;
        *self.board.write().unwrap_or_else(PoisonError::into_inner) = monitor_pools(&self.monitor);

        // Relays whose settings are unchanged keep their listeners and
        // connections and only see the new pool; the others restart.
        let mut old_relays = std::mem::take(&mut self.relays);
        for (name, relay_config) in &new.relays {
            let unchanged = self.config.relays.get(name) == Some(relay_config);
            match old_relays.remove(name) {
                Some(relay) if unchanged => {
                    if let Some(pool) = self.monitor.pool(&relay_config.pool) {
                        relay.replace_pool(pool);
                    }
                    self.relays.insert(name.clone(), relay);
                }
                previous => {
                    if let Some(mut previous) = previous {
                        previous.stop().await;
                        info!(relay = %name, "relay settings changed; restarting it");
                    }
                    match start_relay(&self.monitor, name, relay_config) {
                        Ok(relay) => {
                            self.relays.insert(name.clone(), relay);
                        }
                        Err(err) => error!(relay = %name, "cannot start relay: {err}"),
                    }
                }
            }
        }
        for (name, mut relay) in old_relays {
            relay.stop().await;
            info!(relay = %name, "relay removed; open connections drain");
        }

        if new.alerts != self.config.alerts
            || new.notify != self.config.notify
            || new.global != self.config.global
        {
            let alerts = Alerts::start(
                self.node.clone(),
                &new,
                pool_summary(Arc::clone(&self.board)),
            )?;
            let previous = std::mem::replace(&mut self.alerts, alerts);
            previous.shutdown().await;
        }
        self.forwarder.abort();
        self.forwarder = forward_health_events(&self.monitor, &self.alerts);
        self.config = new;
        info!("configuration reloaded");
        Ok(())
    }

    async fn stop(mut self) {
        for relay in self.relays.values_mut() {
            relay.stop().await;
        }
        self.monitor.stop();
        self.forwarder.abort();
        self.alerts.shutdown().await;
    }
}

fn start_relay(
    monitor: &Monitor,
    name: &str,
    config: &hafront_config::Relay,
) -> std::io::Result<Relay> {
    // Validation guarantees the pool exists; an empty view is the safe answer otherwise.
    let pool = monitor
        .pool(&config.pool)
        .unwrap_or_else(|| Arc::from(Vec::new()));
    Relay::start(name, config, pool, monitor.subscribe())
}

fn monitor_pools(monitor: &Monitor) -> BTreeMap<String, Arc<[Arc<ServerHealth>]>> {
    monitor
        .pools()
        .map(|(name, servers)| (name.to_owned(), Arc::clone(servers)))
        .collect()
}

/// Passes every health event on to the alerts subsystem.
fn forward_health_events(monitor: &Monitor, alerts: &AlertsHandle) -> JoinHandle<()> {
    let mut events = monitor.subscribe();
    let sender = alerts.sender();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    sender.send(event);
                }
                Err(RecvError::Lagged(missed)) => {
                    warn!(
                        missed,
                        "alerts fell behind the health events; some were not reported"
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// The state summary at the end of every alert mail: each pool's servers.
fn pool_summary(board: PoolBoard) -> Snapshot {
    Arc::new(move || {
        let pools = board.read().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        for (pool, servers) in pools.iter() {
            let up = servers.iter().filter(|server| server.is_up()).count();
            let _ = writeln!(text, "pool {pool}: {up} of {} servers up", servers.len());
            for server in servers.iter() {
                let role = server
                    .role()
                    .map(|role| format!(", {role:?}").to_lowercase())
                    .unwrap_or_default();
                let _ = writeln!(
                    text,
                    "  {} ({}): {}{role}",
                    server.name,
                    server.address,
                    server.status()
                );
            }
        }
        text
    })
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "hafront".to_owned())
}
