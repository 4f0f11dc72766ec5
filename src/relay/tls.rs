//! TLS for relays (rustls with the ring provider, TLS 1.2 minimum):
//! acceptors that terminate TLS from clients, optionally requiring a client
//! certificate, and connectors that speak TLS to servers, verifying them
//! against a CA file and a name, optionally with a client certificate.

use std::io;
use std::path::Path;
use std::sync::Arc;

use hafront_config::{TlsClientMode, TlsServerMode};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

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
pub fn connector(mode: &TlsClientMode) -> io::Result<(TlsConnector, ServerName<'static>)> {
    let server_name = ServerName::try_from(mode.server_name.clone()).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("server name {:?}: {error}", mode.server_name),
        )
    })?;
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&mode.ca_file)?, provider())
        .build()
        .map_err(|error| invalid(&mode.ca_file, "CA file", error))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(tls_error)?
        .with_webpki_verifier(verifier);
    let config = match (&mode.cert_file, &mode.key_file) {
        (Some(cert_file), Some(key_file)) => builder
            .with_client_auth_cert(certificates(cert_file)?, private_key(key_file)?)
            .map_err(|error| invalid(cert_file, "client certificate and key", error))?,
        _ => builder.with_no_client_auth(),
    };
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}
