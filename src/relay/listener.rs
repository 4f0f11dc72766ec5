//! Listening and connecting sockets with the options a relay needs, and
//! the PROXY protocol header read before a client's first byte.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::proxy_protocol::{self, Header};

/// Pending-connection queue asked for; the kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener on `address` that may be an address this node does not
/// hold yet (a VIP that arrives later), with SO_REUSEADDR so a restart does
/// not wait for TIME_WAIT. Must run inside a Tokio runtime.
pub(crate) fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
        // `[::]` and `0.0.0.0` on the same port are separate listeners.
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Prepares an accepted client for request/response traffic.
pub(crate) fn tune_client(client: &TcpStream) -> io::Result<()> {
    client.set_nodelay(true)
}

/// Connects to a server within `timeout`, with TCP_NODELAY set.
pub(crate) async fn connect(address: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_nodelay(true)?;
    match tokio::time::timeout(timeout, socket.connect(address)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )),
    }
}

/// Reads a client's PROXY protocol header (v1 or v2) within `timeout`,
/// taking from the socket exactly the header's bytes: what follows is the
/// client's. `Ok(None)` when the client closed without sending a byte (a
/// TCP health check); an error when it sent something else, closed inside
/// the header, or was too slow.
pub(crate) async fn read_proxy_header(
    client: &mut TcpStream,
    timeout: Duration,
) -> io::Result<Option<Header>> {
    let reading = async {
        // Bytes taken from the socket so far, all part of the header.
        let mut taken = Vec::new();
        let mut peeked = vec![0u8; proxy_protocol::MAX_HEADER_LEN];
        loop {
            let room = proxy_protocol::MAX_HEADER_LEN - taken.len();
            let count = client.peek(&mut peeked[..room]).await?;
            if count == 0 {
                if taken.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed inside its PROXY protocol header",
                ));
            }
            let mut seen = taken.clone();
            seen.extend_from_slice(&peeked[..count]);
            match proxy_protocol::parse(&seen) {
                Ok(Some((header, length))) => {
                    // The header ends after the bytes taken: they parsed as
                    // an unfinished header.
                    let rest = length.saturating_sub(taken.len());
                    client.read_exact(&mut peeked[..rest]).await?;
                    return Ok(Some(header));
                }
                // Everything seen belongs to the header: take it, so that
                // the next peek waits for new bytes.
                Ok(None) => {
                    client.read_exact(&mut peeked[..count]).await?;
                    taken = seen;
                }
                Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
            }
        }
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(read) => read,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete PROXY protocol header within {timeout:?}"),
        )),
    }
}
