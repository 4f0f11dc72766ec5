//! hafront's spiped mode against Debian's spiped (the reference peer), on
//! 127.0.0.1 ephemeral ports: hafront encrypt -> spiped -d, spiped -e ->
//! hafront decrypt, with and without forward secrecy, and a wrong key.
//! spiped processes are started by the tests and killed by PID.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hafront::relay::Relay;
use hafront_config::{RelayMode, SpipedMode};
use hafront_health::{ServerHealth, Status};
use support::{EchoServer, assert_echoed, relay_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

const STEP: Duration = Duration::from_secs(15);

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .expect("step took too long")
}

/// A spiped process: killed by PID on drop, and by the kernel if the test
/// process dies first.
struct Spiped {
    child: std::process::Child,
    source: SocketAddr,
    log: PathBuf,
}

impl Spiped {
    /// Starts `spiped MODE` (`-e` or `-d`) on a free loopback port towards
    /// `target`, in the foreground, with extra `options`.
    async fn start(mode: &str, target: SocketAddr, key: &Path, options: &[&str]) -> Spiped {
        let source: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("address")
        };
        let log = key.with_file_name(format!("spiped-{}.log", source.port()));
        let output = std::fs::File::create(&log).expect("log");
        let mut command = Command::new("spiped");
        command
            .args([
                mode,
                "-F",
                "-s",
                &format!("[{}]:{}", source.ip(), source.port()),
            ])
            .args(["-t", &format!("[{}]:{}", target.ip(), target.port())])
            .arg("-k")
            .arg(key)
            .args(options)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log"))
            .stderr(output);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut spiped = Spiped {
            child: command.spawn().expect("spawn spiped"),
            source,
            log,
        };
        spiped.wait_listening().await;
        spiped
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(self.source).await.is_err() {
            let exited = self.child.try_wait().expect("wait").is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "spiped not listening on {}: {}",
                self.source,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spiped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hafront relay in `mode` towards `server`.
struct Started {
    relay: Relay,
    _events: broadcast::Sender<hafront_health::HealthEvent>,
}

impl Started {
    fn start(mode: RelayMode, server: SocketAddr) -> Started {
        let config = relay_config(mode);
        let health = Arc::new(ServerHealth::new(
            "db",
            &hafront_config::Server {
                name: Some("peer".to_owned()),
                address: server,
                weight: 1,
                backup: false,
            },
        ));
        health.set_status(Status::Up);
        let (events, receiver) = broadcast::channel(16);
        let relay =
            Relay::start("interop", &config, vec![health].into(), receiver).expect("relay starts");
        Started {
            relay,
            _events: events,
        }
    }

    fn address(&self) -> SocketAddr {
        self.relay.local_addrs()[0]
    }
}

/// A key file as spiped's documentation makes one (32 random bytes), only
/// readable by its owner.
fn key_file(dir: &Path, name: &str, seed: u8) -> PathBuf {
    let path = dir.join(name);
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ seed).collect();
    std::fs::write(&path, key).expect("key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn mode(key: &Path, forward_secrecy: bool) -> SpipedMode {
    SpipedMode {
        key_file: key.to_owned(),
        forward_secrecy,
        handshake_timeout: Duration::from_secs(5),
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 253) as u8 ^ (i >> 10) as u8)
        .collect()
}

/// Sends `payload`, half-closes, reads to EOF; an error reads as nothing.
async fn round_trip(address: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let Ok(stream) = within(TcpStream::connect(address)).await else {
        return Vec::new();
    };
    let (mut reader, mut writer) = stream.into_split();
    let payload = payload.to_vec();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&payload).await;
        let _ = writer.shutdown().await;
        writer
    });
    let mut received = Vec::new();
    let _ = within(reader.read_to_end(&mut received)).await;
    let _writer = sending.await.expect("sender");
    received
}

const SIZES: [usize; 5] = [1, 1024, 1025, 100_000, 4 * 1024 * 1024];

#[tokio::test]
async fn hafront_encrypt_to_spiped_decrypt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_file(dir.path(), "key", 1);
    let echo = EchoServer::start().await;
    for (hafront_pfs, spiped_options) in
        [(true, &["-g"][..]), (false, &[][..]), (false, &["-f"][..])]
    {
        let spiped = Spiped::start("-d", echo.address, &key, spiped_options).await;
        let encrypt = Started::start(
            RelayMode::SpipedEncrypt(mode(&key, hafront_pfs)),
            spiped.source,
        );
        for size in SIZES {
            let payload = pattern(size);
            let received = round_trip(encrypt.address(), &payload).await;
            assert_echoed(&received, &payload);
        }
    }
}

#[tokio::test]
async fn spiped_encrypt_to_hafront_decrypt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_file(dir.path(), "key", 2);
    let echo = EchoServer::start().await;
    for (hafront_pfs, spiped_options) in
        [(true, &["-g"][..]), (true, &["-f"][..]), (false, &[][..])]
    {
        let decrypt = Started::start(
            RelayMode::SpipedDecrypt(mode(&key, hafront_pfs)),
            echo.address,
        );
        let spiped = Spiped::start("-e", decrypt.address(), &key, spiped_options).await;
        for size in SIZES {
            let payload = pattern(size);
            let received = round_trip(spiped.source, &payload).await;
            assert_echoed(&received, &payload);
        }
    }
}

#[tokio::test]
async fn mixed_pair_with_a_wrong_key_forwards_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_file(dir.path(), "key", 3);
    let other = key_file(dir.path(), "other", 4);
    let echo = EchoServer::start().await;

    let decrypt = Started::start(RelayMode::SpipedDecrypt(mode(&key, true)), echo.address);
    let wrong_spiped = Spiped::start("-e", decrypt.address(), &other, &[]).await;
    assert!(round_trip(wrong_spiped.source, b"hello").await.is_empty());

    let spiped_server = Spiped::start("-d", echo.address, &key, &[]).await;
    let wrong_hafront = Started::start(
        RelayMode::SpipedEncrypt(mode(&other, true)),
        spiped_server.source,
    );
    assert!(
        round_trip(wrong_hafront.address(), b"hello")
            .await
            .is_empty()
    );

    assert_eq!(echo.received.load(Ordering::SeqCst), 0, "nothing forwarded");
    // Both still serve a peer with the right key.
    let right_spiped = Spiped::start("-e", decrypt.address(), &key, &[]).await;
    assert_echoed(&round_trip(right_spiped.source, b"hello").await, b"hello");
    let right_hafront = Started::start(
        RelayMode::SpipedEncrypt(mode(&key, true)),
        spiped_server.source,
    );
    assert_echoed(
        &round_trip(right_hafront.address(), b"hello").await,
        b"hello",
    );
}
