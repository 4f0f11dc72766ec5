//! The PROXY protocol through relays, against a real MariaDB that trusts
//! headers from loopback (`proxy_protocol_networks`): with `send_proxy`
//! the server sees the client's own address (in the process list, and for
//! host-restricted accounts); with `accept_proxy` the address a proxy in
//! front of the relay names, while clients without a valid header, or not
//! on `accept_proxy_from`, are closed unserved. The exit of a spiped pair
//! sends its header too, naming the entry, and a `tls_server` relay takes
//! a header sent in the clear before the TLS handshake.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafront::relay::Relay;
use hafront::relay::proxy_protocol::{self, Header, Version};
use hafront_config::{ProxyVersion, RelayMode};
use hafront_health::{ServerHealth, Status};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use support::{MariaDb, relay_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Upper bound for any single step; tests normally finish far sooner.
const STEP: Duration = Duration::from_secs(20);
/// The loopback address the client connects from.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);
/// A loopback address `accept_proxy_from` does not list.
const UNTRUSTED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 66);
const PASSWORD: &str = "proxy-secret";

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .expect("step took too long")
}

/// A MariaDB that takes PROXY headers from 127.0.0.0/8, with the account
/// `client`@`127.0.0.77`, `relay`@`127.0.0.1` (which a proxied client must
/// not get) and `far`@`192.0.2.10`.
async fn mariadb() -> MariaDb {
    let server = MariaDb::start().await;
    server
        .execute_all(&[
            "SET GLOBAL proxy_protocol_networks = '127.0.0.0/8'",
            &format!("CREATE USER 'client'@'{CLIENT_IP}' IDENTIFIED BY '{PASSWORD}'"),
            &format!("CREATE USER 'relay'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'"),
            &format!("CREATE USER 'far'@'192.0.2.10' IDENTIFIED BY '{PASSWORD}'"),
        ])
        .await;
    server
}

/// A relay to `server` with `config`, kept with its event sender.
struct Started {
    relay: Relay,
    _events: broadcast::Sender<hafront_health::HealthEvent>,
}

impl Started {
    fn start(config: hafront_config::Relay, server: SocketAddr) -> Started {
        let (events, receiver) = broadcast::channel(16);
        let health = Arc::new(ServerHealth::new(
            "db",
            &hafront_config::Server {
                name: Some("db".into()),
                address: server,
                weight: 1,
                backup: false,
            },
        ));
        health.set_status(Status::Up);
        let relay =
            Relay::start("proxied", &config, vec![health].into(), receiver).expect("relay starts");
        Started {
            relay,
            _events: events,
        }
    }

    fn address(&self) -> SocketAddr {
        self.relay.local_addrs()[0]
    }
}

/// Stands between a MySQL client and a relay: connects to the relay from
/// `source` and writes `prefix` (a PROXY header, or nothing) before the
/// client's bytes. Remembers the local address of each connection it made.
struct Forwarder {
    address: SocketAddr,
    used: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Forwarder {
    async fn start(relay: SocketAddr, source: Ipv4Addr, prefix: Vec<u8>) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let used = Arc::new(Mutex::new(Vec::new()));
        let used_by_task = Arc::clone(&used);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let socket = TcpSocket::new_v4().expect("socket");
                socket
                    .bind(SocketAddr::new(source.into(), 0))
                    .expect("bind the client's address");
                let Ok(mut upstream) = socket.connect(relay).await else {
                    continue;
                };
                used_by_task
                    .lock()
                    .expect("lock")
                    .push(upstream.local_addr().expect("address"));
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    if upstream.write_all(&prefix).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Forwarder {
            address,
            used,
            task,
        }
    }

    /// The local address of the last connection made to the relay.
    fn last_used(&self) -> SocketAddr {
        *self
            .used
            .lock()
            .expect("lock")
            .last()
            .expect("a connection")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Logs in as `user` at `address`.
async fn login(address: SocketAddr, user: &str) -> Result<Conn, mysql_async::Error> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(address.ip().to_string())
        .tcp_port(address.port())
        .user(Some(user))
        .pass(Some(PASSWORD))
        .prefer_socket(false);
    within(Conn::new(opts)).await
}

/// The client address the server sees for `conn` (`HOST` of the process list).
async fn seen_host(conn: &mut Conn) -> String {
    conn.query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .await
        .expect("process list")
        .expect("this connection's row")
}

fn access_denied(result: Result<Conn, mysql_async::Error>) -> bool {
    matches!(result, Err(mysql_async::Error::Server(error)) if error.code == 1045)
}

async fn send_proxy_shows_the_client_address(version: ProxyVersion) {
    let server = mariadb().await;
    let mut config = relay_config(RelayMode::Plain);
    config.send_proxy = Some(version);
    let relay = Started::start(config, server.address());
    let forwarder = Forwarder::start(relay.address(), CLIENT_IP, Vec::new()).await;

    let mut conn = login(forwarder.address, "client")
        .await
        .expect("the account for 127.0.0.77 logs in through the relay");
    assert_eq!(
        seen_host(&mut conn).await,
        forwarder.last_used().to_string()
    );
    conn.disconnect().await.expect("disconnect");

    assert!(
        access_denied(login(forwarder.address, "relay").await),
        "an account for the relay's address must not match a proxied client"
    );
    // Without the relay, from loopback: that account works, so only the
    // header made the difference.
    let mut direct = login(server.address(), "relay")
        .await
        .expect("the relay's account logs in directly");
    assert!(seen_host(&mut direct).await.starts_with("127.0.0.1:"));
    direct.disconnect().await.expect("disconnect");
}

#[tokio::test]
async fn send_proxy_v1_shows_mariadb_the_client_address() {
    send_proxy_shows_the_client_address(ProxyVersion::V1).await;
}

#[tokio::test]
async fn send_proxy_v2_shows_mariadb_the_client_address() {
    send_proxy_shows_the_client_address(ProxyVersion::V2).await;
}

fn far_client(port: u16, relay: SocketAddr) -> Header {
    Header::Proxy {
        source: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), port),
        destination: relay,
    }
}

#[tokio::test]
async fn accept_proxy_passes_the_header_address_on_and_refuses_the_rest() {
    let server = mariadb().await;
    let mut config = relay_config(RelayMode::Plain);
    config.accept_proxy = true;
    config.accept_proxy_from = vec!["127.0.0.1/32".parse().expect("network")];
    config.send_proxy = Some(ProxyVersion::V2);
    let relay = Started::start(config.clone(), server.address());
    config.send_proxy = Some(ProxyVersion::V1);
    let relay_v1 = Started::start(config, server.address());
    let localhost = Ipv4Addr::LOCALHOST;

    // A v1 header in, v2 out; a v2 header in, v1 out.
    for (inbound, relay, port) in [
        (Version::V1, &relay, 40001),
        (Version::V2, &relay_v1, 40002),
    ] {
        let header = proxy_protocol::encode(inbound, &far_client(port, relay.address()));
        let proxy = Forwarder::start(relay.address(), localhost, header).await;
        let mut conn = login(proxy.address, "far")
            .await
            .unwrap_or_else(|error| panic!("{inbound:?} header: the far account logs in: {error}"));
        assert_eq!(seen_host(&mut conn).await, format!("192.0.2.10:{port}"));
        conn.disconnect().await.expect("disconnect");
    }

    // LOCAL (a proxy's health check): the connection's own address applies.
    let local = proxy_protocol::encode(Version::V2, &Header::Local);
    let proxy = Forwarder::start(relay.address(), localhost, local).await;
    let mut conn = login(proxy.address, "relay").await.expect("LOCAL header");
    assert_eq!(seen_host(&mut conn).await, proxy.last_used().to_string());
    conn.disconnect().await.expect("disconnect");
    let stats = relay.relay.stats();
    assert_eq!(
        (stats.refused_proxy_header, stats.refused_untrusted),
        (0, 0)
    );

    // A TCP health check of the listener: closed without a byte, only counted.
    drop(
        within(TcpStream::connect(relay.address()))
            .await
            .expect("connect"),
    );
    support::wait_for("the empty client counted", STEP, || async {
        relay.relay.stats().empty == 1
    })
    .await;

    // Garbage instead of a header: closed at once, nothing forwarded.
    let mut garbage = within(TcpStream::connect(relay.address()))
        .await
        .expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("send");
    let mut rest = Vec::new();
    let read = within(garbage.read_to_end(&mut rest)).await;
    assert!(read.is_err() || rest.is_empty(), "got {rest:?}");
    assert_eq!(relay.relay.stats().refused_proxy_header, 1);

    // A MySQL client straight to the relay sends no header: it never gets
    // the server's greeting and is closed when the header's time is up.
    assert!(login(relay.address(), "relay").await.is_err());
    let stats = relay.relay.stats();
    assert_eq!(stats.refused_proxy_header, 2);

    // A valid header from a peer not on accept_proxy_from.
    let header = proxy_protocol::encode(Version::V1, &far_client(40003, relay.address()));
    let untrusted = Forwarder::start(relay.address(), UNTRUSTED_IP, header).await;
    assert!(login(untrusted.address, "far").await.is_err());
    let stats = relay.relay.stats();
    assert_eq!((stats.refused_untrusted, stats.total), (1, 2));
}

/// Reads from `stream` until it holds a PROXY header and `after` more
/// bytes; returns the header and those bytes.
async fn read_header_and(stream: &mut TcpStream, after: usize) -> (Header, Vec<u8>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if let Some((header, length)) = proxy_protocol::parse(&received).expect("a PROXY header")
            && received.len() >= length + after
        {
            return (header, received[length..].to_vec());
        }
        let read = within(stream.read(&mut chunk)).await.expect("read");
        assert!(read > 0, "closed after {received:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn a_spiped_exit_sends_the_entry_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("link.key");
    std::fs::write(&key_file, [7u8; 32]).expect("write key");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let spiped = hafront_config::SpipedMode {
        key_file,
        forward_secrecy: false,
        handshake_timeout: Duration::from_secs(5),
    };
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut exit_config = relay_config(RelayMode::SpipedDecrypt(spiped.clone()));
    exit_config.send_proxy = Some(ProxyVersion::V1);
    let exit = Started::start(exit_config, server.local_addr().expect("address"));
    let entry = Started::start(
        relay_config(RelayMode::SpipedEncrypt(spiped)),
        exit.address(),
    );

    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(CLIENT_IP.into(), 0))
        .expect("bind the client's address");
    let mut client = within(socket.connect(entry.address()))
        .await
        .expect("connect");
    client.write_all(b"hello").await.expect("send");
    let (mut accepted, _) = within(server.accept()).await.expect("accept");
    let (header, rest) = read_header_and(&mut accepted, 5).await;
    assert_eq!(rest, b"hello");
    let Header::Proxy {
        source,
        destination,
    } = header
    else {
        panic!("a PROXY header with addresses, not {header:?}");
    };
    // The exit knows the entry's address, not the client's.
    assert_eq!(source.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(destination, exit.address());
}

/// A self-signed certificate for `db.test` and its key, made by openssl,
/// in `dir`: (certificate, key).
fn self_signed_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=db.test",
            "-addext",
            "subjectAltName=DNS:db.test",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (in test.sh's packages)");
    assert!(status.success(), "openssl req failed");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    (cert, key)
}

/// A proxy in front of a `tls_server` relay sends its header in the clear
/// before the TLS handshake, as HAProxy does; the relay takes it, then the
/// handshake, and passes the address on.
#[tokio::test]
async fn a_tls_server_relay_takes_the_header_before_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = self_signed_certificate(dir.path());
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut exit_config = relay_config(RelayMode::TlsServer(hafront_config::TlsServerMode {
        cert_file: cert_file.clone(),
        key_file,
        client_ca_file: None,
        handshake_timeout: Duration::from_secs(5),
    }));
    exit_config.accept_proxy = true;
    exit_config.send_proxy = Some(ProxyVersion::V2);
    let exit = Started::start(exit_config, server.local_addr().expect("address"));
    let header = proxy_protocol::encode(Version::V1, &far_client(40004, exit.address()));
    let proxy = Forwarder::start(exit.address(), Ipv4Addr::LOCALHOST, header).await;
    let entry = Started::start(
        relay_config(RelayMode::TlsClient(hafront_config::TlsClientMode {
            ca_file: Some(cert_file),
            pin_sha256: None,
            server_name: "db.test".into(),
            cert_file: None,
            key_file: None,
            handshake_timeout: Duration::from_secs(5),
        })),
        proxy.address,
    );

    let mut client = within(TcpStream::connect(entry.address()))
        .await
        .expect("connect");
    client.write_all(b"hello").await.expect("send");
    let (mut accepted, _) = within(server.accept()).await.expect("accept");
    let (header, rest) = read_header_and(&mut accepted, 5).await;
    assert_eq!(rest, b"hello");
    assert_eq!(header, far_client(40004, exit.address()));
}

/// A header that arrives in pieces is put together; the client's bytes
/// after it are not taken with it.
#[tokio::test]
async fn a_header_in_pieces_is_put_together() {
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = relay_config(RelayMode::Plain);
    config.accept_proxy = true;
    config.send_proxy = Some(ProxyVersion::V1);
    let relay = Started::start(config, server.local_addr().expect("address"));
    for version in [Version::V1, Version::V2] {
        let sent = far_client(40005, relay.address());
        let mut bytes = proxy_protocol::encode(version, &sent);
        bytes.extend_from_slice(b"hello");
        let mut client = within(TcpStream::connect(relay.address()))
            .await
            .expect("connect");
        client.set_nodelay(true).expect("nodelay");
        for piece in [&bytes[..10], &bytes[10..20], &bytes[20..]] {
            client.write_all(piece).await.expect("send");
            // Apart, so that they arrive as separate segments.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (mut accepted, _) = within(server.accept()).await.expect("accept");
        let (header, rest) = read_header_and(&mut accepted, 5).await;
        assert_eq!((header, rest.as_slice()), (sent, b"hello".as_slice()));
    }
}
