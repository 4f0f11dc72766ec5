//! The running daemon: health monitor, relays and alerts wired together,
//! driven by signals (SIGTERM/SIGINT stop, SIGHUP reloads the config), the
//! control socket (status, reload) and systemd (readiness, watchdog).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use hafront_config::{Config, Global, KeyPath};
use hafront_health::{Monitor, ServerHealth};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::alerts::{Alerts, AlertsHandle, Event, EventKind, Snapshot, counted};
use crate::control::{
    AlertsStatus, ControlRequest, ControlServer, RelayStatus, ReloadOutcome, ReloadReport, Request,
    Response, SinceTracker, Status,
};
use crate::direct::DirectRelays;
use crate::failover::{Drains, Failovers};
use crate::metrics::MetricsServer;
use crate::quorum::NodeQuorum;
use crate::relay::saturation::{Saturation, SaturationWatch};
use crate::relay::{Relay, RelayStats};
use crate::vrrp::{VrrpInstances, VrrpView};
use hafront_failover::Request as FailoverRequest;

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
    /// The control socket or the metrics listener could not start.
    #[error("{0}")]
    Operations(std::io::Error),
    /// A VRRP instance could not start (located in the configuration file).
    #[error("{0}")]
    Vrrp(String),
    /// A pool's failover could not start (its secrets unreadable, say; located in the
    /// configuration file).
    #[error("{0}")]
    Failover(String),
    /// The quorum could not start (its password file unreadable).
    #[error("{0}")]
    Quorum(String),
    /// A direct-routing relay could not start (its program refused by the
    /// kernel, say; located in the configuration file).
    #[error("{0}")]
    Direct(String),
}

/// Control requests waiting for the main loop before senders wait.
const CONTROL_BACKLOG: usize = 16;

/// The pools and VRRP instances as last configured, shared with the alert
/// mail's state summary.
type StateBoard = Arc<RwLock<BoardState>>;

#[derive(Default)]
struct BoardState {
    pools: BTreeMap<String, Arc<[Arc<ServerHealth>]>>,
    vrrp: VrrpView,
}

/// How often relays' limit refusals are looked at.
const SATURATION_CHECK: Duration = Duration::from_secs(1);

/// Everything the daemon runs, for one configuration at a time.
struct Daemon {
    node: String,
    config: Config,
    monitor: Monitor,
    relays: BTreeMap<String, Relay>,
    alerts: AlertsHandle,
    forwarder: JoinHandle<()>,
    board: StateBoard,
    started: SystemTime,
    since: SinceTracker,
    vrrp: VrrpInstances,
    /// The etcd session whose leader keys gate VRRP mastership, if configured.
    quorum: Option<Arc<NodeQuorum>>,
    saturation: BTreeMap<String, SaturationWatch>,
    failovers: Failovers,
    drains: Drains,
    /// Relays forwarding in the kernel (`forward: direct_routing`).
    direct: DirectRelays,
}

/// Runs the daemon for `config` (read from `config_path`) until SIGTERM or
/// SIGINT. SIGHUP and `hafront reload` re-read `config_path`; a bad file is
/// logged (and returned to `hafront reload`) and the running configuration
/// kept. Under systemd it reports READY, RELOADING and STOPPING and pings
/// the watchdog from this loop at half its interval, so a hung loop is
/// caught.
pub async fn run(config_path: PathBuf, config: Config) -> Result<(), DaemonError> {
    // Absolute, so that status and reload name the file wherever they run.
    let config_path = std::path::absolute(&config_path).unwrap_or(config_path);
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let (control_sender, mut control_requests) = mpsc::channel(CONTROL_BACKLOG);
    let mut endpoints = Endpoints::start(&config, &config_path, control_sender).await?;
    let mut daemon = Daemon::start(config, &config_path).await?;
    let mut saturation_ticks = tokio::time::interval(SATURATION_CHECK);
    let mut watchdog = sd_notify::watchdog_enabled().map(|timeout| {
        let mut ticker = tokio::time::interval(timeout / 2);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    notify_systemd(&[NotifyState::Ready]);
    info!(node = %daemon.node, config = %config_path.display(), "hafront running");
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                reload(&mut daemon, &mut endpoints, &config_path, false).await;
            }
            Some(ControlRequest { request, reply }) = control_requests.recv() => {
                let response = match request {
                    Request::Status => Response::Status(Box::new(daemon.status(&config_path))),
                    Request::Reload { dry_run } => {
                        Response::Reload(reload(&mut daemon, &mut endpoints, &config_path, dry_run).await)
                    }
                    Request::Drain { server } => done(daemon.drains.set(&daemon.monitor, &server, true)),
                    Request::Enable { server } => done(daemon.drains.set(&daemon.monitor, &server, false)),
                    Request::Switchover { pool, to } => {
                        // Seconds long: answered from its own task, the daemon goes on.
                        let switchover = daemon.failovers.request(&pool, FailoverRequest::Switchover { to });
                        tokio::spawn(async move { let _ = reply.send(done(switchover.await)); });
                        continue;
                    }
                    Request::FailoverAck { pool } => {
                        let ack = daemon.failovers.request(&pool, FailoverRequest::Acknowledge);
                        tokio::spawn(async move { let _ = reply.send(done(ack.await)); });
                        continue;
                    }
                };
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(response);
            }
            _ = saturation_ticks.tick() => daemon.watch_saturation(),
            _ = async { watchdog.as_mut()?.tick().await; Some(()) }, if watchdog.is_some() => {
                notify_systemd(&[NotifyState::Watchdog]);
            }
        }
    }
    info!("stopping");
    notify_systemd(&[NotifyState::Stopping]);
    drop(endpoints);
    daemon.stop().await;
    Ok(())
}

/// The answer to an operator's action.
fn done(result: Result<String, String>) -> Response {
    match result {
        Ok(message) => Response::Done { message },
        Err(message) => Response::Error { message },
    }
}

/// Tells systemd about a state change; without systemd this does nothing.
fn notify_systemd(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {err}");
    }
}

/// The control socket and the optional metrics listener, rebound when a
/// reload moves them.
struct Endpoints {
    requests: mpsc::Sender<ControlRequest>,
    control: ControlServer,
    metrics: Option<MetricsServer>,
}

impl Endpoints {
    /// Binds the endpoints `config` (read from `path`) wants; a failure is
    /// located at its key.
    async fn start(
        config: &Config,
        path: &Path,
        requests: mpsc::Sender<ControlRequest>,
    ) -> Result<Endpoints, DaemonError> {
        let failure = |key: &str, err: std::io::Error| {
            let located = located(path, global_key(key), err.to_string());
            DaemonError::Operations(std::io::Error::new(err.kind(), located))
        };
        let control = ControlServer::bind(&config.global.control_socket, requests.clone())
            .map_err(|err| failure("control_socket", err))?;
        let metrics = match config.global.metrics {
            Some(address) => Some(
                MetricsServer::bind(address, requests.clone())
                    .await
                    .map_err(|err| failure("metrics", err))?,
            ),
            None => None,
        };
        Ok(Endpoints {
            requests,
            control,
            metrics,
        })
    }

    /// Moves the endpoints to where `global` (read from `path`) wants them.
    /// On failure the old control socket keeps serving, a metrics listener
    /// that could not move is off, `global` is set to what really listens,
    /// and each failure is logged and returned, located at its key.
    async fn follow(&mut self, global: &mut Global, path: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if global.control_socket != self.control.path() {
            match ControlServer::bind(&global.control_socket, self.requests.clone()) {
                Ok(control) => self.control = control,
                Err(err) => {
                    let message = format!("{err}; the control socket stays where it was");
                    problems.push(located(path, global_key("control_socket"), message));
                    self.control.path().clone_into(&mut global.control_socket);
                }
            }
        }
        let listening = self.metrics.as_ref().map(MetricsServer::configured_addr);
        if global.metrics != listening {
            self.metrics = None;
            if let Some(address) = global.metrics {
                match MetricsServer::bind(address, self.requests.clone()).await {
                    Ok(metrics) => self.metrics = Some(metrics),
                    Err(err) => {
                        problems.push(located(path, global_key("metrics"), err.to_string()));
                        global.metrics = None;
                    }
                }
            }
        }
        for problem in &problems {
            error!("{problem}");
        }
        problems
    }
}

/// The path of `key` under `global`.
fn global_key(key: &str) -> KeyPath {
    KeyPath::root().key("global").key(key)
}

/// Reloads `daemon` from `path` ([`Daemon::reload`]) and moves `endpoints`
/// where the applied configuration wants them; what could not move is
/// reported with the rest.
async fn reload(
    daemon: &mut Daemon,
    endpoints: &mut Endpoints,
    path: &Path,
    dry_run: bool,
) -> ReloadReport {
    let mut report = daemon.reload(path, dry_run).await;
    if matches!(
        report.outcome,
        ReloadOutcome::Applied | ReloadOutcome::Incomplete
    ) {
        let problems = endpoints.follow(&mut daemon.config.global, path).await;
        if !problems.is_empty() {
            report.errors.extend(problems);
            report.outcome = ReloadOutcome::Incomplete;
        }
    }
    report
}

impl Daemon {
    async fn start(config: Config, path: &Path) -> Result<Daemon, DaemonError> {
        let node = config.global.node.clone().unwrap_or_else(host_name);
        // Subscribers first, then the checks: every server's first verdict
        // (a server down at start, say) reaches alerts and status.
        let mut monitor = Monitor::new();
        let board: StateBoard = Arc::default();
        let alerts = Alerts::start(node.clone(), &config, state_summary(Arc::clone(&board)))?;
        let forwarder = forward_health_events(&monitor, &alerts);
        let since = SinceTracker::start(&monitor);
        monitor.reload(&config)?;
        board.write().unwrap_or_else(PoisonError::into_inner).pools = monitor_pools(&monitor);
        let mut relays = BTreeMap::new();
        for (name, relay_config) in proxy_relays(&config) {
            let relay = start_relay(&monitor, name, relay_config).map_err(|err| {
                let located = relay_failure(path, name, relay_config, &err);
                DaemonError::Relay(std::io::Error::new(err.kind(), located))
            })?;
            relays.insert(name.clone(), relay);
        }
        let quorum = match &config.quorum {
            Some(quorum) => Some(Arc::new(
                NodeQuorum::start(quorum, &node).map_err(DaemonError::Quorum)?,
            )),
            None => None,
        };
        let mut vrrp = VrrpInstances::start(&config, &monitor, alerts.sender(), quorum.clone())
            .await
            .map_err(|err| DaemonError::Vrrp(located(path, err.key(), err.to_string())))?;
        board.write().unwrap_or_else(PoisonError::into_inner).vrrp = vrrp.view();
        let drains = Drains::load(&config.global.state_dir);
        drains.apply(&monitor);
        let mut failovers = Failovers::default();
        let problems = failovers.follow(&config, &monitor, &mut vrrp, &alerts.sender());
        if let Some((pool, problem)) = problems.into_iter().next() {
            vrrp.stop().await;
            return Err(DaemonError::Failover(located(
                path,
                failover_key(&pool),
                problem,
            )));
        }
        let mut direct = DirectRelays::default();
        let problems = direct.follow(&config, &monitor, &mut vrrp).await;
        if let Some((relay, problem)) = problems.into_iter().next() {
            direct.stop().await;
            vrrp.stop().await;
            return Err(DaemonError::Direct(located(
                path,
                relay_key(&relay),
                problem,
            )));
        }
        Ok(Daemon {
            direct,
            node,
            config,
            monitor,
            relays,
            alerts,
            forwarder,
            board,
            started: SystemTime::now(),
            since,
            vrrp,
            quorum,
            saturation: BTreeMap::new(),
            failovers,
            drains,
        })
    }

    /// Alerts once when a relay starts refusing clients at its connection
    /// limit, and logs when it has stopped for a while.
    fn watch_saturation(&mut self) {
        let now = Instant::now();
        self.saturation
            .retain(|name, _| self.relays.contains_key(name));
        for (name, relay) in &self.relays {
            let refused = relay.stats().refused_limit;
            let watch = self
                .saturation
                .entry(name.clone())
                .or_insert_with(|| SaturationWatch::new(refused));
            let Some(config) = self.config.relays.get(name) else {
                continue;
            };
            match watch.observe(refused, now) {
                Some(Saturation::Started) => {
                    warn!(relay = %name, max_connections = config.max_connections, "relay at its connection limit: refusing clients");
                    self.alerts.send(Event {
                        at: SystemTime::now(),
                        kind: EventKind::RelaySaturated {
                            relay: name.clone(),
                            pool: config.pool.clone(),
                            max_connections: config.max_connections,
                        },
                    });
                }
                Some(Saturation::Ended) => {
                    info!(relay = %name, "relay no longer refusing clients at its limit");
                }
                None => {}
            }
        }
    }

    /// What runs now and how it is doing.
    fn status(&self, config_path: &Path) -> Status {
        let relays: Vec<(&str, &Relay, RelayStats)> = self
            .relays
            .iter()
            .filter_map(|(name, relay)| {
                let pool = self.config.relays.get(name)?.pool.as_str();
                Some((pool, relay, relay.stats()))
            })
            .collect();
        Status {
            node: self.node.clone(),
            pid: std::process::id(),
            config: config_path.to_owned(),
            started: self.started,
            vrrp: self.vrrp.status(),
            pools: crate::control::pool_statuses(
                &self.monitor,
                relays.iter().map(|(pool, _, stats)| (*pool, stats)),
                &self.since,
            ),
            relays: relays
                .iter()
                .map(|(pool, relay, stats)| RelayStatus::new(stats, pool, relay.local_addrs()))
                .collect(),
            alerts: AlertsStatus {
                queued_mails: crate::control::queued_mails(&self.config.global.state_dir),
                dropped_events: self.alerts.dropped(),
            },
            replication: self.failovers.topologies(),
            quorum: self
                .quorum
                .as_ref()
                .map(|quorum| quorum.view(self.vrrp.leader_keys())),
            direct: self.direct.status(),
        }
    }

    /// Re-reads the configuration and applies only what changed (or, with
    /// `dry_run`, only lists it). An invalid file changes nothing.
    async fn reload(&mut self, path: &Path, dry_run: bool) -> ReloadReport {
        info!(config = %path.display(), dry_run, "reloading");
        let loaded = hafront_config::load(path)
            .map_err(|errors| errors.to_string().lines().map(str::to_owned).collect())
            .and_then(|new| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let file = path.display().to_string();
                let errors = crate::startup::check(&new, &file, &text);
                if errors.is_empty() {
                    Ok(new)
                } else {
                    Err(errors.iter().map(ToString::to_string).collect::<Vec<_>>())
                }
            });
        let new = match loaded {
            Ok(new) => new,
            Err(errors) => {
                error!(
                    "reload refused, keeping the running configuration:\n{}",
                    errors.join("\n")
                );
                return ReloadReport {
                    config: path.to_owned(),
                    outcome: ReloadOutcome::Refused,
                    changes: Vec::new(),
                    errors,
                };
            }
        };
        let changes = crate::control::diff(&self.config, &new);
        if dry_run {
            return ReloadReport {
                config: path.to_owned(),
                outcome: ReloadOutcome::DryRun,
                changes,
                errors: Vec::new(),
            };
        }
        notify_systemd(&[
            NotifyState::Reloading,
            NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0)),
        ]);
        let errors = match self.apply(new, path).await {
            Ok(problems) => problems,
            Err(err) => {
                error!("reload incomplete: {err}");
                vec![err.to_string()]
            }
        };
        self.since.sync(&self.monitor);
        notify_systemd(&[NotifyState::Ready]);
        ReloadReport {
            config: path.to_owned(),
            outcome: if errors.is_empty() {
                ReloadOutcome::Applied
            } else {
                ReloadOutcome::Incomplete
            },
            changes,
            errors,
        }
    }

    /// Applies `new`, returning what could not be applied (already logged).
    /// What could not be applied is left out of the configuration the
    /// daemon keeps, so the next reload compares with what really runs.
    async fn apply(&mut self, mut new: Config, path: &Path) -> Result<Vec<String>, DaemonError> {
        let mut problems = Vec::new();
        self.alerts.set_pools(&new.pools);
        if let Err(err) = self.monitor.reload(&new) {
            self.alerts.set_pools(&self.config.pools);
            return Err(err.into());
        }
        if new.global.log != self.config.global.log {
            crate::logging::reconfigure(&new.global.log);
        }
        if new.quorum != self.config.quorum {
            // The lease and its keys belong to the running session; a new one would drop
            // every leader key at once.
            let problem = "the quorum section changed: it applies at the next restart".to_owned();
            warn!("{problem}");
            problems.push(problem);
            new.quorum = self.config.quorum.clone();
        }
        self.board
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .pools = monitor_pools(&self.monitor);

        // Relays whose settings are unchanged keep their listeners and
        // connections and only see the new pool; the others restart.
        let mut old_relays = std::mem::take(&mut self.relays);
        let mut failed = Vec::new();
        for (name, relay_config) in proxy_relays(&new) {
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
                        Err(err) => {
                            let located = relay_failure(path, name, relay_config, &err);
                            error!(relay = %name, "cannot start relay: {located}");
                            problems.push(located);
                            failed.push(name.clone());
                        }
                    }
                }
            }
        }
        for name in failed {
            new.relays.remove(&name);
        }
        for (name, mut relay) in old_relays {
            relay.stop().await;
            info!(relay = %name, "relay removed; open connections drain");
        }

        // Alerts keep their state (servers down, pending mail, the mail
        // queue's one delivery task); only changed settings are swapped.
        if let Err(err) = self.alerts.reconfigure(&new).await {
            error!("alerts: {err}; the running alerts stay");
            problems.push(format!("alerts: {err}"));
            new.alerts = self.config.alerts.clone();
            new.notify = self.config.notify.clone();
        }
        // An instance that could not start does not run: the next reload starts it again.
        for err in self
            .vrrp
            .reload(&new, &self.monitor, self.alerts.sender())
            .await
        {
            new.vrrp.instances.remove(err.instance());
            problems.push(located(path, err.key(), err.to_string()));
        }
        self.board
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .vrrp = self.vrrp.view();
        if new.global.state_dir != self.config.global.state_dir {
            self.drains = Drains::load(&new.global.state_dir);
        }
        self.drains.apply(&self.monitor);
        // A coordinator that could not start is tried again by the next reload.
        for (pool, problem) in
            self.failovers
                .follow(&new, &self.monitor, &mut self.vrrp, &self.alerts.sender())
        {
            problems.push(located(path, failover_key(&pool), problem));
        }
        // A direct-routing relay that could not start is tried again by the next reload.
        for (relay, problem) in self
            .direct
            .follow(&new, &self.monitor, &mut self.vrrp)
            .await
        {
            new.relays.remove(&relay);
            problems.push(located(path, relay_key(&relay), problem));
        }
        self.config = new;
        info!("configuration reloaded");
        Ok(problems)
    }

    async fn stop(mut self) {
        drop(self.failovers);
        // VIPs first: clients move to the new master while the relays still serve.
        self.vrrp.stop().await;
        self.direct.stop().await;
        // Then the leader keys, at once: a backup takes over without waiting for the TTL.
        if let Some(quorum) = &self.quorum {
            quorum.release_all().await;
        }
        for relay in self.relays.values_mut() {
            relay.stop().await;
        }
        // Open connections may finish within the grace, one deadline for all relays.
        let deadline = Instant::now() + self.config.global.stop_grace;
        let mut left = 0;
        for relay in self.relays.values() {
            left += relay
                .drain(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        if left > 0 {
            info!(
                connections = left,
                "closing the connections still open after the stop grace"
            );
        }
        self.monitor.stop();
        self.forwarder.abort();
        self.alerts.shutdown().await;
    }
}

/// `message` about the value at `key`, located in the configuration file at
/// `path` as `FILE:LINE:COL: KEY: MESSAGE`.
fn located(path: &Path, key: KeyPath, message: String) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    crate::startup::located(&path.display().to_string(), &text, key, message).to_string()
}

/// Relay `relay`'s settings.
fn relay_key(relay: &str) -> KeyPath {
    KeyPath::root().key("relays").key(relay)
}

/// The relays that accept clients themselves (not direct routing).
fn proxy_relays(config: &Config) -> impl Iterator<Item = (&String, &hafront_config::Relay)> {
    config
        .relays
        .iter()
        .filter(|(_, relay)| relay.forward == hafront_config::Forward::Proxy)
}

/// The `failover` block of pool `pool`.
fn failover_key(pool: &str) -> KeyPath {
    KeyPath::root().key("pools").key(pool).key("failover")
}

/// Relay `name`'s failure to start, `err`, located in the file at `path`.
fn relay_failure(
    path: &Path,
    name: &str,
    relay: &hafront_config::Relay,
    err: &std::io::Error,
) -> String {
    let message = err.to_string();
    let key = crate::startup::relay_failure_key(name, relay, &message);
    located(path, key, message)
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

/// The state summary at the end of every alert mail: each VRRP instance,
/// then each pool's servers.
fn state_summary(board: StateBoard) -> Snapshot {
    Arc::new(move || {
        let board = board.read().unwrap_or_else(PoisonError::into_inner);
        let mut text = board.vrrp.describe();
        for (pool, servers) in board.pools.iter() {
            let up = servers.iter().filter(|server| server.is_up()).count();
            let of = counted(servers.len() as u64, "server");
            let _ = writeln!(text, "pool {pool}: {up} of {of} up");
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
