//! One running instance: its driver task, the tracker that adjusts its priority, and the
//! reporter that publishes its transitions as alerts and keeps its board current.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use hafront_config::VrrpInstance;
use hafront_health::Monitor;
use hafront_vrrp::linux::{self, Activity, Control, Driver, DropCounters, Event, LinkStates};
use hafront_vrrp::{DropReason, Reason, State};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::VrrpError;
use super::mapping::driver_config;
use super::tracking::{Rules, Tracking, track};
use crate::alerts::{AlertSender, EventKind, VrrpState, VrrpTransition};
use crate::control::InstanceStatus;
use crate::quorum::{NodeQuorum, grant_mastership};

/// Commands queued for a driver before it must wait.
const CONTROL_BACKLOG: usize = 8;

/// One running instance and its helper tasks.
pub(super) struct Instance {
    pub(super) config: VrrpInstance,
    pub(super) control: mpsc::Sender<Control>,
    driver: JoinHandle<Result<(), linux::DriverError>>,
    tracker: JoinHandle<()>,
    /// New tracking rules for the tracker, on reload.
    retrack: mpsc::Sender<Rules>,
    reporter: JoinHandle<()>,
    /// Passes the leader key's state to the driver, under a quorum.
    granter: Option<JoinHandle<()>>,
    /// The leader key's state, under a quorum.
    pub(super) leader_key: Option<watch::Receiver<hafront_quorum::ClaimState>>,
    pub(super) board: Arc<Mutex<Board>>,
    drops: Arc<DropCounters>,
    pub(super) activity: Arc<Activity>,
}

/// What the instance's tasks share for status and alerts.
#[derive(Debug)]
pub(super) struct Board {
    pub(super) state: State,
    pub(super) since: SystemTime,
    pub(super) effective_priority: u8,
    /// Tracked items now down, in words.
    pub(super) down: Vec<String>,
}

impl Instance {
    pub(super) async fn start(
        name: &str,
        config: &VrrpInstance,
        monitor: &Monitor,
        alerts: &Arc<Mutex<AlertSender>>,
        master: watch::Sender<bool>,
        quorum: Option<&NodeQuorum>,
    ) -> Result<Instance, VrrpError> {
        let mut driver_config = driver_config(name, config).await?;
        driver_config.mastership_gate = quorum.is_some();
        let (events_tx, events) = mpsc::channel(linux::EVENT_BACKLOG);
        let driver = Driver::new(driver_config, events_tx)
            .await
            .map_err(|source| VrrpError::Driver {
                instance: name.to_owned(),
                source,
            })?;
        let links = LinkStates::subscribe()
            .await
            .map_err(|source| VrrpError::Driver {
                instance: name.to_owned(),
                source,
            })?;
        let tracking = Tracking::resolve(config, monitor);
        let verdict = tracking.verdict(config.priority, &|name| links.is_up(name));
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
        let (retrack, retracks) = mpsc::channel(1);
        let rules = Rules {
            tracking,
            configured: config.priority,
            health: monitor.subscribe(),
        };
        let tracker = tokio::spawn(track(
            name.to_owned(),
            rules,
            verdict,
            links,
            retracks,
            control.clone(),
            Arc::clone(&board),
        ));
        // Under a quorum: the leader key `vrrp/<name>`, wanted when the driver would be
        // master, and its state passed back as the mastership grant.
        let claim = quorum.map(|quorum| quorum.vrrp_claim(name));
        let leader_key = claim.as_ref().map(hafront_quorum::Claim::state);
        let granter = quorum.zip(claim.as_ref()).map(|(quorum, claim)| {
            tokio::spawn(grant_mastership(
                name.to_owned(),
                claim.state(),
                control.clone(),
                quorum.on_loss(),
            ))
        });
        let reporter = tokio::spawn(report(
            name.to_owned(),
            events,
            Arc::clone(&board),
            Arc::clone(alerts),
            master,
            claim,
        ));
        Ok(Instance {
            config: config.clone(),
            control,
            driver,
            tracker,
            retrack,
            reporter,
            granter,
            leader_key,
            board,
            drops,
            activity,
        })
    }

    /// Tracks `config.track` at `config.priority` from now on (the monitor's servers may
    /// have been replaced); the tracker keeps its link states and the verdict it applied.
    pub(super) async fn retrack(&mut self, config: &VrrpInstance, monitor: &Monitor) {
        let rules = Rules {
            tracking: Tracking::resolve(config, monitor),
            configured: config.priority,
            health: monitor.subscribe(),
        };
        // The tracker ends only with the instance.
        let _ = self.retrack.send(rules).await;
        self.config = config.clone();
    }

    pub(super) fn status(&self, name: &str) -> InstanceStatus {
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
    pub(super) async fn stop(self) {
        self.tracker.abort();
        if let Some(granter) = &self.granter {
            granter.abort();
        }
        let _ = self.control.send(Control::Shutdown).await;
        drop(self.control);
        // A driver error was logged when it happened.
        if let Err(err) = self.driver.await {
            error!(interface = %self.config.interface, "VRRP driver task: {err}");
        }
        let _ = self.reporter.await;
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
    claim: Option<hafront_quorum::Claim>,
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
            Event::WantMastership(wanted) => {
                if let Some(claim) = &claim {
                    claim.want(wanted);
                }
                continue;
            }
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
