//! Encrypted relays against real peers on 127.0.0.1 ephemeral ports:
//! hafront spiped pairs, TLS pairs (with stunnel as the other end where
//! installed), and gateways (with tokens made by `openssl enc`), plus the
//! bad inputs each must refuse without forwarding anything and while
//! serving other clients.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use hafront::relay::gateway;
use hafront::relay::{Relay, spiped};
use hafront_config::{GatewayMode, RelayMode, Secret, SpipedMode, TlsClientMode, TlsServerMode};
use hafront_health::{ServerHealth, Status};
use ring::hmac;
use support::{EchoServer, assert_echoed, relay_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Upper bound for any single step; tests normally finish far sooner.
const STEP: Duration = Duration::from_secs(15);
const POOL: &str = "db";

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .expect("step took too long")
}

fn health(address: SocketAddr) -> Arc<ServerHealth> {
    let server = hafront_config::Server {
        name: Some(format!("server-{address}")),
        address,
        weight: 1,
        backup: false,
    };
    let health = Arc::new(ServerHealth::new(POOL, &server));
    health.set_status(Status::Up);
    health
}

/// A relay in `mode` forwarding to `servers`, with its event sender kept.
struct Started {
    relay: Relay,
    /// The relay's servers, in the order given, to change their health.
    pool: Vec<Arc<ServerHealth>>,
    _events: broadcast::Sender<hafront_health::HealthEvent>,
}

impl Started {
    fn address(&self) -> SocketAddr {
        self.relay.local_addrs()[0]
    }
}

fn start(mode: RelayMode, servers: &[SocketAddr]) -> Started {
    try_start(mode, servers).expect("relay starts")
}

fn try_start(mode: RelayMode, servers: &[SocketAddr]) -> std::io::Result<Started> {
    try_start_with(relay_config(mode), servers)
}

fn try_start_with(
    config: hafront_config::Relay,
    servers: &[SocketAddr],
) -> std::io::Result<Started> {
    let (events, receiver) = broadcast::channel(16);
    let pool: Vec<Arc<ServerHealth>> = servers.iter().copied().map(health).collect();
    let relay = Relay::start("test", &config, pool.clone().into(), receiver)?;
    Ok(Started {
        relay,
        pool,
        _events: events,
    })
}

/// Writes a file only its owner can read.
fn private_file(path: &Path, content: &[u8]) -> PathBuf {
    std::fs::write(path, content).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.to_owned()
}

/// Handshake deadline of the spiped relays: short, so that the stalled
/// handshake test is quick, but ample for a loaded test machine.
const SPIPED_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

fn spiped_mode(key_file: &Path, forward_secrecy: bool) -> SpipedMode {
    SpipedMode {
        key_file: key_file.to_owned(),
        forward_secrecy,
        handshake_timeout: SPIPED_HANDSHAKE_TIMEOUT,
    }
}

/// Bytes that show a reordering or a lost chunk.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// Sends `payload` through `address`, half-closes, and returns everything
/// read back until EOF (or the error that ended it).
async fn round_trip(address: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let stream = within(TcpStream::connect(address)).await?;
    let (mut reader, mut writer) = stream.into_split();
    let payload = payload.to_vec();
    let sending = tokio::spawn(async move {
        writer.write_all(&payload).await?;
        writer.shutdown().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let read = within(reader.read_to_end(&mut received)).await;
    let _writer = sending.await.expect("sender task");
    read.map(|_| received)
}

/// Reads until EOF or error; returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match within(stream.read(&mut buffer)).await {
            Ok(0) | Err(_) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

// ---------------------------------------------------------------- spiped

/// A hafront spiped pair in front of an echo server: plaintext clients ->
/// encrypt relay -> decrypt relay -> echo server.
struct SpipedPair {
    echo: EchoServer,
    decrypt: Started,
    encrypt: Started,
    _dir: tempfile::TempDir,
}

impl SpipedPair {
    async fn start(encrypt_pfs: bool, decrypt_pfs: bool) -> SpipedPair {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = private_file(&dir.path().join("key"), &pattern(32));
        let echo = EchoServer::start().await;
        let decrypt = start(
            RelayMode::SpipedDecrypt(spiped_mode(&key, decrypt_pfs)),
            &[echo.address],
        );
        let encrypt = start(
            RelayMode::SpipedEncrypt(spiped_mode(&key, encrypt_pfs)),
            &[decrypt.address()],
        );
        SpipedPair {
            echo,
            decrypt,
            encrypt,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn hafront_spiped_pair_relays_bulk_data_both_ways_with_half_close() {
    let pair = SpipedPair::start(true, true).await;
    // Sizes around packet boundaries, and a bulk transfer.
    for size in [1, 1023, 1024, 1025, 5000, 3 * 1024 * 1024] {
        let payload = pattern(size);
        let received = round_trip(pair.encrypt.address(), &payload)
            .await
            .expect("relayed");
        assert_echoed(&received, &payload);
    }
    let stats = pair.decrypt.relay.stats();
    assert_eq!(stats.total, 6);
    assert!(
        stats.client_to_server_bytes >= 3 * 1024 * 1024,
        "plaintext bytes counted"
    );
}

#[tokio::test]
async fn hafront_spiped_pair_without_forward_secrecy_on_either_side() {
    for (encrypt_pfs, decrypt_pfs) in [(false, false), (false, true), (true, false)] {
        let pair = SpipedPair::start(encrypt_pfs, decrypt_pfs).await;
        let payload = pattern(70_000);
        let received = round_trip(pair.encrypt.address(), &payload)
            .await
            .expect("relayed");
        assert_echoed(&received, &payload);
    }
}

#[tokio::test]
async fn many_spiped_clients_at_once() {
    let pair = SpipedPair::start(true, true).await;
    let clients: Vec<_> = (0..20)
        .map(|index| {
            let address = pair.encrypt.address();
            tokio::spawn(async move {
                let payload = pattern(10_000 + index * 997);
                let received = round_trip(address, &payload).await.expect("relayed");
                assert_echoed(&received, &payload);
            })
        })
        .collect();
    for client in clients {
        within(client).await.expect("client task");
    }
    assert_eq!(pair.echo.accepted(), 20);
}

#[tokio::test]
async fn a_wrong_spiped_key_forwards_nothing_and_the_relay_serves_others() {
    let pair = SpipedPair::start(true, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong_key = private_file(&dir.path().join("wrong"), &[0x5a; 32]);
    let impostor = start(
        RelayMode::SpipedEncrypt(spiped_mode(&wrong_key, true)),
        &[pair.decrypt.address()],
    );
    let received = round_trip(impostor.address(), b"secret request").await;
    assert!(
        received.as_deref().unwrap_or_default().is_empty(),
        "nothing comes back: {received:?}"
    );
    assert_eq!(pair.echo.accepted(), 0, "the server was never contacted");
    let payload = pattern(4096);
    let received = round_trip(pair.encrypt.address(), &payload)
        .await
        .expect("relayed");
    assert_echoed(&received, &payload);
}

/// Sends the client's nonce and reads the server's; returns the client's
/// handshake MAC key, derived as spiped does.
async fn spiped_client_prelude(stream: &mut TcpStream, key_material: &[u8]) -> [u8; 32] {
    let client_nonce = [0x11u8; 32];
    stream.write_all(&client_nonce).await.expect("send nonce");
    let mut server_nonce = [0u8; 32];
    within(stream.read_exact(&mut server_nonce))
        .await
        .expect("server nonce");
    let key = ring::digest::digest(&ring::digest::SHA256, key_material);
    let mut salt = client_nonce.to_vec();
    salt.extend_from_slice(&server_nonce);
    let mut derived = [0u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::MIN,
        &salt,
        key.as_ref(),
        &mut derived,
    );
    derived[..32].try_into().expect("32 bytes")
}

fn dh_message(mac_key: &[u8; 32], value: &[u8; 256]) -> Vec<u8> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, mac_key), value);
    [&value[..], tag.as_ref()].concat()
}

#[tokio::test]
async fn a_peer_value_not_below_the_prime_is_refused() {
    let pair = SpipedPair::start(true, true).await;
    let key_material = pattern(32);

    // Control: y = 1 with a correct MAC is answered with the server's value.
    let mut stream = TcpStream::connect(pair.decrypt.address())
        .await
        .expect("connect");
    let mac_key = spiped_client_prelude(&mut stream, &key_material).await;
    let mut one = [0u8; 256];
    one[255] = 1;
    stream
        .write_all(&dh_message(&mac_key, &one))
        .await
        .expect("send y");
    let mut answer = [0u8; spiped::DH_MESSAGE_LEN];
    within(stream.read_exact(&mut answer))
        .await
        .expect("server answers a valid value");

    // y = 2^2048 - 1 >= p, authentic: closed without an answer.
    let mut stream = TcpStream::connect(pair.decrypt.address())
        .await
        .expect("connect");
    let mac_key = spiped_client_prelude(&mut stream, &key_material).await;
    stream
        .write_all(&dh_message(&mac_key, &[0xff; 256]))
        .await
        .expect("send y");
    assert!(read_until_closed(&mut stream).await.is_empty(), "no answer");
    assert_eq!(pair.echo.received(), 0);
}

#[tokio::test]
async fn garbage_truncated_and_stalled_handshakes_are_closed() {
    let pair = SpipedPair::start(true, true).await;

    // Garbage: a nonce, then 288 bytes with a wrong MAC.
    let mut stream = TcpStream::connect(pair.decrypt.address())
        .await
        .expect("connect");
    stream.write_all(&[7u8; 32 + 288]).await.expect("send");
    let mut server_nonce = [0u8; 32];
    within(stream.read_exact(&mut server_nonce))
        .await
        .expect("nonce");
    assert!(
        read_until_closed(&mut stream).await.is_empty(),
        "garbage refused"
    );

    // Truncated: half a nonce, then EOF.
    let mut stream = TcpStream::connect(pair.decrypt.address())
        .await
        .expect("connect");
    stream.write_all(&[7u8; 16]).await.expect("send");
    stream.shutdown().await.expect("half-close");
    let received = read_until_closed(&mut stream).await;
    assert_eq!(received.len(), 32, "only the server's nonce");

    // Stalled: nothing sent; closed at the handshake deadline, before the
    // server spends a nonce on it.
    let started = Instant::now();
    let mut stream = TcpStream::connect(pair.decrypt.address())
        .await
        .expect("connect");
    let received = read_until_closed(&mut stream).await;
    let waited = started.elapsed();
    assert!(received.is_empty(), "nothing sent: {received:?}");
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "closed at the deadline, after {waited:?}"
    );

    assert_eq!(pair.echo.accepted(), 0, "no bad client reached the server");
    assert_eq!(pair.decrypt.relay.stats().refused_handshake, 3);
    let payload = pattern(2000);
    let received = round_trip(pair.encrypt.address(), &payload)
        .await
        .expect("relayed");
    assert_echoed(&received, &payload);
}

/// A TCP proxy that flips one bit of the client-to-server stream at
/// `offset`, to play an attacker on the wire.
async fn tampering_proxy(target: SocketAddr, offset: usize) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut client_reader, mut client_writer) = client.into_split();
                let (mut server_reader, mut server_writer) = server.into_split();
                let upstream = async {
                    let mut buffer = vec![0u8; 16 * 1024];
                    let mut position = 0;
                    loop {
                        let read = client_reader.read(&mut buffer).await.unwrap_or(0);
                        if read == 0 {
                            break;
                        }
                        if (position..position + read).contains(&offset) {
                            buffer[offset - position] ^= 0x01;
                        }
                        position += read;
                        if server_writer.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_writer.shutdown().await;
                };
                let downstream = async {
                    let _ = tokio::io::copy(&mut server_reader, &mut client_writer).await;
                    let _ = client_writer.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (address, task)
}

#[tokio::test]
async fn a_flipped_byte_in_flight_closes_the_connection() {
    let pair = SpipedPair::start(true, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = private_file(&dir.path().join("key"), &pattern(32));
    // In the handshake (the client's DH message), then in the first packet.
    for offset in [32 + 100, 32 + 288 + 500] {
        let (proxy, proxy_task) = tampering_proxy(pair.decrypt.address(), offset).await;
        let encrypt = start(RelayMode::SpipedEncrypt(spiped_mode(&key, true)), &[proxy]);
        let received = round_trip(encrypt.address(), &pattern(3000)).await;
        assert!(
            received.as_deref().unwrap_or_default().is_empty(),
            "offset {offset}: nothing comes back"
        );
        proxy_task.abort();
    }
    assert_eq!(
        pair.echo.received(),
        0,
        "no tampered byte reached the server"
    );
    let payload = pattern(3000);
    let received = round_trip(pair.encrypt.address(), &payload)
        .await
        .expect("relayed");
    assert_echoed(&received, &payload);
}

#[tokio::test]
async fn idle_spiped_connections_are_closed() {
    let pair = SpipedPair::start(true, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = private_file(&dir.path().join("key"), &pattern(32));
    let mut config = relay_config(RelayMode::SpipedEncrypt(spiped_mode(&key, true)));
    config.idle_timeout = Duration::from_millis(300);
    let encrypt = try_start_with(config, &[pair.decrypt.address()]).expect("relay starts");
    let mut stream = TcpStream::connect(encrypt.address())
        .await
        .expect("connect");
    stream.write_all(b"ping").await.expect("send");
    let mut echoed = [0u8; 4];
    within(stream.read_exact(&mut echoed)).await.expect("echo");
    assert_eq!(&echoed, b"ping");
    let started = Instant::now();
    assert!(
        read_until_closed(&mut stream).await.is_empty(),
        "closed, no trailer"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn key_files_open_to_others_or_too_short_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = EchoServer::start().await;
    let open = private_file(&dir.path().join("open"), &pattern(32));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let short = private_file(&dir.path().join("short"), &pattern(31));
    for (path, expected) in [
        (&open, "accessible by group or others"),
        (&short, "holds 31 bytes"),
    ] {
        let error = try_start(
            RelayMode::SpipedDecrypt(spiped_mode(path, true)),
            &[echo.address],
        )
        .err()
        .expect("refused");
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

// ---------------------------------------------------------------- processes

/// A peer program started by a test: killed by PID on drop (and by the
/// kernel if the test process dies first).
struct Peer {
    child: std::process::Child,
}

impl Peer {
    fn spawn(mut command: Command, log: &Path) -> Peer {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(log).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        Peer {
            child: command.spawn().expect("spawn peer"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free at the time of asking, for programs that cannot
/// report the port they bound.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Waits until something accepts on `address`.
async fn wait_listening(address: SocketAddr, log: &Path) {
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(address).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {address}; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run(program: &str, arguments: &[&str], directory: &Path) {
    let output = Command::new(program)
        .args(arguments)
        .current_dir(directory)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{program} {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------- TLS

const SERVER_NAME: &str = "db.test";

/// A private CA with a server certificate for `db.test` and a client
/// certificate, made by openssl in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hafront test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run("openssl", &ca, path);
        for (name, usage, serial) in [("server", "serverAuth", "2"), ("client", "clientAuth", "3")]
        {
            let (key, csr, pem, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            std::fs::write(
                path.join(&ext),
                format!("subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage={usage}\n"),
            )
            .expect("extensions");
            let subject = format!("/CN={name}");
            let mut request = vec!["req"];
            request.extend(ec);
            request.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            run("openssl", &request, path);
            run(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    serial,
                    "-days",
                    "2",
                    "-out",
                    &pem,
                    "-extfile",
                    &ext,
                ],
                path,
            );
            std::fs::set_permissions(path.join(&key), std::fs::Permissions::from_mode(0o600))
                .expect("chmod key");
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_mode(&self, mutual: bool) -> TlsServerMode {
        TlsServerMode {
            cert_file: self.file("server.pem"),
            key_file: self.file("server.key"),
            client_ca_file: mutual.then(|| self.file("ca.pem")),
            handshake_timeout: Duration::from_secs(2),
        }
    }

    fn client_mode(&self, with_certificate: bool, server_name: &str) -> TlsClientMode {
        TlsClientMode {
            ca_file: Some(self.file("ca.pem")),
            pin_sha256: None,
            server_name: server_name.to_owned(),
            cert_file: with_certificate.then(|| self.file("client.pem")),
            key_file: with_certificate.then(|| self.file("client.key")),
            handshake_timeout: Duration::from_secs(2),
        }
    }
}

#[tokio::test]
async fn hafront_tls_pair_with_client_certificates() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let server = start(RelayMode::TlsServer(pki.server_mode(true)), &[echo.address]);
    let client = start(
        RelayMode::TlsClient(pki.client_mode(true, SERVER_NAME)),
        &[server.address()],
    );
    for size in [1, 16 * 1024 + 1, 2 * 1024 * 1024] {
        let payload = pattern(size);
        let received = round_trip(client.address(), &payload)
            .await
            .expect("relayed");
        assert_echoed(&received, &payload);
    }
}

#[tokio::test]
async fn tls_peers_failing_verification_reach_no_server() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let mutual = start(RelayMode::TlsServer(pki.server_mode(true)), &[echo.address]);
    let no_certificate = start(
        RelayMode::TlsClient(pki.client_mode(false, SERVER_NAME)),
        &[mutual.address()],
    );
    let wrong_name = start(
        RelayMode::TlsClient(pki.client_mode(true, "other.test")),
        &[mutual.address()],
    );
    for relay in [&no_certificate, &wrong_name] {
        let received = round_trip(relay.address(), b"hello").await;
        assert!(
            received.as_deref().unwrap_or_default().is_empty(),
            "{received:?}"
        );
    }
    // Plaintext to a TLS server is refused too.
    let mut plain = TcpStream::connect(mutual.address()).await.expect("connect");
    plain.write_all(b"PING\r\n").await.expect("send");
    let answer = read_until_closed(&mut plain).await;
    assert!(!answer.windows(4).any(|w| w == b"PING"), "not echoed");
    assert_eq!(echo.accepted(), 0, "no unverified peer reached the server");
    // The relay counts a refusal once the handshake has failed, which the peer may see
    // (the connection closing) first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while mutual.relay.stats().refused_handshake < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(mutual.relay.stats().refused_handshake, 3);
}

/// The self-signed certificate most people make, exactly so: `openssl req
/// -x509` marks it a CA (basicConstraints CA:TRUE), valid 30 days.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let subject = format!("/CN={name}");
    let alt_name = format!("subjectAltName=DNS:{name}");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &subject,
            "-addext",
            &alt_name,
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
        dir,
    );
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600))
        .expect("chmod key");
    (dir.join(cert), dir.join(key))
}

/// The SHA-256 pin of a certificate's key, by the openssl pipeline the
/// README gives.
fn openssl_pin(certificate: &Path) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        )
        .arg("pin")
        .arg(certificate)
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("base64")
        .trim()
        .to_owned()
}

fn tls_server_mode(cert_file: &Path, key_file: &Path) -> TlsServerMode {
    TlsServerMode {
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        client_ca_file: None,
        handshake_timeout: Duration::from_secs(2),
    }
}

fn tls_client_mode(
    ca_file: Option<&Path>,
    pin: Option<String>,
    server_name: &str,
) -> TlsClientMode {
    TlsClientMode {
        ca_file: ca_file.map(Path::to_owned),
        pin_sha256: pin,
        server_name: server_name.to_owned(),
        cert_file: None,
        key_file: None,
        handshake_timeout: Duration::from_secs(2),
    }
}

/// Sends a payload through a `tls_client` relay in `mode` to a `tls_server`
/// relay with `cert_file` and `key_file` in front of an echo server, and
/// whether it came back (the echo server is never reached otherwise).
async fn tls_pair_echoes(cert_file: &Path, key_file: &Path, mode: TlsClientMode) -> bool {
    let echo = EchoServer::start().await;
    let server = start(
        RelayMode::TlsServer(tls_server_mode(cert_file, key_file)),
        &[echo.address],
    );
    let client = start(RelayMode::TlsClient(mode), &[server.address()]);
    let payload = pattern(100_000);
    let received = round_trip(client.address(), &payload)
        .await
        .unwrap_or_default();
    if received.is_empty() {
        assert_eq!(echo.accepted(), 0, "an untrusted server got no plaintext");
        return false;
    }
    assert_echoed(&received, &payload);
    true
}

#[tokio::test]
async fn a_self_signed_certificate_named_in_ca_file_is_trusted_as_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "db.example");
    let (other, _) = self_signed(dir.path(), "other.example");
    assert!(
        tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(Some(&cert), None, "db.example")
        )
        .await,
        "the very certificate in ca_file is trusted"
    );
    // Its name is still checked, and another self-signed certificate (even
    // in the same ca_file) does not vouch for it.
    assert!(
        !tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(Some(&cert), None, "other.example")
        )
        .await
    );
    assert!(
        !tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(Some(&other), None, "db.example")
        )
        .await
    );
}

#[tokio::test]
async fn a_pinned_key_is_trusted_without_a_ca_and_another_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "db.example");
    let (other, _) = self_signed(dir.path(), "other.example");
    let pin = openssl_pin(&cert);
    let hex_pin: String = base64::engine::general_purpose::STANDARD
        .decode(&pin)
        .expect("base64 pin")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for pin in [pin.clone(), format!("sha256//{pin}"), hex_pin] {
        assert!(
            tls_pair_echoes(
                &cert,
                &key,
                tls_client_mode(None, Some(pin.clone()), "db.example")
            )
            .await,
            "pin {pin}"
        );
    }
    // A pin and a ca_file must both agree.
    assert!(
        tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(Some(&cert), Some(pin.clone()), "db.example")
        )
        .await
    );
    assert!(
        !tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(None, Some(openssl_pin(&other)), "db.example")
        )
        .await
    );
    assert!(
        !tls_pair_echoes(
            &cert,
            &key,
            tls_client_mode(None, Some(pin), "other.example")
        )
        .await
    );
}

#[tokio::test]
async fn the_documented_certificate_recipe_makes_a_working_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tls-certs.sh");
    let directory = dir.path().to_str().expect("utf-8 path");
    run(
        script.to_str().expect("utf-8 path"),
        &["db.example", directory],
        dir.path(),
    );
    let file = |name: &str| dir.path().join(name);
    assert!(
        tls_pair_echoes(
            &file("db.example.pem"),
            &file("db.example.key"),
            tls_client_mode(Some(&file("ca.pem")), None, "db.example"),
        )
        .await
    );
    // The CA vouches for the name it signed, not another.
    assert!(
        !tls_pair_echoes(
            &file("db.example.pem"),
            &file("db.example.key"),
            tls_client_mode(Some(&file("ca.pem")), None, "other.example"),
        )
        .await
    );
}

fn stunnel(config: &str, dir: &Path, name: &str) -> Peer {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, config).expect("stunnel config");
    let mut command = Command::new("stunnel4");
    command.arg(&path);
    Peer::spawn(command, &dir.join(format!("{name}.log")))
}

#[tokio::test]
async fn stunnel_client_to_hafront_tls_server() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let server = start(RelayMode::TlsServer(pki.server_mode(true)), &[echo.address]);
    let port = free_port();
    let config = format!(
        "foreground = yes\npid =\ndebug = 5\n[client]\nclient = yes\naccept = 127.0.0.1:{port}\n\
         connect = {}\nCAfile = {}\nverifyChain = yes\ncheckHost = {SERVER_NAME}\n\
         cert = {}\nkey = {}\nsslVersionMin = TLSv1.2\n",
        server.address(),
        pki.file("ca.pem").display(),
        pki.file("client.pem").display(),
        pki.file("client.key").display(),
    );
    let _stunnel = stunnel(&config, pki.dir.path(), "client");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    wait_listening(address, &pki.file("client.log")).await;
    let payload = pattern(300_000);
    let received = round_trip(address, &payload).await.expect("relayed");
    assert_echoed(&received, &payload);
}

#[tokio::test]
async fn hafront_tls_client_to_stunnel_server() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let port = free_port();
    let config = format!(
        "foreground = yes\npid =\ndebug = 5\n[server]\naccept = 127.0.0.1:{port}\n\
         connect = {}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\n",
        echo.address,
        pki.file("server.pem").display(),
        pki.file("server.key").display(),
        pki.file("ca.pem").display(),
    );
    let _stunnel = stunnel(&config, pki.dir.path(), "server");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    wait_listening(address, &pki.file("server.log")).await;
    let client = start(
        RelayMode::TlsClient(pki.client_mode(true, SERVER_NAME)),
        &[address],
    );
    let payload = pattern(300_000);
    let received = round_trip(client.address(), &payload)
        .await
        .expect("relayed");
    assert_echoed(&received, &payload);
}

#[tokio::test]
async fn hafront_tls_client_trusts_a_stunnel_server_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "db.example");
    let echo = EchoServer::start().await;
    let port = free_port();
    let config = format!(
        "foreground = yes\npid =\ndebug = 5\n[server]\naccept = 127.0.0.1:{port}\n\
         connect = {}\ncert = {}\nkey = {}\n",
        echo.address,
        cert.display(),
        key.display(),
    );
    let _stunnel = stunnel(&config, dir.path(), "server");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    wait_listening(address, &dir.path().join("server.log")).await;
    let client = start(
        RelayMode::TlsClient(tls_client_mode(Some(&cert), None, "db.example")),
        &[address],
    );
    let payload = pattern(300_000);
    let received = round_trip(client.address(), &payload)
        .await
        .expect("relayed");
    assert_echoed(&received, &payload);
}

// ---------------------------------------------------------------- gateway

const GATEWAY_SECRET: &str = "correct horse battery staple";

fn gateway_mode(allow: &[&str]) -> GatewayMode {
    GatewayMode {
        secret: Secret::Value(GATEWAY_SECRET.to_owned()),
        allow: allow
            .iter()
            .map(|net| net.parse().expect("network"))
            .collect(),
        handshake_timeout: Duration::from_millis(500),
    }
}

/// A token made by the openssl command line with `digest` as the KDF hash.
fn openssl_token(address: SocketAddr, digest: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-a", "-A", "-salt", "-md", digest])
        .arg("-pass")
        .arg(format!("pass:{GATEWAY_SECRET}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        address.to_string().as_bytes(),
    )
    .expect("write address");
    let output = child.wait_with_output().expect("openssl output");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("base64")
        .trim()
        .to_owned()
}

/// Sends `request` to the gateway, then the payload, half-closes, and
/// returns everything received until EOF.
async fn gateway_exchange(gateway: SocketAddr, request: &[u8]) -> Vec<u8> {
    round_trip(gateway, request).await.unwrap_or_default()
}

#[tokio::test]
async fn gateway_relays_to_the_server_an_openssl_token_names() {
    let echo = EchoServer::start().await;
    let gateway = start(
        RelayMode::Gateway(gateway_mode(&["127.0.0.0/8"])),
        &[echo.address],
    );
    for digest in ["md5", "sha256"] {
        let token = openssl_token(echo.address, digest);
        // Early data after the newline is forwarded first; CRLF is tolerated.
        let request = [token.as_bytes(), b"\r\n", &pattern(100_000)].concat();
        let received = gateway_exchange(gateway.address(), &request).await;
        assert_eq!(&received[..3], b"200", "{digest}");
        assert_echoed(&received[3..], &pattern(100_000));
    }
}

#[tokio::test]
async fn gateway_token_made_by_hafront_matches_openssl() {
    let token =
        gateway::encrypt_address(GATEWAY_SECRET.as_bytes(), "127.0.0.1:6379").expect("token");
    let mut child = Command::new("openssl")
        .args(["enc", "-d", "-aes-256-cbc", "-a", "-A", "-md", "md5"])
        .arg("-pass")
        .arg(format!("pass:{GATEWAY_SECRET}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), token.as_bytes())
        .expect("write token");
    let output = child.wait_with_output().expect("openssl output");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"127.0.0.1:6379");
}

#[tokio::test]
async fn gateway_refuses_bad_requests_with_a_status_and_keeps_serving() {
    let echo = EchoServer::start().await;
    let other = EchoServer::start().await;
    let down = EchoServer::start().await;
    let closed = support::closed_address();
    // `other` is allowed but not in the pool; `down` is in the pool but down.
    let gateway = start(
        RelayMode::Gateway(gateway_mode(&["127.0.0.1/32"])),
        &[echo.address, down.address, closed],
    );
    gateway.pool[1].set_status(Status::Down);
    let token = |address: SocketAddr| {
        gateway::encrypt_address(GATEWAY_SECRET.as_bytes(), &address.to_string()).expect("token")
    };
    let not_allowed: SocketAddr = format!("127.0.0.2:{}", echo.address.port())
        .parse()
        .expect("address");
    let wrong_secret =
        gateway::encrypt_address(b"wrong", &echo.address.to_string()).expect("token");
    let line = |token: String| format!("{token}\n").into_bytes();
    // A token that does not decrypt and one naming a server not served get
    // the same answer: the status is no oracle for the secret.
    let cases: [(&str, Vec<u8>, &[u8]); 8] = [
        ("garbage", b"hello world\n".to_vec(), b"401"),
        ("wrong secret", line(wrong_secret), b"401"),
        ("not allowed", line(token(not_allowed)), b"401"),
        ("not in the pool", line(token(other.address)), b"401"),
        ("server down", line(token(down.address)), b"401"),
        ("no newline", token(echo.address).into_bytes(), b"400"),
        ("too long", vec![b'A'; 5000], b"400"),
        ("connect refused", line(token(closed)), b"502"),
    ];
    for (case, request, status) in cases {
        let received = gateway_exchange(gateway.address(), &request).await;
        assert_eq!(received, status, "{case}");
    }
    // A stalled client gets 400 at the deadline.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(gateway.address())
        .await
        .expect("connect");
    assert_eq!(read_until_closed(&mut stalled).await, b"400");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A client that closes without a byte (a TCP check) gets no answer.
    let mut empty = TcpStream::connect(gateway.address())
        .await
        .expect("connect");
    empty.shutdown().await.expect("half-close");
    assert_eq!(read_until_closed(&mut empty).await, b"");

    assert_eq!(echo.accepted(), 0, "no refused request reached a server");
    assert_eq!(other.accepted() + down.accepted(), 0);
    let stats = gateway.relay.stats();
    assert_eq!(stats.refused_handshake, 8, "all but connect refused");
    assert_eq!(stats.refused_connect_failed, 1);
    assert_eq!(stats.empty, 1);
    assert_eq!(stats.servers[2].connect_failures, 1);
}

#[tokio::test]
async fn gateway_counts_the_bytes_sent_with_the_request_line() {
    let echo = EchoServer::start().await;
    let gateway = start(
        RelayMode::Gateway(gateway_mode(&["127.0.0.1/32"])),
        &[echo.address],
    );
    let token = gateway::encrypt_address(GATEWAY_SECRET.as_bytes(), &echo.address.to_string())
        .expect("token");
    // One write: the payload arrives in the same segment as the token line.
    let request = [token.as_bytes(), b"\n", b"ping"].concat();
    let received = gateway_exchange(gateway.address(), &request).await;
    assert_eq!(received, b"200pingbye\n");
    support::wait_for("the gateway's byte counts", STEP, || {
        let stats = gateway.relay.stats();
        async move {
            let server = &stats.servers[0];
            (
                stats.total,
                stats.client_to_server_bytes,
                stats.server_to_client_bytes,
            ) == (1, 4, 8)
                && (
                    server.total,
                    server.client_to_server_bytes,
                    server.server_to_client_bytes,
                ) == (1, 4, 8)
        }
    })
    .await;
}

#[tokio::test]
async fn gateway_token_command_uses_the_configured_secret_and_allow_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = private_file(&dir.path().join("secret"), b"from a file\n");
    let config = dir.path().join("hafront.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  state_dir: {state}\n  control_socket: {state}/control.sock\n\
             checks:\n  port: {{kind: tcp}}\n\
             pools:\n  db:\n    check: port\n    servers: [{{address: 10.1.0.5:3306}}]\n\
             relays:\n  front:\n    listen: [127.0.0.1:0]\n    pool: db\n    mode:\n      \
             kind: gateway\n      secret: {{file: {secret}}}\n      allow: [10.1.0.0/24]\n",
            state = dir.path().display(),
            secret = secret.display(),
        ),
    )
    .expect("config");
    let token = gateway::gateway_token(&config, None, "10.1.0.5:3306").expect("token");
    assert_eq!(
        gateway::decrypt_address(b"from a file", token.as_bytes()),
        Ok("10.1.0.5:3306".parse().expect("address"))
    );
    let refused = gateway::gateway_token(&config, None, "10.2.0.5:3306").expect_err("refused");
    assert!(refused.contains("allow-list"), "{refused}");
    let outside_pool = gateway::gateway_token(&config, None, "10.1.0.6:3306").expect_err("refused");
    assert!(
        outside_pool.contains("not a server of pool db"),
        "{outside_pool}"
    );
    let unknown =
        gateway::gateway_token(&config, Some("back"), "10.1.0.5:3306").expect_err("refused");
    assert!(unknown.contains("no gateway relay named back"), "{unknown}");
    let not_an_address =
        gateway::gateway_token(&config, None, "db.example:3306").expect_err("refused");
    assert!(
        not_an_address.contains("not an ip:port"),
        "{not_an_address}"
    );
}

// ---------------------------------------------------------------- daemon logs

/// How often `text` occurs in `log`.
fn occurrences(log: &str, text: &str) -> usize {
    log.lines().filter(|line| line.contains(text)).count()
}

#[tokio::test]
async fn tcp_checks_of_a_tls_listener_are_counted_not_logged_and_failures_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "db.example");
    let (other, _) = self_signed(dir.path(), "other.example");
    let echo = EchoServer::start().await;
    let port = |_| SocketAddr::from(([127, 0, 0, 1], free_port()));
    let [tls, metrics, wrong_name, not_trusted, wrong_pin] = [0; 5].map(port);
    let config = dir.path().join("hafront.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  node: tls-test\n  state_dir: {state}\n  control_socket: {state}/control.sock\n  \
             metrics: {metrics}\n\
             checks:\n  port: {{kind: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}}\n\
             pools:\n  echo: {{check: port, servers: [{{address: {echo}}}]}}\n  \
             tls: {{check: port, servers: [{{address: {tls}}}]}}\n\
             relays:\n  \
             tls: {{listen: [{tls}], pool: echo, mode: {{kind: tls_server, cert_file: {cert}, key_file: {key}}}}}\n  \
             wrong-name: {{listen: [{wrong_name}], pool: tls, mode: {{kind: tls_client, ca_file: {cert}, server_name: other.example}}}}\n  \
             not-trusted: {{listen: [{not_trusted}], pool: tls, mode: {{kind: tls_client, ca_file: {other}, server_name: db.example}}}}\n  \
             wrong-pin: {{listen: [{wrong_pin}], pool: tls, mode: {{kind: tls_client, pin_sha256: '{pin}', server_name: db.example}}}}\n",
            state = dir.path().display(),
            echo = echo.address,
            cert = cert.display(),
            key = key.display(),
            other = other.display(),
            pin = openssl_pin(&other),
        ),
    )
    .expect("config");
    let daemon = support::HafrontRun::spawn(&config, dir.path().join("daemon.log"), &[]);
    let refused = |reason: &str| {
        let series = format!("hafront_relay_refused_total{{relay=\"tls\",reason=\"{reason}\"}}");
        std::net::TcpStream::connect(metrics)
            .ok()
            .map(|_| support::sample(&support::scrape(metrics), &series))
    };
    // The checks of the TLS listener open and close connections without a byte.
    support::wait_for("three empty connections counted", STEP, || async {
        refused("empty").is_some_and(|empty| empty >= 3.0)
    })
    .await;
    for relay in [wrong_name, not_trusted, wrong_pin] {
        let received = round_trip(relay, b"hello").await;
        assert!(
            received.as_deref().unwrap_or_default().is_empty(),
            "{received:?}"
        );
    }
    support::wait_for("three failed handshakes counted", STEP, || async {
        refused("handshake").is_some_and(|failed| failed >= 3.0)
    })
    .await;
    assert_eq!(
        echo.received(),
        0,
        "no byte went through an untrusted server"
    );

    let log = daemon.log();
    assert_eq!(
        occurrences(&log, "client closed: handshake failed"),
        1,
        "health checks are not logged; three failures within 10 s are one warning:\n{log}"
    );
    for explanation in [
        "the server's certificate is not for other.example",
        "put exactly this certificate in ca_file",
        "does not match pin_sha256",
    ] {
        assert_eq!(occurrences(&log, explanation), 1, "{explanation}:\n{log}");
    }
    for jargon in ["Other(", "CaUsedAsEndEntity", "tls handshake eof"] {
        assert!(!log.contains(jargon), "{jargon}:\n{log}");
    }
    assert_eq!(daemon.stop(Duration::from_secs(10)), Some(0));
}
