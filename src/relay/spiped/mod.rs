//! A spiped-compatible encrypted transport (byte-compatible with spiped
//! 1.5–1.6): the key file hashed with SHA-256, a handshake with nonces,
//! HMAC-authenticated Diffie-Hellman over group 14 (or none, without
//! forward secrecy), then 1060-byte AES-256-CTR + HMAC-SHA256 packets each
//! way. See `shared/docs/spiped-protocol.md` for the wire format.
//!
//! [`Endpoint::handshake`] runs the handshake on a connected socket;
//! [`forward`] then relays between a plaintext socket and the encrypted one,
//! batching many packets per read and write.

mod dh;
mod packet;
mod pipe;

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hafront_config::SpipedMode;
use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::{Zeroize, Zeroizing};

pub use packet::{MAX_MESSAGE, Opener, PACKET_LEN, PacketError, Sealer};
pub(crate) use pipe::forward;

/// Bytes of each side's handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a Diffie-Hellman message: the value and its HMAC-SHA256.
pub const DH_MESSAGE_LEN: usize = dh::ELEMENT_LEN + 32;
/// The shortest key file accepted: 256 bits.
pub const MIN_KEY_FILE_LEN: u64 = 32;

/// The shared secret: SHA-256 of the key file's bytes. Wiped on drop and
/// never printed.
#[derive(Clone)]
pub struct SharedKey([u8; 32]);

impl SharedKey {
    /// Reads and hashes the key file at `path` as spiped does (every byte,
    /// a trailing newline included). Refuses a file that group or others may
    /// access, or one shorter than [`MIN_KEY_FILE_LEN`] bytes.
    pub fn load(path: &Path) -> io::Result<SharedKey> {
        let refuse = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("spiped key file {}: {why}", path.display()),
            )
        };
        let metadata = std::fs::metadata(path).map_err(|error| refuse(error.to_string()))?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "accessible by group or others (mode {mode:04o}); run: chmod 600 {}",
                path.display()
            )));
        }
        let material =
            Zeroizing::new(std::fs::read(path).map_err(|error| refuse(error.to_string()))?);
        if (material.len() as u64) < MIN_KEY_FILE_LEN {
            return Err(refuse(format!(
                "holds {} bytes; use at least {MIN_KEY_FILE_LEN} (dd if=/dev/urandom bs=32 count=1)",
                material.len()
            )));
        }
        Ok(SharedKey::from_key_material(&material))
    }

    /// The key for the raw bytes of a key file.
    pub fn from_key_material(material: &[u8]) -> SharedKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, material).as_ref());
        SharedKey(key)
    }
}

impl Drop for SharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

/// Which end of the spiped protocol this side plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects out encrypted (spiped `-e`).
    Client,
    /// Accepts encrypted connections (spiped `-d`).
    Server,
}

/// Why a handshake failed. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer closed before the handshake completed.
    #[error("peer closed the connection during the spiped handshake")]
    Closed,
    /// The peer's Diffie-Hellman message had a wrong MAC: a different key,
    /// or bytes changed in flight.
    #[error("spiped handshake failed authentication (wrong key or tampered data)")]
    BadMac,
    /// The peer's Diffie-Hellman value is not below the group prime.
    #[error("spiped handshake: peer's Diffie-Hellman value is out of range")]
    BadValue,
    /// The handshake did not finish in time.
    #[error("spiped handshake timed out after {0:?}")]
    Timeout(Duration),
    /// No randomness was available.
    #[error("spiped handshake: the system random generator failed")]
    Random,
    /// A socket error.
    #[error("spiped handshake: {0}")]
    Io(io::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            HandshakeError::Closed
        } else {
            HandshakeError::Io(error)
        }
    }
}

impl From<ring::error::Unspecified> for HandshakeError {
    fn from(_: ring::error::Unspecified) -> Self {
        HandshakeError::Random
    }
}

/// The packet keys of an established connection.
pub struct Session {
    /// Seals what this side sends.
    pub sealer: Sealer,
    /// Opens what the peer sends.
    pub opener: Opener,
}

/// One side's settings: the key, whether to use ephemeral Diffie-Hellman,
/// and the handshake deadline.
pub struct Endpoint {
    key: SharedKey,
    forward_secrecy: bool,
    handshake_timeout: Duration,
    random: SystemRandom,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("forward_secrecy", &self.forward_secrecy)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with `key`. Without `forward_secrecy` this side sends
    /// y = 1 (spiped `-f`); a peer doing so is accepted either way, as
    /// spiped does without `-g`.
    pub fn new(key: SharedKey, forward_secrecy: bool, handshake_timeout: Duration) -> Endpoint {
        Endpoint {
            key,
            forward_secrecy,
            handshake_timeout,
            random: SystemRandom::new(),
        }
    }

    /// An endpoint from a relay's spiped settings (loads the key file).
    pub fn from_config(mode: &SpipedMode) -> io::Result<Endpoint> {
        Ok(Endpoint::new(
            SharedKey::load(&mode.key_file)?,
            mode.forward_secrecy,
            mode.handshake_timeout,
        ))
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the handshake as `role` on `stream` within the handshake
    /// deadline.
    pub async fn handshake(
        &self,
        stream: &mut TcpStream,
        role: Role,
    ) -> Result<Session, HandshakeError> {
        tokio::time::timeout(self.handshake_timeout, self.handshake_steps(stream, role))
            .await
            .unwrap_or(Err(HandshakeError::Timeout(self.handshake_timeout)))
    }

    async fn handshake_steps(
        &self,
        stream: &mut TcpStream,
        role: Role,
    ) -> Result<Session, HandshakeError> {
        let mut own_nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut own_nonce)?;
        stream.write_all(&own_nonce).await?;
        let mut peer_nonce = [0u8; NONCE_LEN];
        stream.read_exact(&mut peer_nonce).await?;
        let (client_nonce, server_nonce) = match role {
            Role::Client => (own_nonce, peer_nonce),
            Role::Server => (peer_nonce, own_nonce),
        };
        let mut nonces = [0u8; 2 * NONCE_LEN];
        nonces[..NONCE_LEN].copy_from_slice(&client_nonce);
        nonces[NONCE_LEN..].copy_from_slice(&server_nonce);

        let mut dh_keys = Zeroizing::new([0u8; 64]);
        self.derive(&nonces, &[], &mut dh_keys[..]);
        let (client_dh_key, server_dh_key) = dh_keys.split_at(32);
        let (own_dh_key, peer_dh_key) = match role {
            Role::Client => (client_dh_key, server_dh_key),
            Role::Server => (server_dh_key, client_dh_key),
        };
        let own_dh_key = hmac::Key::new(hmac::HMAC_SHA256, own_dh_key);
        let peer_dh_key: &[u8; 32] = peer_dh_key.try_into().expect("32 bytes");

        // The client speaks first; the server answers only an authentic
        // value, and spends no exponentiation on a peer that has not yet
        // proved it holds the key.
        let mut peer_message = [0u8; DH_MESSAGE_LEN];
        // Each exponentiation runs off the runtime's workers (see `off_the_workers`).
        let own_message = |exponent: Option<dh::PrivateExponent>| {
            let key = own_dh_key.clone();
            off_the_workers(move || {
                let message = dh_message(&key, exponent.as_ref());
                (exponent, message)
            })
        };
        let (exponent, peer_value) = match role {
            Role::Client => {
                let (exponent, message) = own_message(self.ephemeral_exponent()?).await?;
                stream.write_all(&message).await?;
                stream.read_exact(&mut peer_message).await?;
                (exponent, verify_dh_message(peer_dh_key, &peer_message)?)
            }
            Role::Server => {
                stream.read_exact(&mut peer_message).await?;
                let value = verify_dh_message(peer_dh_key, &peer_message)?;
                let (exponent, message) = own_message(self.ephemeral_exponent()?).await?;
                stream.write_all(&message).await?;
                (exponent, value)
            }
        };
        let shared = Zeroizing::new(
            off_the_workers(move || {
                exponent
                    .as_ref()
                    .map_or(dh::ONE, |exponent| exponent.shared(&peer_value.0))
            })
            .await?,
        );

        let mut packet_keys = Zeroizing::new([0u8; 128]);
        self.derive(&nonces, &shared[..], &mut packet_keys[..]);
        let key = |index: usize| -> &[u8; 32] {
            packet_keys[index * 32..(index + 1) * 32]
                .try_into()
                .expect("32 bytes")
        };
        // E_C || H_C || E_S || H_S: the client sends with the first pair.
        let (send, receive) = match role {
            Role::Client => ((0, 1), (2, 3)),
            Role::Server => ((2, 3), (0, 1)),
        };
        Ok(Session {
            sealer: Sealer::new(key(send.0), key(send.1)),
            opener: Opener::new(key(receive.0), key(receive.1)),
        })
    }

    /// A fresh private exponent, or none without forward secrecy.
    fn ephemeral_exponent(&self) -> Result<Option<dh::PrivateExponent>, HandshakeError> {
        if self.forward_secrecy {
            Ok(Some(dh::PrivateExponent::generate(&self.random)?))
        } else {
            Ok(None)
        }
    }

    /// PBKDF2-HMAC-SHA256 with one iteration, keyed by the shared key,
    /// salted with `nonces || extra`.
    fn derive(&self, nonces: &[u8], extra: &[u8], out: &mut [u8]) {
        let mut salt = Zeroizing::new(Vec::with_capacity(nonces.len() + extra.len()));
        salt.extend_from_slice(nonces);
        salt.extend_from_slice(extra);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::MIN,
            &salt,
            &self.key.0,
            out,
        );
    }
}

/// This side's Diffie-Hellman message: 2^x mod p (or 1 without an
/// exponent) and its HMAC under `mac_key`.
/// Runs `work` (a 2048-bit modular exponentiation) on the blocking pool, on all cores but
/// one at a time (at least one): a burst of handshakes then queues here instead of holding
/// up the runtime's workers, and so plain relays, health checks and VRRP adverts.
async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    static CORES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    });
    let _core = CORES.acquire().await.map_err(io::Error::other)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)
}

fn dh_message(mac_key: &hmac::Key, exponent: Option<&dh::PrivateExponent>) -> [u8; DH_MESSAGE_LEN] {
    let value = exponent.map_or(dh::ONE, dh::PrivateExponent::public);
    let mut message = [0u8; DH_MESSAGE_LEN];
    message[..dh::ELEMENT_LEN].copy_from_slice(&value);
    message[dh::ELEMENT_LEN..].copy_from_slice(hmac::sign(mac_key, &value).as_ref());
    message
}

/// A peer's authenticated Diffie-Hellman value.
pub struct PeerValue(crypto_bigint::U2048);

/// Checks a peer's Diffie-Hellman message against `mac_key` (tag first, in
/// constant time, then the range): the parser that faces untrusted bytes.
pub fn verify_dh_message(
    mac_key: &[u8; 32],
    message: &[u8; DH_MESSAGE_LEN],
) -> Result<PeerValue, HandshakeError> {
    let (value, tag) = message.split_at(dh::ELEMENT_LEN);
    let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, mac_key), value);
    if !bool::from(expected.as_ref().ct_eq(tag)) {
        return Err(HandshakeError::BadMac);
    }
    let value: &dh::Element = value.try_into().expect("element length");
    dh::parse_element(value)
        .map(PeerValue)
        .ok_or(HandshakeError::BadValue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::connected_pair;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn handshakes_leave_the_runtime_free_for_timers() {
        let endpoint = || {
            Endpoint::new(
                SharedKey::from_key_material(b"a test key of at least thirty-two bytes"),
                true,
                Duration::from_secs(30),
            )
        };
        // A ticker on the same single-threaded runtime as 24 handshakes (96 exponentiations).
        let ticker = tokio::spawn(async {
            let mut latest = Duration::ZERO;
            for _ in 0..50 {
                let asked = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                latest = latest.max(asked.elapsed().saturating_sub(Duration::from_millis(10)));
            }
            latest
        });
        let mut handshakes = Vec::new();
        for _ in 0..24 {
            let (mut server_stream, mut client_stream) = connected_pair().await;
            let (server, client) = (endpoint(), endpoint());
            handshakes.push(tokio::spawn(async move {
                let (server, client) = tokio::join!(
                    server.handshake(&mut server_stream, Role::Server),
                    client.handshake(&mut client_stream, Role::Client)
                );
                server.is_ok() && client.is_ok()
            }));
        }
        for handshake in handshakes {
            assert!(
                handshake.await.expect("handshake task"),
                "a handshake failed"
            );
        }
        let late = ticker.await.expect("ticker");
        assert!(
            late < Duration::from_millis(20),
            "a 10 ms timer fired {late:?} late"
        );
    }
}
