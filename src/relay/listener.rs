//! Listening and connecting sockets with the options a relay needs.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

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
