//! The TCP relay against real TCP servers on 127.0.0.1 ephemeral ports.
//!
//! Each test server greets every connection with its name on one line,
//! echoes what it receives, and on the client's EOF answers `bye\n` and
//! closes: enough to see where a client landed, that bytes arrive intact
//! both ways, and that half-close works.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hafront::relay::{DataPath, Relay, RelayStats};
use hafront_config::{OnServerDown, Policy, RelayMode, Role};
use hafront_health::{HealthEvent, ServerHealth, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Upper bound for any single step; tests normally finish far sooner.
const STEP: Duration = Duration::from_secs(10);
const POOL: &str = "db";
const TRAILER: &[u8] = b"bye\n";

/// Runs `future` with the step time limit.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .expect("step took too long")
}

/// A test server: greets, echoes, says bye on EOF. Stops when dropped.
struct TestServer {
    name: String,
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(name: &str) -> TestServer {
        Self::start_on(name, "127.0.0.1:0").await
    }

    async fn start_on(name: &str, bind: &str) -> TestServer {
        let listener = TcpListener::bind(bind).await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let greeting = format!("{name}\n").into_bytes();
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let greeting = greeting.clone();
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.into_split();
                    if writer.write_all(&greeting).await.is_err() {
                        return;
                    }
                    if tokio::io::copy(&mut reader, &mut writer).await.is_err() {
                        return;
                    }
                    let _ = writer.write_all(TRAILER).await;
                    let _ = writer.shutdown().await;
                });
            }
        });
        TestServer {
            name: name.to_owned(),
            address,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn health(&self, weight: u32, backup: bool) -> Arc<ServerHealth> {
        health(&self.name, self.address, weight, backup)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Server state as the health monitor would publish it, starting up.
fn health(name: &str, address: SocketAddr, weight: u32, backup: bool) -> Arc<ServerHealth> {
    let server = hafront_config::Server {
        name: Some(name.to_owned()),
        address,
        weight,
        backup,
    };
    let health = Arc::new(ServerHealth::new(POOL, &server));
    health.set_status(Status::Up);
    health
}

/// A loopback address nothing listens on (connects are refused).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

fn config(policy: Policy) -> hafront_config::Relay {
    hafront_config::Relay {
        listen: vec!["127.0.0.1:0".parse().expect("address")],
        pool: POOL.to_owned(),
        policy,
        role: None,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1000,
        connect_attempts: 3,
        on_server_down: OnServerDown::Keep,
        mode: RelayMode::Plain,
        send_proxy: None,
        accept_proxy: false,
        accept_proxy_from: Vec::new(),
        forward: hafront_config::Forward::Proxy,
        hook: None,
    }
}

/// A started relay with the sender side of its health events.
struct Harness {
    relay: Relay,
    events: broadcast::Sender<HealthEvent>,
}

impl Harness {
    fn start(config: &hafront_config::Relay, pool: &[Arc<ServerHealth>]) -> Harness {
        Self::start_with(config, pool, DataPath::default())
    }

    fn start_with(
        config: &hafront_config::Relay,
        pool: &[Arc<ServerHealth>],
        data_path: DataPath,
    ) -> Harness {
        let (events, receiver) = broadcast::channel(16);
        let relay = Relay::start_with_data_path("test", config, pool.into(), receiver, data_path)
            .expect("relay starts");
        Harness { relay, events }
    }

    fn address(&self) -> SocketAddr {
        self.relay.local_addrs()[0]
    }

    fn stats(&self) -> RelayStats {
        self.relay.stats()
    }

    /// Connects through the relay and returns the stream and the greeting.
    async fn connect(&self) -> (TcpStream, String) {
        let mut stream = within(TcpStream::connect(self.address()))
            .await
            .expect("connect to relay");
        let name = within(read_line(&mut stream)).await;
        (stream, name)
    }

    /// Connects through the relay and returns which server answered.
    async fn land(&self) -> String {
        self.connect().await.1
    }

    /// Publishes a change of `server` as the health monitor would.
    fn publish(&self, server: &ServerHealth, old: Status) {
        let event = HealthEvent {
            pool: server.pool.clone(),
            server: server.name.clone(),
            address: server.address,
            old,
            new: server.status(),
            role: server.role(),
            reason: "test".to_owned(),
            at: SystemTime::now(),
        };
        // A relay that keeps connections on server down does not listen.
        let _ = self.events.send(event);
    }

    /// Waits until `condition` holds for the stats.
    async fn wait_for(&self, what: &str, condition: impl Fn(&RelayStats) -> bool) {
        let deadline = Instant::now() + STEP;
        while !condition(&self.stats()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reads one `\n`-terminated line (without it); empty at EOF.
async fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).await.expect("read") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).expect("utf-8")
}

/// Asserts the relay closes `stream` (EOF or reset) within `limit`.
async fn assert_closed_within(stream: &mut TcpStream, limit: Duration) {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(limit, stream.read(&mut buffer))
        .await
        .expect("connection still open");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected close, read {read:?}"
    );
}

fn tally(names: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

async fn land_many(harness: &Harness, count: usize) -> BTreeMap<String, usize> {
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        names.push(harness.land().await);
    }
    tally(names)
}

fn expected(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let servers = [
        TestServer::start("a").await,
        TestServer::start("b").await,
        TestServer::start("c").await,
    ];
    let pool: Vec<_> = servers.iter().map(|s| s.health(1, false)).collect();
    let harness = Harness::start(&config(Policy::RoundRobin), &pool);
    let counts = land_many(&harness, 300).await;
    assert_eq!(counts, expected(&[("a", 100), ("b", 100), ("c", 100)]));
    assert!(servers.iter().all(|s| s.accepted() == 100));
    let stats = harness.stats();
    assert_eq!(stats.total, 300);
    assert!(stats.servers.iter().all(|s| s.total == 100), "{stats:?}");
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let light = TestServer::start("light").await;
    let heavy = TestServer::start("heavy").await;
    let pool = [light.health(1, false), heavy.health(2, false)];
    let harness = Harness::start(&config(Policy::RoundRobin), &pool);
    let counts = land_many(&harness, 300).await;
    assert_eq!(counts, expected(&[("light", 100), ("heavy", 200)]));
}

#[tokio::test]
async fn least_connections_fills_the_emptiest_server() {
    let a = TestServer::start("a").await;
    let b = TestServer::start("b").await;
    let pool = [a.health(1, false), b.health(1, false)];
    let harness = Harness::start(&config(Policy::LeastConnections), &pool);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(harness.connect().await);
    }
    let spread = tally(held.iter().map(|(_, name)| name.clone()));
    assert_eq!(spread, expected(&[("a", 2), ("b", 2)]));
    held.retain(|(_, name)| name != "a");
    harness
        .wait_for("a's connections to close", |s| s.servers[0].active == 0)
        .await;
    assert_eq!(harness.land().await, "a");
    let (_kept, name) = harness.connect().await;
    assert_eq!(name, "a", "a has 0 open, b has 2");
    assert_eq!(harness.stats().servers[1].active, 2);
}

#[tokio::test]
async fn first_picks_the_first_up_server_and_follows_the_primary_role() {
    let one = TestServer::start("one").await;
    let two = TestServer::start("two").await;
    let pool = [one.health(1, false), two.health(1, false)];
    pool[0].set_role(Some(Role::Primary));
    pool[1].set_role(Some(Role::Replica));

    let first = Harness::start(&config(Policy::First), &pool);
    assert_eq!(land_many(&first, 5).await, expected(&[("one", 5)]));
    pool[0].set_status(Status::Down);
    assert_eq!(first.land().await, "two");
    pool[0].set_status(Status::Up);
    assert_eq!(first.land().await, "one");

    let writer = Harness::start(
        &hafront_config::Relay {
            role: Some(Role::Primary),
            ..config(Policy::First)
        },
        &pool,
    );
    assert_eq!(writer.land().await, "one");
    pool[0].set_role(Some(Role::Replica));
    pool[1].set_role(Some(Role::Primary));
    assert_eq!(land_many(&writer, 3).await, expected(&[("two", 3)]));
}

#[tokio::test]
async fn backup_servers_serve_only_while_the_others_are_down() {
    let main = TestServer::start("main").await;
    let spare = TestServer::start("spare").await;
    let pool = [spare.health(1, true), main.health(1, false)];
    let harness = Harness::start(&config(Policy::RoundRobin), &pool);
    assert_eq!(land_many(&harness, 4).await, expected(&[("main", 4)]));
    pool[1].set_status(Status::Down);
    assert_eq!(land_many(&harness, 2).await, expected(&[("spare", 2)]));
}

#[tokio::test]
async fn a_down_server_gets_no_new_connections() {
    let servers = [
        TestServer::start("a").await,
        TestServer::start("b").await,
        TestServer::start("c").await,
    ];
    let pool: Vec<_> = servers.iter().map(|s| s.health(1, false)).collect();
    pool[1].set_status(Status::Down);
    let harness = Harness::start(&config(Policy::RoundRobin), &pool);
    assert_eq!(
        land_many(&harness, 30).await,
        expected(&[("a", 15), ("c", 15)])
    );
    assert_eq!(servers[1].accepted(), 0);
    pool[1].set_status(Status::Unknown);
    assert_eq!(
        land_many(&harness, 4).await,
        expected(&[("a", 2), ("c", 2)])
    );
}

#[tokio::test]
async fn a_refused_connect_falls_through_to_the_next_server() {
    let good = TestServer::start("good").await;
    let pool = [
        health("dead", closed_port().await, 1, false),
        good.health(1, false),
    ];
    let harness = Harness::start(&config(Policy::First), &pool);
    assert_eq!(harness.land().await, "good");
    let stats = harness.stats();
    assert_eq!(stats.servers[0].connect_failures, 1);
    assert_eq!(stats.servers[0].total, 0);
    assert_eq!(stats.servers[1].total, 1);
    assert_eq!(stats.refused_connect_failed, 0);
}

#[tokio::test]
async fn connect_attempts_bound_the_servers_tried() {
    let good = TestServer::start("good").await;
    let pool = [
        health("dead1", closed_port().await, 1, false),
        health("dead2", closed_port().await, 1, false),
        good.health(1, false),
    ];
    let harness = Harness::start(
        &hafront_config::Relay {
            connect_attempts: 2,
            ..config(Policy::First)
        },
        &pool,
    );
    let mut client = within(TcpStream::connect(harness.address()))
        .await
        .expect("connect");
    assert_closed_within(&mut client, STEP).await;
    harness
        .wait_for("the refusal to be counted", |s| {
            s.refused_connect_failed == 1
        })
        .await;
    let stats = harness.stats();
    assert_eq!(stats.servers[0].connect_failures, 1);
    assert_eq!(stats.servers[1].connect_failures, 1);
    assert_eq!(good.accepted(), 0);
    assert_eq!(stats.total, 0);
}

#[tokio::test]
async fn no_server_up_closes_the_client_at_once() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    pool[0].set_status(Status::Down);
    let harness = Harness::start(&config(Policy::RoundRobin), &pool);
    let mut client = within(TcpStream::connect(harness.address()))
        .await
        .expect("connect");
    assert_closed_within(&mut client, Duration::from_secs(1)).await;
    harness
        .wait_for("the refusal to be counted", |s| s.refused_no_server == 1)
        .await;
    assert_eq!(a.accepted(), 0);
    harness
        .wait_for("the client to be released", |s| s.active == 0)
        .await;
}

/// A deterministic byte stream and its running checksum (FNV-1a).
struct Pattern {
    state: u64,
}

impl Pattern {
    fn new(seed: u64) -> Self {
        Pattern { state: seed | 1 }
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            // xorshift64
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
    }
}

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Sends `size` pattern bytes through the relay to an echo server, shuts
/// down writing, and checks the greeting, the echoed bytes and the trailer
/// sent after the half-close.
async fn transfer_and_check(harness: &Harness, size: usize) {
    let (stream, greeting) = harness.connect().await;
    assert_eq!(greeting, "echo");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let mut pattern = Pattern::new(size as u64);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut hash = FNV_OFFSET;
        let mut left = size;
        while left > 0 {
            let chunk = left.min(buffer.len());
            pattern.fill(&mut buffer[..chunk]);
            hash = fnv1a(hash, &buffer[..chunk]);
            writer.write_all(&buffer[..chunk]).await.expect("send");
            left -= chunk;
        }
        writer.shutdown().await.expect("half-close");
        // Keep the write half alive (not dropped) until the reader is done.
        (hash, writer)
    });
    let mut received = Vec::with_capacity(64 * 1024);
    let mut hash = FNV_OFFSET;
    let mut total = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer).await.expect("receive");
        if read == 0 {
            break;
        }
        // Hash everything but a possible trailer straddling the end.
        received.extend_from_slice(&buffer[..read]);
        let settled = received.len().saturating_sub(TRAILER.len());
        hash = fnv1a(hash, &received[..settled]);
        total += settled;
        received.drain(..settled);
    }
    let (sent_hash, _writer) = within(sender).await.expect("sender");
    assert_eq!(received, TRAILER, "trailer after half-close");
    assert_eq!(total, size, "echoed byte count");
    assert_eq!(hash, sent_hash, "echoed bytes intact");
}

async fn check_data_path(data_path: DataPath) {
    let echo = TestServer::start("echo").await;
    let pool = [echo.health(1, false)];
    let harness = Harness::start_with(&config(Policy::RoundRobin), &pool, data_path);
    let large = 64 << 20;
    within(transfer_and_check(&harness, 5)).await;
    within(transfer_and_check(&harness, large)).await;
    harness
        .wait_for("both connections to end", |s| s.active == 0)
        .await;
    let stats = harness.stats();
    let greeting_and_trailer = ("echo\n".len() + TRAILER.len()) as u64;
    assert_eq!(stats.client_to_server_bytes, (large + 5) as u64);
    assert_eq!(
        stats.server_to_client_bytes,
        (large + 5) as u64 + 2 * greeting_and_trailer
    );
    assert_eq!(stats.servers[0].client_to_server_bytes, (large + 5) as u64);
    let expected_copied = match data_path {
        DataPath::Splice => 0,
        DataPath::Copy => 2,
    };
    assert_eq!(stats.copied, expected_copied, "{stats:?}");
}

#[tokio::test]
async fn splice_moves_bytes_intact_with_half_close() {
    check_data_path(DataPath::Splice).await;
}

#[tokio::test]
async fn copy_fallback_moves_bytes_intact_with_half_close() {
    check_data_path(DataPath::Copy).await;
}

#[tokio::test]
async fn max_connections_refuses_the_excess() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let harness = Harness::start(
        &hafront_config::Relay {
            max_connections: 2,
            ..config(Policy::RoundRobin)
        },
        &pool,
    );
    let first = harness.connect().await;
    let second = harness.connect().await;
    let mut excess = within(TcpStream::connect(harness.address()))
        .await
        .expect("excess client is accepted");
    assert_closed_within(&mut excess, Duration::from_secs(1)).await;
    harness
        .wait_for("the refusal to be counted", |s| s.refused_limit == 1)
        .await;
    assert_eq!(a.accepted(), 2);
    drop(first);
    harness.wait_for("a free slot", |s| s.active == 1).await;
    assert_eq!(harness.land().await, "a");
    drop(second);
}

/// A listener that accepts nothing and whose queue is full, so further
/// connects hang (the kernel drops their SYNs), plus the clients filling it.
async fn saturated_listener() -> (socket2::Socket, SocketAddr, Vec<TcpStream>) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&loopback.into()).expect("bind");
    socket.listen(0).expect("listen");
    let address = socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(address)).await {
            Ok(connected) => fillers.push(connected.expect("filler connects")),
            Err(_) => return (socket, address, fillers),
        }
    }
    panic!("listen queue never filled");
}

#[tokio::test]
async fn connect_timeout_moves_on_to_the_next_server() {
    let (_listener, stuck, _fillers) = saturated_listener().await;
    let good = TestServer::start("good").await;
    let pool = [health("stuck", stuck, 1, false), good.health(1, false)];
    let timeout = Duration::from_millis(200);
    let harness = Harness::start(
        &hafront_config::Relay {
            connect_timeout: timeout,
            ..config(Policy::First)
        },
        &pool,
    );
    let started = Instant::now();
    assert_eq!(harness.land().await, "good");
    assert!(started.elapsed() >= timeout, "waited for the stuck server");
    assert_eq!(harness.stats().servers[0].connect_failures, 1);
}

#[tokio::test]
async fn idle_timeout_closes_the_connection() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let idle = Duration::from_millis(800);
    let harness = Harness::start(
        &hafront_config::Relay {
            idle_timeout: idle,
            ..config(Policy::RoundRobin)
        },
        &pool,
    );
    let (mut client, _) = harness.connect().await;
    // Traffic more often than the timeout keeps the connection open past it.
    let started = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(idle / 4).await;
        client.write_all(b"ping\n").await.expect("send");
        assert_eq!(within(read_line(&mut client)).await, "ping");
    }
    assert!(started.elapsed() > idle);
    let quiet_since = Instant::now();
    assert_closed_within(&mut client, Duration::from_secs(5)).await;
    assert!(quiet_since.elapsed() >= idle - Duration::from_millis(50));
    harness
        .wait_for("the connection to end", |s| s.active == 0)
        .await;
}

#[tokio::test]
async fn on_server_down_close_closes_open_connections() {
    let a = TestServer::start("a").await;
    let b = TestServer::start("b").await;
    let pool = [a.health(1, false), b.health(1, false)];
    let harness = Harness::start(
        &hafront_config::Relay {
            on_server_down: OnServerDown::Close,
            ..config(Policy::First)
        },
        &pool,
    );
    let (mut on_a, _) = harness.connect().await;
    pool[0].set_status(Status::Down);
    harness.publish(&pool[0], Status::Up);
    assert_closed_within(&mut on_a, Duration::from_secs(2)).await;
    assert_eq!(
        harness.land().await,
        "b",
        "reconnect lands on a healthy server"
    );
    harness
        .wait_for("a's connection to end", |s| s.servers[0].active == 0)
        .await;
}

#[tokio::test]
async fn on_server_down_keep_leaves_open_connections() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let harness = Harness::start(&config(Policy::First), &pool);
    let (mut client, _) = harness.connect().await;
    pool[0].set_status(Status::Down);
    harness.publish(&pool[0], Status::Up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"still there\n").await.expect("send");
    assert_eq!(within(read_line(&mut client)).await, "still there");
}

#[tokio::test]
async fn a_demoted_primary_loses_its_clients_on_a_write_relay() {
    let one = TestServer::start("one").await;
    let two = TestServer::start("two").await;
    let pool = [one.health(1, false), two.health(1, false)];
    pool[0].set_role(Some(Role::Primary));
    pool[1].set_role(Some(Role::Replica));
    let harness = Harness::start(
        &hafront_config::Relay {
            role: Some(Role::Primary),
            on_server_down: OnServerDown::Close,
            ..config(Policy::First)
        },
        &pool,
    );
    let (mut writer, name) = harness.connect().await;
    assert_eq!(name, "one");
    // A replica's role change does not touch the primary's clients.
    harness.publish(&pool[1], Status::Up);
    pool[1].set_role(Some(Role::Primary));
    pool[0].set_role(Some(Role::Replica));
    harness.publish(&pool[0], Status::Up);
    assert_closed_within(&mut writer, Duration::from_secs(2)).await;
    assert_eq!(harness.land().await, "two");
}

#[tokio::test]
async fn events_of_other_pools_are_ignored() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let harness = Harness::start(
        &hafront_config::Relay {
            on_server_down: OnServerDown::Close,
            ..config(Policy::First)
        },
        &pool,
    );
    let (mut client, _) = harness.connect().await;
    let other = ServerHealth::new(
        "another-pool",
        &hafront_config::Server {
            name: Some("a".to_owned()),
            address: a.address,
            weight: 1,
            backup: false,
        },
    );
    other.set_status(Status::Down);
    harness.publish(&other, Status::Up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"unaffected\n").await.expect("send");
    assert_eq!(within(read_line(&mut client)).await, "unaffected");
}

#[tokio::test]
async fn lost_events_recheck_every_server() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let harness = Harness::start(
        &hafront_config::Relay {
            on_server_down: OnServerDown::Close,
            ..config(Policy::First)
        },
        &pool,
    );
    let (mut client, _) = harness.connect().await;
    pool[0].set_status(Status::Down);
    // More events than the channel holds, none about `a`, sent without
    // yielding: the relay's receiver lags and must recheck every server.
    let other = health("other", closed_port().await, 1, false);
    for _ in 0..64 {
        harness.publish(&other, Status::Down);
    }
    assert_closed_within(&mut client, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn relays_over_ipv6_and_ipv4_listeners_at_once() {
    let server = TestServer::start_on("v6", "[::1]:0").await;
    let harness = Harness::start(
        &hafront_config::Relay {
            listen: vec![
                "[::1]:0".parse().expect("address"),
                "127.0.0.1:0".parse().expect("address"),
            ],
            ..config(Policy::RoundRobin)
        },
        &[server.health(1, false)],
    );
    for &address in harness.relay.local_addrs() {
        let mut client = within(TcpStream::connect(address)).await.expect("connect");
        assert_eq!(within(read_line(&mut client)).await, "v6", "via {address}");
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn stop_closes_listeners_and_lets_connections_drain() {
    let a = TestServer::start("a").await;
    let pool = [a.health(1, false)];
    let mut harness = Harness::start(&config(Policy::First), &pool);
    let address = harness.address();
    let (mut client, _) = harness.connect().await;
    harness.relay.stop().await;
    let refused = TcpStream::connect(address).await;
    assert!(refused.is_err(), "listener still open after stop");
    client.write_all(b"draining\n").await.expect("send");
    assert_eq!(within(read_line(&mut client)).await, "draining");
    drop(client);
    harness
        .wait_for("the connection to drain", |s| s.active == 0)
        .await;
}

#[tokio::test]
async fn replacing_the_pool_keeps_listeners_and_open_connections() {
    let old = TestServer::start("old").await;
    let new = TestServer::start("new").await;
    let harness = Harness::start(&config(Policy::RoundRobin), &[old.health(1, false)]);
    let (mut kept, name) = harness.connect().await;
    assert_eq!(name, "old");
    let shared = old.health(1, false);
    harness
        .relay
        .replace_pool(vec![new.health(1, false), shared].into());
    assert_eq!(
        land_many(&harness, 4).await,
        expected(&[("new", 2), ("old", 2)])
    );
    kept.write_all(b"still here\n").await.expect("send");
    assert_eq!(within(read_line(&mut kept)).await, "still here");
    harness
        .wait_for("only the kept connection to remain", |s| s.active == 1)
        .await;
    let stats = harness.stats();
    assert_eq!(stats.servers[1].name, "old");
    assert_eq!(stats.servers[1].total, 3, "counters kept across the reload");
    assert_eq!(stats.servers[1].active, 1);
}

#[tokio::test]
async fn a_reload_keeps_closing_connections_of_servers_that_go_down() {
    let a = TestServer::start("a").await;
    let harness = Harness::start(
        &hafront_config::Relay {
            on_server_down: OnServerDown::Close,
            ..config(Policy::First)
        },
        &[a.health(1, false)],
    );
    let (mut client, _) = harness.connect().await;
    // The reload builds new health state for the same server.
    let reloaded = a.health(1, false);
    harness
        .relay
        .replace_pool(vec![Arc::clone(&reloaded)].into());
    reloaded.set_status(Status::Down);
    harness.publish(&reloaded, Status::Up);
    assert_closed_within(&mut client, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn listens_on_an_address_this_node_does_not_hold_yet() {
    let harness = Harness::start(
        &hafront_config::Relay {
            listen: vec!["10.213.255.254:0".parse().expect("address")],
            ..config(Policy::RoundRobin)
        },
        &[],
    );
    assert_eq!(harness.address().ip().to_string(), "10.213.255.254");
}

#[tokio::test]
async fn an_unbindable_address_fails_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = taken.local_addr().expect("address");
    let (_events, receiver) = broadcast::channel(1);
    let result = Relay::start(
        "test",
        &hafront_config::Relay {
            listen: vec![address],
            ..config(Policy::RoundRobin)
        },
        Vec::new().into(),
        receiver,
    );
    let error = result.err().expect("address in use");
    assert!(error.to_string().contains(&address.to_string()), "{error}");
}
