//! Gateway relays: each client names its server in an encrypted request
//! line (OpenSSL `enc -aes-256-cbc -salt -a`, see
//! `shared/docs/gateway-protocol.md`), gets a three-digit status, and is
//! relayed to that server if it is on the allow-list and an up server of
//! the relay's pool.
//!
//! Better than the original frontd: the request line has a deadline and a
//! size limit, only allowed servers are ever connected to, the secret never
//! reaches a log or `Debug` output, and half-close is honoured. A token
//! that does not decrypt and one that names a server not served get the
//! same answer, so the status tells a client nothing about the secret.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hafront_config::{GatewayMode, RelayMode};
use ipnet::IpNet;
use md5::{Digest, Md5};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Longest request line accepted, newline included.
pub const MAX_REQUEST_LEN: usize = 1024;
/// OpenSSL's salted-format magic.
const MAGIC: &[u8; 8] = b"Salted__";
const SALT_LEN: usize = 8;
const BLOCK_LEN: usize = 16;
/// Bytes of unread request data drained before closing after an error, so
/// the kernel sends FIN rather than RST and the status code arrives.
const DRAIN_LIMIT: usize = 64 * 1024;
/// How long to wait for the client to close after an error status.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// The status codes a gateway answers with: three ASCII digits, no line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: connected; data flows from here on.
    Connected,
    /// 400: no complete request line (too long, closed early, timed out).
    BadRequest,
    /// 401: the token was refused: it does not decrypt to a server address,
    /// or it names a server that is not on the allow-list or not an up
    /// server of the relay's pool (one answer for all, logged apart).
    Refused,
    /// 502: connecting to the server failed.
    ConnectFailed,
    /// 504: connecting to the server timed out.
    ConnectTimeout,
}

impl Status {
    /// The three digits sent to the client.
    pub fn code(self) -> &'static str {
        match self {
            Status::Connected => "200",
            Status::BadRequest => "400",
            Status::Refused => "401",
            Status::ConnectFailed => "502",
            Status::ConnectTimeout => "504",
        }
    }
}

/// Why a request was refused. Messages name neither the secret nor the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The client closed before sending a whole line.
    #[error("client closed before a complete request line")]
    Closed,
    /// No newline within [`MAX_REQUEST_LEN`] bytes.
    #[error("request line longer than {MAX_REQUEST_LEN} bytes")]
    TooLong,
    /// The line did not arrive within the handshake timeout.
    #[error("request line not received within {0:?}")]
    Timeout(Duration),
    /// Reading the line failed.
    #[error("reading the request line failed: {0}")]
    Read(String),
    /// The token is not base64 of an OpenSSL salted AES-256-CBC message.
    #[error("token is not an OpenSSL salted AES-256-CBC message")]
    Malformed,
    /// No key derivation gave valid padding and an `ip:port` address.
    #[error("token does not decrypt to an ip:port address with this secret")]
    Undecryptable,
    /// The address is valid but not allowed.
    #[error("server {0} is not on the allow-list")]
    Forbidden(SocketAddr),
    /// The address is allowed but not an up server of the relay's pool.
    #[error("server {0} is not an up server of the relay's pool")]
    NotServing(SocketAddr),
}

impl GatewayError {
    /// The status answered for this error.
    pub fn status(&self) -> Status {
        match self {
            GatewayError::Closed
            | GatewayError::TooLong
            | GatewayError::Timeout(_)
            | GatewayError::Read(_) => Status::BadRequest,
            GatewayError::Malformed
            | GatewayError::Undecryptable
            | GatewayError::Forbidden(_)
            | GatewayError::NotServing(_) => Status::Refused,
        }
    }
}

/// Where the request line ends in the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// The token is `buffer[..token_len]` (a CR before the LF excluded);
    /// bytes from `next` on belong to the server.
    Complete {
        /// Length of the token text.
        token_len: usize,
        /// Index of the first byte after the newline.
        next: usize,
    },
    /// No newline yet.
    Incomplete,
}

/// Finds the request line in `received` (the first bytes from a client).
pub fn find_line(received: &[u8]) -> LineEnd {
    match received.iter().position(|&byte| byte == b'\n') {
        Some(newline) => LineEnd::Complete {
            token_len: if newline > 0 && received[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            },
            next: newline + 1,
        },
        None => LineEnd::Incomplete,
    }
}

/// A client's accepted request: where to connect, and what it sent after
/// the newline (to be forwarded first).
#[derive(Debug)]
pub struct Request {
    /// The server asked for, on the allow-list (whether the pool serves it
    /// is for the relay to check).
    pub address: SocketAddr,
    /// Bytes received after the request line.
    pub early_data: Vec<u8>,
}

/// A gateway's secret, allow-list and handshake deadline.
pub struct Gateway {
    secret: Zeroizing<Vec<u8>>,
    allow: Vec<IpNet>,
    handshake_timeout: Duration,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("secret", &"<redacted>")
            .field("allow", &self.allow)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl Gateway {
    /// A gateway with `secret` that connects only to addresses in `allow`.
    pub fn new(secret: &[u8], allow: Vec<IpNet>, handshake_timeout: Duration) -> Gateway {
        Gateway {
            secret: Zeroizing::new(secret.to_vec()),
            allow,
            handshake_timeout,
        }
    }

    /// A gateway from a relay's settings (reads the secret file if any).
    pub fn from_config(mode: &GatewayMode) -> io::Result<Gateway> {
        let secret =
            Zeroizing::new(mode.secret.reveal().map_err(|error| {
                io::Error::new(error.kind(), format!("gateway secret: {error}"))
            })?);
        Ok(Gateway::new(
            secret.as_bytes(),
            mode.allow.clone(),
            mode.handshake_timeout,
        ))
    }

    /// Time allowed for a client's request line.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Whether `address` is on the allow-list.
    pub fn allows(&self, address: SocketAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&address.ip()))
    }

    /// The allowed server a token names.
    pub fn resolve(&self, token: &[u8]) -> Result<SocketAddr, GatewayError> {
        let address = decrypt_address(&self.secret, token)?;
        if self.allows(address) {
            Ok(address)
        } else {
            Err(GatewayError::Forbidden(address))
        }
    }

    /// Reads the client's request line within the handshake deadline and
    /// resolves it.
    pub async fn read_request(&self, client: &mut TcpStream) -> Result<Request, GatewayError> {
        let mut received = [0u8; MAX_REQUEST_LEN];
        let mut filled = 0;
        let reading = async {
            loop {
                if let LineEnd::Complete { token_len, next } = find_line(&received[..filled]) {
                    return Ok((token_len, next));
                }
                if filled == received.len() {
                    return Err(GatewayError::TooLong);
                }
                match client.read(&mut received[filled..]).await {
                    Ok(0) => return Err(GatewayError::Closed),
                    Ok(read) => filled += read,
                    Err(error) => return Err(GatewayError::Read(error.to_string())),
                }
            }
        };
        let (token_len, next) = tokio::time::timeout(self.handshake_timeout, reading)
            .await
            .map_err(|_| GatewayError::Timeout(self.handshake_timeout))??;
        Ok(Request {
            address: self.resolve(&received[..token_len])?,
            early_data: received[next..filled].to_vec(),
        })
    }
}

/// Answers `status` and closes: the unread rest of the request is drained
/// (briefly, and bounded) so the status is not lost to a reset.
pub(crate) async fn refuse(mut client: TcpStream, status: Status) {
    if client.write_all(status.code().as_bytes()).await.is_err() || client.shutdown().await.is_err()
    {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let draining = async {
        while drained < DRAIN_LIMIT {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, draining).await;
}

/// OpenSSL's EVP_BytesToKey with one iteration: key (32) and IV (16) from
/// the digest chain D_i = H(D_{i-1} || secret || salt).
fn bytes_to_key<D: Digest>(secret: &[u8], salt: &[u8]) -> Zeroizing<[u8; 48]> {
    let mut material = Zeroizing::new([0u8; 48]);
    let mut filled = 0;
    let mut previous: Option<Zeroizing<Vec<u8>>> = None;
    while filled < material.len() {
        let mut hasher = D::new();
        if let Some(previous) = &previous {
            hasher.update(previous.as_slice());
        }
        hasher.update(secret);
        hasher.update(salt);
        let block = Zeroizing::new(hasher.finalize().to_vec());
        let take = block.len().min(material.len() - filled);
        material[filled..filled + take].copy_from_slice(&block[..take]);
        filled += take;
        previous = Some(block);
    }
    material
}

/// Decrypts a token to the address it names. Accepts OpenSSL's MD5 key
/// derivation (`-md md5`, the gateway format) and SHA-256 (OpenSSL 1.1+'s
/// default).
pub fn decrypt_address(secret: &[u8], token: &[u8]) -> Result<SocketAddr, GatewayError> {
    let message = Zeroizing::new(
        STANDARD
            .decode(token)
            .map_err(|_| GatewayError::Malformed)?,
    );
    if message.len() < MAGIC.len() + SALT_LEN + BLOCK_LEN
        || &message[..MAGIC.len()] != MAGIC
        || (message.len() - MAGIC.len() - SALT_LEN) % BLOCK_LEN != 0
    {
        return Err(GatewayError::Malformed);
    }
    let (salt, ciphertext) = message[MAGIC.len()..].split_at(SALT_LEN);
    [bytes_to_key::<Md5>, bytes_to_key::<sha2::Sha256>]
        .into_iter()
        .find_map(|derive| {
            let material = derive(secret, salt);
            let mut buffer = Zeroizing::new(ciphertext.to_vec());
            let decryptor =
                cbc::Decryptor::<Aes256>::new(material[..32].into(), material[32..].into());
            let plaintext = decryptor.decrypt_padded_mut::<Pkcs7>(&mut buffer).ok()?;
            std::str::from_utf8(plaintext).ok()?.trim().parse().ok()
        })
        .ok_or(GatewayError::Undecryptable)
}

/// The token for `address` under `secret`, as
/// `openssl enc -aes-256-cbc -a -A -salt -md md5 -k SECRET` writes it.
pub fn encrypt_address(secret: &[u8], address: &str) -> io::Result<String> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| io::Error::other("the system random generator failed"))?;
    Ok(encrypt_address_with_salt(secret, address, salt))
}

/// [`encrypt_address`] with a given salt (deterministic, for tests).
pub fn encrypt_address_with_salt(secret: &[u8], address: &str, salt: [u8; SALT_LEN]) -> String {
    let material = bytes_to_key::<Md5>(secret, &salt);
    let encryptor = cbc::Encryptor::<Aes256>::new(material[..32].into(), material[32..].into());
    let ciphertext = encryptor.encrypt_padded_vec_mut::<Pkcs7>(address.as_bytes());
    let mut message = Vec::with_capacity(MAGIC.len() + SALT_LEN + ciphertext.len());
    message.extend_from_slice(MAGIC);
    message.extend_from_slice(&salt);
    message.extend_from_slice(&ciphertext);
    STANDARD.encode(message)
}

/// `hafront gateway-token`: the token for `address` under the secret of the
/// gateway relay `relay` of the configuration at `config` (which may be
/// omitted when the configuration has exactly one gateway relay). Refuses
/// an address that is not `ip:port`, that the relay would not allow, or
/// that is not a server of its pool.
pub fn gateway_token(config: &Path, relay: Option<&str>, address: &str) -> Result<String, String> {
    let loaded = hafront_config::load(config).map_err(|errors| errors.to_string())?;
    let gateways: Vec<(&String, &GatewayMode, &str)> = loaded
        .relays
        .iter()
        .filter_map(|(name, relay)| match &relay.mode {
            RelayMode::Gateway(mode) => Some((name, mode, relay.pool.as_str())),
            _ => None,
        })
        .collect();
    let (name, mode, pool) = match relay {
        Some(wanted) => gateways
            .into_iter()
            .find(|(name, _, _)| name.as_str() == wanted)
            .ok_or_else(|| format!("{}: no gateway relay named {wanted}", config.display()))?,
        None => match gateways.as_slice() {
            [only] => *only,
            [] => return Err(format!("{}: no relay has mode gateway", config.display())),
            _ => {
                return Err(format!(
                    "{}: several gateway relays; choose one with --relay",
                    config.display()
                ));
            }
        },
    };
    let parsed: SocketAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an ip:port address"))?;
    let gateway = Gateway::from_config(mode).map_err(|error| format!("relay {name}: {error}"))?;
    if !gateway.allows(parsed) {
        return Err(format!(
            "relay {name} would refuse {parsed}: it is not on its allow-list"
        ));
    }
    let in_pool = loaded
        .pools
        .get(pool)
        .is_some_and(|pool| pool.servers.iter().any(|server| server.address == parsed));
    if !in_pool {
        return Err(format!(
            "relay {name} would refuse {parsed}: it is not a server of pool {pool}"
        ));
    }
    encrypt_address(&gateway.secret, &parsed.to_string())
        .map_err(|error| format!("relay {name}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        let token = encrypt_address(b"s3cret", "10.1.2.3:3306").unwrap();
        assert_eq!(
            decrypt_address(b"s3cret", token.as_bytes()),
            Ok("10.1.2.3:3306".parse().unwrap())
        );
        assert_eq!(
            decrypt_address(b"other", token.as_bytes()),
            Err(GatewayError::Undecryptable)
        );
    }

    #[test]
    fn tokens_are_salted() {
        let first = encrypt_address(b"s3cret", "10.1.2.3:3306").unwrap();
        let second = encrypt_address(b"s3cret", "10.1.2.3:3306").unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("U2FsdGVkX1"), "base64 of Salted__");
    }

    #[test]
    fn malformed_tokens_are_told_apart_from_wrong_secrets() {
        for token in [
            &b"not base64!"[..],
            b"",
            b"U2FsdGVkX18=",
            b"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQhIQ==",
        ] {
            assert_eq!(decrypt_address(b"k", token), Err(GatewayError::Malformed));
        }
    }

    #[test]
    fn the_line_ends_at_the_first_newline() {
        assert_eq!(find_line(b"abc"), LineEnd::Incomplete);
        assert_eq!(
            find_line(b"abc\r\nrest"),
            LineEnd::Complete {
                token_len: 3,
                next: 5
            }
        );
        assert_eq!(
            find_line(b"\nabc\n"),
            LineEnd::Complete {
                token_len: 0,
                next: 1
            }
        );
    }

    #[test]
    fn only_allowed_servers_resolve() {
        let gateway = Gateway::new(
            b"k",
            vec![
                "10.0.0.0/24".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
            Duration::from_secs(1),
        );
        let allowed = encrypt_address(b"k", "10.0.0.9:6379").unwrap();
        let denied = encrypt_address(b"k", "10.0.1.9:6379").unwrap();
        assert_eq!(
            gateway.resolve(allowed.as_bytes()),
            Ok("10.0.0.9:6379".parse().unwrap())
        );
        assert_eq!(
            gateway.resolve(denied.as_bytes()),
            Err(GatewayError::Forbidden("10.0.1.9:6379".parse().unwrap()))
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let gateway = Gateway::new(b"hunter2", Vec::new(), Duration::from_secs(1));
        let shown = format!("{gateway:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
