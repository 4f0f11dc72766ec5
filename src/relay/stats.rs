//! Relay and per-server counters: relaxed atomics updated on the data path,
//! read as consistent-enough snapshots for status and metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one relay.
#[derive(Debug, Default)]
pub(crate) struct RelayCounters {
    /// Clients currently held, from accept to close (including refused ones
    /// for the instant before they are closed).
    pub active: AtomicU64,
    pub total: AtomicU64,
    pub client_to_server_bytes: AtomicU64,
    pub server_to_client_bytes: AtomicU64,
    pub refused_no_server: AtomicU64,
    pub refused_limit: AtomicU64,
    pub refused_connect_failed: AtomicU64,
    pub refused_handshake: AtomicU64,
    pub refused_proxy_header: AtomicU64,
    pub refused_untrusted: AtomicU64,
    pub empty: AtomicU64,
    pub copied: AtomicU64,
}

/// Live counters of one server as seen by one relay.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    /// Connections open or being opened to the server.
    pub active: AtomicU64,
    pub total: AtomicU64,
    pub client_to_server_bytes: AtomicU64,
    pub server_to_client_bytes: AtomicU64,
    pub connect_failures: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A snapshot of one relay's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStats {
    /// The relay's name.
    pub name: String,
    /// Clients connected now.
    pub active: u64,
    /// Clients forwarded to a server since start.
    pub total: u64,
    /// Bytes received from clients and sent on to servers.
    pub client_to_server_bytes: u64,
    /// Bytes received from servers and sent on to clients.
    pub server_to_client_bytes: u64,
    /// Clients closed at once because no server was up.
    pub refused_no_server: u64,
    /// Clients closed at once because `max_connections` was reached.
    pub refused_limit: u64,
    /// Clients closed because every connect attempt failed.
    pub refused_connect_failed: u64,
    /// Clients closed because their side's handshake failed (spiped, TLS)
    /// or their gateway request was refused.
    pub refused_handshake: u64,
    /// Clients of an `accept_proxy` relay closed for a missing, malformed
    /// or late PROXY protocol header.
    pub refused_proxy_header: u64,
    /// Clients of an `accept_proxy` relay closed because their address is
    /// not on `accept_proxy_from`.
    pub refused_untrusted: u64,
    /// Clients of an encrypted, gateway or `accept_proxy` relay that closed
    /// without sending a byte (TCP health checks, port scans); logged at debug level only.
    pub empty: u64,
    /// Connections forwarded by userspace copy instead of splice(2) (splice
    /// unavailable, or disabled by [`DataPath::Copy`](super::DataPath::Copy)).
    pub copied: u64,
    /// The servers of the current pool view, in pool order.
    pub servers: Vec<ServerStats>,
}

/// A snapshot of one server's counters as seen by one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// Server name.
    pub name: String,
    /// Server address.
    pub address: SocketAddr,
    /// Connections open (or being opened) to it now.
    pub active: u64,
    /// Clients forwarded to it since start.
    pub total: u64,
    /// Bytes sent to it on behalf of clients.
    pub client_to_server_bytes: u64,
    /// Bytes received from it for clients.
    pub server_to_client_bytes: u64,
    /// Connect attempts that were refused or timed out.
    pub connect_failures: u64,
}

impl RelayCounters {
    pub(crate) fn snapshot(&self, name: &str, servers: Vec<ServerStats>) -> RelayStats {
        RelayStats {
            name: name.to_owned(),
            active: read(&self.active),
            total: read(&self.total),
            client_to_server_bytes: read(&self.client_to_server_bytes),
            server_to_client_bytes: read(&self.server_to_client_bytes),
            refused_no_server: read(&self.refused_no_server),
            refused_limit: read(&self.refused_limit),
            refused_connect_failed: read(&self.refused_connect_failed),
            refused_handshake: read(&self.refused_handshake),
            refused_proxy_header: read(&self.refused_proxy_header),
            refused_untrusted: read(&self.refused_untrusted),
            empty: read(&self.empty),
            copied: read(&self.copied),
            servers,
        }
    }
}

impl ServerCounters {
    pub(crate) fn snapshot(&self, name: &str, address: SocketAddr) -> ServerStats {
        ServerStats {
            name: name.to_owned(),
            address,
            active: read(&self.active),
            total: read(&self.total),
            client_to_server_bytes: read(&self.client_to_server_bytes),
            server_to_client_bytes: read(&self.server_to_client_bytes),
            connect_failures: read(&self.connect_failures),
        }
    }
}

/// Holds one unit of an `active` gauge and gives it back when dropped, on
/// every exit path.
pub(crate) struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    /// Takes one unit and returns the guard with the gauge's new value.
    pub(crate) fn enter(gauge: &'a AtomicU64) -> (Self, u64) {
        let now = gauge.fetch_add(1, Ordering::Relaxed) + 1;
        (ActiveGuard(gauge), now)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
