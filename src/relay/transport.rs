//! What a relay speaks on each side: plaintext, spiped, TLS, or the gateway
//! handshake. A [`Transport`] is built once from the relay's mode; each
//! connection runs its client-side handshake on accept, its server-side
//! handshake after connecting, and is then forwarded by the data path that
//! fits both sides (splice for plaintext, batched packets for spiped,
//! buffered copies for TLS).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hafront_config::RelayMode;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::buffers::PooledBuffer;
use super::forward::{self, Activity, DataPath, Ending, Forwarded, Meter};
use super::gateway::Gateway;
use super::spiped;
use super::tls::{self, TlsSocket};

/// Plaintext moved per write in each direction when one side is TLS: three
/// full records. Encrypted, that is 49,218 bytes with TLS 1.3 (49,239 with
/// TLS 1.2), which the kernel sends as one segmentation-offload packet (at
/// most 64 KiB, or one loopback segment); four records (65,624 bytes) went
/// out as a full packet plus a packet of a few hundred bytes on every
/// write, on both hops of a pair, and the plaintext side's 64 KiB writes
/// likewise. Across veth links that cost a quarter more packets and about
/// 15% of the pair's throughput (bench/README.md).
const TLS_COPY_BUFFER: usize = 3 * MAX_TLS_PLAINTEXT_RECORD;

/// The largest plaintext a TLS record carries (RFC 8446 section 5.1).
const MAX_TLS_PLAINTEXT_RECORD: usize = 16 * 1024;

/// A relay's transport, ready to use on each connection.
pub(crate) enum Transport {
    /// Plaintext both sides.
    Plain,
    /// Plaintext clients; spiped to servers.
    SpipedEncrypt(Arc<spiped::Endpoint>),
    /// spiped clients; plaintext to servers.
    SpipedDecrypt(Arc<spiped::Endpoint>),
    /// TLS clients; plaintext to servers.
    TlsServer {
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    },
    /// Plaintext clients; TLS to servers.
    TlsClient {
        connector: TlsConnector,
        server_name: ServerName<'static>,
        handshake_timeout: Duration,
    },
    /// Clients name their server in an encrypted request line.
    Gateway(Arc<Gateway>),
}

/// A client after its side's handshake.
pub(crate) enum ClientSide {
    /// Plaintext.
    Plain(TcpStream),
    /// spiped, with the session's keys.
    Spiped(TcpStream, Box<spiped::Session>),
    /// TLS.
    Tls(Box<server::TlsStream<TlsSocket>>),
}

/// A server connection after its side's handshake.
pub(crate) enum ServerSide {
    /// Plaintext.
    Plain(TcpStream),
    /// spiped, with the session's keys.
    Spiped(TcpStream, Box<spiped::Session>),
    /// TLS.
    Tls(Box<client::TlsStream<TlsSocket>>),
}

impl Transport {
    /// The transport for `mode`: reads key, certificate and secret files.
    pub(crate) fn from_mode(mode: &RelayMode) -> io::Result<Transport> {
        Ok(match mode {
            RelayMode::Plain => Transport::Plain,
            RelayMode::SpipedEncrypt(spiped) => {
                Transport::SpipedEncrypt(Arc::new(spiped::Endpoint::from_config(spiped)?))
            }
            RelayMode::SpipedDecrypt(spiped) => {
                Transport::SpipedDecrypt(Arc::new(spiped::Endpoint::from_config(spiped)?))
            }
            RelayMode::TlsServer(mode) => Transport::TlsServer {
                acceptor: tls::acceptor(mode)?,
                handshake_timeout: mode.handshake_timeout,
            },
            RelayMode::TlsClient(mode) => {
                let (connector, server_name) = tls::connector(mode)?;
                Transport::TlsClient {
                    connector,
                    server_name,
                    handshake_timeout: mode.handshake_timeout,
                }
            }
            RelayMode::Gateway(mode) => Transport::Gateway(Arc::new(Gateway::from_config(mode)?)),
        })
    }

    /// The gateway, when clients choose their server themselves.
    pub(crate) fn gateway(&self) -> Option<&Arc<Gateway>> {
        match self {
            Transport::Gateway(gateway) => Some(gateway),
            _ => None,
        }
    }

    /// The handshake deadline of a mode whose clients send the first byte
    /// (TLS, spiped, gateway); none for plaintext clients, which may wait
    /// for their server to speak.
    pub(crate) fn client_speaks_first(&self) -> Option<Duration> {
        match self {
            Transport::SpipedDecrypt(endpoint) => Some(endpoint.handshake_timeout()),
            Transport::TlsServer {
                handshake_timeout, ..
            } => Some(*handshake_timeout),
            Transport::Gateway(gateway) => Some(gateway.handshake_timeout()),
            Transport::Plain | Transport::SpipedEncrypt(_) | Transport::TlsClient { .. } => None,
        }
    }

    /// Runs the client side's handshake (not the gateway's: see
    /// [`Transport::gateway`]).
    pub(crate) async fn accept(&self, mut client: TcpStream) -> io::Result<ClientSide> {
        match self {
            Transport::SpipedDecrypt(endpoint) => {
                keep_alive(&client)?;
                let session = endpoint
                    .handshake(&mut client, spiped::Role::Server)
                    .await
                    .map_err(handshake_error)?;
                Ok(ClientSide::Spiped(client, Box::new(session)))
            }
            Transport::TlsServer {
                acceptor,
                handshake_timeout,
            } => {
                let client = TlsSocket::new(client);
                let accepting = acceptor.accept(client);
                let stream =
                    tls_handshake(*handshake_timeout, tls::Side::Server, accepting).await?;
                Ok(ClientSide::Tls(Box::new(stream)))
            }
            Transport::Plain
            | Transport::SpipedEncrypt(_)
            | Transport::TlsClient { .. }
            | Transport::Gateway(_) => Ok(ClientSide::Plain(client)),
        }
    }

    /// Runs the server side's handshake on a fresh connection.
    pub(crate) async fn secure(&self, mut server: TcpStream) -> io::Result<ServerSide> {
        match self {
            Transport::SpipedEncrypt(endpoint) => {
                keep_alive(&server)?;
                let session = endpoint
                    .handshake(&mut server, spiped::Role::Client)
                    .await
                    .map_err(handshake_error)?;
                Ok(ServerSide::Spiped(server, Box::new(session)))
            }
            Transport::TlsClient {
                connector,
                server_name,
                handshake_timeout,
            } => {
                let connecting = connector.connect(server_name.clone(), TlsSocket::new(server));
                let side = tls::Side::Client {
                    server_name: &server_name.to_str(),
                };
                let stream = tls_handshake(*handshake_timeout, side, connecting).await?;
                Ok(ServerSide::Tls(Box::new(stream)))
            }
            Transport::Plain
            | Transport::SpipedDecrypt(_)
            | Transport::TlsServer { .. }
            | Transport::Gateway(_) => Ok(ServerSide::Plain(server)),
        }
    }
}

/// TCP keepalive on a spiped link, as spiped does by default: a long quiet
/// link (a replication stream) notices a peer that vanished.
fn keep_alive(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).set_keepalive(true)
}

fn handshake_error(error: spiped::HandshakeError) -> io::Error {
    let kind = match &error {
        spiped::HandshakeError::Timeout(_) => io::ErrorKind::TimedOut,
        spiped::HandshakeError::Closed => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, error)
}

/// Runs a TLS handshake with a deadline; a failure is told in words.
async fn tls_handshake<T>(
    timeout: Duration,
    side: tls::Side<'_>,
    handshake: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => {
            result.map_err(|error| io::Error::new(error.kind(), tls::explain(&error, side)))
        }
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake not finished within {timeout:?}"),
        )),
    }
}

/// Forwards between the two sides with the data path that fits them until
/// both directions end, an error occurs, or nothing moves for
/// `idle_timeout`.
pub(crate) async fn forward(
    client: ClientSide,
    server: ServerSide,
    data_path: DataPath,
    idle_timeout: Duration,
    upstream: Meter<'_>,
    downstream: Meter<'_>,
) -> Forwarded {
    let ending = match (client, server) {
        (ClientSide::Plain(client), ServerSide::Plain(server)) => {
            return forward::forward(
                &client,
                &server,
                data_path,
                idle_timeout,
                upstream,
                downstream,
            )
            .await;
        }
        // The encrypted paths are boxed: inlined, their state would enlarge
        // every connection's future, plain ones included (~22 KB instead of
        // ~2 KB). Sessions stay in their own boxes, so that an idle
        // connection's future holds pointers, not copies of their state.
        (ClientSide::Plain(client), ServerSide::Spiped(server, session)) => {
            Box::pin(spiped::forward(
                &client,
                &server,
                session,
                idle_timeout,
                upstream,
                downstream,
            ))
            .await
        }
        (ClientSide::Spiped(client, session), ServerSide::Plain(server)) => {
            Box::pin(spiped::forward(
                &server,
                &client,
                session,
                idle_timeout,
                downstream,
                upstream,
            ))
            .await
        }
        (ClientSide::Tls(client), ServerSide::Plain(server)) => {
            Box::pin(copy_both(
                client,
                server,
                idle_timeout,
                upstream,
                downstream,
            ))
            .await
        }
        (ClientSide::Plain(client), ServerSide::Tls(server)) => {
            Box::pin(copy_both(
                client,
                server,
                idle_timeout,
                upstream,
                downstream,
            ))
            .await
        }
        (ClientSide::Tls(client), ServerSide::Tls(server)) => {
            Box::pin(copy_both(
                client,
                server,
                idle_timeout,
                upstream,
                downstream,
            ))
            .await
        }
        (ClientSide::Spiped(..), _) | (_, ServerSide::Spiped(..)) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "spiped pairs only with a plaintext side",
        )),
    };
    Forwarded {
        ending,
        copied: false,
    }
}

/// Copies both ways between two streams with a buffer per direction,
/// half-closing (a TLS close_notify, then FIN) after each direction's EOF.
async fn copy_both<C, S>(
    client: C,
    server: S,
    idle_timeout: Duration,
    upstream: Meter<'_>,
    downstream: Meter<'_>,
) -> io::Result<Ending>
where
    C: AsyncRead + AsyncWrite,
    S: AsyncRead + AsyncWrite,
{
    let (mut client_reader, mut client_writer) = tokio::io::split(client);
    let (mut server_reader, mut server_writer) = tokio::io::split(server);
    let activity = Activity::new();
    let both_ways = async {
        tokio::try_join!(
            copy_one_way(&mut client_reader, &mut server_writer, &upstream, &activity),
            copy_one_way(
                &mut server_reader,
                &mut client_writer,
                &downstream,
                &activity
            ),
        )
    };
    tokio::select! {
        result = both_ways => result.map(|_| Ending::Finished),
        () = activity.idle_for(idle_timeout) => Ok(Ending::Idle),
    }
}

/// Reads what `source` has ready into `buffer`, at least one byte (0 at
/// EOF): a TLS session yields one record (at most 16 KiB) per read, and
/// gathering the records already received into one write saves system
/// calls on the other side.
/// An error after some bytes is kept in `deferred`, for the next call.
fn fill(
    mut source: Pin<&mut impl AsyncRead>,
    buffer: &mut [u8],
    deferred: &mut Option<io::Error>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if let Some(error) = deferred.take() {
        return Poll::Ready(Err(error));
    }
    let mut filled = 0;
    while filled < buffer.len() {
        let mut unfilled = ReadBuf::new(&mut buffer[filled..]);
        match source.as_mut().poll_read(cx, &mut unfilled) {
            Poll::Ready(Ok(())) if unfilled.filled().is_empty() => break,
            Poll::Ready(Ok(())) => filled += unfilled.filled().len(),
            Poll::Ready(Err(error)) if filled == 0 => return Poll::Ready(Err(error)),
            Poll::Ready(Err(error)) => {
                *deferred = Some(error);
                break;
            }
            Poll::Pending if filled == 0 => return Poll::Pending,
            Poll::Pending => break,
        }
    }
    Poll::Ready(Ok(filled))
}

/// Copies one direction to its EOF, then shuts the destination down. The
/// buffer comes from the thread's pool for each read that finds bytes and
/// goes back once they are written: a direction waiting for data holds none.
async fn copy_one_way(
    source: &mut (impl AsyncRead + Unpin),
    destination: &mut (impl AsyncWrite + Unpin),
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut deferred = None;
    loop {
        let mut held = None;
        let filled = poll_fn(|cx| {
            let buffer = held.get_or_insert_with(|| PooledBuffer::take(TLS_COPY_BUFFER));
            let polled = fill(Pin::new(&mut *source), buffer, &mut deferred, cx);
            if polled.is_pending() {
                // Nothing was read into it: give it back while waiting.
                held = None;
            }
            polled
        })
        .await?;
        let Some(buffer) = held.filter(|_| filled > 0) else {
            break;
        };
        destination.write_all(&buffer[..filled]).await?;
        destination.flush().await?;
        meter.add(filled, activity);
    }
    match destination.shutdown().await {
        // The peer may have closed already; the direction is done either way.
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::buffers;
    use crate::relay::connected_pair;
    use std::sync::atomic::AtomicU64;
    use tokio::io::AsyncReadExt;

    /// Records the length of every write it takes.
    #[derive(Default)]
    struct WriteSizes(Vec<usize>);

    impl AsyncWrite for WriteSizes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bytes: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(bytes.len());
            Poll::Ready(Ok(bytes.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_tls_batch_once_encrypted_fits_one_offload_packet() {
        // The most a record adds on the wire: TLS 1.2 with AES-GCM (5-byte
        // header, 8-byte explicit nonce, 16-byte tag).
        const RECORD_OVERHEAD: usize = 29;
        // The largest segmentation-offload packet with a 1500-byte MTU: 45
        // segments of 1448 bytes fill its 64 KiB.
        const OFFLOAD_PACKET: usize = 65_536 / 1448 * 1448;
        let records = TLS_COPY_BUFFER.div_ceil(MAX_TLS_PLAINTEXT_RECORD);
        assert!(
            TLS_COPY_BUFFER + records * RECORD_OVERHEAD <= OFFLOAD_PACKET,
            "a batch of {TLS_COPY_BUFFER} bytes needs more than one packet"
        );

        let (mut peer, mut source) = connected_pair().await;
        let payload = 10 * TLS_COPY_BUFFER + 123;
        let sending = async {
            peer.write_all(&vec![7; payload]).await.expect("send");
            drop(peer);
        };
        let counters: [AtomicU64; 2] = Default::default();
        let meter = Meter {
            relay: &counters[0],
            server: &counters[1],
        };
        let mut writes = WriteSizes::default();
        let activity = Activity::new();
        let copying = copy_one_way(&mut source, &mut writes, &meter, &activity);
        let ((), copied) = tokio::join!(sending, copying);
        copied.expect("copied to EOF");
        assert_eq!(writes.0.iter().sum::<usize>(), payload);
        assert!(
            writes.0.iter().all(|&len| len <= TLS_COPY_BUFFER),
            "{:?}",
            writes.0
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_copying_direction_waiting_for_data_holds_no_buffer() {
        let (mut client_peer, client) = connected_pair().await;
        let (mut server_peer, server) = connected_pair().await;
        let counters: [AtomicU64; 4] = Default::default();
        let meter = |index: usize| Meter {
            relay: &counters[index],
            server: &counters[index + 1],
        };
        let copying = copy_both(client, server, Duration::from_secs(60), meter(0), meter(2));
        let exchange = async {
            let taken = buffers::counts().0;
            client_peer.write_all(b"ping").await.expect("send");
            let mut received = [0u8; 4];
            server_peer.read_exact(&mut received).await.expect("copied");
            assert_eq!(&received, b"ping");
            tokio::time::timeout(Duration::from_secs(5), async {
                while buffers::counts().1 != 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the buffer given back once written");
            assert!(buffers::counts().0 > taken, "the copy used a pooled buffer");
            drop((client_peer, server_peer));
        };
        let (copied, ()) = tokio::join!(copying, exchange);
        assert_eq!(copied.expect("copied to the end"), Ending::Finished);
        assert_eq!(buffers::counts().1, 0);
    }
}
