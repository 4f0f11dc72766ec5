//! TLS for relays (rustls with the ring provider, TLS 1.2 minimum):
//! acceptors that terminate TLS from clients, optionally requiring a client
//! certificate, and connectors that speak TLS to servers, verifying them
//! against a CA file (or a pinned certificate or key, see [`verify`]) and a
//! name, optionally with a client certificate. Handshake failures are told
//! in words ([`explain`]). Sessions run over a [`TlsSocket`], which reads
//! ahead in large chunks.

mod explain;
mod verify;

pub(crate) use explain::{Side, explain};

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hafront_config::{TlsClientMode, TlsServerMode};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::buffers::PooledBuffer;
use super::forward;

/// Bytes a [`TlsSocket`] asks the kernel for per recv(2).
const READ_AHEAD: usize = 64 * 1024;

/// Protocol versions offered and accepted: TLS 1.3 and 1.2.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn invalid(path: &Path, what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} {}: {error}", path.display()),
    )
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("TLS setup: {error}"))
}

/// Every certificate in the PEM file at `path` (at least one).
fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| invalid(path, "certificate file", error))?;
    if certificates.is_empty() {
        return Err(invalid(path, "certificate file", "no certificate found"));
    }
    Ok(certificates)
}

/// The first private key in the PEM file at `path`. The error never shows
/// the file's content.
fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| invalid(path, "key file", error))
}

/// The CA certificates in the PEM file at `path`.
fn roots(path: &Path) -> io::Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for certificate in certificates(path)? {
        store
            .add(certificate)
            .map_err(|error| invalid(path, "CA file", error))?;
    }
    Ok(Arc::new(store))
}

/// An acceptor for a `tls_server` relay: its certificate chain and key,
/// and, with `client_ca_file`, mandatory client certificates signed by it.
pub fn acceptor(mode: &TlsServerMode) -> io::Result<TlsAcceptor> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(tls_error)?;
    let builder = match &mode.client_ca_file {
        Some(ca_file) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_file)?, provider())
                .build()
                .map_err(|error| invalid(ca_file, "client CA file", error))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certificates(&mode.cert_file)?, private_key(&mode.key_file)?)
        .map_err(|error| invalid(&mode.cert_file, "certificate and key", error))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connector for a `tls_client` relay and the name servers must prove.
/// Servers are trusted through `ca_file` (a chain to one of its CAs, or
/// exactly one of its certificates) and, with `pin_sha256`, must have that
/// key.
pub fn connector(mode: &TlsClientMode) -> io::Result<(TlsConnector, ServerName<'static>)> {
    let server_name = ServerName::try_from(mode.server_name.clone()).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("server name {:?}: {error}", mode.server_name),
        )
    })?;
    let key_pin = mode.pin().map_err(|error| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("pin_sha256 {error}"))
    })?;
    let chain = match &mode.ca_file {
        Some(ca_file) => {
            let chain = WebPkiServerVerifier::builder_with_provider(roots(ca_file)?, provider())
                .build()
                .map_err(|error| invalid(ca_file, "CA file", error))?;
            Some((chain, certificates(ca_file)?))
        }
        None if key_pin.is_some() => None,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tls_client needs ca_file or pin_sha256 to verify the server",
            ));
        }
    };
    let verifier =
        verify::ServerVerifier::new(chain, key_pin, provider().signature_verification_algorithms);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&mode.cert_file, &mode.key_file) {
        (Some(cert_file), Some(key_file)) => builder
            .with_client_auth_cert(certificates(cert_file)?, private_key(key_file)?)
            .map_err(|error| invalid(cert_file, "client certificate and key", error))?,
        _ => builder.with_no_client_auth(),
    };
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

/// The TCP socket under a TLS session. rustls reads its transport at most
/// 4 KiB at a time, so a 16 KiB record would cost four or five recv(2)
/// calls; this socket reads up to [`READ_AHEAD`] bytes at once and hands
/// them out from memory (a short read clears the socket's readiness, as
/// the plaintext path does). It holds a buffer (from the thread's pool)
/// only while the socket has bytes to read: a connection waiting for data
/// holds none. Writes go straight to the socket.
pub(crate) struct TlsSocket {
    stream: TcpStream,
    buffer: Option<PooledBuffer>,
    /// Unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
}

impl TlsSocket {
    /// Wraps a connected socket.
    pub(crate) fn new(stream: TcpStream) -> TlsSocket {
        TlsSocket {
            stream,
            buffer: None,
            start: 0,
            end: 0,
        }
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(buffer) = &this.buffer
                && this.start < this.end
            {
                let taken = out.remaining().min(this.end - this.start);
                out.put_slice(&buffer[this.start..this.start + taken]);
                this.start += taken;
                return Poll::Ready(Ok(()));
            }
            match this.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    // Drained: the buffer goes back to the pool.
                    this.buffer = None;
                    return Poll::Pending;
                }
            }
            let buffer = this
                .buffer
                .get_or_insert_with(|| PooledBuffer::take(READ_AHEAD));
            match forward::recv_draining(&this.stream, buffer) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(read) => (this.start, this.end) = (0, read),
                // Readiness was stale; it is cleared now.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::connected_pair;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_see_every_byte_and_a_drained_socket_holds_no_buffer() {
        let (mut writer, reader) = connected_pair().await;
        let mut socket = TlsSocket::new(reader);
        let payload: Vec<u8> = (0..3 * READ_AHEAD + 123).map(|i| (i % 251) as u8).collect();
        writer.write_all(&payload).await.expect("write");

        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        while received.len() < payload.len() {
            let read = socket.read(&mut chunk).await.expect("read");
            assert!(read > 0, "early EOF");
            received.extend_from_slice(&chunk[..read]);
        }
        assert_eq!(received, payload);

        // Nothing more to read: the next read waits, and the buffer goes back.
        let waiting = tokio::time::timeout(Duration::from_millis(50), socket.read(&mut chunk));
        assert!(waiting.await.is_err(), "no data yet");
        assert!(socket.buffer.is_none(), "a waiting socket holds no buffer");

        drop(writer);
        assert_eq!(socket.read(&mut chunk).await.expect("read"), 0, "EOF");
    }
}
