//! Prometheus metrics: the figures of [`Status`] in the text exposition
//! format, served over HTTP at `/metrics` on `global.metrics`.
//!
//! The HTTP side is a minimal HTTP/1.1 responder (one GET per connection,
//! then close) rather than axum/hyper: a scrape endpoint needs nothing more,
//! and a dependency tree of that size is attack surface and build time the
//! daemon does not need. Likewise the exposition is written directly from
//! the status model rather than through a `prometheus-client` collector.
//! Measured with prometheus-client 0.24.1: a counter registered as
//! `hafront_vrrp_adverts_sent_total` is exposed as
//! `hafront_vrrp_adverts_sent_total_total`, and registered without the
//! suffix its `# HELP`/`# TYPE` lines lose `_total`
//! (`# TYPE hafront_vrrp_adverts_sent counter`); the text ends with `# EOF`.
//! Each would change the published families and what scrapers and dashboards
//! match. Like it, a family without samples keeps its `# HELP`/`# TYPE` lines. The values are typed ([`InstanceState`], [`ServerState`],
//! [`ServerRole`]), so a misspelt state does not compile.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::control::{
    ControlRequest, DirectServerStatus, InstanceState, Request, Response, ServerRole, ServerState,
    ServerStatus, Status, accept_bounded,
};

/// Largest request head read.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a scraper has to send its request and take the answer.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more are closed unanswered.
const MAX_CLIENTS: usize = 16;

/// A listening metrics endpoint; dropping it stops serving.
#[derive(Debug)]
pub struct MetricsServer {
    configured: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `address` and answers each scrape with the status the
    /// daemon's main loop reports through `requests`. Must be called within
    /// a Tokio runtime.
    pub async fn bind(
        address: SocketAddr,
        requests: mpsc::Sender<ControlRequest>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("metrics: cannot listen on {address}: {error}"),
            )
        })?;
        let configured = address;
        info!(address = %listener.local_addr()?, "metrics listening");
        let task = tokio::spawn(async move {
            accept_bounded(
                "metrics",
                MAX_CLIENTS,
                || listener.accept(),
                move |(stream, _)| serve(stream, requests.clone()),
            )
            .await;
        });
        Ok(MetricsServer { configured, task })
    }

    /// The address it was asked to listen on (as configured).
    pub fn configured_addr(&self) -> SocketAddr {
        self.configured
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, requests: mpsc::Sender<ControlRequest>) {
    let exchange = async {
        let head = read_head(&mut stream).await?;
        let response = respond(&head, &requests).await;
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!("metrics exchange failed: {error}"),
        Err(_) => debug!("metrics client too slow; closed"),
    }
}

/// Reads up to the blank line ending the request head.
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn respond(head: &str, requests: &mpsc::Sender<ControlRequest>) -> Vec<u8> {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return http(
            405,
            "Method Not Allowed",
            "text/plain",
            "GET only\n",
            method == "HEAD",
        );
    }
    if path != "/metrics" {
        return http(
            404,
            "Not Found",
            "text/plain",
            "metrics are at /metrics\n",
            false,
        );
    }
    let head_only = method == "HEAD";
    match crate::control::ask(Request::Status, requests).await {
        Response::Status(status) => http(
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(&status),
            head_only,
        ),
        Response::Error { message } => http(
            503,
            "Service Unavailable",
            "text/plain",
            &format!("{message}\n"),
            head_only,
        ),
        Response::Reload(_) | Response::Done { .. } => http(
            500,
            "Internal Server Error",
            "text/plain",
            "unexpected answer\n",
            head_only,
        ),
    }
}

fn http(code: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

/// The Prometheus text exposition of `status`: gauges and counters labelled
/// by instance, pool, server and relay.
pub fn render(status: &Status) -> String {
    let mut out = Exposition::default();

    out.family(
        "hafront_vrrp_state",
        "gauge",
        "1 for the instance's current VRRP state.",
    );
    for instance in &status.vrrp {
        for state in InstanceState::ALL {
            let value = u64::from(instance.state == state);
            out.sample(
                &[("instance", &instance.name), ("state", state.as_str())],
                value,
            );
        }
    }
    out.family(
        "hafront_vrrp_priority",
        "gauge",
        "Configured VRRP priority.",
    );
    for instance in &status.vrrp {
        out.sample(&[("instance", &instance.name)], instance.priority);
    }
    out.family(
        "hafront_vrrp_effective_priority",
        "gauge",
        "VRRP priority after tracking adjustments.",
    );
    for instance in &status.vrrp {
        out.sample(&[("instance", &instance.name)], instance.effective_priority);
    }
    out.family(
        "hafront_vrrp_adverts_sent_total",
        "counter",
        "VRRP adverts sent.",
    );
    for instance in &status.vrrp {
        out.sample(&[("instance", &instance.name)], instance.adverts_sent);
    }
    out.family(
        "hafront_vrrp_adverts_received_total",
        "counter",
        "VRRP adverts received and accepted.",
    );
    for instance in &status.vrrp {
        out.sample(&[("instance", &instance.name)], instance.adverts_received);
    }
    out.family(
        "hafront_vrrp_dropped_total",
        "counter",
        "VRRP packets dropped, by reason.",
    );
    for instance in &status.vrrp {
        for (reason, count) in &instance.dropped {
            out.sample(&[("instance", &instance.name), ("reason", reason)], *count);
        }
    }

    let servers = || {
        status
            .pools
            .iter()
            .flat_map(|pool| pool.servers.iter().map(move |server| (pool, server)))
    };
    out.family(
        "hafront_server_up",
        "gauge",
        "1 if the server is up, 0 if down or not decided yet.",
    );
    for (pool, server) in servers() {
        let address = server.address.to_string();
        let labels = [
            ("pool", pool.name.as_str()),
            ("server", &server.name),
            ("address", &address),
        ];
        out.sample(&labels, u64::from(server.status == ServerState::Up));
    }
    out.family(
        "hafront_server_primary",
        "gauge",
        "1 if the server's check reports it primary.",
    );
    for (pool, server) in servers() {
        let primary = server.role == Some(ServerRole::Primary);
        out.sample(
            &[("pool", &pool.name), ("server", &server.name)],
            u64::from(primary),
        );
    }
    for (name, help, flag) in [
        (
            "hafront_server_drained",
            "1 if an operator drained the server (no new clients).",
            (|server: &ServerStatus| server.drained) as fn(&ServerStatus) -> bool,
        ),
        (
            "hafront_server_fenced",
            "1 if failover fenced the server out of the write path.",
            |server: &ServerStatus| server.fenced,
        ),
    ] {
        out.family(name, "gauge", help);
        for (pool, server) in servers() {
            out.sample(
                &[("pool", &pool.name), ("server", &server.name)],
                u64::from(flag(server)),
            );
        }
    }
    out.family(
        "hafront_server_check_ok",
        "gauge",
        "1 if the server's last probe passed.",
    );
    for (pool, server) in servers() {
        if let Some(check) = &server.last_check {
            out.sample(
                &[("pool", &pool.name), ("server", &server.name)],
                u64::from(check.ok),
            );
        }
    }
    out.family(
        "hafront_server_check_latency_seconds",
        "gauge",
        "Duration of the server's last probe.",
    );
    for (pool, server) in servers() {
        if let Some(check) = &server.last_check {
            out.sample(
                &[("pool", &pool.name), ("server", &server.name)],
                check.latency_seconds,
            );
        }
    }
    out.family(
        "hafront_server_connections",
        "gauge",
        "Connections open to the server, over every relay.",
    );
    for (pool, server) in servers() {
        out.sample(
            &[("pool", &pool.name), ("server", &server.name)],
            server.active_connections,
        );
    }
    out.family(
        "hafront_server_connections_total",
        "counter",
        "Connections forwarded to the server, over every relay.",
    );
    for (pool, server) in servers() {
        out.sample(
            &[("pool", &pool.name), ("server", &server.name)],
            server.total_connections,
        );
    }

    out.family(
        "hafront_relay_connections",
        "gauge",
        "Clients connected to the relay.",
    );
    for relay in &status.relays {
        out.sample(&[("relay", &relay.name)], relay.active_connections);
    }
    out.family(
        "hafront_relay_connections_total",
        "counter",
        "Clients the relay forwarded.",
    );
    for relay in &status.relays {
        out.sample(&[("relay", &relay.name)], relay.total_connections);
    }
    out.family(
        "hafront_relay_bytes_total",
        "counter",
        "Bytes the relay forwarded, by direction.",
    );
    for relay in &status.relays {
        out.sample(
            &[("relay", &relay.name), ("direction", "client_to_server")],
            relay.client_to_server_bytes,
        );
        out.sample(
            &[("relay", &relay.name), ("direction", "server_to_client")],
            relay.server_to_client_bytes,
        );
    }
    out.family(
        "hafront_relay_refused_total",
        "counter",
        "Clients the relay closed unserved, by reason.",
    );
    for relay in &status.relays {
        let refused = relay.refused;
        out.sample(
            &[("relay", &relay.name), ("reason", "no_server")],
            refused.no_server,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "limit")],
            refused.limit,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "connect_failed")],
            refused.connect_failed,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "handshake")],
            refused.handshake,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "proxy_header")],
            refused.proxy_header,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "untrusted")],
            refused.untrusted,
        );
        out.sample(
            &[("relay", &relay.name), ("reason", "empty")],
            refused.empty,
        );
    }

    out.family(
        "hafront_direct_attached",
        "gauge",
        "1 while the direct-routing relay's services are live in its kernel program.",
    );
    for relay in &status.direct {
        out.sample(&[("relay", &relay.name)], u64::from(relay.attached));
    }
    for (family, help, figure) in [
        (
            "hafront_direct_packets_total",
            "Packets the direct-routing program sent to the server.",
            (|server| server.packets) as fn(&DirectServerStatus) -> u64,
        ),
        (
            "hafront_direct_bytes_total",
            "Bytes the direct-routing program sent to the server.",
            |server| server.bytes,
        ),
        (
            "hafront_direct_flows_total",
            "Flows the direct-routing program gave the server.",
            |server| server.flows,
        ),
    ] {
        out.family(family, "counter", help);
        for relay in &status.direct {
            for server in &relay.servers {
                out.sample(
                    &[("relay", &relay.name), ("server", &server.name)],
                    figure(server),
                );
            }
        }
    }

    out.family(
        "hafront_failover_steps_total",
        "counter",
        "Failover, switchover and rejoin steps taken, by pool and step.",
    );
    for (pool, topology) in &status.replication {
        for (step, count) in &topology.steps {
            out.sample(&[("pool", pool), ("step", step)], *count);
        }
    }
    out.family(
        "hafront_failover_blocked",
        "gauge",
        "1 while automatic failover of the pool waits for an acknowledgement of the last one.",
    );
    for (pool, topology) in &status.replication {
        out.sample(
            &[("pool", pool)],
            u64::from(topology.blocked_until.is_some()),
        );
    }
    out.family(
        "hafront_replication_lag_seconds",
        "gauge",
        "Seconds_Behind_Master of each replica, as failover last read it.",
    );
    for (pool, topology) in &status.replication {
        for server in &topology.servers {
            if let Some(lag) = server.lag_seconds {
                out.sample(&[("pool", pool), ("server", &server.name)], lag);
            }
        }
    }

    out.family(
        "hafront_alerts_queued_mails",
        "gauge",
        "Alert mails waiting for the SMTP server.",
    );
    out.sample(&[], status.alerts.queued_mails);
    out.family(
        "hafront_alerts_dropped_events_total",
        "counter",
        "Alert events dropped because the queue was full.",
    );
    out.sample(&[], status.alerts.dropped_events);

    if let Some(quorum) = &status.quorum {
        out.family(
            "hafront_quorum_reachable",
            "gauge",
            "1 while this node holds a live etcd lease.",
        );
        out.sample(&[], u64::from(quorum.reachable));
        out.family(
            "hafront_quorum_lease_seconds_left",
            "gauge",
            "How long the lease may still be acted on without a renewal.",
        );
        out.sample(&[], quorum.time_left_ms.unwrap_or(0) as f64 / 1000.0);
        out.family(
            "hafront_quorum_key_held",
            "gauge",
            "1 while this node holds the leader key.",
        );
        for key in &quorum.keys {
            out.sample(&[("key", &key.key)], u64::from(key.state == "held"));
        }
    }
    out.text
}

/// The text being written, one family after another.
#[derive(Default)]
struct Exposition {
    text: String,
    family: String,
}

impl Exposition {
    /// Starts a metric family with its `# HELP` and `# TYPE` lines; the samples that follow
    /// belong to it. A family without samples (no VRRP instance, no failover yet) keeps
    /// these lines, so every family is published by every daemon, and a dashboard or alert
    /// rule can be checked against any scrape.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        name.clone_into(&mut self.family);
    }

    /// One sample of the current family.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.text.push_str(&self.family);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{name}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = match value.into() {
            Value::Integer(value) => writeln!(self.text, " {value}"),
            Value::Float(value) => writeln!(self.text, " {value}"),
        };
    }
}

/// A sample value: counts exactly, measurements as floats.
enum Value {
    Integer(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Value::Integer(value)
    }
}

impl From<u8> for Value {
    fn from(value: u8) -> Self {
        Value::Integer(value.into())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

/// A label value with backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::control::{AlertsStatus, InstanceStatus};

    fn status_with_instance(name: &str) -> Status {
        Status {
            node: "n".to_owned(),
            pid: 1,
            config: "/etc/hafront/hafront.yaml".into(),
            started: SystemTime::UNIX_EPOCH,
            vrrp: vec![InstanceStatus {
                name: name.to_owned(),
                state: InstanceState::Master,
                priority: 150,
                effective_priority: 140,
                master: None,
                since: SystemTime::UNIX_EPOCH,
                adverts_sent: 12,
                adverts_received: 3,
                dropped: BTreeMap::from([("bad_ttl".to_owned(), 2)]),
            }],
            pools: Vec::new(),
            relays: Vec::new(),
            alerts: AlertsStatus {
                queued_mails: 4,
                dropped_events: 0,
            },
            replication: BTreeMap::from([(
                "db".to_owned(),
                hafront_failover::Topology {
                    primary: Some("db2".to_owned()),
                    acting: true,
                    blocked_until: Some(1_800_000_000),
                    last_failover: None,
                    servers: vec![hafront_failover::ServerReplication {
                        name: "db1".to_owned(),
                        lag_seconds: Some(3),
                        ..Default::default()
                    }],
                    steps: BTreeMap::from([("promoted".to_owned(), 1)]),
                },
            )]),
            quorum: Some(crate::control::QuorumView {
                reachable: true,
                lease_id: Some(7),
                granted_ttl_ms: Some(2000),
                time_left_ms: Some(1250),
                last_error: None,
                keys: vec![
                    crate::control::LeaderKey {
                        key: "vrrp/db".to_owned(),
                        state: "held".to_owned(),
                        holder: Some("n".to_owned()),
                    },
                    crate::control::LeaderKey {
                        key: "vrrp/web".to_owned(),
                        state: "held_by".to_owned(),
                        holder: Some("m".to_owned()),
                    },
                ],
            }),
            direct: vec![crate::control::DirectRelayStatus {
                name: "mysql-dr".to_owned(),
                pool: "db".to_owned(),
                interface: "eth0".to_owned(),
                hook: "xdp_generic".to_owned(),
                listen: vec!["10.0.0.100:3306".parse().unwrap()],
                attached: true,
                problem: None,
                servers: vec![DirectServerStatus {
                    name: "db1".to_owned(),
                    address: "10.0.0.11".parse().unwrap(),
                    local: false,
                    forwarding: true,
                    packets: 42,
                    bytes: 4200,
                    flows: 3,
                }],
            }],
        }
    }

    #[test]
    fn direct_routing_figures_are_labelled_by_relay_and_server() {
        let text = render(&status_with_instance("db"));
        for line in [
            "hafront_direct_attached{relay=\"mysql-dr\"} 1",
            "hafront_direct_packets_total{relay=\"mysql-dr\",server=\"db1\"} 42",
            "hafront_direct_bytes_total{relay=\"mysql-dr\",server=\"db1\"} 4200",
            "hafront_direct_flows_total{relay=\"mysql-dr\",server=\"db1\"} 3",
            "# TYPE hafront_direct_flows_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn vrrp_figures_are_labelled_by_instance() {
        let text = render(&status_with_instance("db"));
        for line in [
            "hafront_vrrp_state{instance=\"db\",state=\"master\"} 1",
            "hafront_vrrp_state{instance=\"db\",state=\"backup\"} 0",
            "hafront_vrrp_priority{instance=\"db\"} 150",
            "hafront_vrrp_effective_priority{instance=\"db\"} 140",
            "hafront_vrrp_adverts_sent_total{instance=\"db\"} 12",
            "hafront_vrrp_adverts_received_total{instance=\"db\"} 3",
            "hafront_vrrp_dropped_total{instance=\"db\",reason=\"bad_ttl\"} 2",
            "hafront_alerts_queued_mails 4",
            "# TYPE hafront_vrrp_adverts_sent_total counter",
            "hafront_failover_steps_total{pool=\"db\",step=\"promoted\"} 1",
            "hafront_failover_blocked{pool=\"db\"} 1",
            "hafront_replication_lag_seconds{pool=\"db\",server=\"db1\"} 3",
            "hafront_quorum_reachable 1",
            "hafront_quorum_lease_seconds_left 1.25",
            "hafront_quorum_key_held{key=\"vrrp/db\"} 1",
            "hafront_quorum_key_held{key=\"vrrp/web\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn families_without_samples_keep_their_help_and_type() {
        let mut status = status_with_instance("db");
        status.vrrp.clear();
        status.replication.clear();
        let text = render(&status);
        for (family, kind) in [
            ("hafront_vrrp_state", "gauge"),
            ("hafront_server_up", "gauge"),
            ("hafront_failover_steps_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n# HELP ")),
                "{family} without its lines, or with samples, in:\n{text}"
            );
        }
        assert!(
            text.contains(
                "# TYPE hafront_alerts_queued_mails gauge\nhafront_alerts_queued_mails 4\n"
            )
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(&status_with_instance("a\"b\\c\nd"));
        assert!(
            text.contains("hafront_vrrp_priority{instance=\"a\\\"b\\\\c\\nd\"} 150"),
            "{text}"
        );
    }
}
