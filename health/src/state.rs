//! Shared health state: what relays read on every new connection and what
//! alerts and VRRP tracking consume as events.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use hafront_config::Role;

/// A server's health as relays and operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not probed yet; receives no clients.
    Unknown,
    /// Passing its check (rise reached).
    Up,
    /// Failing its check (fall reached).
    Down,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
        })
    }
}

/// The live health of one server of one pool, readable without locks.
#[derive(Debug)]
pub struct ServerHealth {
    /// Pool the server belongs to.
    pub pool: String,
    /// Server name as configured (or its address).
    pub name: String,
    /// Where the server listens.
    pub address: SocketAddr,
    /// Relative share of connections.
    pub weight: u32,
    /// Used only while no non-backup server is up.
    pub backup: bool,
    status: AtomicU8,
    role: AtomicU8,
    fenced: AtomicBool,
    drained: AtomicBool,
    last_probe: Mutex<Option<ProbeResult>>,
}

impl ServerHealth {
    /// A server not probed yet.
    pub fn new(pool: &str, server: &hafront_config::Server) -> Self {
        ServerHealth {
            pool: pool.to_owned(),
            name: server.display_name(),
            address: server.address,
            weight: server.weight,
            backup: server.backup,
            status: AtomicU8::new(0),
            role: AtomicU8::new(0),
            fenced: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            last_probe: Mutex::new(None),
        }
    }

    /// Current status.
    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            1 => Status::Up,
            2 => Status::Down,
            _ => Status::Unknown,
        }
    }

    /// Whether the server may receive new clients.
    pub fn is_up(&self) -> bool {
        self.status() == Status::Up
    }

    /// Role reported by the last successful role-aware probe; always
    /// [`Role::Replica`] while the server is fenced.
    pub fn role(&self) -> Option<Role> {
        if self.is_fenced() {
            return Some(Role::Replica);
        }
        self.reported_role()
    }

    /// Role reported by the last successful role-aware probe, fenced or not.
    pub fn reported_role(&self) -> Option<Role> {
        match self.role.load(Ordering::Acquire) {
            1 => Some(Role::Primary),
            2 => Some(Role::Replica),
            _ => None,
        }
    }

    /// Records a new status.
    pub fn set_status(&self, status: Status) {
        let code = match status {
            Status::Unknown => 0,
            Status::Up => 1,
            Status::Down => 2,
        };
        self.status.store(code, Ordering::Release);
    }

    /// Records the role seen by the last probe.
    pub fn set_role(&self, role: Option<Role>) {
        let code = match role {
            None => 0,
            Some(Role::Primary) => 1,
            Some(Role::Replica) => 2,
        };
        self.role.store(code, Ordering::Release);
    }

    /// The most recent probe result, for status reports (`None` before the
    /// first probe finishes).
    pub fn last_probe(&self) -> Option<ProbeResult> {
        self.last_probe
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether failover fenced the server: it is never a primary for relays, whatever
    /// `read_only` says, until failover rejoins it.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Fences the server out of the write path, or lets it back.
    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Release);
    }

    /// Whether an operator drained the server: it takes no new clients, open ones finish.
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    /// Drains the server, or enables it again.
    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Release);
    }

    /// Records the most recent probe result.
    pub fn set_last_probe(&self, result: ProbeResult) {
        *self
            .last_probe
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(result);
    }
}

/// What one probe of one server found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Whether the probe passed.
    pub ok: bool,
    /// What the probe saw, in words: why it failed, or a short summary of
    /// success (for example "ping ok, read_only=OFF").
    pub reason: String,
    /// Role the server reported, when the check asks for one and it passed.
    pub role: Option<Role>,
    /// Time from the probe's start to its result (at most the check's timeout).
    pub latency: Duration,
    /// When the probe finished.
    pub at: SystemTime,
}

/// A change of a server's status or role, published once per change.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    /// Pool of the server.
    pub pool: String,
    /// Server name.
    pub server: String,
    /// Server address.
    pub address: SocketAddr,
    /// Status before the change.
    pub old: Status,
    /// Status after the change.
    pub new: Status,
    /// Role after the change, if the check reports one.
    pub role: Option<Role>,
    /// Why, in the check's words (for example "connect: connection refused").
    pub reason: String,
    /// When the change was decided.
    pub at: SystemTime,
}
