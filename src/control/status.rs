//! The status model shared by `hafront status`, its `--json` output and the
//! metrics: what the daemon runs and how each part is doing right now.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hafront_failover::Topology;
use hafront_health::{Monitor, ServerHealth};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::relay::RelayStats;

/// A point-in-time report of a running daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name.
    pub node: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The configuration file the daemon reads on reload.
    pub config: PathBuf,
    /// When the daemon started.
    #[serde(with = "rfc3339")]
    pub started: SystemTime,
    /// VRRP instances, by name.
    pub vrrp: Vec<InstanceStatus>,
    /// Pools and their servers, by name.
    pub pools: Vec<PoolStatus>,
    /// Relays, by name.
    pub relays: Vec<RelayStatus>,
    /// Alert delivery backlog.
    pub alerts: AlertsStatus,
    /// Replication topology of each pool with failover, by pool.
    #[serde(default)]
    pub replication: BTreeMap<String, Topology>,
    /// The etcd session and leader keys, when a quorum is configured.
    #[serde(default)]
    pub quorum: Option<QuorumView>,
    /// Direct-routing relays, by name.
    #[serde(default)]
    pub direct: Vec<DirectRelayStatus>,
}

/// A direct-routing relay: its kernel program and per-server counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectRelayStatus {
    /// Relay name.
    pub name: String,
    /// The pool it forwards to.
    pub pool: String,
    /// The interface its program runs on.
    pub interface: String,
    /// Where the program attaches: `xdp_native`, `xdp_generic` or `tc`.
    pub hook: String,
    /// The virtual addresses and port it forwards.
    pub listen: Vec<SocketAddr>,
    /// Whether its services are live (this node is the instance's master).
    pub attached: bool,
    /// The last failure to load, attach or update, in words.
    pub problem: Option<String>,
    /// Servers given flows now, and any that carried packets before.
    pub servers: Vec<DirectServerStatus>,
}

/// One server of a direct-routing relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectServerStatus {
    /// Server name.
    pub name: String,
    /// The server's own address.
    pub address: IpAddr,
    /// This host itself: its packets go up the local stack.
    pub local: bool,
    /// Whether new flows may go to it now.
    pub forwarding: bool,
    /// Packets sent to it.
    pub packets: u64,
    /// Bytes sent to it.
    pub bytes: u64,
    /// Flows given to it.
    pub flows: u64,
}

/// The node's etcd session and its leader keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuorumView {
    /// Whether this node holds a live lease.
    pub reachable: bool,
    /// The live lease's id.
    pub lease_id: Option<i64>,
    /// The TTL etcd granted, in milliseconds.
    pub granted_ttl_ms: Option<u64>,
    /// How long the lease may still be acted on without a renewal, in milliseconds.
    pub time_left_ms: Option<u64>,
    /// The last etcd failure, in words.
    pub last_error: Option<String>,
    /// Every leader key this node follows.
    pub keys: Vec<LeaderKey>,
}

/// One leader key as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderKey {
    /// The key under the prefix, such as `vrrp/db`.
    pub key: String,
    /// `held` (by this node), `held_by`, `free` or `unreachable`.
    pub state: String,
    /// The holder's node name, when known.
    pub holder: Option<String>,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// State machine state.
    pub state: InstanceState,
    /// Configured priority.
    pub priority: u8,
    /// Priority after tracking adjustments, as advertised.
    pub effective_priority: u8,
    /// Address of the current master, when known.
    pub master: Option<IpAddr>,
    /// When the instance entered its current state.
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts received and accepted.
    pub adverts_received: u64,
    /// Packets dropped, by reason (for example `bad_ttl`, `auth`).
    pub dropped: BTreeMap<String, u64>,
}

/// A VRRP instance's state, named `initialize`, `backup`, `master` or
/// `fault` in JSON and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Not started, or shut down.
    Initialize,
    /// Listening for the master.
    Backup,
    /// Holding the virtual addresses.
    Master,
    /// Neither listening nor advertising (tracking reported a failure).
    Fault,
}

impl InstanceState {
    /// Every state, in the order metrics list them.
    pub const ALL: [InstanceState; 4] = [
        InstanceState::Initialize,
        InstanceState::Backup,
        InstanceState::Master,
        InstanceState::Fault,
    ];

    /// The state's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Initialize => "initialize",
            InstanceState::Backup => "backup",
            InstanceState::Master => "master",
            InstanceState::Fault => "fault",
        }
    }
}

impl From<hafront_vrrp::State> for InstanceState {
    fn from(state: hafront_vrrp::State) -> Self {
        match state {
            hafront_vrrp::State::Initialize => InstanceState::Initialize,
            hafront_vrrp::State::Backup => InstanceState::Backup,
            hafront_vrrp::State::Master => InstanceState::Master,
            hafront_vrrp::State::Fault => InstanceState::Fault,
        }
    }
}

/// A server's health, named `up`, `down` or `unknown` (not decided yet) in
/// JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not probed yet.
    Unknown,
    /// Passing its check.
    Up,
    /// Failing its check.
    Down,
}

impl ServerState {
    /// The state's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Unknown => "unknown",
            ServerState::Up => "up",
            ServerState::Down => "down",
        }
    }
}

impl From<hafront_health::Status> for ServerState {
    fn from(status: hafront_health::Status) -> Self {
        match status {
            hafront_health::Status::Unknown => ServerState::Unknown,
            hafront_health::Status::Up => ServerState::Up,
            hafront_health::Status::Down => ServerState::Down,
        }
    }
}

/// A server's role as its check reports it, named `primary` or `replica` in
/// JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    /// Writable.
    Primary,
    /// Read-only.
    Replica,
}

impl ServerRole {
    /// The role's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Primary => "primary",
            ServerRole::Replica => "replica",
        }
    }
}

impl From<hafront_config::Role> for ServerRole {
    fn from(role: hafront_config::Role) -> Self {
        match role {
            hafront_config::Role::Primary => ServerRole::Primary,
            hafront_config::Role::Replica => ServerRole::Replica,
        }
    }
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Its servers, in configured order.
    pub servers: Vec<ServerStatus>,
}

/// One server of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Server name.
    pub name: String,
    /// Server address.
    pub address: SocketAddr,
    /// Health as the checks decided it.
    pub status: ServerState,
    /// Role reported by the check, if any.
    pub role: Option<ServerRole>,
    /// When the server entered its current status (or was first monitored).
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    /// The most recent probe, once one finished.
    pub last_check: Option<CheckStatus>,
    /// Connections open to it now, over every relay.
    pub active_connections: u64,
    /// Connections forwarded to it since start, over every relay.
    pub total_connections: u64,
    /// Drained by an operator: no new clients.
    #[serde(default)]
    pub drained: bool,
    /// Fenced by failover: never a primary for relays.
    #[serde(default)]
    pub fenced: bool,
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Whether the probe passed.
    pub ok: bool,
    /// What the probe saw, in words.
    pub reason: String,
    /// Probe duration in seconds.
    pub latency_seconds: f64,
    /// When the probe finished.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

/// One relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// Relay name.
    pub name: String,
    /// The pool it forwards to.
    pub pool: String,
    /// Addresses it listens on.
    pub listeners: Vec<SocketAddr>,
    /// Clients connected now.
    pub active_connections: u64,
    /// Clients forwarded since start.
    pub total_connections: u64,
    /// Bytes from clients to servers.
    pub client_to_server_bytes: u64,
    /// Bytes from servers to clients.
    pub server_to_client_bytes: u64,
    /// Clients closed at once, by reason.
    pub refused: Refusals,
}

/// Clients a relay closed without serving them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// No server was up.
    pub no_server: u64,
    /// `max_connections` was reached.
    pub limit: u64,
    /// Every connect attempt failed.
    pub connect_failed: u64,
    /// The client's TLS or spiped handshake failed, or its gateway request
    /// was refused.
    #[serde(default)]
    pub handshake: u64,
    /// The client's PROXY protocol header was missing, malformed or late
    /// (`accept_proxy`).
    #[serde(default)]
    pub proxy_header: u64,
    /// The client's address is not on `accept_proxy_from`.
    #[serde(default)]
    pub untrusted: u64,
    /// The client closed without sending a byte (a TCP health check of an
    /// encrypted, gateway or `accept_proxy` relay); not logged.
    #[serde(default)]
    pub empty: u64,
}

/// Alerts not delivered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsStatus {
    /// Mails waiting in the durable queue for the SMTP server.
    pub queued_mails: u64,
    /// Events dropped because the alerts queue was full.
    pub dropped_events: u64,
}

impl RelayStatus {
    /// The status of a relay forwarding to `pool` from `listeners`, whose
    /// counters read `stats`.
    pub fn new(stats: &RelayStats, pool: &str, listeners: &[SocketAddr]) -> RelayStatus {
        RelayStatus {
            name: stats.name.clone(),
            pool: pool.to_owned(),
            listeners: listeners.to_vec(),
            active_connections: stats.active,
            total_connections: stats.total,
            client_to_server_bytes: stats.client_to_server_bytes,
            server_to_client_bytes: stats.server_to_client_bytes,
            refused: Refusals {
                no_server: stats.refused_no_server,
                limit: stats.refused_limit,
                connect_failed: stats.refused_connect_failed,
                handshake: stats.refused_handshake,
                proxy_header: stats.refused_proxy_header,
                untrusted: stats.refused_untrusted,
                empty: stats.empty,
            },
        }
    }
}

/// The status of every pool of `monitor`, with connection counts summed over
/// `relays` (each given with the pool it forwards to).
pub fn pool_statuses<'a>(
    monitor: &Monitor,
    relays: impl IntoIterator<Item = (&'a str, &'a RelayStats)>,
    since: &SinceTracker,
) -> Vec<PoolStatus> {
    let mut connections: HashMap<ServerKey, (u64, u64)> = HashMap::new();
    for (pool, stats) in relays {
        for server in &stats.servers {
            let entry = connections
                .entry((pool.to_owned(), server.name.clone(), server.address))
                .or_default();
            entry.0 += server.active;
            entry.1 += server.total;
        }
    }
    monitor
        .pools()
        .map(|(pool, servers)| PoolStatus {
            name: pool.to_owned(),
            servers: servers
                .iter()
                .map(|server| {
                    let (active, total) = connections
                        .get(&key_of(server))
                        .copied()
                        .unwrap_or_default();
                    server_status(server, since.since(server), active, total)
                })
                .collect(),
        })
        .collect()
}

fn server_status(
    server: &ServerHealth,
    since: SystemTime,
    active: u64,
    total: u64,
) -> ServerStatus {
    ServerStatus {
        name: server.name.clone(),
        address: server.address,
        status: server.status().into(),
        role: server.role().map(ServerRole::from),
        since,
        last_check: server.last_probe().map(|probe| CheckStatus {
            ok: probe.ok,
            reason: probe.reason,
            latency_seconds: probe.latency.as_secs_f64(),
            at: probe.at,
        }),
        active_connections: active,
        total_connections: total,
        drained: server.is_drained(),
        fenced: server.is_fenced(),
    }
}

/// Mails waiting in the alert mail queue under `state_dir` (0 when there is
/// no queue).
pub fn queued_mails(state_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(state_dir.join(crate::alerts::MAIL_QUEUE_DIR)) else {
        return 0;
    };
    let queued = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".mail")
        })
        .count();
    u64::try_from(queued).unwrap_or(u64::MAX)
}

/// Identity of a monitored server across reloads.
type ServerKey = (String, String, SocketAddr);

/// Remembers when each server last changed status, from the monitor's
/// events. Servers that have not changed since they were first monitored
/// report the time they were added.
#[derive(Debug)]
pub struct SinceTracker {
    changes: Arc<Mutex<HashMap<ServerKey, SystemTime>>>,
    task: JoinHandle<()>,
}

impl SinceTracker {
    /// Starts following `monitor`'s events and records its current servers
    /// as monitored from now. Must be called within a Tokio runtime.
    pub fn start(monitor: &Monitor) -> SinceTracker {
        let changes = Arc::new(Mutex::new(HashMap::new()));
        let mut events = monitor.subscribe();
        let recorded = Arc::clone(&changes);
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) if event.old != event.new => {
                        recorded
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert((event.pool, event.server, event.address), event.at);
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let tracker = SinceTracker { changes, task };
        tracker.sync(monitor);
        tracker
    }

    /// After a reload: servers new to `monitor` count from now, servers no
    /// longer monitored are forgotten, the others keep their time.
    pub fn sync(&self, monitor: &Monitor) {
        let now = SystemTime::now();
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut current = HashMap::with_capacity(changes.len());
        for (_, servers) in monitor.pools() {
            for server in servers.iter() {
                let key = key_of(server);
                let since = changes.get(&key).copied().unwrap_or(now);
                current.insert(key, since);
            }
        }
        *changes = current;
    }

    /// When `server` entered its current status.
    pub fn since(&self, server: &ServerHealth) -> SystemTime {
        let changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        changes
            .get(&key_of(server))
            .copied()
            .unwrap_or_else(SystemTime::now)
    }
}

impl Drop for SinceTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(server: &ServerHealth) -> ServerKey {
    (server.pool.clone(), server.name.clone(), server.address)
}

impl Status {
    /// The human-readable report printed by `hafront status`: one table per
    /// section, times relative to `now`.
    pub fn render_table(&self, now: SystemTime) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "node {} (pid {}), config {}, running for {}",
            self.node,
            self.pid,
            self.config.display(),
            age(self.started, now)
        );

        out.push_str("\nVRRP\n");
        let mut table = Table::new(&[
            "INSTANCE",
            "STATE",
            "PRIO",
            "EFFECTIVE",
            "MASTER",
            "SINCE",
            "SENT",
            "RECEIVED",
            "DROPPED",
        ]);
        for instance in &self.vrrp {
            let dropped = instance
                .dropped
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(reason, count)| format!("{reason}={count}"))
                .collect::<Vec<_>>();
            table.row(vec![
                instance.name.clone(),
                instance.state.as_str().to_owned(),
                instance.priority.to_string(),
                instance.effective_priority.to_string(),
                instance
                    .master
                    .map_or_else(|| "-".to_owned(), |master| master.to_string()),
                age(instance.since, now),
                instance.adverts_sent.to_string(),
                instance.adverts_received.to_string(),
                if dropped.is_empty() {
                    "0".to_owned()
                } else {
                    dropped.join(",")
                },
            ]);
        }
        table.render_into(&mut out, "no VRRP instances");

        out.push_str("\nPOOLS\n");
        let mut table = Table::new(&[
            "POOL",
            "SERVER",
            "ADDRESS",
            "STATUS",
            "ROLE",
            "SINCE",
            "LAST CHECK",
            "LATENCY",
            "ACTIVE",
            "TOTAL",
        ]);
        for pool in &self.pools {
            for server in &pool.servers {
                let (check, latency) = match &server.last_check {
                    Some(check) => (
                        format!(
                            "{}: {}",
                            if check.ok { "ok" } else { "failed" },
                            check.reason
                        ),
                        format!("{:.1}ms", check.latency_seconds * 1000.0),
                    ),
                    None => ("-".to_owned(), "-".to_owned()),
                };
                let mut status = server.status.as_str().to_owned();
                for (flag, word) in [(server.drained, "drained"), (server.fenced, "fenced")] {
                    if flag {
                        status.push_str(&format!(",{word}"));
                    }
                }
                table.row(vec![
                    pool.name.clone(),
                    server.name.clone(),
                    server.address.to_string(),
                    status,
                    server.role.map_or("-", ServerRole::as_str).to_owned(),
                    age(server.since, now),
                    check,
                    latency,
                    server.active_connections.to_string(),
                    server.total_connections.to_string(),
                ]);
            }
        }
        table.render_into(&mut out, "no pools");

        out.push_str("\nRELAYS\n");
        let mut table = Table::new(&[
            "RELAY",
            "POOL",
            "LISTEN",
            "ACTIVE",
            "TOTAL",
            "BYTES IN",
            "BYTES OUT",
            "REFUSED",
        ]);
        for relay in &self.relays {
            let refused = relay.refused;
            table.row(vec![
                relay.name.clone(),
                relay.pool.clone(),
                relay
                    .listeners
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                relay.active_connections.to_string(),
                relay.total_connections.to_string(),
                relay.client_to_server_bytes.to_string(),
                relay.server_to_client_bytes.to_string(),
                format!(
                    "no_server={} limit={} connect_failed={} handshake={} proxy_header={} \
                     untrusted={} empty={}",
                    refused.no_server,
                    refused.limit,
                    refused.connect_failed,
                    refused.handshake,
                    refused.proxy_header,
                    refused.untrusted,
                    refused.empty
                ),
            ]);
        }
        table.render_into(&mut out, "no relays");

        if !self.direct.is_empty() {
            out.push_str("\nDIRECT ROUTING\n");
            let mut table = Table::new(&[
                "RELAY", "LISTEN", "HOOK", "STATE", "SERVER", "FLOWS", "PACKETS", "BYTES",
            ]);
            for relay in &self.direct {
                let listen = relay
                    .listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let state = match (&relay.problem, relay.attached) {
                    (Some(problem), _) => format!("error: {problem}"),
                    (None, true) => format!("forwarding on {}", relay.interface),
                    (None, false) => "standby".to_owned(),
                };
                if relay.servers.is_empty() {
                    table.row(vec![
                        relay.name.clone(),
                        listen.clone(),
                        relay.hook.clone(),
                        state.clone(),
                        "-".to_owned(),
                        "0".to_owned(),
                        "0".to_owned(),
                        "0".to_owned(),
                    ]);
                }
                for server in &relay.servers {
                    let mut name = server.name.clone();
                    if server.local {
                        name.push_str(" (this host)");
                    }
                    if !server.forwarding {
                        name.push_str(" (no new flows)");
                    }
                    table.row(vec![
                        relay.name.clone(),
                        listen.clone(),
                        relay.hook.clone(),
                        state.clone(),
                        name,
                        server.flows.to_string(),
                        server.packets.to_string(),
                        server.bytes.to_string(),
                    ]);
                }
            }
            table.render_into(&mut out, "no direct-routing relays");
        }

        if !self.replication.is_empty() {
            out.push_str("\nREPLICATION\n");
            let mut table = Table::new(&[
                "POOL", "SERVER", "ROLE", "FROM", "THREADS", "LAG", "GTID", "NOTE",
            ]);
            let mut summaries = Vec::new();
            for (pool, topology) in &self.replication {
                for server in &topology.servers {
                    let role = if topology.primary.as_deref() == Some(server.name.as_str()) {
                        "primary"
                    } else if server.replicates_from.is_some() {
                        "replica"
                    } else {
                        "-"
                    };
                    let note = match (&server.error, server.fenced) {
                        (Some(error), _) => error.clone(),
                        (None, true) => "fenced".to_owned(),
                        (None, false) => String::new(),
                    };
                    table.row(vec![
                        pool.clone(),
                        server.name.clone(),
                        role.to_owned(),
                        server
                            .replicates_from
                            .clone()
                            .unwrap_or_else(|| "-".to_owned()),
                        server.threads.as_ref().map_or_else(
                            || "-".to_owned(),
                            |(io, sql)| format!("io={io} sql={sql}"),
                        ),
                        server
                            .lag_seconds
                            .map_or_else(|| "-".to_owned(), |lag| format!("{lag}s")),
                        server
                            .gtid_position
                            .clone()
                            .unwrap_or_else(|| "-".to_owned()),
                        note,
                    ]);
                }
                let mut line = format!(
                    "  {pool}: failover {}",
                    if topology.acting {
                        "acting on this node"
                    } else {
                        "standing by on this node"
                    }
                );
                if let Some(until) = topology.blocked_until {
                    line.push_str(&format!(
                        ", automatic failover blocked until {} (hafront failover ack {pool})",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_secs(until)
                        )
                    ));
                }
                summaries.push(line);
            }
            table.render_into(&mut out, "no pools with failover");
            for line in summaries {
                let _ = writeln!(out, "{line}");
            }
        }

        if let Some(quorum) = &self.quorum {
            let _ = writeln!(
                out,
                "\nQUORUM\n  etcd {}, lease {}, granted TTL {}, time left {}{}",
                if quorum.reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                },
                quorum
                    .lease_id
                    .map_or_else(|| "-".to_owned(), |id| format!("{id:x}")),
                quorum
                    .granted_ttl_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{}s", ms / 1000)),
                quorum
                    .time_left_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
                quorum
                    .last_error
                    .as_ref()
                    .map(|error| format!(", last error: {error}"))
                    .unwrap_or_default()
            );
            let mut table = Table::new(&["KEY", "STATE", "HOLDER"]);
            for key in &quorum.keys {
                table.row(vec![
                    key.key.clone(),
                    key.state.clone(),
                    key.holder.clone().unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            table.render_into(&mut out, "no leader keys");
        }

        let _ = writeln!(
            out,
            "\nALERTS\n  queued mails: {}, dropped events: {}",
            self.alerts.queued_mails, self.alerts.dropped_events
        );
        out
    }
}

/// How long ago `then` was, as `3d4h`, `2h5m`, `4m10s` or `12s`.
fn age(then: SystemTime, now: SystemTime) -> String {
    let seconds = now.duration_since(then).unwrap_or(Duration::ZERO).as_secs();
    let (days, hours, minutes, seconds) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Left-aligned columns separated by two spaces, indented by two.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|&title| title.to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render_into(&self, out: &mut String, empty: &str) {
        if self.rows.is_empty() {
            let _ = writeln!(out, "  ({empty})");
            return;
        }
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(|title| title.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from(" ");
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, " {cell:<width$} ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// Times as RFC 3339 strings in UTC with millisecond precision.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_roles_keep_their_json_names() {
        let name = |value: serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        for state in InstanceState::ALL {
            assert_eq!(name(serde_json::json!(state)), state.as_str());
        }
        assert_eq!(
            InstanceState::from(hafront_vrrp::State::Master).as_str(),
            hafront_vrrp::State::Master.as_str()
        );
        for health in [
            hafront_health::Status::Up,
            hafront_health::Status::Down,
            hafront_health::Status::Unknown,
        ] {
            let state = ServerState::from(health);
            assert_eq!(name(serde_json::json!(state)), health.to_string());
            assert_eq!(state.as_str(), health.to_string());
        }
        for (role, text) in [
            (ServerRole::Primary, "primary"),
            (ServerRole::Replica, "replica"),
        ] {
            assert_eq!(name(serde_json::json!(role)), text);
            assert_eq!(role.as_str(), text);
        }
    }
}
