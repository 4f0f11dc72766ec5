//! The Linux driver: runs one [`Machine`] on an interface with raw sockets, rtnetlink and
//! packet sockets. Needs CAP_NET_RAW and CAP_NET_ADMIN.
//!
//! Sockets and the netlink connection belong to the network namespace of the thread that
//! calls [`Driver::new`].

mod announce;
mod links;
mod netlink;
mod socket;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::mpsc;

use crate::machine::{Action, ConfigError, InstanceConfig, Machine, Reason, State, Tunables};
use crate::wire::{self, Advert, ChecksumForm, DropReason};
use announce::Announcer;
pub use links::LinkStates;
use netlink::Netlink;
use socket::AdvertSockets;

/// Events a driver queues for its reader before it drops address-mismatch reports
/// (transitions wait for room instead).
pub const EVENT_BACKLOG: usize = 64;

/// Packets received in a row before the timers, commands and summary get their turn,
/// however busy the socket.
const PACKETS_PER_TURN: u32 = 64;

/// Period of the summary of dropped adverts (logged only when some were dropped).
const DROP_SUMMARY_PERIOD: Duration = Duration::from_secs(10);

/// Everything the driver needs for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Interface the adverts use and the VIPs are added to.
    pub interface: String,
    /// The protocol settings; `primary_address` must be on `interface`.
    pub instance: InstanceConfig,
    /// Send adverts to these peers instead of the multicast group, and accept adverts only
    /// from them.
    pub unicast_peers: Vec<IpAddr>,
    /// Checksum form sent for v3 over IPv4.
    pub checksum: ChecksumForm,
    /// Valid lifetime of the VIPs, renewed with every advert sent: how long they outlive a
    /// killed daemon. Whole seconds (rounded down), at least 1; see
    /// [`DriverConfig::default_vip_lifetime`].
    pub vip_lifetime: Duration,
    /// Master only while granted ([`Control::SetMastershipGrant`]): under a quorum. The
    /// driver reports when it would be master ([`Event::WantMastership`]).
    pub mastership_gate: bool,
}

impl DriverConfig {
    /// Four advert intervals rounded up to whole seconds (the kernel's unit), at least 1 s:
    /// the longest master down interval of any backup (three intervals plus a skew time of
    /// at most one), so a killed or frozen master's VIPs last until a backup has taken over
    /// (no moment without them) and are gone soon after. The kernel expires addresses up
    /// to a second late, so the duplicate lasts at most about one second plus one interval;
    /// the new master's gratuitous ARP should span that (`GarpConfig::repeat` x
    /// `GarpConfig::interval`).
    pub fn default_vip_lifetime(advert_interval: Duration) -> Duration {
        let down = 4 * advert_interval;
        let seconds = down.as_secs() + u64::from(down.subsec_nanos() > 0);
        Duration::from_secs(seconds.max(1))
    }
}

/// Commands to a running driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// New effective priority (tracking weights applied).
    SetPriority(u8),
    /// Tracking forces (or releases) FAULT.
    SetFault(bool),
    /// Resign if master, withdraw the VIPs and stop.
    Shutdown,
    /// Hand the master role over (priority 0 advert) and go on as backup.
    Resign,
    /// New preemption and gratuitous ARP settings (a reload), applied without a transition.
    SetTunables(Tunables),
    /// Under [`DriverConfig::mastership_gate`]: whether mastership is granted now.
    SetMastershipGrant(bool),
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The state changed.
    Transition {
        /// State left.
        old: State,
        /// State entered.
        new: State,
        /// Why.
        reason: Reason,
    },
    /// Under [`DriverConfig::mastership_gate`]: the instance would be master (`true`), or
    /// no longer (`false`).
    WantMastership(bool),
    /// A peer advertises another address list (reported once per peer and list, then as a
    /// reminder while it lasts).
    AddressMismatch {
        /// The peer.
        peer: IpAddr,
        /// Its addresses.
        advertised: Vec<IpAddr>,
    },
}

/// Received adverts dropped, by reason; shared with whoever exports metrics. Each instance
/// has its own receive socket, so `unknown_vrid` also counts adverts of this node's other
/// instances on the same interface.
#[derive(Debug, Default)]
pub struct DropCounters {
    counts: [AtomicU64; DropReason::ALL.len()],
}

impl DropCounters {
    /// Adverts dropped for `reason` so far.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }

    fn increment(&self, reason: DropReason) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; DropReason::ALL.len()] {
        DropReason::ALL.map(|reason| self.get(reason))
    }

    /// The counts since `before` by reason, as `reason=count` words; empty when none.
    fn since(&self, before: &[u64; DropReason::ALL.len()]) -> String {
        let mut words = Vec::new();
        for (reason, (now, then)) in DropReason::ALL
            .iter()
            .zip(self.snapshot().iter().zip(before))
        {
            if now > then {
                words.push(format!("{}={}", reason.as_str(), now - then));
            }
        }
        words.join(" ")
    }
}

/// Adverts sent and accepted, and the master last heard from; shared with whoever reports
/// status and metrics.
#[derive(Debug, Default)]
pub struct Activity {
    sent: AtomicU64,
    received: AtomicU64,
    master: Mutex<Option<IpAddr>>,
}

impl Activity {
    /// Adverts sent so far (each counted once, however many unicast peers it went to).
    pub fn adverts_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Adverts received that passed every check.
    pub fn adverts_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The master's primary address: this node's own as master, the sender of the last
    /// accepted advert as backup, `None` when unknown (before the first advert, in FAULT
    /// or stopped).
    pub fn master(&self) -> Option<IpAddr> {
        *self.master.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_master(&self, master: Option<IpAddr>) {
        *self.master.lock().unwrap_or_else(PoisonError::into_inner) = master;
    }
}

/// Why the driver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The instance configuration is invalid.
    #[error("invalid VRRP instance: {0}")]
    Config(#[from] ConfigError),
    /// No interface of that name.
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    /// The interface has no Ethernet address.
    #[error("interface {0:?} has no Ethernet address")]
    NotEthernet(String),
    /// The interface has no address of the VIPs' family to send adverts from.
    #[error("interface {0:?} has no primary address of the virtual addresses' family")]
    NoPrimaryAddress(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: rtnetlink::Error,
    },
}

impl DriverError {
    fn io(context: &'static str, source: io::Error) -> DriverError {
        DriverError::Io { context, source }
    }

    fn netlink(context: &'static str, source: rtnetlink::Error) -> DriverError {
        DriverError::Netlink { context, source }
    }
}

/// The address adverts should come from on `interface`: its primary IPv4 address, or its
/// IPv6 link-local address when `ipv6`, never one of `vips`. For
/// [`InstanceConfig::primary_address`]; runs in the calling thread's network namespace.
pub async fn primary_address(
    interface: &str,
    ipv6: bool,
    vips: &[IpNet],
) -> Result<IpAddr, DriverError> {
    let (netlink, _) = Netlink::connect(interface).await?;
    netlink
        .primary(ipv6, vips)
        .await
        .map_err(|error| DriverError::netlink("listing addresses", error))?
        .ok_or_else(|| DriverError::NoPrimaryAddress(interface.to_owned()))
}

/// Removes whichever of `vips` are on `interface` (in the calling thread's network
/// namespace) and returns those that were: what a stopped or killed daemon left behind.
pub async fn release(interface: &str, vips: &[IpNet]) -> Result<Vec<IpAddr>, DriverError> {
    let (netlink, _) = Netlink::connect(interface).await?;
    let present = netlink
        .present(vips)
        .await
        .map_err(|error| DriverError::netlink("listing addresses", error))?;
    if !present.is_empty() {
        netlink
            .remove(vips)
            .await
            .map_err(|error| DriverError::netlink("removing virtual addresses", error))?;
    }
    Ok(present)
}

/// One VRRP instance on a Linux interface.
pub struct Driver {
    config: DriverConfig,
    machine: Machine,
    sockets: AdvertSockets,
    netlink: Netlink,
    announcer: Announcer,
    counters: Arc<DropCounters>,
    activity: Arc<Activity>,
    events: mpsc::Sender<Event>,
    events_lost: u64,
    holds_vips: bool,
}

impl Driver {
    /// Opens the sockets and removes VIPs of this instance left on the interface by a
    /// previous run. Reports to `events` (a channel of [`EVENT_BACKLOG`]: a full one delays
    /// transitions and drops mismatch reports, counted in the drop summary). Must run inside
    /// a tokio runtime.
    pub async fn new(
        config: DriverConfig,
        events: mpsc::Sender<Event>,
    ) -> Result<Driver, DriverError> {
        let mut machine = Machine::new(config.instance.clone())?;
        if config.mastership_gate {
            machine.gate_mastership();
        }
        let (netlink, link) = Netlink::connect(&config.interface).await?;
        let vips = &config.instance.virtual_addresses;
        let leftovers = netlink
            .present(vips)
            .await
            .map_err(|error| DriverError::netlink("listing addresses", error))?;
        if !leftovers.is_empty() {
            tracing::warn!(interface = %config.interface, ?leftovers, "removing virtual addresses left by a previous run");
            netlink.remove(vips).await.map_err(|error| {
                DriverError::netlink("removing leftover virtual addresses", error)
            })?;
        }
        let source = config.instance.primary_address;
        let sockets =
            AdvertSockets::open(&config.interface, link.index, source, &config.unicast_peers)
                .map_err(|error| DriverError::io("opening VRRP sockets", error))?;
        let link_local = match source {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        };
        let announcer = Announcer::open(link.index, link.mac, link_local)
            .map_err(|error| DriverError::io("opening announcement sockets", error))?;
        Ok(Driver {
            config,
            machine,
            sockets,
            netlink,
            announcer,
            counters: Arc::default(),
            activity: Arc::default(),
            events,
            events_lost: 0,
            holds_vips: false,
        })
    }

    /// The drop counters, to export as metrics.
    pub fn drop_counters(&self) -> Arc<DropCounters> {
        Arc::clone(&self.counters)
    }

    /// The advert counters and the current master, for status and metrics.
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// Runs until [`Control::Shutdown`] or until `control` is closed, then resigns and
    /// withdraws the VIPs. Commands queued before the call apply before the instance
    /// starts (a faulty instance starts in FAULT). Timers and commands get a turn at least
    /// every 64 packets however fast they arrive, and dropped adverts are summed up in one log
    /// line per 10 s with counts by reason. Errors sending adverts or changing addresses are logged and
    /// retried with the next event; only a failing receive socket ends the run early (after
    /// resigning and withdrawing the VIPs).
    pub async fn run(mut self, mut control: mpsc::Receiver<Control>) -> Result<(), DriverError> {
        while let Ok(command) = control.try_recv() {
            match command {
                Control::SetPriority(priority) => {
                    self.machine.set_priority(Instant::now(), priority)
                }
                Control::SetFault(fault) => self.machine.set_fault(Instant::now(), fault),
                Control::Resign => {}
                Control::SetTunables(tunables) => {
                    self.machine.set_tunables(Instant::now(), tunables)
                }
                Control::SetMastershipGrant(granted) => {
                    self.machine.set_mastership_grant(Instant::now(), granted)
                }
                Control::Shutdown => return Ok(()),
            }
        }
        self.machine.start(Instant::now());
        let mut packets_in_turn = 0;
        let mut summary = tokio::time::interval(DROP_SUMMARY_PERIOD);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut summarised = self.counters.snapshot();
        let mut lost_summarised = 0;
        loop {
            self.carry_out_actions().await;
            let deadline = self.machine.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Received adverts first: one queued while the process was descheduled must
                // not be mistaken for a dead master when the timer fires. At most
                // PACKETS_PER_TURN in a row, so a flood starves neither the timers nor
                // the commands (the last branch ends the turn).
                biased;
                received = self.sockets.receive(), if packets_in_turn < PACKETS_PER_TURN => {
                    let received = match received {
                        Ok(received) => received,
                        Err(error) => {
                            // Deaf: resign rather than hold the VIPs without hearing peers.
                            self.machine.shutdown(Instant::now());
                            self.carry_out_actions().await;
                            return Err(DriverError::io("receiving adverts", error));
                        }
                    };
                    let result = received.and_then(|datagram| {
                        wire::check_hop_limit(datagram.hop_limit)?;
                        if !self.config.unicast_peers.is_empty()
                            && !self.config.unicast_peers.contains(&datagram.src)
                        {
                            return Err(DropReason::UnknownPeer);
                        }
                        let advert = Advert::parse(datagram.payload, datagram.src, datagram.dst)?;
                        self.machine.handle_advert(Instant::now(), datagram.src, &advert)?;
                        Ok((datagram.src, advert.priority))
                    });
                    match result {
                        Ok((src, priority)) => {
                            self.activity.received.fetch_add(1, Ordering::Relaxed);
                            if priority != 0 && self.machine.state() == State::Backup {
                                self.activity.set_master(Some(src));
                            }
                        }
                        // Counted, and summed up in the periodic summary: a line per packet
                        // would let any host on the segment fill the disk.
                        Err(reason) => self.counters.increment(reason),
                    }
                    packets_in_turn += 1;
                }
                command = control.recv() => match command {
                    Some(Control::SetPriority(priority)) => self.machine.set_priority(Instant::now(), priority),
                    Some(Control::SetFault(fault)) => self.machine.set_fault(Instant::now(), fault),
                    Some(Control::Resign) => self.machine.resign(Instant::now()),
                    Some(Control::SetTunables(tunables)) => self.machine.set_tunables(Instant::now(), tunables),
                    Some(Control::SetMastershipGrant(granted)) => self.machine.set_mastership_grant(Instant::now(), granted),
                    Some(Control::Shutdown) | None => {
                        self.machine.shutdown(Instant::now());
                        self.carry_out_actions().await;
                        return Ok(());
                    }
                },
                () = sleep => self.machine.handle_timeout(Instant::now()),
                _ = summary.tick() => {
                    let dropped = self.counters.since(&summarised);
                    let lost = self.events_lost - lost_summarised;
                    if !dropped.is_empty() || lost > 0 {
                        tracing::warn!(
                            interface = %self.config.interface,
                            vrid = self.config.instance.vrid,
                            %dropped,
                            mismatch_reports_lost = lost,
                            "VRRP adverts dropped in the last {}s",
                            DROP_SUMMARY_PERIOD.as_secs()
                        );
                    }
                    summarised = self.counters.snapshot();
                    lost_summarised = self.events_lost;
                }
                // Nothing else was due: the socket's turn again.
                () = std::future::ready(()), if packets_in_turn >= PACKETS_PER_TURN => {
                    packets_in_turn = 0;
                }
            }
        }
    }

    async fn carry_out_actions(&mut self) {
        // VIPs added in this batch need no renewal with its advert: on becoming master
        // that would be one more netlink round trip before the gratuitous ARP goes out.
        let mut added = false;
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::SendAdvert(advert) => {
                    self.send_advert(&advert).await;
                    if self.holds_vips && !added {
                        self.add_vips().await;
                    }
                }
                Action::AddVips => {
                    self.holds_vips = true;
                    added = true;
                    self.add_vips().await;
                }
                Action::RemoveVips => {
                    self.holds_vips = false;
                    if let Err(error) = self
                        .netlink
                        .remove(&self.config.instance.virtual_addresses)
                        .await
                    {
                        tracing::error!(interface = %self.config.interface, %error, "cannot remove virtual addresses");
                    }
                }
                Action::SendGratuitous => {
                    for vip in &self.config.instance.virtual_addresses {
                        if let Err(error) = self.announcer.announce(vip.addr()) {
                            tracing::warn!(interface = %self.config.interface, %vip, %error, "cannot announce address");
                        }
                    }
                }
                Action::Transition { old, new, reason } => {
                    match new {
                        State::Master => self
                            .activity
                            .set_master(Some(self.config.instance.primary_address)),
                        // Known from the next advert (or kept from the one that made us back off).
                        State::Backup => {}
                        State::Initialize | State::Fault => self.activity.set_master(None),
                    }
                    tracing::info!(
                        interface = %self.config.interface,
                        vrid = self.config.instance.vrid,
                        from = old.as_str(),
                        to = new.as_str(),
                        reason = reason.as_str(),
                        "VRRP state change"
                    );
                    // Rare and driver-made: wait for room rather than lose one.
                    let _ = self
                        .events
                        .send(Event::Transition { old, new, reason })
                        .await;
                }
                Action::WantMastership(wanted) => {
                    tracing::info!(
                        interface = %self.config.interface,
                        vrid = self.config.instance.vrid,
                        wanted,
                        "VRRP mastership {}",
                        if wanted { "wanted: waiting for the grant" } else { "no longer wanted" }
                    );
                    // Like a transition: wait for room rather than lose one.
                    let _ = self.events.send(Event::WantMastership(wanted)).await;
                }
                Action::AddressMismatch { peer, advertised } => {
                    tracing::warn!(
                        interface = %self.config.interface,
                        vrid = self.config.instance.vrid,
                        %peer,
                        ?advertised,
                        configured = ?self.config.instance.virtual_addresses,
                        "peer advertises another virtual address list; its adverts are dropped"
                    );
                    if let Err(mpsc::error::TrySendError::Full(_)) = self
                        .events
                        .try_send(Event::AddressMismatch { peer, advertised })
                    {
                        self.events_lost += 1;
                    }
                }
            }
        }
    }

    async fn send_advert(&self, advert: &Advert) {
        let source = self.sockets.source();
        let mut sent = false;
        for destination in self.sockets.destinations() {
            let result = match advert.emit(source, destination, self.config.checksum) {
                Ok(message) => self.sockets.send(destination, &message).await,
                Err(error) => Err(io::Error::new(io::ErrorKind::InvalidInput, error)),
            };
            match result {
                Ok(()) => sent = true,
                Err(error) => {
                    tracing::warn!(interface = %self.config.interface, %destination, %error, "cannot send advert");
                }
            }
        }
        if sent {
            self.activity.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds the VIPs or renews their lifetime.
    async fn add_vips(&self) {
        for &vip in &self.config.instance.virtual_addresses {
            if let Err(error) = self.netlink.add(vip, self.config.vip_lifetime).await {
                tracing::error!(interface = %self.config.interface, %vip, %error, "cannot add virtual address");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_vip_lifetime_outlasts_any_backups_master_down_interval() {
        let lifetime = |millis| DriverConfig::default_vip_lifetime(Duration::from_millis(millis));
        assert_eq!(lifetime(100), Duration::from_secs(1));
        assert_eq!(lifetime(300), Duration::from_secs(2));
        assert_eq!(lifetime(1000), Duration::from_secs(4));
        assert_eq!(lifetime(1250), Duration::from_secs(5));
    }

    #[test]
    fn drop_counters_count_per_reason() {
        let counters = DropCounters::default();
        counters.increment(DropReason::Checksum);
        counters.increment(DropReason::Checksum);
        counters.increment(DropReason::UnknownPeer);
        assert_eq!(counters.get(DropReason::Checksum), 2);
        assert_eq!(counters.get(DropReason::UnknownPeer), 1);
        assert_eq!(counters.get(DropReason::HopLimit), 0);
    }
}
