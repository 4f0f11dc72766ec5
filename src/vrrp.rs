//! VRRP in the daemon: one [`Driver`] per configured instance, the tracking that lowers its
//! priority or forces FAULT (health-checked servers, pools, interface links), state changes
//! published as alerts, the instances' status, and `hafront release`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hafront_config::{Config, V3Checksum, VrrpInstance};
use hafront_health::{Monitor, ServerHealth};
use hafront_vrrp::linux::{
    self, Activity, Control, Driver, DriverConfig, DropCounters, Event, LinkChanges,
};
use hafront_vrrp::{
    Auth, ChecksumForm, DropReason, GarpConfig, InstanceConfig, Password, Reason, State, Tunables,
    Version,
};
use ipnet::IpNet;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::alerts::{AlertSender, EventKind, VrrpState, VrrpTransition};
use crate::control::InstanceStatus;

/// How often link state is re-read besides netlink's change notifications (one lost to a
/// full socket buffer is caught by this).
const LINK_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often link state is read when netlink notifications are unavailable.
const LINK_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Commands queued for a driver before it must wait.
const CONTROL_BACKLOG: usize = 8;

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    /// The password could not be read or does not fit VRRPv2's 8 bytes.
    #[error("VRRP instance {instance}: auth_pass: {message}")]
    AuthPass {
        /// The instance.
        instance: String,
        /// What is wrong (never the password itself).
        message: String,
    },
    /// The driver refused the instance or could not open its sockets.
    #[error("VRRP instance {instance}: {source}")]
    Driver {
        /// The instance.
        instance: String,
        /// Why.
        source: linux::DriverError,
    },
}

/// The running VRRP instances of this node.
pub struct VrrpInstances {
    instances: BTreeMap<String, Instance>,
    alerts: Arc<Mutex<AlertSender>>,
    /// Whether this node is master of each instance; kept across an instance's restarts
    /// so that followers (failover) never see the channel close.
    masters: BTreeMap<String, watch::Sender<bool>>,
    /// The control channel of each running instance, for [`VrrpInstances::resigner`].
    controls: BTreeMap<String, Arc<Mutex<Option<mpsc::Sender<Control>>>>>,
}

impl VrrpInstances {
    /// Starts every instance of `config`, tracking through `monitor`, and reports state
    /// changes to `alerts`. Must run in the network namespace of the interfaces. On error
    /// the instances already started are stopped (their VIPs withdrawn).
    pub async fn start(
        config: &Config,
        monitor: &Monitor,
        alerts: AlertSender,
    ) -> Result<VrrpInstances, VrrpError> {
        let mut vrrp = VrrpInstances {
            instances: BTreeMap::new(),
            alerts: Arc::new(Mutex::new(alerts)),
            masters: BTreeMap::new(),
            controls: BTreeMap::new(),
        };
        for (name, instance) in &config.vrrp.instances {
            let master = vrrp.master_sender(name);
            match Instance::start(name, instance, monitor, &vrrp.alerts, master).await {
                Ok(started) => {
                    vrrp.follow_control(name, &started);
                    vrrp.instances.insert(name.clone(), started);
                }
                Err(err) => {
                    vrrp.stop().await;
                    return Err(err);
                }
            }
        }
        Ok(vrrp)
    }

    /// Applies a new configuration: instances whose protocol settings are unchanged keep
    /// running (and their state) with the new tracking; changed ones restart; removed ones
    /// resign and withdraw their VIPs. Alerts go to `alerts` from now on. Returns what could
    /// not be started (already logged).
    pub async fn reload(
        &mut self,
        config: &Config,
        monitor: &Monitor,
        alerts: AlertSender,
    ) -> Vec<String> {
        *self.alerts.lock().unwrap_or_else(PoisonError::into_inner) = alerts;
        let mut problems = Vec::new();
        let mut old = std::mem::take(&mut self.instances);
        for (name, wanted) in &config.vrrp.instances {
            if let Some(mut running) = old.remove(name) {
                if applies_live(&running.config, wanted) {
                    if tunables(&running.config) != tunables(wanted) {
                        info!(instance = %name, "VRRP preemption or gratuitous ARP settings changed; applied live");
                        let _ = running
                            .control
                            .try_send(Control::SetTunables(tunables(wanted)));
                    }
                    // The new configured priority reaches the driver through tracking.
                    running.retrack(name, wanted, monitor);
                    self.instances.insert(name.clone(), running);
                    continue;
                }
                info!(instance = %name, "VRRP instance settings changed; restarting it");
                running.stop().await;
            }
            let master = self.master_sender(name);
            match Instance::start(name, wanted, monitor, &self.alerts, master).await {
                Ok(started) => {
                    self.follow_control(name, &started);
                    self.instances.insert(name.clone(), started);
                }
                Err(err) => {
                    error!("{err}");
                    problems.push(err.to_string());
                }
            }
        }
        for (name, removed) in old {
            info!(instance = %name, "VRRP instance removed; withdrawing its addresses");
            removed.stop().await;
        }
        problems
    }

    /// Whether this node is master of instance `name`, followed live (false while the
    /// instance does not run).
    pub fn master_watch(&mut self, name: &str) -> watch::Receiver<bool> {
        self.master_sender(name).subscribe()
    }

    /// A function that makes this node hand over the master role of instance `name`
    /// (priority 0 advert, then backup), whichever incarnation of the instance runs then.
    pub fn resigner(&mut self, name: &str) -> impl Fn() + Send + Sync + 'static {
        let control = Arc::clone(self.controls.entry(name.to_owned()).or_default());
        let name = name.to_owned();
        move || {
            let control = control.lock().unwrap_or_else(PoisonError::into_inner);
            if control
                .as_ref()
                .is_none_or(|control| control.try_send(Control::Resign).is_err())
            {
                warn!(instance = %name, "cannot hand over the VRRP master role: instance not running");
            }
        }
    }

    fn follow_control(&mut self, name: &str, instance: &Instance) {
        *self
            .controls
            .entry(name.to_owned())
            .or_default()
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(instance.control.clone());
    }

    fn master_sender(&mut self, name: &str) -> watch::Sender<bool> {
        self.masters
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .clone()
    }

    /// Every instance's state, priorities, master and counters, by name.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.instances
            .iter()
            .map(|(name, instance)| instance.status(name))
            .collect()
    }

    /// A shareable view of the instances' live state, for the alert mail.
    pub fn view(&self) -> VrrpView {
        VrrpView(
            self.instances
                .iter()
                .map(|(name, instance)| InstanceView {
                    name: name.clone(),
                    addresses: instance.config.virtual_addresses.clone(),
                    configured_priority: instance.config.priority,
                    board: Arc::clone(&instance.board),
                    activity: Arc::clone(&instance.activity),
                })
                .collect(),
        )
    }

    /// Makes every master resign (priority 0 advert), withdraws the VIPs and waits until
    /// that is done.
    pub async fn stop(&mut self) {
        let instances = std::mem::take(&mut self.instances);
        for instance in instances.values() {
            // A driver that already ended has withdrawn its VIPs.
            let _ = instance.control.try_send(Control::Shutdown);
        }
        for (_, instance) in instances {
            instance.stop().await;
        }
    }
}

/// The live state of the running instances, readable from any task; taken from
/// [`VrrpInstances::view`] again after a reload.
#[derive(Clone, Default)]
pub struct VrrpView(Vec<InstanceView>);

#[derive(Clone)]
struct InstanceView {
    name: String,
    addresses: Vec<IpNet>,
    configured_priority: u8,
    board: Arc<Mutex<Board>>,
    activity: Arc<Activity>,
}

impl VrrpView {
    /// One line per instance: state, priority, VIPs, master, since when, and
    /// what tracking holds down.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for instance in &self.0 {
            let board = instance
                .board
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let addresses: Vec<String> =
                instance.addresses.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "vrrp {}: {} since {}, priority {} of {}, VIPs {}",
                instance.name,
                board.state.as_str().to_uppercase(),
                humantime::format_rfc3339_seconds(board.since),
                board.effective_priority,
                instance.configured_priority,
                addresses.join(", "),
            ));
            if let Some(master) = instance.activity.master() {
                text.push_str(&format!(", master {master}"));
            }
            if !board.down.is_empty() {
                text.push_str(&format!(", down: {}", board.down.join(", ")));
            }
            text.push('\n');
        }
        text
    }
}

/// Removes the VIPs of every instance of `config` from their interfaces: what a killed
/// daemon left behind (`hafront release`, for systemd's `ExecStopPost`). Returns per
/// instance the addresses removed, or why that failed.
pub async fn release(config: &Config) -> Vec<(String, Result<Vec<IpAddr>, linux::DriverError>)> {
    let mut results = Vec::new();
    for (name, instance) in &config.vrrp.instances {
        let released = linux::release(&instance.interface, &instance.virtual_addresses).await;
        results.push((name.clone(), released));
    }
    results
}

/// One running instance and its helper tasks.
struct Instance {
    config: VrrpInstance,
    control: mpsc::Sender<Control>,
    driver: JoinHandle<Result<(), linux::DriverError>>,
    tracker: JoinHandle<()>,
    reporter: JoinHandle<()>,
    board: Arc<Mutex<Board>>,
    drops: Arc<DropCounters>,
    activity: Arc<Activity>,
}

/// What the instance's tasks share for status and alerts.
#[derive(Debug)]
struct Board {
    state: State,
    since: SystemTime,
    effective_priority: u8,
    /// Tracked items now down, in words.
    down: Vec<String>,
}

impl Instance {
    async fn start(
        name: &str,
        config: &VrrpInstance,
        monitor: &Monitor,
        alerts: &Arc<Mutex<AlertSender>>,
        master: watch::Sender<bool>,
    ) -> Result<Instance, VrrpError> {
        let driver_config = driver_config(name, config).await?;
        let (events_tx, events) = mpsc::channel(linux::EVENT_BACKLOG);
        let driver = Driver::new(driver_config, events_tx)
            .await
            .map_err(|source| VrrpError::Driver {
                instance: name.to_owned(),
                source,
            })?;
        let tracking = Tracking::resolve(config, monitor);
        let verdict = tracking.verdict(config.priority);
        let board = Arc::new(Mutex::new(Board {
            state: State::Initialize,
            since: SystemTime::now(),
            effective_priority: verdict.priority,
            down: verdict.down.clone(),
        }));
        let (control, control_rx) = mpsc::channel(CONTROL_BACKLOG);
        // Queued before the driver runs: it starts in FAULT (or at the lowered priority)
        // rather than passing through BACKUP first.
        for command in verdict.commands() {
            let _ = control.try_send(command);
        }
        let drops = driver.drop_counters();
        let activity = driver.activity();
        let instance = name.to_owned();
        let driver = tokio::spawn(async move {
            let result = driver.run(control_rx).await;
            if let Err(err) = &result {
                // It resigned and withdrew the VIPs before ending.
                error!(%instance, "VRRP instance stopped: {err}");
            }
            result
        });
        let tracker = tokio::spawn(track(
            name.to_owned(),
            tracking,
            config.priority,
            Some(verdict),
            monitor.subscribe(),
            control.clone(),
            Arc::clone(&board),
        ));
        let reporter = tokio::spawn(report(
            name.to_owned(),
            events,
            Arc::clone(&board),
            Arc::clone(alerts),
            master,
        ));
        Ok(Instance {
            config: config.clone(),
            control,
            driver,
            tracker,
            reporter,
            board,
            drops,
            activity,
        })
    }

    /// Tracks `config.track` from now on (the monitor's servers may have been replaced).
    fn retrack(&mut self, name: &str, config: &VrrpInstance, monitor: &Monitor) {
        self.tracker.abort();
        self.tracker = tokio::spawn(track(
            name.to_owned(),
            Tracking::resolve(config, monitor),
            config.priority,
            None,
            monitor.subscribe(),
            self.control.clone(),
            Arc::clone(&self.board),
        ));
        self.config = config.clone();
    }

    fn status(&self, name: &str) -> InstanceStatus {
        let board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        InstanceStatus {
            name: name.to_owned(),
            state: board.state.into(),
            priority: self.config.priority,
            effective_priority: board.effective_priority,
            master: self.activity.master(),
            since: board.since,
            adverts_sent: self.activity.adverts_sent(),
            adverts_received: self.activity.adverts_received(),
            dropped: DropReason::ALL
                .iter()
                .map(|&reason| (reason.as_str().to_owned(), self.drops.get(reason)))
                .collect(),
        }
    }

    /// Resigns, withdraws the VIPs and waits for the driver; the reporter publishes the
    /// final transition before it ends.
    async fn stop(self) {
        self.tracker.abort();
        let _ = self.control.send(Control::Shutdown).await;
        drop(self.control);
        // A driver error was logged when it happened.
        if let Err(err) = self.driver.await {
            error!(interface = %self.config.interface, "VRRP driver task: {err}");
        }
        let _ = self.reporter.await;
    }
}

/// Whether `wanted` can be applied to the running instance without a restart: only
/// `track`, the priority (not to or from the address owner's 255), preemption and
/// gratuitous ARP may differ. Anything else (interface, VRID, version, addresses, interval,
/// password, peers) restarts it.
fn applies_live(running: &VrrpInstance, wanted: &VrrpInstance) -> bool {
    let owner = |instance: &VrrpInstance| instance.priority == u8::MAX;
    let strip = |instance: &VrrpInstance| VrrpInstance {
        track: Vec::new(),
        priority: 0,
        preempt: false,
        preempt_delay: Duration::ZERO,
        garp: hafront_config::Garp::default(),
        ..instance.clone()
    };
    owner(running) == owner(wanted) && strip(running) == strip(wanted)
}

/// The settings a reload changes live.
fn tunables(config: &VrrpInstance) -> Tunables {
    Tunables {
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        garp: garp(config),
    }
}

fn garp(config: &VrrpInstance) -> GarpConfig {
    GarpConfig {
        repeat: config.garp.repeat,
        interval: config.garp.interval,
        refresh: config.garp.refresh,
    }
}

/// Maps the configuration onto the driver's: version, password, checksum form, the
/// interface's primary address, gratuitous ARP, unicast peers and the VIP lifetime.
async fn driver_config(name: &str, config: &VrrpInstance) -> Result<DriverConfig, VrrpError> {
    let auth_error = |message: String| VrrpError::AuthPass {
        instance: name.to_owned(),
        message,
    };
    let version = if config.version == 2 {
        Version::V2
    } else {
        Version::V3
    };
    let auth = match &config.auth_pass {
        None => Auth::None,
        Some(secret) => {
            let text = secret
                .reveal()
                .map_err(|err| auth_error(format!("cannot read it: {err}")))?;
            let password = Password::new(text.as_bytes())
                .ok_or_else(|| auth_error("longer than 8 bytes".to_owned()))?;
            Auth::Password(password)
        }
    };
    let ipv6 = config
        .virtual_addresses
        .first()
        .is_some_and(|vip| matches!(vip, IpNet::V6(_)));
    let primary_address =
        linux::primary_address(&config.interface, ipv6, &config.virtual_addresses)
            .await
            .map_err(|source| VrrpError::Driver {
                instance: name.to_owned(),
                source,
            })?;
    info!(instance = %name, interface = %config.interface, %primary_address, "VRRP instance starting");
    let instance = InstanceConfig {
        vrid: config.vrid,
        version,
        priority: config.priority,
        advert_interval: config.advert_interval,
        virtual_addresses: config.virtual_addresses.clone(),
        primary_address,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        auth,
        garp: garp(config),
    };
    Ok(DriverConfig {
        interface: config.interface.clone(),
        vip_lifetime: DriverConfig::default_vip_lifetime(config.advert_interval),
        instance,
        unicast_peers: config.unicast_peers.clone(),
        checksum: match config.v3_checksum {
            V3Checksum::PseudoHeader => ChecksumForm::PseudoHeader,
            V3Checksum::MessageOnly => ChecksumForm::MessageOnly,
        },
    })
}

/// The tracked items of one instance, resolved against the monitor.
struct Tracking {
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
struct Verdict {
    priority: u8,
    fault: bool,
    /// Tracked items down, in words.
    down: Vec<String>,
}

impl Verdict {
    fn commands(&self) -> [Control; 2] {
        [
            Control::SetPriority(self.priority),
            Control::SetFault(self.fault),
        ]
    }
}

impl Tracking {
    /// The instance's own interface (FAULT while its link is down, as keepalived does)
    /// and its `track` items.
    fn resolve(config: &VrrpInstance, monitor: &Monitor) -> Tracking {
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
    /// has none. The priority stays within 1..=configured.
    fn verdict(&self, configured: u8) -> Verdict {
        let mut verdict = Verdict {
            priority: configured,
            fault: false,
            down: Vec::new(),
        };
        for item in &self.items {
            let Some(why) = item.target.down() else {
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
    fn down(&self) -> Option<String> {
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

/// Whether `interface` has carrier and is operationally up (or reports no operational
/// state, as virtual devices without one do). Reads sysfs of the caller's namespace.
fn link_up(interface: &str) -> bool {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{interface}/{file}"))
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    read("carrier") == "1" && matches!(read("operstate").as_str(), "up" | "unknown")
}

/// Re-evaluates tracking on every health event and link change and tells the driver when
/// the verdict differs from `applied` (at once when that is `None`).
async fn track(
    instance: String,
    tracking: Tracking,
    configured: u8,
    mut applied: Option<Verdict>,
    mut health: tokio::sync::broadcast::Receiver<hafront_health::HealthEvent>,
    control: mpsc::Sender<Control>,
    board: Arc<Mutex<Board>>,
) {
    let mut links = LinkChanges::subscribe()
        .inspect_err(|err| {
            warn!(%instance, "{err}; reading link states every {LINK_POLL_INTERVAL:?} instead");
        })
        .ok();
    let mut link_poll = tokio::time::interval(if links.is_some() {
        LINK_RECHECK_INTERVAL
    } else {
        LINK_POLL_INTERVAL
    });
    link_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let verdict = tracking.verdict(configured);
        if applied.as_ref() != Some(&verdict) {
            if applied
                .as_ref()
                .is_none_or(|applied| applied.down != verdict.down)
            {
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
            applied = Some(verdict);
        }
        tokio::select! {
            event = health.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // The monitor is gone: the daemon is stopping.
                Err(RecvError::Closed) => return,
            },
            Some(()) = async { links.as_mut()?.changed().await } => {}
            _ = link_poll.tick() => {}
        }
    }
}

/// Publishes the driver's transitions and address-list mismatches as alerts and keeps the
/// board's state current.
async fn report(
    instance: String,
    mut events: mpsc::Receiver<Event>,
    board: Arc<Mutex<Board>>,
    alerts: Arc<Mutex<AlertSender>>,
    master: watch::Sender<bool>,
) {
    let publish = |kind: EventKind| {
        let sender = alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        sender.send(crate::alerts::Event {
            at: SystemTime::now(),
            kind,
        })
    };
    while let Some(event) = events.recv().await {
        let (old, new, reason) = match event {
            Event::Transition { old, new, reason } => (old, new, reason),
            Event::AddressMismatch { peer, advertised } => {
                if !publish(EventKind::VrrpAddressMismatch {
                    instance: instance.clone(),
                    peer,
                    advertised,
                }) {
                    warn!(%instance, %peer, "alert queue full; VRRP address mismatch not reported");
                }
                continue;
            }
        };
        master.send_replace(new == State::Master);
        let (priority, why) = {
            let mut board = board.lock().unwrap_or_else(PoisonError::into_inner);
            board.state = new;
            board.since = SystemTime::now();
            let why = match reason {
                Reason::FaultRaised if !board.down.is_empty() => {
                    format!("{}: {}", reason.as_str(), board.down.join(", "))
                }
                _ => reason.as_str().to_owned(),
            };
            (board.effective_priority, why)
        };
        info!(%instance, from = old.as_str(), to = new.as_str(), priority, reason = %why, "VRRP instance changed state");
        let transition = VrrpTransition {
            instance: instance.clone(),
            old: alert_state(old, Reason::Startup),
            new: alert_state(new, reason),
            priority,
            reason: why,
        };
        if !publish(EventKind::Vrrp(transition)) {
            warn!(%instance, "alert queue full; VRRP state change not reported");
        }
    }
}

/// The alert's name for a state: INITIALIZE entered by a shutdown is STOP.
fn alert_state(state: State, reason: Reason) -> VrrpState {
    match state {
        State::Initialize if reason == Reason::Shutdown => VrrpState::Stop,
        State::Initialize => VrrpState::Init,
        State::Backup => VrrpState::Backup,
        State::Master => VrrpState::Master,
        State::Fault => VrrpState::Fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafront_health::Status;

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

    #[test]
    fn view_describes_state_priority_addresses_and_what_is_down() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let view = VrrpView(vec![InstanceView {
            name: "mysql".to_owned(),
            addresses: vec!["10.213.0.100/24".parse().unwrap()],
            configured_priority: 150,
            board: Arc::new(Mutex::new(Board {
                state: State::Fault,
                since,
                effective_priority: 0,
                down: vec!["server local/mysqld".to_owned()],
            })),
            activity: Arc::default(),
        }]);
        assert_eq!(
            view.describe(),
            "vrrp mysql: FAULT since 2027-01-15T08:00:00Z, priority 0 of 150, \
             VIPs 10.213.0.100/24, down: server local/mysqld\n"
        );
    }

    /// The instance `vip` of a configuration: `keys` (YAML flow mapping entries) over
    /// defaults for the required ones.
    fn instance(keys: &str) -> VrrpInstance {
        let defaults = [
            ("interface", "eth0"),
            ("vrid", "7"),
            ("priority", "100"),
            ("virtual_addresses", "[10.213.0.100/24]"),
        ];
        let mut entries: Vec<String> = defaults
            .iter()
            .filter(|(key, _)| {
                !keys.starts_with(&format!("{key}:")) && !keys.contains(&format!(", {key}:"))
            })
            .map(|(key, value)| format!("{key}: {value}"))
            .collect();
        entries.push(keys.to_owned());
        let yaml = format!(
            "vrrp:\n  instances:\n    vip: {{ {} }}\n",
            entries.join(", ")
        );
        let config = hafront_config::parse(&yaml, "test.yaml").expect("valid");
        config.vrrp.instances["vip"].clone()
    }

    #[test]
    fn a_reload_restarts_an_instance_only_for_what_cannot_change_live() {
        let running = instance("preempt: true");
        for live in [
            "preempt: false",
            "priority: 120",
            "preempt_delay: 5s",
            "garp: { repeat: 1, refresh: 10s }",
            "track: [{ interface: lo }]",
        ] {
            assert!(applies_live(&running, &instance(live)), "{live}");
        }
        for restart in [
            "interface: eth1",
            "vrid: 8",
            "version: 2, advert_interval: 1s",
            "virtual_addresses: [10.213.0.101/24]",
            "priority: 255",
        ] {
            assert!(!applies_live(&running, &instance(restart)), "{restart}");
        }
        assert_ne!(tunables(&running), tunables(&instance("preempt: false")));
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
        let verdict = tracking.verdict(150);
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
        assert_eq!(tracking.verdict(150).priority, 70);
        assert_eq!(tracking.verdict(60).priority, 1);
        assert!(!tracking.verdict(150).fault);
    }

    #[test]
    fn an_unprobed_server_without_weight_forces_fault() {
        let tracking = Tracking {
            items: vec![tracked(server_target(Status::Unknown), None)],
        };
        let verdict = tracking.verdict(150);
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
        assert_eq!(pool(&[Status::Down, Status::Up]).down(), None);
        assert_eq!(
            pool(&[Status::Down, Status::Unknown]).down().as_deref(),
            Some("pool replicas has no server up")
        );
        assert!(pool(&[]).down().is_some());
    }

    #[test]
    fn a_missing_interface_is_down_and_loopback_is_up() {
        let missing = Target::Interface {
            name: "hft-no-such-if".to_owned(),
        };
        assert_eq!(
            missing.down().as_deref(),
            Some("interface hft-no-such-if down")
        );
        // Loopback has carrier and reports operstate "unknown".
        assert!(link_up("lo"));
    }

    #[test]
    fn shutdown_is_reported_as_stop() {
        assert_eq!(
            alert_state(State::Initialize, Reason::Shutdown),
            VrrpState::Stop
        );
        assert_eq!(
            alert_state(State::Initialize, Reason::Startup),
            VrrpState::Init
        );
        assert_eq!(
            alert_state(State::Fault, Reason::FaultRaised),
            VrrpState::Fault
        );
    }
}
