//! VRRP in the daemon: one driver per configured instance ([`instance`]), the tracking that
//! lowers its priority or forces FAULT ([`tracking`]), the configuration mapped onto the
//! driver's ([`mapping`]), the instances' status and view, and `hafront release`.

mod instance;
mod mapping;
mod tracking;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hafront_config::{Config, KeyPath};
use hafront_health::Monitor;
use hafront_vrrp::linux::{self, Activity, Control};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::alerts::AlertSender;
use crate::control::{InstanceStatus, LeaderKey};
use crate::quorum::NodeQuorum;
use instance::{Board, Instance};
use mapping::{applies_live, tunables};

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

impl VrrpError {
    /// The instance that could not start.
    pub fn instance(&self) -> &str {
        match self {
            VrrpError::AuthPass { instance, .. } | VrrpError::Driver { instance, .. } => instance,
        }
    }

    /// The configuration key the problem belongs to: the password, the interface, or
    /// the instance.
    pub fn key(&self) -> KeyPath {
        let instance = KeyPath::root()
            .key("vrrp")
            .key("instances")
            .key(self.instance());
        match self {
            VrrpError::AuthPass { .. } => instance.key("auth_pass"),
            VrrpError::Driver {
                source:
                    linux::DriverError::NoSuchInterface(_)
                    | linux::DriverError::NotEthernet(_)
                    | linux::DriverError::NoPrimaryAddress(_),
                ..
            } => instance.key("interface"),
            VrrpError::Driver { .. } => instance,
        }
    }
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
    /// The quorum whose leader keys gate mastership, if configured.
    quorum: Option<Arc<NodeQuorum>>,
    /// Publishes the quorum's losses and regains as alerts.
    quorum_alerts: Option<tokio::task::JoinHandle<()>>,
}

impl VrrpInstances {
    /// Starts every instance of `config`, tracking through `monitor`, and reports state
    /// changes to `alerts`. Must run in the network namespace of the interfaces. On error
    /// the instances already started are stopped (their VIPs withdrawn).
    pub async fn start(
        config: &Config,
        monitor: &Monitor,
        alerts: AlertSender,
        quorum: Option<Arc<NodeQuorum>>,
    ) -> Result<VrrpInstances, VrrpError> {
        let mut vrrp = VrrpInstances {
            instances: BTreeMap::new(),
            alerts: Arc::new(Mutex::new(alerts)),
            masters: BTreeMap::new(),
            controls: BTreeMap::new(),
            quorum_alerts: None,
            quorum,
        };
        vrrp.quorum_alerts = vrrp.quorum.as_ref().map(|quorum| {
            tokio::spawn(Arc::clone(quorum).report_reachability(Arc::clone(&vrrp.alerts)))
        });
        for (name, instance) in &config.vrrp.instances {
            let master = vrrp.master_sender(name);
            let quorum = vrrp.quorum.as_deref();
            match Instance::start(name, instance, monitor, &vrrp.alerts, master, quorum).await {
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
    /// resign and withdraw their VIPs. Alerts go to `alerts` from now on. Returns the
    /// instances that could not be started (already logged): they do not run.
    pub async fn reload(
        &mut self,
        config: &Config,
        monitor: &Monitor,
        alerts: AlertSender,
    ) -> Vec<VrrpError> {
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
                    running.retrack(wanted, monitor).await;
                    self.instances.insert(name.clone(), running);
                    continue;
                }
                info!(instance = %name, "VRRP instance settings changed; restarting it");
                running.stop().await;
            }
            let master = self.master_sender(name);
            let quorum = self.quorum.as_deref();
            match Instance::start(name, wanted, monitor, &self.alerts, master, quorum).await {
                Ok(started) => {
                    self.follow_control(name, &started);
                    self.instances.insert(name.clone(), started);
                }
                Err(err) => {
                    error!("{err}");
                    problems.push(err);
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

    /// The quorum whose leader keys gate mastership, if configured.
    pub fn quorum(&self) -> Option<&Arc<NodeQuorum>> {
        self.quorum.as_ref()
    }

    /// The leader key of every instance, under a quorum.
    pub fn leader_keys(&self) -> Vec<LeaderKey> {
        self.instances
            .iter()
            .filter_map(|(name, instance)| {
                let state = instance.leader_key.as_ref()?.borrow().clone();
                Some(crate::quorum::leader_key(&format!("vrrp/{name}"), &state))
            })
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
        if let Some(reporter) = self.quorum_alerts.take() {
            reporter.abort();
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use hafront_vrrp::State;

    use super::*;

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
}
