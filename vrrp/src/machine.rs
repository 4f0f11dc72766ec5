//! The VRRP state machine of RFC 9568 section 6 (and RFC 3768 for version 2), free of I/O.
//!
//! Modelled on quinn-proto: the caller feeds events ([`Machine::start`],
//! [`Machine::handle_advert`], [`Machine::handle_timeout`], [`Machine::set_priority`],
//! [`Machine::set_fault`], [`Machine::shutdown`]) with the current time, drains
//! [`Machine::poll_action`] after each, and calls [`Machine::handle_timeout`] when
//! [`Machine::poll_timeout`] is reached. Nothing here reads a clock or sleeps, so a
//! simulation drives many machines on a virtual clock.
//!
//! Beyond the RFC, following what keepalived's users ask for:
//! - a master that hears a losing advert (two masters after a partition heals) answers at
//!   once (RFC 9568) and re-announces its addresses, so stale ARP caches are corrected; a
//!   master that steps down sends one last advert at its own priority so that the winner
//!   hears the contest even when the loser heard the winner first (backups treat it as an
//!   ordinary advert);
//! - optional periodic gratuitous ARP while master;
//! - an address-list mismatch is reported once per peer and list, not on every advert, with
//!   a reminder every [`MISMATCH_REMINDER`] while it lasts; at most [`MISMATCH_PEERS`]
//!   peer and list pairs are remembered, so a flood from spoofed sources uses bounded memory;
//! - replies to peers are bounded: at most [`REPLIES_PER_INTERVAL`] immediate adverts per
//!   advert interval answer losing or resigning adverts, and such adverts restart the
//!   gratuitous ARP burst at most once per [`GARP_CONTEST_HOLDOFF_INTERVALS`] intervals, so
//!   a flood of adverts cannot turn into a storm;
//! - a FAULT state driven by tracking, entered with a priority 0 advert so the backup takes
//!   over after skew time instead of the full master down interval;
//! - an optional mastership gate ([`Machine::gate_mastership`]) for a quorum: the machine is
//!   master only while [`Machine::set_mastership_grant`] says so. Where it would become
//!   master without the grant it stays backup and asks for it
//!   ([`Action::WantMastership`]); a master that loses the grant resigns at once.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::wire::{Advert, Auth, Centiseconds, DropReason, Version};

/// Priority of the address owner, which becomes master at once.
pub const OWNER_PRIORITY: u8 = 255;
/// Priority a master sends when it resigns.
pub const RESIGN_PRIORITY: u8 = 0;

/// Immediate adverts a master sends per advert interval in answer to losing or resigning
/// adverts, whoever sends them and however many.
pub const REPLIES_PER_INTERVAL: u32 = 2;

/// Advert intervals between two gratuitous ARP bursts restarted by losing adverts.
pub const GARP_CONTEST_HOLDOFF_INTERVALS: u32 = 10;

/// Peer and address list pairs remembered as reported; mismatches of further pairs are
/// still dropped but not reported until an entry expires.
pub const MISMATCH_PEERS: usize = 16;

/// How often a lasting mismatch is reported again; an entry not seen for this long is
/// forgotten when room is needed.
pub const MISMATCH_REMINDER: Duration = Duration::from_secs(600);

/// Gratuitous ARP / unsolicited neighbour advertisement schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpConfig {
    /// Announcements in a burst (on becoming master, after a contested election); at least 1.
    pub repeat: u32,
    /// Gap between the announcements of a burst.
    pub interval: Duration,
    /// Period of one re-announcement while master; none when `None`.
    pub refresh: Option<Duration>,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            repeat: 3,
            interval: Duration::from_millis(100),
            refresh: None,
        }
    }
}

/// What the state machine needs to know about one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Protocol version; v2 is IPv4 only.
    pub version: Version,
    /// Configured priority: 1..=254, or 255 for the address owner.
    pub priority: u8,
    /// Advert interval: whole seconds 1..=255 for v2, 10 ms steps up to 40.95 s for v3.
    pub advert_interval: Duration,
    /// Virtual addresses with prefix length, all of one family.
    pub virtual_addresses: Vec<IpNet>,
    /// This router's primary address on the interface (IPv4 primary or IPv6 link-local):
    /// the advert source and the election tie-breaker.
    pub primary_address: IpAddr,
    /// Take over from a lower-priority master (the owner always does).
    pub preempt: bool,
    /// After start and after leaving FAULT, do not preempt for this long.
    pub preempt_delay: Duration,
    /// v2 authentication (must be [`Auth::None`] for v3).
    pub auth: Auth,
    /// Gratuitous ARP schedule.
    pub garp: GarpConfig,
}

/// The settings of an instance that change without restarting it: a reload applies them
/// live, so the master keeps its role and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunables {
    /// [`InstanceConfig::preempt`].
    pub preempt: bool,
    /// [`InstanceConfig::preempt_delay`].
    pub preempt_delay: Duration,
    /// [`InstanceConfig::garp`].
    pub garp: GarpConfig,
}

/// Why an [`InstanceConfig`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// VRID 0.
    #[error("VRID must be 1..=255")]
    Vrid,
    /// Priority 0 (reserved for resigning).
    #[error("priority must be 1..=255")]
    Priority,
    /// Interval not representable in the version's unit and range.
    #[error(
        "advert interval must be whole seconds 1..=255 (v2) or 10 ms steps 10 ms..=40.95 s (v3)"
    )]
    Interval,
    /// No virtual address, more than 255, mixed families, or IPv6 with v2.
    #[error("1 to 255 virtual addresses of the primary address's family (IPv4 for v2)")]
    Addresses,
    /// Authentication configured for v3.
    #[error("authentication exists only in VRRPv2")]
    Auth,
    /// A gratuitous ARP repeat of zero.
    #[error("gratuitous ARP repeat must be at least 1")]
    GarpRepeat,
}

impl InstanceConfig {
    /// Checks the configuration against the protocol's limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == RESIGN_PRIORITY {
            return Err(ConfigError::Priority);
        }
        self.interval_centiseconds()?;
        let family_ok =
            |address: &IpNet| address.addr().is_ipv4() == self.primary_address.is_ipv4();
        if self.virtual_addresses.is_empty()
            || self.virtual_addresses.len() > usize::from(u8::MAX)
            || !self.virtual_addresses.iter().all(family_ok)
            || (self.version == Version::V2 && !self.primary_address.is_ipv4())
        {
            return Err(ConfigError::Addresses);
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(ConfigError::Auth);
        }
        if self.garp.repeat == 0 {
            return Err(ConfigError::GarpRepeat);
        }
        Ok(())
    }

    fn interval_centiseconds(&self) -> Result<Centiseconds, ConfigError> {
        let millis = self.advert_interval.as_millis();
        let (unit_ms, max_units) = match self.version {
            Version::V2 => (1000, 255),
            Version::V3 => (10, 4095),
        };
        if self.advert_interval.subsec_nanos() % 10_000_000 != 0
            || millis % unit_ms != 0
            || !(1..=max_units).contains(&(millis / unit_ms))
        {
            return Err(ConfigError::Interval);
        }
        Ok(Centiseconds((millis / 10) as u16))
    }
}

/// Protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down.
    Initialize,
    /// Listening for the master, ready to take over.
    Backup,
    /// Holding the virtual addresses and advertising.
    Master,
    /// Tracking reported a failure: neither listening nor advertising.
    Fault,
}

impl State {
    /// Stable lower-case name for logs, metrics and notify scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The instance was started.
    Startup,
    /// Priority 255: the address owner takes over at once.
    AddressOwner,
    /// No advert from the master within the master down interval.
    MasterDown,
    /// The master resigned (priority 0) and the skew time passed.
    MasterResigned,
    /// An advert from a router with higher priority (or equal priority, higher address).
    HigherPriorityAdvert,
    /// Tracking forced a fault.
    FaultRaised,
    /// The fault was cleared.
    FaultCleared,
    /// The instance was shut down.
    Shutdown,
    /// The master handed its role over on request (a planned switchover).
    Resigned,
    /// The master lost its mastership grant (the quorum's leader key).
    GrantLost,
}

impl Reason {
    /// Stable snake_case name for logs and notify scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address_owner",
            Reason::MasterDown => "master_down",
            Reason::MasterResigned => "master_resigned",
            Reason::HigherPriorityAdvert => "higher_priority_advert",
            Reason::FaultRaised => "fault_raised",
            Reason::FaultCleared => "fault_cleared",
            Reason::Shutdown => "shutdown",
            Reason::Resigned => "resigned",
            Reason::GrantLost => "grant_lost",
        }
    }
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert (to the multicast group or the unicast peers).
    SendAdvert(Advert),
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Remove the virtual addresses from the interface.
    RemoveVips,
    /// Send one gratuitous ARP (IPv4) / unsolicited NA (IPv6) per virtual address.
    SendGratuitous,
    /// The state changed.
    Transition {
        /// State left.
        old: State,
        /// State entered.
        new: State,
        /// Why.
        reason: Reason,
    },
    /// Under a mastership gate: ask for the grant (`true`: this machine would be master)
    /// or give it up (`false`). Sent only when the wish changes.
    WantMastership(bool),
    /// A peer advertises another address list (a classic cause of two masters). Reported
    /// once per peer and list, then every [`MISMATCH_REMINDER`] while it lasts; its adverts
    /// are dropped unless it is the owner.
    AddressMismatch {
        /// The peer's primary address.
        peer: IpAddr,
        /// The addresses it advertises.
        advertised: Vec<IpAddr>,
    },
}

/// One virtual router's protocol state.
#[derive(Debug)]
pub struct Machine {
    config: InstanceConfig,
    interval: Centiseconds,
    advert_interval: Duration,
    configured_addresses: Vec<IpAddr>,
    state: State,
    priority: u8,
    fault: bool,
    preempt_blocked_until: Option<Instant>,
    master_adver_interval: Duration,
    master_down_timer: Option<Instant>,
    master_down_reason: Reason,
    adver_timer: Option<Instant>,
    garp_burst_remaining: u32,
    garp_burst_timer: Option<Instant>,
    garp_refresh_timer: Option<Instant>,
    reported_mismatches: HashMap<(IpAddr, Vec<IpAddr>), Reported>,
    reply_window: Option<Instant>,
    replies_in_window: u32,
    last_contest_garp: Option<Instant>,
    gate: Option<Gate>,
    actions: VecDeque<Action>,
}

/// The mastership gate of a machine under a quorum.
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    /// Whether mastership is granted now.
    granted: bool,
    /// Whether the last [`Action::WantMastership`] asked for it.
    wanted: bool,
    /// Why this backup would be master, while it waits for the grant.
    waiting: Option<Reason>,
}

/// When a mismatch was last reported and last seen.
#[derive(Debug, Clone, Copy)]
struct Reported {
    reported: Instant,
    seen: Instant,
}

impl Machine {
    /// A machine in [`State::Initialize`]; call [`Machine::start`] to run it.
    pub fn new(config: InstanceConfig) -> Result<Machine, ConfigError> {
        config.validate()?;
        let interval = config.interval_centiseconds()?;
        let advert_interval = interval.to_duration();
        let mut configured_addresses: Vec<IpAddr> =
            config.virtual_addresses.iter().map(IpNet::addr).collect();
        configured_addresses.sort_unstable();
        Ok(Machine {
            priority: config.priority,
            interval,
            advert_interval,
            configured_addresses,
            state: State::Initialize,
            fault: false,
            preempt_blocked_until: None,
            master_adver_interval: advert_interval,
            master_down_timer: None,
            master_down_reason: Reason::MasterDown,
            adver_timer: None,
            garp_burst_remaining: 0,
            garp_burst_timer: None,
            garp_refresh_timer: None,
            reported_mismatches: HashMap::new(),
            reply_window: None,
            replies_in_window: 0,
            last_contest_garp: None,
            gate: None,
            actions: VecDeque::new(),
            config,
        })
    }

    /// Makes the machine master only while granted ([`Machine::set_mastership_grant`]);
    /// nothing is granted at first. Call before [`Machine::start`].
    pub fn gate_mastership(&mut self) {
        self.gate = Some(Gate::default());
    }

    /// Whether this backup waits for the mastership grant to become master.
    pub fn awaits_grant(&self) -> bool {
        self.gate.is_some_and(|gate| gate.waiting.is_some())
    }

    /// Grants or withdraws mastership (under a gate; ignored otherwise). A backup waiting
    /// for the grant becomes master at once; a master that loses it resigns at once
    /// (priority 0 advert, addresses withdrawn) and waits for it again.
    pub fn set_mastership_grant(&mut self, now: Instant, granted: bool) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        gate.granted = granted;
        match (granted, self.state) {
            (true, State::Backup) => {
                if let Some(reason) = gate.waiting.take() {
                    self.become_master(now, reason);
                }
            }
            (false, State::Master) => {
                self.leave_current(true);
                self.master_down_timer = Some(now + self.master_down_interval());
                self.master_down_reason = Reason::MasterDown;
                if let Some(gate) = &mut self.gate {
                    // Still the best candidate: take the role back once granted again,
                    // unless a master is heard first.
                    gate.waiting = Some(Reason::MasterDown);
                }
                self.transition(State::Backup, Reason::GrantLost);
            }
            _ => {}
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Current effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The master's advert interval as last learned (v3) or configured (v2).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew time at the current priority and master advert interval.
    pub fn skew_time(&self) -> Duration {
        let base = match self.config.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.master_adver_interval,
        };
        let nanos = base.as_nanos() * u128::from(256 - u16::from(self.priority)) / 256;
        Duration::from_nanos(nanos as u64)
    }

    /// Master down interval: three master advert intervals plus skew time.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_interval + self.skew_time()
    }

    /// The startup event.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if self.fault {
            self.transition(State::Fault, Reason::FaultRaised);
        } else {
            self.enter_running(now, Reason::Startup);
        }
    }

    /// The shutdown event: a master resigns with priority 0 and withdraws its addresses.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.state == State::Initialize {
            return;
        }
        self.leave_current(true);
        self.stop_wanting();
        self.transition(State::Initialize, Reason::Shutdown);
    }

    /// Applies new preemption and gratuitous ARP settings at once, in any state; a preempt
    /// delay already running keeps its end. A master reschedules its periodic announcement.
    pub fn set_tunables(&mut self, now: Instant, tunables: Tunables) {
        self.config.preempt = tunables.preempt;
        self.config.preempt_delay = tunables.preempt_delay;
        self.config.garp = tunables.garp;
        if self.state == State::Master {
            self.garp_refresh_timer = self.config.garp.refresh.map(|period| now + period);
        }
    }

    /// Hands the master role over: a master resigns with a priority 0 advert, withdraws
    /// its addresses and becomes backup, so a backup takes over after its skew time instead
    /// of the master down interval. Without preemption it stays backup.
    pub fn resign(&mut self, now: Instant) {
        if self.state != State::Master {
            return;
        }
        self.leave_current(true);
        self.stop_wanting();
        self.master_down_timer = Some(now + self.master_down_interval());
        self.master_down_reason = Reason::MasterDown;
        self.transition(State::Backup, Reason::Resigned);
    }

    /// Sets the effective priority (configured priority adjusted by tracking weights);
    /// 0 is treated as 1, as resigning is [`Machine::set_fault`]'s job. A master announces
    /// the change at once so a better backup can preempt.
    pub fn set_priority(&mut self, now: Instant, priority: u8) {
        let priority = priority.max(1);
        if priority == self.priority {
            return;
        }
        self.priority = priority;
        if self.state == State::Master {
            self.send_advert(now);
        }
    }

    /// Raises or clears a fault from tracking. Raising it makes a master resign with a
    /// priority 0 advert and withdraw its addresses; clearing it restarts as from startup.
    pub fn set_fault(&mut self, now: Instant, fault: bool) {
        if fault == self.fault {
            return;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Backup | State::Master) => {
                self.leave_current(true);
                self.stop_wanting();
                self.transition(State::Fault, Reason::FaultRaised);
            }
            (false, State::Fault) => self.enter_running(now, Reason::FaultCleared),
            _ => {}
        }
    }

    /// Handles an advert parsed from a packet whose IP source was `src` and whose hop limit
    /// was checked. Returns the reason when the instance-specific checks drop it.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        advert: &Advert,
    ) -> Result<(), DropReason> {
        self.check(now, src, advert)?;
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => {
                if advert.priority == RESIGN_PRIORITY {
                    self.master_down_timer = Some(now + self.skew_time());
                    self.master_down_reason = Reason::MasterResigned;
                } else if !self.preempts(now) || advert.priority >= self.priority {
                    self.learn_master_interval(advert);
                    self.master_down_timer = Some(now + self.master_down_interval());
                    self.master_down_reason = Reason::MasterDown;
                    // A master is heard: this backup is no candidate any more.
                    self.stop_wanting();
                }
            }
            State::Master => {
                if advert.priority == RESIGN_PRIORITY {
                    self.reply(now);
                } else if advert.priority > self.priority
                    || (advert.priority == self.priority && src > self.config.primary_address)
                {
                    self.leave_current(false);
                    // Not in the RFC: one last advert at our own priority tells the winner
                    // the election was contested (two masters after a healed partition), so
                    // it re-announces the addresses and fixes ARP caches we took over.
                    self.actions
                        .push_back(Action::SendAdvert(self.advert(self.priority)));
                    self.learn_master_interval(advert);
                    self.master_down_timer = Some(now + self.master_down_interval());
                    self.master_down_reason = Reason::MasterDown;
                    self.stop_wanting();
                    self.transition(State::Backup, Reason::HigherPriorityAdvert);
                } else {
                    // Another router believes it is master: assert the role now and correct
                    // the ARP caches it may have taken over. Both bounded: a flood of losing
                    // adverts must not become a storm of ours.
                    self.reply(now);
                    let holdoff = GARP_CONTEST_HOLDOFF_INTERVALS * self.advert_interval;
                    if self.garp_burst_timer.is_none()
                        && self
                            .last_contest_garp
                            .is_none_or(|last| now >= last + holdoff)
                    {
                        self.last_contest_garp = Some(now);
                        self.start_garp_burst(now);
                    }
                }
            }
        }
        Ok(())
    }

    /// Processes every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |timer: Option<Instant>| timer.is_some_and(|at| at <= now);
        if self.state == State::Backup && due(self.master_down_timer) {
            let reason = self.master_down_reason;
            self.try_become_master(now, reason);
        }
        if self.state != State::Master {
            return;
        }
        if due(self.adver_timer) {
            self.send_advert(now);
        }
        if due(self.garp_burst_timer) {
            self.actions.push_back(Action::SendGratuitous);
            self.garp_burst_remaining -= 1;
            self.garp_burst_timer =
                (self.garp_burst_remaining > 0).then(|| now + self.config.garp.interval);
        }
        if due(self.garp_refresh_timer) {
            self.actions.push_back(Action::SendGratuitous);
            self.garp_refresh_timer = self.config.garp.refresh.map(|period| now + period);
        }
    }

    /// The earliest time [`Machine::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.master_down_timer,
            self.adver_timer,
            self.garp_burst_timer,
            self.garp_refresh_timer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The instance-specific receive checks of RFC 9568 section 7.1.
    fn check(&mut self, now: Instant, src: IpAddr, advert: &Advert) -> Result<(), DropReason> {
        if src == self.config.primary_address {
            return Err(DropReason::OwnAdvert);
        }
        if advert.version != self.config.version {
            return Err(DropReason::Version);
        }
        if advert.vrid != self.config.vrid {
            return Err(DropReason::UnknownVrid);
        }
        if advert.interval.0 == 0 {
            return Err(DropReason::Interval);
        }
        if self.config.version == Version::V2 {
            match (&self.config.auth, &advert.auth) {
                (Auth::None, Auth::None) => {}
                (Auth::Password(expected), Auth::Password(received)) => {
                    if expected != received {
                        return Err(DropReason::AuthData);
                    }
                }
                _ => return Err(DropReason::AuthType),
            }
            if advert.interval.to_duration() != self.advert_interval {
                return Err(DropReason::Interval);
            }
        }
        let mut advertised = advert.addresses.clone();
        advertised.sort_unstable();
        if advertised == self.configured_addresses {
            if !self.reported_mismatches.is_empty() {
                self.reported_mismatches.retain(|(peer, _), _| *peer != src);
            }
            return Ok(());
        }
        self.note_mismatch(now, src, advertised, &advert.addresses);
        if advert.priority == OWNER_PRIORITY {
            Ok(())
        } else {
            Err(DropReason::AddressMismatch)
        }
    }

    /// Reports a mismatch the first time a peer sends a list, then every
    /// [`MISMATCH_REMINDER`]; remembers at most [`MISMATCH_PEERS`] pairs.
    fn note_mismatch(&mut self, now: Instant, src: IpAddr, sorted: Vec<IpAddr>, sent: &[IpAddr]) {
        let key = (src, sorted);
        let report = match self.reported_mismatches.get_mut(&key) {
            Some(entry) => {
                entry.seen = now;
                let due = now >= entry.reported + MISMATCH_REMINDER;
                if due {
                    entry.reported = now;
                }
                due
            }
            None => {
                if self.reported_mismatches.len() >= MISMATCH_PEERS {
                    self.reported_mismatches
                        .retain(|_, entry| now < entry.seen + MISMATCH_REMINDER);
                }
                let room = self.reported_mismatches.len() < MISMATCH_PEERS;
                if room {
                    let entry = Reported {
                        reported: now,
                        seen: now,
                    };
                    self.reported_mismatches.insert(key, entry);
                }
                room
            }
        };
        if report {
            self.actions.push_back(Action::AddressMismatch {
                peer: src,
                advertised: sent.to_vec(),
            });
        }
    }

    /// Answers a peer's advert with one of ours at once, unless
    /// [`REPLIES_PER_INTERVAL`] answers went out in this advert interval already.
    fn reply(&mut self, now: Instant) {
        if self
            .reply_window
            .is_none_or(|start| now >= start + self.advert_interval)
        {
            self.reply_window = Some(now);
            self.replies_in_window = 0;
        }
        if self.replies_in_window < REPLIES_PER_INTERVAL {
            self.replies_in_window += 1;
            self.send_advert(now);
        }
    }

    /// Whether lower-priority adverts are discarded now (preempt mode, outside the delay).
    fn preempts(&self, now: Instant) -> bool {
        (self.config.preempt || self.priority == OWNER_PRIORITY)
            && self.preempt_blocked_until.is_none_or(|until| now >= until)
    }

    fn learn_master_interval(&mut self, advert: &Advert) {
        if self.config.version == Version::V3 {
            self.master_adver_interval = advert.interval.to_duration();
        }
    }

    /// Leaves Initialize or Fault: the owner becomes master, anyone else backup.
    fn enter_running(&mut self, now: Instant, reason: Reason) {
        self.preempt_blocked_until = Some(now + self.config.preempt_delay);
        if self.priority == OWNER_PRIORITY {
            let reason = if reason == Reason::Startup {
                Reason::AddressOwner
            } else {
                reason
            };
            if self.gate.is_some() {
                self.transition(State::Backup, reason);
            }
            self.try_become_master(now, reason);
        } else {
            self.master_adver_interval = self.advert_interval;
            self.master_down_timer = Some(now + self.master_down_interval());
            self.master_down_reason = Reason::MasterDown;
            self.transition(State::Backup, reason);
        }
    }

    /// Becomes master, or under a gate without the grant stays backup and asks for it.
    fn try_become_master(&mut self, now: Instant, reason: Reason) {
        match &mut self.gate {
            None => self.become_master(now, reason),
            Some(gate) => {
                if !gate.wanted {
                    gate.wanted = true;
                    self.actions.push_back(Action::WantMastership(true));
                }
                if gate.granted {
                    gate.waiting = None;
                    self.become_master(now, reason);
                } else {
                    self.master_down_timer = None;
                    gate.waiting = Some(reason);
                }
            }
        }
    }

    /// Under a gate: gives up the wish to be master (and the grant, if held).
    fn stop_wanting(&mut self) {
        if let Some(gate) = &mut self.gate {
            gate.waiting = None;
            if gate.wanted {
                gate.wanted = false;
                self.actions.push_back(Action::WantMastership(false));
            }
        }
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        self.master_down_timer = None;
        self.transition(State::Master, reason);
        self.actions.push_back(Action::AddVips);
        self.send_advert(now);
        self.start_garp_burst(now);
        self.garp_refresh_timer = self.config.garp.refresh.map(|period| now + period);
    }

    /// The advert this router sends with `priority`.
    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval: self.interval,
            auth: self.config.auth,
            addresses: self
                .config
                .virtual_addresses
                .iter()
                .map(IpNet::addr)
                .collect(),
        }
    }

    /// Sends an advert now and restarts the advert timer.
    fn send_advert(&mut self, now: Instant) {
        self.actions
            .push_back(Action::SendAdvert(self.advert(self.priority)));
        self.adver_timer = Some(now + self.advert_interval);
    }

    /// Announces the addresses now and `repeat - 1` more times.
    fn start_garp_burst(&mut self, now: Instant) {
        self.actions.push_back(Action::SendGratuitous);
        self.garp_burst_remaining = self.config.garp.repeat - 1;
        self.garp_burst_timer =
            (self.garp_burst_remaining > 0).then(|| now + self.config.garp.interval);
    }

    /// Stops every timer; a master withdraws its addresses, resigning first if `resign`.
    fn leave_current(&mut self, resign: bool) {
        if self.state == State::Master {
            if resign {
                self.actions
                    .push_back(Action::SendAdvert(self.advert(RESIGN_PRIORITY)));
            }
            self.actions.push_back(Action::RemoveVips);
        }
        self.master_down_timer = None;
        self.adver_timer = None;
        self.garp_burst_timer = None;
        self.garp_burst_remaining = 0;
        self.garp_refresh_timer = None;
    }

    fn transition(&mut self, new: State, reason: Reason) {
        let old = std::mem::replace(&mut self.state, new);
        self.actions
            .push_back(Action::Transition { old, new, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_config() -> InstanceConfig {
        InstanceConfig {
            vrid: 7,
            version: Version::V2,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            virtual_addresses: vec!["10.213.0.100/24".parse().unwrap()],
            primary_address: "10.213.0.1".parse().unwrap(),
            preempt: true,
            preempt_delay: Duration::ZERO,
            auth: Auth::Password(crate::Password::new(b"pw").unwrap()),
            garp: GarpConfig::default(),
        }
    }

    fn peer() -> IpAddr {
        "10.213.0.2".parse().unwrap()
    }

    fn peer_advert(machine: &Machine) -> Advert {
        machine.advert(150)
    }

    fn drain(machine: &mut Machine) -> Vec<Action> {
        std::iter::from_fn(|| machine.poll_action()).collect()
    }

    #[test]
    fn config_limits_are_enforced() {
        let refused = |change: fn(&mut InstanceConfig), error| {
            let mut config = v2_config();
            change(&mut config);
            assert_eq!(Machine::new(config).map(|_| ()), Err(error));
        };
        refused(|c| c.vrid = 0, ConfigError::Vrid);
        refused(|c| c.priority = 0, ConfigError::Priority);
        refused(
            |c| c.advert_interval = Duration::from_millis(1500),
            ConfigError::Interval,
        );
        refused(
            |c| c.advert_interval = Duration::from_secs(256),
            ConfigError::Interval,
        );
        refused(|c| c.virtual_addresses.clear(), ConfigError::Addresses);
        refused(
            |c| c.virtual_addresses.push("2001:db8::1/64".parse().unwrap()),
            ConfigError::Addresses,
        );
        refused(|c| c.version = Version::V3, ConfigError::Auth);
        refused(|c| c.garp.repeat = 0, ConfigError::GarpRepeat);
        let mut v3 = InstanceConfig {
            version: Version::V3,
            auth: Auth::None,
            advert_interval: Duration::from_millis(15),
            ..v2_config()
        };
        assert_eq!(
            Machine::new(v3.clone()).map(|_| ()),
            Err(ConfigError::Interval)
        );
        v3.advert_interval = Duration::from_millis(40_950);
        assert!(Machine::new(v3).is_ok());
    }

    #[test]
    fn instance_checks_each_have_a_reason() {
        let mut machine = Machine::new(v2_config()).unwrap();
        machine.start(Instant::now());
        let good = peer_advert(&machine);
        let now = Instant::now();
        let own = machine.config.primary_address;
        assert_eq!(
            machine.handle_advert(now, own, &good),
            Err(DropReason::OwnAdvert)
        );
        let cases = [
            (
                Advert {
                    version: Version::V3,
                    ..good.clone()
                },
                DropReason::Version,
            ),
            (
                Advert {
                    vrid: 8,
                    ..good.clone()
                },
                DropReason::UnknownVrid,
            ),
            (
                Advert {
                    auth: Auth::None,
                    ..good.clone()
                },
                DropReason::AuthType,
            ),
            (
                Advert {
                    auth: Auth::Password(crate::Password::new(b"other").unwrap()),
                    ..good.clone()
                },
                DropReason::AuthData,
            ),
            (
                Advert {
                    interval: Centiseconds(200),
                    ..good.clone()
                },
                DropReason::Interval,
            ),
        ];
        for (advert, reason) in cases {
            assert_eq!(machine.handle_advert(now, peer(), &advert), Err(reason));
        }
        assert_eq!(machine.handle_advert(now, peer(), &good), Ok(()));
    }

    #[test]
    fn address_mismatch_is_reported_once_per_change_and_accepted_from_the_owner() {
        let mut machine = Machine::new(v2_config()).unwrap();
        let now = Instant::now();
        machine.start(now);
        drain(&mut machine);
        let mut advert = peer_advert(&machine);
        advert.addresses = vec!["10.213.0.200".parse().unwrap()];
        for _ in 0..3 {
            assert_eq!(
                machine.handle_advert(now, peer(), &advert),
                Err(DropReason::AddressMismatch)
            );
        }
        let reports = drain(&mut machine);
        assert_eq!(
            reports,
            vec![Action::AddressMismatch {
                peer: peer(),
                advertised: advert.addresses.clone()
            }]
        );
        advert.addresses.push("10.213.0.201".parse().unwrap());
        advert.priority = OWNER_PRIORITY;
        assert_eq!(machine.handle_advert(now, peer(), &advert), Ok(()));
        assert_eq!(
            drain(&mut machine).len(),
            1,
            "a changed list is reported again"
        );
    }

    #[test]
    fn master_answers_a_resigning_peer_and_refreshes_gratuitous_arp() {
        let config = InstanceConfig {
            priority: OWNER_PRIORITY,
            garp: GarpConfig {
                repeat: 1,
                interval: Duration::from_millis(100),
                refresh: Some(Duration::from_secs(10)),
            },
            ..v2_config()
        };
        let mut machine = Machine::new(config).unwrap();
        let start = Instant::now();
        machine.start(start);
        assert_eq!(machine.state(), State::Master);
        drain(&mut machine);
        let resigning = machine.advert(RESIGN_PRIORITY);
        let at = start + Duration::from_millis(500);
        machine.handle_advert(at, peer(), &resigning).unwrap();
        assert_eq!(
            drain(&mut machine),
            vec![Action::SendAdvert(machine.advert(255))]
        );
        assert_eq!(machine.poll_timeout(), Some(at + Duration::from_secs(1)));
        // Adverts every second from 1.5 s, one gratuitous ARP every ten seconds.
        let mut gratuitous = 0;
        let mut adverts = 0;
        while let Some(next) = machine
            .poll_timeout()
            .filter(|&t| t <= start + Duration::from_secs(30))
        {
            machine.handle_timeout(next);
            for action in drain(&mut machine) {
                match action {
                    Action::SendGratuitous => gratuitous += 1,
                    Action::SendAdvert(_) => adverts += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!((adverts, gratuitous), (29, 3));
    }

    /// Feeds `count` adverts from `advert` (one every `gap`, from `sources` in turn) to a
    /// master, handling its timers as they fall due; returns the times of the adverts sent
    /// and the number of gratuitous ARP actions.
    fn flood(
        machine: &mut Machine,
        start: Instant,
        advert: &Advert,
        sources: &[IpAddr],
        count: u32,
        gap: Duration,
    ) -> (Vec<Instant>, usize) {
        let mut sent = Vec::new();
        let mut gratuitous = 0;
        for i in 0..count {
            let now = start + gap * i;
            while let Some(due) = machine.poll_timeout().filter(|&t| t <= now) {
                machine.handle_timeout(due);
                tally(machine, due, &mut sent, &mut gratuitous);
            }
            let src = sources[i as usize % sources.len()];
            let _ = machine.handle_advert(now, src, advert);
            tally(machine, now, &mut sent, &mut gratuitous);
        }
        (sent, gratuitous)
    }

    fn tally(machine: &mut Machine, now: Instant, sent: &mut Vec<Instant>, gratuitous: &mut usize) {
        for action in drain(machine) {
            match action {
                Action::SendAdvert(_) => sent.push(now),
                Action::SendGratuitous => *gratuitous += 1,
                _ => {}
            }
        }
    }

    /// A v3 owner at 100 ms, master from its start, actions drained.
    fn started_v3_owner() -> (Machine, Instant) {
        started(InstanceConfig {
            version: Version::V3,
            auth: Auth::None,
            advert_interval: Duration::from_millis(100),
            priority: OWNER_PRIORITY,
            ..v2_config()
        })
    }

    /// A v3 backup at 100 ms under a mastership gate, started, actions drained.
    fn started_gated() -> (Machine, Instant) {
        let mut machine = Machine::new(InstanceConfig {
            version: Version::V3,
            auth: Auth::None,
            advert_interval: Duration::from_millis(100),
            ..v2_config()
        })
        .unwrap();
        machine.gate_mastership();
        let now = Instant::now();
        machine.start(now);
        drain(&mut machine);
        (machine, now)
    }

    #[test]
    fn a_gated_backup_waits_for_the_grant_before_it_becomes_master() {
        let (mut machine, start) = started_gated();
        let down = machine.poll_timeout().unwrap();
        machine.handle_timeout(down);
        // Would be master: stays backup, asks once, and sets no timer.
        assert_eq!(machine.state(), State::Backup);
        assert_eq!(drain(&mut machine), [Action::WantMastership(true)]);
        assert!(machine.awaits_grant());
        assert_eq!(machine.poll_timeout(), None);
        let granted = down + Duration::from_secs(2);
        machine.set_mastership_grant(granted, true);
        assert_eq!(machine.state(), State::Master);
        let actions = drain(&mut machine);
        assert_eq!(
            actions[..2],
            [
                Action::Transition {
                    old: State::Backup,
                    new: State::Master,
                    reason: Reason::MasterDown
                },
                Action::AddVips
            ]
        );
        assert!(!actions.contains(&Action::WantMastership(true)));
        assert!(start < granted);
    }

    #[test]
    fn a_gated_master_that_loses_the_grant_resigns_at_once_and_asks_again() {
        let (mut machine, _) = started_gated();
        machine.set_mastership_grant(Instant::now(), true);
        let down = machine.poll_timeout().unwrap();
        machine.handle_timeout(down);
        assert_eq!(machine.state(), State::Master);
        drain(&mut machine);

        let lost = down + Duration::from_millis(500);
        machine.set_mastership_grant(lost, false);
        assert_eq!(machine.state(), State::Backup);
        let actions = drain(&mut machine);
        assert!(
            matches!(&actions[0], Action::SendAdvert(advert) if advert.priority == RESIGN_PRIORITY),
            "{actions:?}"
        );
        assert_eq!(
            actions[1..],
            [
                Action::RemoveVips,
                Action::Transition {
                    old: State::Master,
                    new: State::Backup,
                    reason: Reason::GrantLost
                }
            ]
        );
        // It still wants the key (never said otherwise) and takes the role back with it.
        assert!(machine.awaits_grant());
        machine.set_mastership_grant(lost + Duration::from_secs(1), true);
        assert_eq!(machine.state(), State::Master);
    }

    #[test]
    fn a_gated_backup_that_hears_a_master_gives_up_the_wish() {
        let (mut machine, _) = started_gated();
        let down = machine.poll_timeout().unwrap();
        machine.handle_timeout(down);
        drain(&mut machine);
        // The master is back (a healed partition): no candidate any more.
        let advert = peer_advert(&machine);
        machine
            .handle_advert(down + Duration::from_millis(10), peer(), &advert)
            .unwrap();
        assert_eq!(drain(&mut machine), [Action::WantMastership(false)]);
        assert!(!machine.awaits_grant());
        // A grant arriving late does not make it master.
        machine.set_mastership_grant(down + Duration::from_millis(20), true);
        assert_eq!(machine.state(), State::Backup);
        assert!(machine.poll_timeout().is_some());
    }

    #[test]
    fn a_gated_master_gives_the_grant_up_on_resign_fault_and_shutdown() {
        for leave in [
            |machine: &mut Machine, now| machine.resign(now),
            |machine: &mut Machine, now| machine.set_fault(now, true),
            |machine: &mut Machine, now| machine.shutdown(now),
        ] {
            let (mut machine, _) = started_gated();
            machine.set_mastership_grant(Instant::now(), true);
            let down = machine.poll_timeout().unwrap();
            machine.handle_timeout(down);
            assert_eq!(machine.state(), State::Master);
            drain(&mut machine);
            leave(&mut machine, down + Duration::from_millis(1));
            let actions = drain(&mut machine);
            assert!(
                actions.contains(&Action::WantMastership(false)),
                "{actions:?}"
            );
            assert!(actions.contains(&Action::RemoveVips), "{actions:?}");
        }
    }

    #[test]
    fn without_a_gate_the_grant_changes_nothing() {
        let (mut machine, start) = started(InstanceConfig {
            version: Version::V3,
            auth: Auth::None,
            advert_interval: Duration::from_millis(100),
            ..v2_config()
        });
        machine.set_mastership_grant(start, false);
        let down = machine.poll_timeout().unwrap();
        machine.handle_timeout(down);
        assert_eq!(machine.state(), State::Master);
        assert!(
            !drain(&mut machine)
                .iter()
                .any(|action| matches!(action, Action::WantMastership(_)))
        );
        machine.set_mastership_grant(down, false);
        assert_eq!(machine.state(), State::Master);
    }

    /// A machine with `config`, started, actions drained.
    fn started(config: InstanceConfig) -> (Machine, Instant) {
        let mut machine = Machine::new(config).unwrap();
        let now = Instant::now();
        machine.start(now);
        drain(&mut machine);
        (machine, now)
    }

    #[test]
    fn a_flood_of_losing_adverts_gets_a_bounded_answer_and_no_gap() {
        let (mut machine, start) = started_v3_owner();
        let losing = Advert {
            priority: 1,
            ..machine.advert(OWNER_PRIORITY)
        };
        let resigning = machine.advert(RESIGN_PRIORITY);
        // 300,000 adverts a second for 5 s, losing and resigning from two peers.
        let sources = [peer(), "10.213.0.3".parse().unwrap()];
        let gap = Duration::from_nanos(3_333);
        let (mut sent, mut gratuitous) =
            flood(&mut machine, start, &losing, &sources, 750_000, gap);
        let later = start + gap * 750_000;
        let (more, more_gratuitous) =
            flood(&mut machine, later, &resigning, &sources, 750_000, gap);
        sent.extend(more);
        gratuitous += more_gratuitous;
        assert_eq!(machine.state(), State::Master);
        // 50 intervals in 5 s: at most the timer's advert and the replies in each.
        let bound = (REPLIES_PER_INTERVAL as usize + 1) * 51;
        assert!(
            sent.len() <= bound,
            "{} adverts sent, bound {bound}",
            sent.len()
        );
        assert!(sent.len() >= 50, "{} adverts sent", sent.len());
        let longest = sent.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(longest <= Duration::from_millis(100), "gap {longest:?}");
        // One burst of 3 per 10 intervals (1 s), against one per advert unbounded.
        assert!(gratuitous <= 3 * 5, "{gratuitous} gratuitous ARP actions");
        assert!(gratuitous >= 3, "the first contest re-announces");
    }

    #[test]
    fn mismatch_reports_are_bounded_and_remind_while_it_lasts() {
        let (mut machine, start) = started_v3_owner();
        let mut advert = Advert {
            priority: 1,
            ..machine.advert(OWNER_PRIORITY)
        };
        advert.addresses = vec!["10.213.0.200".parse().unwrap()];
        let sources: Vec<IpAddr> = (0..1000u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0ad5_1000 + i)))
            .collect();
        let mut reports = 0;
        for round in 0..3u32 {
            for (i, &src) in sources.iter().enumerate() {
                let now = start + Duration::from_millis(u64::from(round) * 10 + i as u64 / 100);
                assert_eq!(
                    machine.handle_advert(now, src, &advert),
                    Err(DropReason::AddressMismatch)
                );
                reports += drain(&mut machine)
                    .iter()
                    .filter(|a| matches!(a, Action::AddressMismatch { .. }))
                    .count();
            }
        }
        assert_eq!(reports, MISMATCH_PEERS);
        assert_eq!(machine.reported_mismatches.len(), MISMATCH_PEERS);
        // A lasting mismatch is reported again after the reminder period, once.
        let later = start + MISMATCH_REMINDER + Duration::from_secs(1);
        for _ in 0..5 {
            let _ = machine.handle_advert(later, sources[0], &advert);
        }
        assert_eq!(drain(&mut machine).len(), 1, "one reminder");
        // Stale entries make room for new peers.
        let newcomer = "10.213.9.9".parse().unwrap();
        let _ = machine.handle_advert(later, newcomer, &advert);
        assert_eq!(
            drain(&mut machine),
            vec![Action::AddressMismatch {
                peer: newcomer,
                advertised: advert.addresses.clone()
            }]
        );
        assert!(machine.reported_mismatches.len() <= MISMATCH_PEERS);
    }

    /// The address owner (priority 255), master from its start, actions drained.
    fn started_owner() -> (Machine, Instant) {
        started(InstanceConfig {
            priority: OWNER_PRIORITY,
            ..v2_config()
        })
    }

    #[test]
    fn tunables_apply_live_without_a_transition() {
        let (mut machine, now) = started_owner();
        let tunables = Tunables {
            preempt: false,
            preempt_delay: Duration::from_secs(7),
            garp: GarpConfig {
                repeat: 1,
                interval: Duration::from_millis(5),
                refresh: Some(Duration::from_secs(2)),
            },
        };
        machine.set_tunables(now, tunables.clone());
        assert!(drain(&mut machine).is_empty(), "no transition, no advert");
        assert_eq!(machine.state(), State::Master);
        assert_eq!(
            (
                machine.config().preempt,
                machine.config().preempt_delay,
                &machine.config().garp
            ),
            (tunables.preempt, tunables.preempt_delay, &tunables.garp)
        );
        // The new refresh period is the next announcement's.
        machine.handle_timeout(now + Duration::from_secs(2));
        assert!(drain(&mut machine).contains(&Action::SendGratuitous));
    }

    #[test]
    fn resigning_master_hands_over_and_stays_backup() {
        let (mut machine, now) = started_owner();
        machine.resign(now);
        let actions = drain(&mut machine);
        assert_eq!(
            actions,
            vec![
                Action::SendAdvert(machine.advert(RESIGN_PRIORITY)),
                Action::RemoveVips,
                Action::Transition {
                    old: State::Master,
                    new: State::Backup,
                    reason: Reason::Resigned
                },
            ]
        );
        // The new master's adverts keep it backup; a backup ignores a resign request.
        machine.resign(now);
        assert!(drain(&mut machine).is_empty());
        assert_eq!(machine.state(), State::Backup);
    }

    #[test]
    fn shutdown_of_a_master_resigns_and_withdraws() {
        let (mut machine, now) = started_owner();
        machine.shutdown(now);
        assert_eq!(
            drain(&mut machine),
            vec![
                Action::SendAdvert(machine.advert(RESIGN_PRIORITY)),
                Action::RemoveVips,
                Action::Transition {
                    old: State::Master,
                    new: State::Initialize,
                    reason: Reason::Shutdown
                },
            ]
        );
        assert_eq!(machine.poll_timeout(), None);
    }

    #[test]
    fn a_fault_raised_before_start_starts_in_fault() {
        let mut machine = Machine::new(v2_config()).unwrap();
        let now = Instant::now();
        machine.set_fault(now, true);
        machine.start(now);
        assert_eq!(machine.state(), State::Fault);
        assert_eq!(machine.poll_timeout(), None);
        machine.set_fault(now, false);
        assert_eq!(machine.state(), State::Backup);
    }
}
