//! TCP connect check.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::Pass;

/// Passes when a TCP connection to `address` is established.
pub(super) async fn probe(address: SocketAddr) -> Result<Pass, String> {
    TcpStream::connect(address)
        .await
        .map(|_| Pass::new("connected"))
        .map_err(|error| format!("connect: {error}"))
}
