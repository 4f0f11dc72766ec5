//! The YAML schema: one struct per section, with the defaults an operator
//! gets when a key is left out. Unknown keys are refused everywhere.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use crate::failover::Failover;
use crate::value;

/// The whole daemon configuration, as read from one YAML file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node-wide settings.
    #[serde(default)]
    pub global: Global,
    /// Named health checks, referenced by pools and VRRP tracking.
    #[serde(default)]
    pub checks: BTreeMap<String, Check>,
    /// Named groups of real servers.
    #[serde(default)]
    pub pools: BTreeMap<String, Pool>,
    /// Named TCP listeners that forward clients to a pool.
    #[serde(default)]
    pub relays: BTreeMap<String, Relay>,
    /// VRRP instances that own virtual addresses.
    #[serde(default)]
    pub vrrp: Vrrp,
    /// Where alerts go (e-mail).
    #[serde(default)]
    pub alerts: Alerts,
    /// Scripts run on state changes.
    #[serde(default)]
    pub notify: Vec<Notify>,
    /// Leader keys in etcd: no split brain even in a partition; plain VRRP when absent.
    #[serde(default)]
    pub quorum: Option<Quorum>,
}

impl Config {
    /// The VRRP instance (with its name) whose virtual addresses include `address`.
    pub fn vrrp_instance_holding(&self, address: IpAddr) -> Option<(&str, &VrrpInstance)> {
        self.vrrp
            .instances
            .iter()
            .find(|(_, instance)| {
                instance
                    .virtual_addresses
                    .iter()
                    .any(|vip| vip.addr() == address)
            })
            .map(|(name, instance)| (name.as_str(), instance))
    }

    /// The VRRP instance a direct-routing relay follows: the one holding its first
    /// listen address. `None` for a proxy relay, or when no instance holds it.
    pub fn direct_routing_instance(&self, relay: &Relay) -> Option<(&str, &VrrpInstance)> {
        if relay.forward != Forward::DirectRouting {
            return None;
        }
        self.vrrp_instance_holding(relay.listen.first()?.ip())
    }

    /// Every file the configuration names for reading: secret, key,
    /// certificate and CA files (not programs, state or sockets).
    pub(crate) fn files_mut(&mut self) -> Vec<&mut PathBuf> {
        fn secret(secret: &mut Option<Secret>) -> Option<&mut PathBuf> {
            match secret {
                Some(Secret::File(path)) => Some(path),
                _ => None,
            }
        }
        let mut files = Vec::new();
        for check in self.checks.values_mut() {
            match &mut check.kind {
                CheckKind::Mysql(mysql) => files.extend(secret(&mut mysql.password)),
                CheckKind::Redis(redis) => files.extend(secret(&mut redis.password)),
                CheckKind::Tcp | CheckKind::Http(_) | CheckKind::Exec(_) => {}
            }
        }
        for relay in self.relays.values_mut() {
            match &mut relay.mode {
                RelayMode::Plain => {}
                RelayMode::SpipedEncrypt(spiped) | RelayMode::SpipedDecrypt(spiped) => {
                    files.push(&mut spiped.key_file)
                }
                RelayMode::TlsServer(tls) => {
                    files.extend([&mut tls.cert_file, &mut tls.key_file]);
                    files.extend(tls.client_ca_file.as_mut());
                }
                RelayMode::TlsClient(tls) => {
                    files.extend(tls.ca_file.as_mut());
                    files.extend(tls.cert_file.as_mut());
                    files.extend(tls.key_file.as_mut());
                }
                RelayMode::Gateway(gateway) => {
                    if let Secret::File(path) = &mut gateway.secret {
                        files.push(path);
                    }
                }
            }
        }
        for instance in self.vrrp.instances.values_mut() {
            files.extend(secret(&mut instance.auth_pass));
        }
        if let Some(email) = &mut self.alerts.email {
            files.extend(secret(&mut email.password));
            files.extend(email.ca_file.as_mut());
        }
        if let Some(quorum) = &mut self.quorum {
            files.extend(secret(&mut quorum.password));
            if let Some(tls) = &mut quorum.tls {
                files.extend(tls.ca_file.as_mut());
                files.extend(tls.cert_file.as_mut());
                files.extend(tls.key_file.as_mut());
            }
        }
        files
    }
}

/// Node-wide settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// This node's name in logs, alerts and status (default: the host name).
    #[serde(default)]
    pub node: Option<String>,
    /// Directory for persistent state such as the alert mail queue.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Logging settings.
    #[serde(default)]
    pub log: Log,
    /// Unix socket for `hafront status` and `hafront reload`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Optional address of the Prometheus metrics listener.
    #[serde(default, deserialize_with = "value::optional_socket_address")]
    pub metrics: Option<SocketAddr>,
    /// On stop, how long relays' open connections may finish before they are closed.
    #[serde(default = "default_stop_grace", deserialize_with = "value::duration")]
    pub stop_grace: Duration,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            node: None,
            state_dir: default_state_dir(),
            log: Log::default(),
            control_socket: default_control_socket(),
            metrics: None,
            stop_grace: default_stop_grace(),
        }
    }
}

fn default_stop_grace() -> Duration {
    Duration::from_secs(5)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/hafront")
}

fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/hafront/control.sock")
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// A tracing filter: a level (`info`) or per-module directives
    /// (`info,hafront_vrrp=debug`).
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Line format.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// Native journald fields.
    Journald,
}

/// A health check: how often, how patient, and what it does.
///
/// Written as one flat mapping: the common settings, `kind:` and the
/// settings of that kind (see [`CheckKind`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "CheckRepr")]
pub struct Check {
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// Time a single probe may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    pub rise: u32,
    /// Consecutive failures that bring an up server down.
    pub fall: u32,
    /// What the probe does.
    pub kind: CheckKind,
}

/// The YAML form of a [`Check`]: every setting of every kind, so unknown
/// keys are refused with their exact position (serde's `flatten` would
/// lose it and cannot be combined with `deny_unknown_fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRepr {
    kind: CheckKindName,
    #[serde(
        default = "default_check_interval",
        deserialize_with = "value::duration"
    )]
    interval: Duration,
    #[serde(
        default = "default_check_timeout",
        deserialize_with = "value::duration"
    )]
    timeout: Duration,
    #[serde(default = "default_rise", deserialize_with = "value::count")]
    rise: u32,
    #[serde(default = "default_fall", deserialize_with = "value::count")]
    fall: u32,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    role: Option<bool>,
    #[serde(default)]
    replication: Option<ReplicationCheck>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    expect_status: Option<StatusRange>,
    #[serde(default)]
    command: Option<Vec<String>>,
}

/// The values of `kind:` in a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CheckKindName {
    Tcp,
    Mysql,
    Redis,
    Http,
    Exec,
}

impl CheckKindName {
    fn name(self) -> &'static str {
        match self {
            CheckKindName::Tcp => "tcp",
            CheckKindName::Mysql => "mysql",
            CheckKindName::Redis => "redis",
            CheckKindName::Http => "http",
            CheckKindName::Exec => "exec",
        }
    }
}

impl CheckKind {
    /// The `kind:` value naming this probe.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Mysql(_) => "mysql",
            CheckKind::Redis(_) => "redis",
            CheckKind::Http(_) => "http",
            CheckKind::Exec(_) => "exec",
        }
    }

    /// The settings of this kind, besides the common `kind`, `interval`,
    /// `timeout`, `rise` and `fall`.
    pub fn setting_names(&self) -> &'static [&'static str] {
        match self {
            CheckKind::Tcp => &[],
            CheckKind::Mysql(_) => &["user", "password", "role", "replication"],
            CheckKind::Redis(_) => &["username", "password", "role"],
            CheckKind::Http(_) => &["path", "host", "expect_status"],
            CheckKind::Exec(_) => &["command"],
        }
    }
}

impl TryFrom<CheckRepr> for Check {
    type Error = String;

    /// Builds the check of the named kind from its settings.
    fn try_from(repr: CheckRepr) -> Result<Self, String> {
        // Settings of other kinds are reported, with their position, by
        // validation; they are dropped here.
        let kind = repr.kind;
        let missing = |setting: &str| {
            format!(
                "missing field `{setting}` (required by kind {})",
                kind.name()
            )
        };
        let kind = match kind {
            CheckKindName::Tcp => CheckKind::Tcp,
            CheckKindName::Mysql => CheckKind::Mysql(MysqlCheck {
                user: repr.user.ok_or_else(|| missing("user"))?,
                password: repr.password,
                role: repr.role.unwrap_or_default(),
                replication: repr.replication,
            }),
            CheckKindName::Redis => CheckKind::Redis(RedisCheck {
                username: repr.username,
                password: repr.password,
                role: repr.role.unwrap_or_default(),
            }),
            CheckKindName::Http => CheckKind::Http(HttpCheck {
                path: repr.path.unwrap_or_else(default_http_path),
                host: repr.host,
                expect_status: repr.expect_status.unwrap_or_else(default_http_expect),
            }),
            CheckKindName::Exec => CheckKind::Exec(ExecCheck {
                command: repr.command.ok_or_else(|| missing("command"))?,
            }),
        };
        Ok(Check {
            interval: repr.interval,
            timeout: repr.timeout,
            rise: repr.rise,
            fall: repr.fall,
            kind,
        })
    }
}

fn default_check_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_rise() -> u32 {
    2
}

fn default_fall() -> u32 {
    3
}

/// The probe a check runs against each server, chosen by `kind:`.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// A MySQL/MariaDB handshake with credentials, then COM_PING.
    Mysql(MysqlCheck),
    /// A Redis PING, optionally with AUTH.
    Redis(RedisCheck),
    /// An HTTP GET expecting a status in a range.
    Http(HttpCheck),
    /// A program run without a shell; exit status 0 means up.
    Exec(ExecCheck),
}

/// A secret given inline or, preferably, in a file that only its owner can
/// read: `{value: TEXT}` or `{file: PATH}`.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// The secret itself, in the config file.
    Value(String),
    /// A file holding the secret (trailing newline ignored).
    File(PathBuf),
}

impl Secret {
    /// The secret itself: the value, or the file's content without its
    /// trailing newline.
    pub fn reveal(&self) -> std::io::Result<String> {
        match self {
            Secret::Value(value) => Ok(value.clone()),
            Secret::File(path) => {
                let mut content = std::fs::read_to_string(path)?;
                let kept = content.trim_end_matches(['\n', '\r']).len();
                content.truncate(kept);
                Ok(content)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Written by hand so that no error message ever repeats the text given
    /// (serde's derive would say "unknown variant `hunter2`" for
    /// `password: hunter2`).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn not_a_mapping<E: serde::de::Error>() -> E {
        E::custom(
            "expected `{value: ...}` or, better, `{file: /path}` \
             (the text given is not repeated here, it may be a secret)",
        )
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("`{value: ...}` or `{file: /path}`")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Secret, E> {
        Err(Self::not_a_mapping())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::not_a_mapping())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::not_a_mapping())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::not_a_mapping())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::not_a_mapping())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        use serde::de::Error;
        const FORMS: &[&str] = &["value", "file"];
        // Every key is looked at, so a misspelt one is named as such rather
        // than taken for the second form.
        let mut secret = None;
        while let Some(key) = map.next_key::<String>()? {
            let form = match key.as_str() {
                "value" => Secret::Value(map.next_value()?),
                "file" => Secret::File(map.next_value()?),
                other => return Err(A::Error::unknown_field(other, FORMS)),
            };
            if secret.replace(form).is_some() {
                return Err(A::Error::custom("give either `value` or `file`, not both"));
            }
        }
        secret.ok_or_else(|| A::Error::custom("expected one of `value` or `file`"))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(<redacted>)"),
            Secret::File(path) => f.debug_tuple("Secret::File").field(path).finish(),
        }
    }
}

/// MySQL/MariaDB check parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlCheck {
    /// User to log in as.
    pub user: String,
    /// That user's password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Read `read_only`/`super_read_only` to learn whether the server is a
    /// primary (writable) or a replica.
    #[serde(default)]
    pub role: bool,
    /// Require running replication threads (replicas only).
    #[serde(default)]
    pub replication: Option<ReplicationCheck>,
}

/// Replication requirements for a MySQL replica.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationCheck {
    /// Largest acceptable `Seconds_Behind_Master`.
    #[serde(default = "default_max_lag", deserialize_with = "value::duration")]
    pub max_lag: Duration,
}

fn default_max_lag() -> Duration {
    Duration::from_secs(30)
}

/// Redis check parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCheck {
    /// ACL user name (Redis 6+); AUTH with the password alone when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for AUTH.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Ask `ROLE` to learn whether the server is a master or a replica.
    #[serde(default)]
    pub role: bool,
}

/// HTTP check parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// Request path.
    #[serde(default = "default_http_path")]
    pub path: String,
    /// Host header (default: the server address).
    #[serde(default)]
    pub host: Option<String>,
    /// Accepted status codes, as `200` or `200-399`.
    #[serde(default = "default_http_expect")]
    pub expect_status: StatusRange,
}

fn default_http_path() -> String {
    "/".to_owned()
}

fn default_http_expect() -> StatusRange {
    StatusRange {
        low: 200,
        high: 399,
    }
}

/// An inclusive range of HTTP status codes, written `200` or `200-399`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted code.
    pub low: u16,
    /// Highest accepted code.
    pub high: u16,
}

impl StatusRange {
    /// Whether `status` lies in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// The accepted forms of a [`StatusRange`], for error messages.
const STATUS_RANGE: &str = "a status code such as 200 or a range such as 200-399, codes 100..=599";

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StatusRangeVisitor)
    }
}

struct StatusRangeVisitor;

impl<'de> serde::de::Visitor<'de> for StatusRangeVisitor {
    type Value = StatusRange;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(STATUS_RANGE)
    }

    fn visit_u64<E: serde::de::Error>(self, code: u64) -> Result<StatusRange, E> {
        self.visit_str(&code.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, code: i64) -> Result<StatusRange, E> {
        self.visit_str(&code.to_string())
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StatusRange, E> {
        let code = |s: &str| s.trim().parse::<u16>().ok();
        let (low, high) = text.split_once('-').unwrap_or((text, text));
        match (code(low), code(high)) {
            (Some(low), Some(high))
                if (100..=599).contains(&low) && (100..=599).contains(&high) && low <= high =>
            {
                Ok(StatusRange { low, high })
            }
            _ => Err(E::custom(format!(
                "{text:?} is not {STATUS_RANGE}, low first"
            ))),
        }
    }
}

/// Exec check parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    /// Program and arguments, run without a shell. The server address is
    /// passed in `HAFRONT_SERVER_ADDRESS`.
    pub command: Vec<String>,
}

/// A group of real servers behind one health check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Name of the check (under `checks:`) run against every server.
    pub check: String,
    /// The servers, in priority order for the `first` policy.
    pub servers: Vec<Server>,
    /// Automatic failover and switchover of a MariaDB pool.
    #[serde(default)]
    pub failover: Option<Failover>,
}

/// One real server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Name in logs, alerts and status (default: the address).
    #[serde(default)]
    pub name: Option<String>,
    /// Where the server listens.
    #[serde(deserialize_with = "value::socket_address")]
    pub address: SocketAddr,
    /// Relative share of connections under weighted policies.
    #[serde(default = "default_weight", deserialize_with = "value::count")]
    pub weight: u32,
    /// Used only while no non-backup server is up.
    #[serde(default)]
    pub backup: bool,
}

impl Server {
    /// The name shown to operators.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }
}

fn default_weight() -> u32 {
    1
}

/// A TCP listener forwarding clients to the healthy servers of a pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Addresses to listen on; they need not be held yet (a VIP may arrive later).
    #[serde(deserialize_with = "value::socket_addresses")]
    pub listen: Vec<SocketAddr>,
    /// Name of the pool (under `pools:`) to forward to.
    pub pool: String,
    /// How a server is chosen for each new client.
    #[serde(default)]
    pub policy: Policy,
    /// Only servers with this role receive clients (needs a role-aware check).
    #[serde(default)]
    pub role: Option<Role>,
    /// Time allowed for connecting to a server.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "value::duration"
    )]
    pub connect_timeout: Duration,
    /// Close a connection after this long with no bytes either way.
    #[serde(default = "default_idle_timeout", deserialize_with = "value::duration")]
    pub idle_timeout: Duration,
    /// Most simultaneous clients; more are refused at once.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "value::connections"
    )]
    pub max_connections: usize,
    /// Servers tried for one client before giving up.
    #[serde(
        default = "default_connect_attempts",
        deserialize_with = "value::count"
    )]
    pub connect_attempts: u32,
    /// What happens to open connections when their server goes down.
    #[serde(default)]
    pub on_server_down: OnServerDown,
    /// Transport on each side of the relay.
    #[serde(default)]
    pub mode: RelayMode,
    /// Send a PROXY protocol header with the client's address to each
    /// server before the client's bytes.
    #[serde(default)]
    pub send_proxy: Option<ProxyVersion>,
    /// Every client must open with a PROXY protocol header (v1 or v2), whose
    /// client address then stands for the connection's.
    #[serde(default)]
    pub accept_proxy: bool,
    /// With `accept_proxy`, the only peers (load balancers) allowed to
    /// connect; others are closed unserved. Empty: any peer.
    #[serde(default, deserialize_with = "value::allowed_networks")]
    pub accept_proxy_from: Vec<IpNet>,
    /// How clients' traffic reaches the servers.
    #[serde(default)]
    pub forward: Forward,
    /// With `forward: direct_routing`, where the kernel program attaches
    /// (default `auto`).
    #[serde(default)]
    pub hook: Option<KernelHook>,
}

/// How a relay carries clients' traffic to its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// The relay accepts each client's connection and opens one to a server.
    #[default]
    Proxy,
    /// LVS-style direct routing: on the master of the VRRP instance holding
    /// the listen addresses, an eBPF program sends each packet for them to a
    /// server's MAC address unchanged; servers answer clients directly.
    DirectRouting,
}

/// Where a direct-routing program attaches on the VIP's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelHook {
    /// Native XDP on an interface with a device driver, generic XDP otherwise
    /// (veth, bridges: native XDP there does not transmit).
    #[default]
    Auto,
    /// XDP in the driver.
    XdpNative,
    /// XDP in the kernel's generic path (any interface).
    XdpGeneric,
    /// A tc ingress classifier.
    Tc,
}

/// A PROXY protocol version to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyVersion {
    /// The text header (`PROXY TCP4 ...`).
    V1,
    /// The binary header.
    V2,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}

fn default_max_connections() -> usize {
    10_000
}

fn default_connect_attempts() -> u32 {
    3
}

/// How a relay picks a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Weighted round-robin.
    #[default]
    RoundRobin,
    /// The server with the fewest open connections relative to its weight.
    LeastConnections,
    /// The first healthy server in the pool's order (primary/backup).
    First,
}

/// A server's role as reported by a role-aware check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writable (MySQL `read_only=OFF`, Redis master).
    Primary,
    /// Read-only (MySQL replica, Redis replica).
    Replica,
}

/// What a relay does with open connections to a server that went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnServerDown {
    /// Leave them; the server may still answer.
    #[default]
    Keep,
    /// Close them, so clients reconnect to a healthy server.
    Close,
}

/// Transport of a relay: plaintext, or encrypted on one side.
///
/// Written `plain`, or as one flat mapping: `kind:` and the settings of
/// that kind (see [`RelayMode::setting_names`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RelayMode {
    /// Plaintext both sides.
    #[default]
    Plain,
    /// Accept plaintext; connect to the pool with the spiped protocol.
    SpipedEncrypt(SpipedMode),
    /// Accept the spiped protocol; forward plaintext to the pool.
    SpipedDecrypt(SpipedMode),
    /// Terminate TLS; forward plaintext to the pool.
    TlsServer(TlsServerMode),
    /// Accept plaintext; connect to the pool with TLS.
    TlsClient(TlsClientMode),
    /// Clients name their server in an encrypted line; forward to it if allowed.
    Gateway(GatewayMode),
}

impl RelayMode {
    /// The `kind:` value naming this mode.
    pub fn name(&self) -> &'static str {
        match self {
            RelayMode::Plain => "plain",
            RelayMode::SpipedEncrypt(_) => "spiped_encrypt",
            RelayMode::SpipedDecrypt(_) => "spiped_decrypt",
            RelayMode::TlsServer(_) => "tls_server",
            RelayMode::TlsClient(_) => "tls_client",
            RelayMode::Gateway(_) => "gateway",
        }
    }

    /// The settings of this mode besides `kind`.
    pub fn setting_names(&self) -> &'static [&'static str] {
        match self {
            RelayMode::Plain => &[],
            RelayMode::SpipedEncrypt(_) | RelayMode::SpipedDecrypt(_) => {
                &["key_file", "forward_secrecy", "handshake_timeout"]
            }
            RelayMode::TlsServer(_) => &[
                "cert_file",
                "key_file",
                "client_ca_file",
                "handshake_timeout",
            ],
            RelayMode::TlsClient(_) => &[
                "ca_file",
                "pin_sha256",
                "server_name",
                "cert_file",
                "key_file",
                "handshake_timeout",
            ],
            RelayMode::Gateway(_) => &["secret", "allow", "handshake_timeout"],
        }
    }
}

/// The values of `kind:` in a relay mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RelayModeKind {
    Plain,
    SpipedEncrypt,
    SpipedDecrypt,
    TlsServer,
    TlsClient,
    Gateway,
}

/// The mapping form of a [`RelayMode`]: every setting of every kind, so
/// that each error points at its own key (an internally tagged enum would
/// buffer the mapping and lose the positions).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelayModeRepr {
    kind: RelayModeKind,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    forward_secrecy: Option<bool>,
    #[serde(default, deserialize_with = "value::optional_duration")]
    handshake_timeout: Option<Duration>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    pin_sha256: Option<String>,
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default, deserialize_with = "value::optional_allowed_networks")]
    allow: Option<Vec<IpNet>>,
}

impl TryFrom<RelayModeRepr> for RelayMode {
    type Error = String;

    /// Builds the mode of the named kind from its settings; settings of
    /// other kinds are reported, with their position, by validation.
    fn try_from(repr: RelayModeRepr) -> Result<Self, String> {
        let kind = repr.kind;
        let missing = |setting: &str| {
            let name = match kind {
                RelayModeKind::Plain => "plain",
                RelayModeKind::SpipedEncrypt => "spiped_encrypt",
                RelayModeKind::SpipedDecrypt => "spiped_decrypt",
                RelayModeKind::TlsServer => "tls_server",
                RelayModeKind::TlsClient => "tls_client",
                RelayModeKind::Gateway => "gateway",
            };
            format!("missing field `{setting}` (required by kind {name})")
        };
        let handshake_timeout = repr
            .handshake_timeout
            .unwrap_or_else(default_handshake_timeout);
        let spiped = || -> Result<SpipedMode, String> {
            Ok(SpipedMode {
                key_file: repr.key_file.clone().ok_or_else(|| missing("key_file"))?,
                forward_secrecy: repr.forward_secrecy.unwrap_or(true),
                handshake_timeout,
            })
        };
        Ok(match kind {
            RelayModeKind::Plain => RelayMode::Plain,
            RelayModeKind::SpipedEncrypt => RelayMode::SpipedEncrypt(spiped()?),
            RelayModeKind::SpipedDecrypt => RelayMode::SpipedDecrypt(spiped()?),
            RelayModeKind::TlsServer => RelayMode::TlsServer(TlsServerMode {
                cert_file: repr.cert_file.ok_or_else(|| missing("cert_file"))?,
                key_file: repr.key_file.ok_or_else(|| missing("key_file"))?,
                client_ca_file: repr.client_ca_file,
                handshake_timeout,
            }),
            RelayModeKind::TlsClient => RelayMode::TlsClient(TlsClientMode {
                ca_file: repr.ca_file,
                pin_sha256: repr.pin_sha256,
                server_name: repr.server_name.ok_or_else(|| missing("server_name"))?,
                cert_file: repr.cert_file,
                key_file: repr.key_file,
                handshake_timeout,
            }),
            RelayModeKind::Gateway => RelayMode::Gateway(GatewayMode {
                secret: repr.secret.ok_or_else(|| missing("secret"))?,
                allow: repr.allow.ok_or_else(|| missing("allow"))?,
                handshake_timeout,
            }),
        })
    }
}

impl<'de> Deserialize<'de> for RelayMode {
    /// `plain`, or a mapping with `kind:`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RelayModeVisitor)
    }
}

struct RelayModeVisitor;

impl<'de> serde::de::Visitor<'de> for RelayModeVisitor {
    type Value = RelayMode;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "`plain` or a mapping such as `{kind: tls_server, cert_file: ..., key_file: ...}`",
        )
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RelayMode, E> {
        match RelayModeKind::deserialize(serde::de::value::StrDeserializer::<E>::new(text))? {
            RelayModeKind::Plain => Ok(RelayMode::Plain),
            _ => Err(E::custom(format!(
                "{text} needs settings; write a mapping such as `{{kind: {text}, ...}}`"
            ))),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RelayMode, A::Error> {
        let repr = RelayModeRepr::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        RelayMode::try_from(repr).map_err(serde::de::Error::custom)
    }
}

/// spiped settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpipedMode {
    /// The shared key file (at least 32 bytes, not readable by group or others).
    pub key_file: PathBuf,
    /// Ephemeral Diffie-Hellman for forward secrecy (spiped's default).
    pub forward_secrecy: bool,
    /// Time allowed for the handshake.
    pub handshake_timeout: Duration,
}

fn default_true() -> bool {
    true
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}

/// TLS server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsServerMode {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (not readable by group or others).
    pub key_file: PathBuf,
    /// CA bundle; when set, clients must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
    /// Time allowed for a client's TLS handshake.
    pub handshake_timeout: Duration,
}

/// TLS client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsClientMode {
    /// CA bundle used to verify the server. A self-signed certificate named
    /// here is trusted as itself (pinned) when the server presents exactly it.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's SubjectPublicKeyInfo (base64 or hex, with an
    /// optional `sha256//` prefix as curl's `--pinnedpubkey`): a server with
    /// this key is trusted without a CA.
    pub pin_sha256: Option<String>,
    /// Name the server's certificate must carry.
    pub server_name: String,
    /// Client certificate for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Time allowed for the TLS handshake with the server.
    pub handshake_timeout: Duration,
}

/// Gateway settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayMode {
    /// Shared secret for the address tokens.
    pub secret: Secret,
    /// Servers clients may ask for (addresses or networks).
    pub allow: Vec<IpNet>,
    /// Time allowed for the client's request line.
    pub handshake_timeout: Duration,
}

/// VRRP settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vrrp {
    /// Named VRRP instances.
    #[serde(default)]
    pub instances: BTreeMap<String, VrrpInstance>,
}

/// One virtual router.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    /// Interface the adverts go out on and the VIPs are added to.
    pub interface: String,
    /// Virtual router id, 1..=255, unique on the segment.
    #[serde(deserialize_with = "value::vrid")]
    pub vrid: u8,
    /// Protocol version: 2 (RFC 3768) or 3 (RFC 5798).
    #[serde(
        default = "default_vrrp_version",
        deserialize_with = "value::vrrp_version"
    )]
    pub version: u8,
    /// 1..=254 for backups, 255 for the address owner.
    #[serde(default = "default_priority", deserialize_with = "value::priority")]
    pub priority: u8,
    /// Time between adverts (whole seconds for v2, centiseconds for v3).
    #[serde(
        default = "default_advert_interval",
        deserialize_with = "value::duration"
    )]
    pub advert_interval: Duration,
    /// The virtual addresses, with prefix length (`10.0.0.100/24`).
    #[serde(deserialize_with = "value::virtual_addresses")]
    pub virtual_addresses: Vec<IpNet>,
    /// Take over from a lower-priority master.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// Wait this long after start before preempting.
    #[serde(default, deserialize_with = "value::duration")]
    pub preempt_delay: Duration,
    /// Send adverts to these peers instead of multicast.
    #[serde(default, deserialize_with = "value::peer_addresses")]
    pub unicast_peers: Vec<IpAddr>,
    /// v2 simple password (keepalived `auth_type PASS`), at most 8 bytes.
    #[serde(default)]
    pub auth_pass: Option<Secret>,
    /// v3 over IPv4 checksum form sent (both are accepted).
    #[serde(default)]
    pub v3_checksum: V3Checksum,
    /// Gratuitous ARP / unsolicited NA settings.
    #[serde(default)]
    pub garp: Garp,
    /// What lowers this node's priority or forces FAULT.
    #[serde(default)]
    pub track: Vec<Track>,
}

fn default_vrrp_version() -> u8 {
    3
}

fn default_priority() -> u8 {
    100
}

fn default_advert_interval() -> Duration {
    Duration::from_secs(1)
}

/// Checksum form for VRRPv3 over IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V3Checksum {
    /// With the IPv4 pseudo-header (RFC 5798, keepalived).
    #[default]
    PseudoHeader,
    /// Over the VRRP message only (RFC 9568).
    MessageOnly,
}

/// Gratuitous ARP settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    /// Announcements sent on becoming master.
    #[serde(default = "default_garp_repeat", deserialize_with = "value::count")]
    pub repeat: u32,
    /// Gap between those announcements.
    #[serde(
        default = "default_garp_interval",
        deserialize_with = "value::duration"
    )]
    pub interval: Duration,
    /// Re-announce periodically while master (none when absent).
    #[serde(default, deserialize_with = "value::optional_duration")]
    pub refresh: Option<Duration>,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            repeat: default_garp_repeat(),
            interval: default_garp_interval(),
            refresh: None,
        }
    }
}

fn default_garp_repeat() -> u32 {
    3
}

fn default_garp_interval() -> Duration {
    Duration::from_millis(100)
}

/// One tracked item: a pool's server health, a whole pool, or an interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// A server, written `pool/server`, tracked by its health.
    #[serde(default)]
    pub server: Option<String>,
    /// A pool, down when none of its servers is up.
    #[serde(default)]
    pub pool: Option<String>,
    /// An interface, down when its link is down.
    #[serde(default)]
    pub interface: Option<String>,
    /// Priority subtracted while down; FAULT when absent.
    #[serde(default, deserialize_with = "value::optional_track_weight")]
    pub weight: Option<u8>,
}

/// Where alerts are delivered.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// E-mail delivery; no mail when absent.
    #[serde(default)]
    pub email: Option<Email>,
}

/// E-mail alert settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// SMTP server host name.
    pub smtp_host: String,
    /// SMTP port (default by security: 587, 465, or 25).
    #[serde(default, deserialize_with = "value::optional_port")]
    pub smtp_port: Option<u16>,
    /// Transport security.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// SMTP AUTH user.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// CA bundle for the SMTP server's certificate (default: web PKI roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Events within this window go out as one mail.
    #[serde(default = "default_coalesce", deserialize_with = "value::duration")]
    pub coalesce: Duration,
    /// Most mails sent per hour; the rest are merged into the next one.
    #[serde(default = "default_max_per_hour", deserialize_with = "value::count")]
    pub max_per_hour: u32,
    /// Time allowed for one SMTP session.
    #[serde(default = "default_smtp_timeout", deserialize_with = "value::duration")]
    pub timeout: Duration,
}

fn default_coalesce() -> Duration {
    Duration::from_secs(10)
}

fn default_max_per_hour() -> u32 {
    20
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plaintext, upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption (local relays only).
    Plain,
}

/// A script run on state changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Program and arguments, run without a shell.
    pub command: Vec<String>,
    /// Only events of this VRRP instance.
    #[serde(default)]
    pub instance: Option<String>,
    /// Only events of this pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Killed after this long.
    #[serde(
        default = "default_notify_timeout",
        deserialize_with = "value::duration"
    )]
    pub timeout: Duration,
    /// Run as this user (default: the daemon's).
    #[serde(default)]
    pub user: Option<String>,
}

fn default_notify_timeout() -> Duration {
    Duration::from_secs(30)
}

impl TlsClientMode {
    /// The 32 bytes of `pin_sha256`, if set; an error in words if it is not
    /// 64 hex digits or the base64 of 32 bytes.
    pub fn pin(&self) -> Result<Option<[u8; 32]>, String> {
        self.pin_sha256.as_deref().map(parse_pin).transpose()
    }
}

/// Decodes a SHA-256 pin: hex or base64, optionally prefixed `sha256//`.
fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let text = text.trim();
    let text = text.strip_prefix("sha256//").unwrap_or(text);
    let bytes = if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        (0..32)
            .map(|index| u8::from_str_radix(&text[2 * index..2 * index + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|error| error.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "is neither 64 hex digits nor base64".to_owned())?
    };
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "decodes to {} bytes, not the 32 of a SHA-256 digest",
            bytes.len()
        )
    })
}

/// Quorum through etcd: a VRRP instance may be master, and a failover pool may promote,
/// only while this node holds its leader key (`vrrp/<instance>`, `failover/<pool>` under
/// `prefix`) under a live lease. A holder that cannot renew the lease lets go before the
/// TTL ends, by its own clock, so two nodes never act as leader at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    /// etcd client URLs: `http://10.0.0.5:2379`, or `https://` with `tls`.
    pub endpoints: Vec<String>,
    /// TLS to etcd (needed for `https://` endpoints).
    #[serde(default)]
    pub tls: Option<QuorumTls>,
    /// etcd user, when etcd has authentication on.
    #[serde(default)]
    pub user: Option<String>,
    /// The etcd user's password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Prefix of every key hafront writes.
    #[serde(default = "default_quorum_prefix")]
    pub prefix: String,
    /// Lease TTL, whole seconds from 1s to 10s. A crash failover waits for it; etcd may
    /// grant more (at least 1.5 election timeouts: 2s with etcd's defaults).
    #[serde(default = "default_quorum_ttl", deserialize_with = "value::duration")]
    pub ttl: Duration,
    /// The value of every key this node holds (default: `global.node`, else the host name).
    #[serde(default)]
    pub node_name: Option<String>,
    /// What a node does when etcd cannot be reached at all.
    #[serde(default)]
    pub on_quorum_loss: OnQuorumLoss,
}

fn default_quorum_prefix() -> String {
    "/hafront/".to_owned()
}

fn default_quorum_ttl() -> Duration {
    Duration::from_secs(2)
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumTls {
    /// CA bundle that signed etcd's certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (etcd's `--client-cert-auth`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate (not readable by group or others).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// What a node does when it cannot reach etcd at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnQuorumLoss {
    /// Let go of every leader key's role: no VIP, no writable primary, until etcd answers
    /// again. Never two leaders; an etcd outage is a service outage (Patroni's choice).
    #[default]
    Resign,
    /// Behave as plain VRRP (with an alert): the service stays up through an etcd
    /// outage, but a partition during one can give two VIP holders.
    Keep,
}
