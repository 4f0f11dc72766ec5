//! The one event type that notify scripts, mails and logs consume: server,
//! pool, VRRP and relay changes, with what an operator needs to act on them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hafront_config::Role;
use hafront_failover::{FailoverEvent, Step};
use hafront_health::{HealthEvent, Status};

/// Something that changed on this node, stamped with when it was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When the change was decided.
    pub at: SystemTime,
    /// What changed.
    pub kind: EventKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A server's status or role changed.
    Server(ServerTransition),
    /// The last healthy server of a pool went down: clients have nowhere to go.
    PoolDown {
        /// The pool.
        pool: String,
    },
    /// A pool that had no healthy server has one again.
    PoolRecovered {
        /// The pool.
        pool: String,
        /// How long the pool had no healthy server, when known.
        down_for: Option<Duration>,
    },
    /// A VRRP instance changed state.
    Vrrp(VrrpTransition),
    /// A VRRP peer advertises another virtual address list than this node's: its adverts
    /// are dropped, so both may be master. Sent once per peer and list, then as a reminder
    /// while it lasts.
    VrrpAddressMismatch {
        /// The instance.
        instance: String,
        /// The peer's address.
        peer: IpAddr,
        /// The addresses it advertises.
        advertised: Vec<IpAddr>,
    },
    /// A relay refused a client because it holds `max_connections` already.
    /// Relays send this once when they start refusing, not once per client.
    RelaySaturated {
        /// The relay.
        relay: String,
        /// The pool it forwards to.
        pool: String,
        /// Its connection limit.
        max_connections: usize,
    },
    /// A step of a database failover, switchover or rejoin.
    Failover(FailoverEvent),
    /// This node lost its etcd lease (`reachable: false`: no live lease since its deadline)
    /// or has one again after losing it.
    Quorum {
        /// Whether it holds a live lease now.
        reachable: bool,
        /// What follows for this node, or the last etcd error, in words.
        detail: String,
    },
}

/// A change of one server's status or role.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTransition {
    /// Pool of the server.
    pub pool: String,
    /// Server name.
    pub server: String,
    /// Server address.
    pub address: SocketAddr,
    /// Status before the change.
    pub old: Status,
    /// Status after the change (equal to `old` for a role change).
    pub new: Status,
    /// Role after the change, if the check reports one.
    pub role: Option<Role>,
    /// Why, in the check's words.
    pub reason: String,
    /// For a recovery: how long the server had been down, when known.
    /// Filled in by alerts; producers leave it `None`.
    pub down_for: Option<Duration>,
}

/// A VRRP instance's state change.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpTransition {
    /// Instance name as configured.
    pub instance: String,
    /// State before.
    pub old: VrrpState,
    /// State after.
    pub new: VrrpState,
    /// This node's effective priority after the change.
    pub priority: u8,
    /// Why (for example "higher priority advert from 10.0.0.2", "track pool mysql down").
    pub reason: String,
}

/// A VRRP instance's state, named as keepalived passes it to notify scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Starting up, not yet backup or master.
    Init,
    /// Listening for the master's adverts.
    Backup,
    /// Holding the virtual addresses.
    Master,
    /// Unable to serve (a tracked item without weight is down).
    Fault,
    /// Stopped (daemon shutting down or instance removed).
    Stop,
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
            VrrpState::Stop => "STOP",
        })
    }
}

impl From<HealthEvent> for Event {
    fn from(event: HealthEvent) -> Self {
        Event {
            at: event.at,
            kind: EventKind::Server(ServerTransition {
                pool: event.pool,
                server: event.server,
                address: event.address,
                old: event.old,
                new: event.new,
                role: event.role,
                reason: event.reason,
                down_for: None,
            }),
        }
    }
}

impl Event {
    /// A short machine name for the kind of event (`HAFRONT_EVENT`).
    pub fn name(&self) -> &'static str {
        match &self.kind {
            EventKind::Server(t) if t.old == t.new => "server_role",
            EventKind::Server(t) => match t.new {
                Status::Up => "server_up",
                Status::Down => "server_down",
                Status::Unknown => "server_unknown",
            },
            EventKind::PoolDown { .. } => "pool_down",
            EventKind::PoolRecovered { .. } => "pool_recovered",
            EventKind::Vrrp(_) => "vrrp",
            EventKind::VrrpAddressMismatch { .. } => "vrrp_address_mismatch",
            EventKind::RelaySaturated { .. } => "relay_saturated",
            EventKind::Failover(f) => f.step.event_name(),
            EventKind::Quorum {
                reachable: false, ..
            } => "quorum_lost",
            EventKind::Quorum {
                reachable: true, ..
            } => "quorum_regained",
        }
    }

    /// The pool the event concerns, if any.
    pub fn pool(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Server(t) => Some(&t.pool),
            EventKind::PoolDown { pool }
            | EventKind::PoolRecovered { pool, .. }
            | EventKind::RelaySaturated { pool, .. } => Some(pool),
            EventKind::Failover(f) => Some(&f.pool),
            EventKind::Vrrp(_)
            | EventKind::VrrpAddressMismatch { .. }
            | EventKind::Quorum { .. } => None,
        }
    }

    /// The VRRP instance the event concerns, if any.
    pub fn instance(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Vrrp(t) => Some(&t.instance),
            EventKind::VrrpAddressMismatch { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// Whether the event deserves a mail. A server first seen up and an
    /// instance starting as backup are routine at start; everything else
    /// is a change an operator should hear of.
    pub fn is_mail_worthy(&self) -> bool {
        match &self.kind {
            EventKind::Server(t) => {
                t.new != Status::Unknown && !(t.old == Status::Unknown && t.new == Status::Up)
            }
            EventKind::Vrrp(t) => !(t.old == VrrpState::Init && t.new == VrrpState::Backup),
            EventKind::Failover(f) => f.step != Step::Confirmed,
            _ => true,
        }
    }

    /// How urgent the event is, lowest first: clients without a server,
    /// then losing the VIP, then a lost server, then saturation, then news.
    pub fn severity_rank(&self) -> u8 {
        match &self.kind {
            EventKind::PoolDown { .. } => 0,
            EventKind::Failover(f) if matches!(f.step, Step::Refused | Step::Problem) => 0,
            EventKind::Failover(f) if f.step.needs_attention() => 1,
            EventKind::Vrrp(t) if t.new == VrrpState::Fault || t.old == VrrpState::Master => 1,
            EventKind::VrrpAddressMismatch { .. } => 1,
            EventKind::Quorum {
                reachable: false, ..
            } => 1,
            EventKind::Server(t) if t.new == Status::Down => 2,
            EventKind::RelaySaturated { .. } => 3,
            EventKind::Vrrp(_) => 4,
            _ => 5,
        }
    }
}

/// One line describing the event, without its time: the mail subject for a
/// single event and a line of the mail body.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EventKind::Server(t) if t.old == t.new => {
                write!(f, "{}/{} ({}) role is now ", t.pool, t.server, t.address)?;
                match t.role {
                    Some(Role::Primary) => f.write_str("primary")?,
                    Some(Role::Replica) => f.write_str("replica")?,
                    None => f.write_str("unknown")?,
                }
                write_reason(f, &t.reason)
            }
            EventKind::Server(t) => {
                let state = t.new.to_string().to_uppercase();
                write!(f, "{}/{} ({}) is {state}", t.pool, t.server, t.address)?;
                if let Some(down_for) = t.down_for {
                    write!(f, " after being down for {}", format_duration(down_for))?;
                } else {
                    write!(f, " (was {})", t.old)?;
                }
                write_reason(f, &t.reason)
            }
            EventKind::PoolDown { pool } => write!(f, "pool {pool} has NO healthy server"),
            EventKind::PoolRecovered { pool, down_for } => {
                write!(f, "pool {pool} has a healthy server again")?;
                match down_for {
                    Some(down_for) => write!(f, " after {}", format_duration(*down_for)),
                    None => Ok(()),
                }
            }
            EventKind::Vrrp(t) => {
                write!(
                    f,
                    "VRRP instance {} {} -> {} (priority {})",
                    t.instance, t.old, t.new, t.priority
                )?;
                write_reason(f, &t.reason)
            }
            EventKind::VrrpAddressMismatch {
                instance,
                peer,
                advertised,
            } => {
                let list: Vec<String> = advertised.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "VRRP instance {instance}: peer {peer} advertises other addresses ({}); its adverts are ignored, both may be master",
                    list.join(", ")
                )
            }
            EventKind::RelaySaturated {
                relay,
                pool,
                max_connections,
            } => write!(
                f,
                "relay {relay} (pool {pool}) is refusing clients at its limit of {}",
                counted(*max_connections as u64, "connection")
            ),
            EventKind::Failover(failover) => failover.fmt(f),
            EventKind::Quorum {
                reachable: false,
                detail,
            } => write!(f, "quorum LOST: no live etcd lease: {detail}"),
            EventKind::Quorum {
                reachable: true,
                detail,
            } => write!(f, "quorum regained: etcd lease live again: {detail}"),
        }
    }
}

fn write_reason(f: &mut fmt::Formatter<'_>, reason: &str) -> fmt::Result {
    if reason.is_empty() {
        Ok(())
    } else {
        write!(f, ": {reason}")
    }
}

/// `count` and `noun`, made plural unless `count` is 1: `1 connection`,
/// `2 connections`.
pub fn counted(count: impl Into<u64>, noun: &str) -> String {
    match count.into() {
        1 => format!("1 {noun}"),
        count => format!("{count} {noun}s"),
    }
}

/// A duration rounded to whole seconds, as `1h 2m 3s`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// The servers of each configured pool, by pool name, each with the status
/// to assume until its first event; shared between the daemon (which
/// updates it before a reload changes the pools) and the alerts dispatcher.
pub(crate) type Membership = Arc<Mutex<BTreeMap<String, Vec<(String, Status)>>>>;

/// The servers of each pool of `pools`, not probed yet, for a
/// [`Membership`].
pub(crate) fn membership(
    pools: &BTreeMap<String, hafront_config::Pool>,
) -> BTreeMap<String, Vec<(String, Status)>> {
    pools
        .iter()
        .map(|(name, pool)| {
            let servers = pool
                .servers
                .iter()
                .map(|server| (server.display_name(), Status::Unknown));
            (name.clone(), servers.collect())
        })
        .collect()
}

/// Follows server events to derive pool events and outage durations: the
/// one place that knows when a pool lost its last healthy server and when
/// each server went down.
///
/// A pool's first verdict (up once a server is up, down once every server
/// was probed and none is up) is where it starts, not a change: only later
/// changes of verdict are pool events.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// The configured servers of every pool.
    membership: Membership,
    /// Last known status of every server, by pool then server name.
    servers: BTreeMap<String, BTreeMap<String, Status>>,
    /// Last verdict of every pool that had one: `true` when it had no
    /// healthy server.
    pool_down: BTreeMap<String, bool>,
    /// When each currently down server went down.
    server_down_since: BTreeMap<(String, String), SystemTime>,
    /// When each pool without a healthy server lost its last one.
    pool_down_since: BTreeMap<String, SystemTime>,
}

impl Tracker {
    /// A tracker of the pools in `membership`.
    pub fn new(membership: Membership) -> Self {
        Tracker {
            membership,
            servers: BTreeMap::new(),
            pool_down: BTreeMap::new(),
            server_down_since: BTreeMap::new(),
            pool_down_since: BTreeMap::new(),
        }
    }

    /// Takes in one event and returns it, enriched with the outage duration
    /// of a recovery, followed by any pool event it causes.
    pub fn observe(&mut self, mut event: Event) -> Vec<Event> {
        let EventKind::Server(transition) = &mut event.kind else {
            return vec![event];
        };
        let key = (transition.pool.clone(), transition.server.clone());
        match transition.new {
            Status::Down => {
                self.server_down_since.entry(key).or_insert(event.at);
            }
            Status::Up | Status::Unknown => {
                if let Some(since) = self.server_down_since.remove(&key) {
                    if transition.new == Status::Up {
                        transition.down_for = event.at.duration_since(since).ok();
                    }
                }
            }
        }
        let pool = transition.pool.clone();
        self.follow_membership();
        let members = self.servers.entry(pool.clone()).or_default();
        members.insert(transition.server.clone(), transition.new);
        let at = event.at;
        let mut events = vec![event];
        let Some(is_down) = pool_verdict(members) else {
            return events;
        };
        match self.pool_down.insert(pool.clone(), is_down) {
            Some(false) if is_down => {
                self.pool_down_since.insert(pool.clone(), at);
                events.push(Event {
                    at,
                    kind: EventKind::PoolDown { pool },
                });
            }
            Some(true) if !is_down => {
                let down_for = self
                    .pool_down_since
                    .remove(&pool)
                    .and_then(|since| at.duration_since(since).ok());
                events.push(Event {
                    at,
                    kind: EventKind::PoolRecovered { pool, down_for },
                });
            }
            _ => {}
        }
        events
    }

    /// Brings the tracked pools and servers in line with the membership:
    /// new ones start with the status it assumes, removed ones are
    /// forgotten.
    fn follow_membership(&mut self) {
        let membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.servers.retain(|pool, _| membership.contains_key(pool));
        self.pool_down
            .retain(|pool, _| membership.contains_key(pool));
        self.pool_down_since
            .retain(|pool, _| membership.contains_key(pool));
        for (pool, servers) in membership.iter() {
            let new_pool = !self.servers.contains_key(pool);
            let members = self.servers.entry(pool.clone()).or_default();
            members.retain(|name, _| servers.iter().any(|(known, _)| known == name));
            for (name, status) in servers {
                members.entry(name.clone()).or_insert(*status);
            }
            // A pool whose servers' statuses are known already (alerts
            // restarted by a reload) starts from its verdict.
            if new_pool && let Some(down) = pool_verdict(members) {
                self.pool_down.insert(pool.clone(), down);
            }
        }
    }
}

/// Whether a pool has no healthy server (`Some(true)`), has one
/// (`Some(false)`), or is not decided yet: no server up and one not probed.
fn pool_verdict(members: &BTreeMap<String, Status>) -> Option<bool> {
    let mut undecided = false;
    for status in members.values() {
        match status {
            Status::Up => return Some(false),
            Status::Down => {}
            Status::Unknown => undecided = true,
        }
    }
    (!undecided).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_events_are_named_ranked_and_described() {
        let event = |reachable| Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::Quorum {
                reachable,
                detail: "every VRRP master here resigns until etcd answers".into(),
            },
        };
        let (lost, regained) = (event(false), event(true));
        assert_eq!(
            (lost.name(), regained.name()),
            ("quorum_lost", "quorum_regained")
        );
        assert_eq!(lost.severity_rank(), 1);
        assert!(lost.is_mail_worthy() && regained.is_mail_worthy());
        assert_eq!(lost.pool(), None);
        assert_eq!(
            lost.to_string(),
            "quorum LOST: no live etcd lease: every VRRP master here resigns until etcd answers"
        );
    }

    fn server_event(server: &str, old: Status, new: Status, at_secs: u64) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_secs),
            kind: EventKind::Server(ServerTransition {
                pool: "mysql".into(),
                server: server.into(),
                address: "127.0.0.1:3306".parse().unwrap(),
                old,
                new,
                role: None,
                reason: "connect: connection refused".into(),
                down_for: None,
            }),
        }
    }

    fn two_server_pools() -> BTreeMap<String, hafront_config::Pool> {
        let server = |name: &str, port: u16| hafront_config::Server {
            name: Some(name.into()),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1,
            backup: false,
        };
        BTreeMap::from([(
            "mysql".to_owned(),
            hafront_config::Pool {
                check: "mysql".into(),
                servers: vec![server("db1", 3306), server("db2", 3307)],
                failover: None,
            },
        )])
    }

    fn tracker() -> Tracker {
        Tracker::new(Arc::new(Mutex::new(membership(&two_server_pools()))))
    }

    #[test]
    fn pool_goes_down_only_with_its_last_server_and_recovery_says_how_long() {
        let mut tracker = tracker();
        use Status::*;
        assert_eq!(
            tracker.observe(server_event("db1", Unknown, Up, 0)).len(),
            1
        );
        assert_eq!(
            tracker.observe(server_event("db2", Unknown, Up, 0)).len(),
            1
        );
        assert_eq!(tracker.observe(server_event("db1", Up, Down, 10)).len(), 1);
        let events = tracker.observe(server_event("db2", Up, Down, 20));
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].name(), "pool_down");

        let events = tracker.observe(server_event("db1", Down, Up, 100));
        assert_eq!(events.len(), 2);
        let EventKind::Server(t) = &events[0].kind else {
            panic!("expected a server event first");
        };
        assert_eq!(t.down_for, Some(Duration::from_secs(90)));
        assert_eq!(
            events[1].kind,
            EventKind::PoolRecovered {
                pool: "mysql".into(),
                down_for: Some(Duration::from_secs(80)),
            }
        );
        assert!(
            events[0]
                .to_string()
                .contains("after being down for 1m 30s")
        );
    }

    #[test]
    fn first_verdicts_are_no_pool_events_in_either_order() {
        use Status::*;
        for first in [Up, Down] {
            let second = if first == Up { Down } else { Up };
            let mut tracker = tracker();
            assert_eq!(
                tracker
                    .observe(server_event("db1", Unknown, first, 0))
                    .len(),
                1
            );
            assert_eq!(
                tracker
                    .observe(server_event("db2", Unknown, second, 0))
                    .len(),
                1
            );
        }
        let mut all_down = tracker();
        assert_eq!(
            all_down
                .observe(server_event("db1", Unknown, Down, 0))
                .len(),
            1
        );
        assert_eq!(
            all_down
                .observe(server_event("db2", Unknown, Down, 0))
                .len(),
            1
        );
        let events = all_down.observe(server_event("db2", Down, Up, 5));
        assert_eq!(events.len(), 2, "a pool down from the start recovers");
        assert_eq!(events[1].name(), "pool_recovered");
    }

    #[test]
    fn a_pool_added_later_starts_without_pool_events() {
        use Status::*;
        let pools = Arc::new(Mutex::new(BTreeMap::new()));
        let mut tracker = Tracker::new(Arc::clone(&pools));
        *pools.lock().unwrap() = membership(&two_server_pools());
        assert_eq!(
            tracker.observe(server_event("db1", Unknown, Down, 0)).len(),
            1
        );
        assert_eq!(
            tracker.observe(server_event("db2", Unknown, Up, 0)).len(),
            1
        );
        let events = tracker.observe(server_event("db2", Up, Down, 9));
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].name(), "pool_down");
    }

    fn vrrp_event(old: VrrpState, new: VrrpState) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::Vrrp(VrrpTransition {
                instance: "VI_1".into(),
                old,
                new,
                priority: 100,
                reason: "higher priority advert from 10.0.0.2".into(),
            }),
        }
    }

    #[test]
    fn startup_discovery_is_not_mail_worthy_but_failures_and_takeovers_are() {
        assert!(!server_event("db1", Status::Unknown, Status::Up, 0).is_mail_worthy());
        assert!(server_event("db1", Status::Unknown, Status::Down, 0).is_mail_worthy());
        assert!(server_event("db1", Status::Down, Status::Up, 0).is_mail_worthy());
        assert!(!vrrp_event(VrrpState::Init, VrrpState::Backup).is_mail_worthy());
        assert!(vrrp_event(VrrpState::Init, VrrpState::Master).is_mail_worthy());
        assert!(vrrp_event(VrrpState::Master, VrrpState::Backup).is_mail_worthy());
    }

    #[test]
    fn a_tracker_told_the_current_statuses_reports_the_next_change() {
        use Status::*;
        let current = BTreeMap::from([(
            "mysql".to_owned(),
            vec![("db1".to_owned(), Up), ("db2".to_owned(), Down)],
        )]);
        let mut tracker = Tracker::new(Arc::new(Mutex::new(current)));
        let events = tracker.observe(server_event("db1", Up, Down, 3));
        assert_eq!(events.len(), 2, "the pool was up: {events:?}");
        assert_eq!(events[1].name(), "pool_down");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(counted(1u64, "connection"), "1 connection");
        assert_eq!(counted(0u64, "connection"), "0 connections");
        assert_eq!(counted(2u32, "mail"), "2 mails");
        let saturated = |max_connections| Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::RelaySaturated {
                relay: "r".into(),
                pool: "p".into(),
                max_connections,
            },
        };
        assert!(
            saturated(1)
                .to_string()
                .ends_with("its limit of 1 connection")
        );
        assert!(
            saturated(5)
                .to_string()
                .ends_with("its limit of 5 connections")
        );
    }

    #[test]
    fn losing_the_vip_outranks_a_lost_server() {
        let lost_vip = vrrp_event(VrrpState::Master, VrrpState::Backup);
        assert_eq!(
            lost_vip.to_string(),
            "VRRP instance VI_1 MASTER -> BACKUP (priority 100): higher priority advert from 10.0.0.2"
        );
        let server_down = server_event("db1", Status::Up, Status::Down, 0);
        assert!(lost_vip.severity_rank() < server_down.severity_rank());
        assert!(
            server_down.severity_rank()
                < vrrp_event(VrrpState::Backup, VrrpState::Master).severity_rank()
        );
    }
}
