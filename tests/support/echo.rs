//! A TCP echo server on 127.0.0.1 for the relay tests: echoes every
//! connection, answers [`TRAILER`] after the client's EOF and closes;
//! counts connections and bytes received. Stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the echo server writes after the client's EOF.
pub const TRAILER: &[u8] = b"bye\n";

/// Echoes every connection, answers `bye\n` after the client's EOF and
/// closes; counts connections and bytes received. Stops when dropped.
pub struct EchoServer {
    pub address: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub received: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (accepted_count, received_count) = (Arc::clone(&accepted), Arc::clone(&received));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted_count.fetch_add(1, Ordering::SeqCst);
                let received = Arc::clone(&received_count);
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.into_split();
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        match reader.read(&mut buffer).await {
                            Ok(0) => break,
                            Ok(read) => {
                                received.fetch_add(read, Ordering::SeqCst);
                                if writer.write_all(&buffer[..read]).await.is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                    let _ = writer.write_all(TRAILER).await;
                    let _ = writer.shutdown().await;
                });
            }
        });
        EchoServer {
            address,
            accepted,
            received,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes received so far, over all connections.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asserts that a relay echoed `payload` and then the server's trailer.
pub fn assert_echoed(received: &[u8], payload: &[u8]) {
    assert_eq!(received.len(), payload.len() + TRAILER.len(), "byte count");
    assert!(received[..payload.len()] == *payload, "payload intact");
    assert_eq!(&received[payload.len()..], TRAILER);
}
