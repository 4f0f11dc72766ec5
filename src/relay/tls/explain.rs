//! TLS handshake failures in plain words, with what to do about them,
//! instead of rustls's enum names.

use std::io;

use rustls::{AlertDescription, CertificateError, Error};

use super::verify::PinMismatch;

/// Which end of the handshake hafront played.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side<'a> {
    /// A `tls_client` relay verifying the server named `server_name`.
    Client {
        /// The name the server's certificate must carry.
        server_name: &'a str,
    },
    /// A `tls_server` relay facing a client.
    Server,
}

/// A handshake error as a sentence saying what went wrong and what to do.
pub(crate) fn explain(error: &io::Error, side: Side<'_>) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => format!(
                "the {} closed the connection during the TLS handshake: it may have refused \
                 our certificate, or it does not speak TLS on this port",
                side.peer()
            ),
            _ => error.to_string(),
        };
    };
    match tls {
        Error::InvalidCertificate(certificate) => explain_certificate(certificate, side),
        Error::NoCertificatesPresented => match side {
            Side::Server => "the client sent no certificate, and client_ca_file requires one: \
                             give the client a certificate signed by a CA of client_ca_file"
                .to_owned(),
            Side::Client { .. } => "the server sent no certificate".to_owned(),
        },
        Error::AlertReceived(alert) => explain_alert(*alert, side),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => format!(
            "the {} does not speak TLS here (plaintext, or another protocol on this port)",
            side.peer()
        ),
        Error::PeerIncompatible(_) => format!(
            "the {} and hafront share no TLS version or cipher suite (hafront speaks TLS 1.2 \
             and 1.3 with modern suites only): upgrade or reconfigure the {0}",
            side.peer()
        ),
        other => format!("TLS handshake with the {} failed: {other}", side.peer()),
    }
}

impl Side<'_> {
    /// Who hafront was talking to.
    fn peer(self) -> &'static str {
        match self {
            Side::Client { .. } => "server",
            Side::Server => "client",
        }
    }

    /// The setting that says whom this side trusts.
    fn trust_setting(self) -> &'static str {
        match self {
            Side::Client { .. } => "ca_file",
            Side::Server => "client_ca_file",
        }
    }
}

fn explain_certificate(error: &CertificateError, side: Side<'_>) -> String {
    let peer = side.peer();
    let trust = side.trust_setting();
    match error {
        CertificateError::UnknownIssuer => format!(
            "the {peer}'s certificate is not signed by a CA of {trust}: put the CA that signed \
             it in {trust} (for a self-signed certificate, the certificate itself){}",
            pin_hint(side)
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            match side {
                Side::Client { server_name } => format!(
                    "the server's certificate is not for {server_name}: set server_name to a \
                     name in its subjectAltName (openssl x509 -in CERT -noout -ext \
                     subjectAltName), or give the server a certificate for {server_name}"
                ),
                Side::Server => "the client's certificate is not valid for its name".to_owned(),
            }
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "the {peer}'s certificate has expired: renew it (and check that both clocks are right)"
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the {peer}'s certificate is not valid yet: check that both clocks are right")
        }
        CertificateError::BadSignature => format!(
            "the {peer}'s certificate has a signature that does not verify: it was damaged or \
             forged, or {trust} holds another CA with the same name"
        ),
        CertificateError::BadEncoding => {
            format!("the {peer}'s certificate is not a well-formed X.509 certificate")
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "the {peer}'s certificate is not made for this use (its extendedKeyUsage lacks \
                 {}): make one with the right usage",
                match side {
                    Side::Client { .. } => "serverAuth",
                    Side::Server => "clientAuth",
                }
            )
        }
        CertificateError::Other(other) if other.0.downcast_ref::<PinMismatch>().is_some() => {
            "the server's public key does not match pin_sha256: the server has another key (a \
             new certificate, or not the server you expect). The pin of a certificate is: \
             openssl x509 -in CERT -pubkey -noout | openssl pkey -pubin -outform der | \
             openssl dgst -sha256 -binary | base64"
                .to_owned()
        }
        CertificateError::Other(other)
            if other.0.downcast_ref::<webpki::Error>()
                == Some(&webpki::Error::CaUsedAsEndEntity) =>
        {
            format!(
                "the {peer} presents a CA certificate (basicConstraints CA:TRUE, as `openssl \
                 req -x509` makes) as its own and {trust} does not name that very certificate: \
                 put exactly this certificate in {trust} to trust it as pinned{}, or give the \
                 {peer} a certificate signed by a CA",
                pin_hint(side)
            )
        }
        other => format!("the {peer}'s certificate was refused: {other}"),
    }
}

/// The pin alternative, where there is one.
fn pin_hint(side: Side<'_>) -> &'static str {
    match side {
        Side::Client { .. } => ", or pin its key with pin_sha256",
        Side::Server => "",
    }
}

fn explain_alert(alert: AlertDescription, side: Side<'_>) -> String {
    let peer = side.peer();
    match (alert, side) {
        (
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied,
            _,
        ) => format!(
            "the {peer} refused hafront's certificate ({alert:?}): the {peer} must trust the CA \
             that signed {} (or the certificate itself), and the certificate must carry the \
             name the {peer} expects",
            match side {
                Side::Client { .. } => "cert_file",
                Side::Server => "the relay's cert_file",
            }
        ),
        (
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
            Side::Client { .. },
        ) => "the server refused the handshake, most likely because it requires a client \
             certificate: set cert_file and key_file"
            .to_owned(),
        (AlertDescription::ProtocolVersion, _) => {
            format!("the {peer} and hafront share no TLS version (hafront speaks TLS 1.2 and 1.3)")
        }
        (alert, _) => format!("the {peer} ended the TLS handshake with the alert {alert:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn wrapped(error: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    const CLIENT: Side<'static> = Side::Client {
        server_name: "db.example",
    };

    #[test]
    fn no_enum_names_reach_the_words() {
        let ca_as_leaf = Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        let cases = [
            (ca_as_leaf, "put exactly this certificate in ca_file"),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "not signed by a CA of ca_file",
            ),
            (
                Error::InvalidCertificate(CertificateError::NotValidForName),
                "not for db.example",
            ),
            (
                Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                    PinMismatch,
                )))),
                "does not match pin_sha256",
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                "set cert_file and key_file",
            ),
        ];
        for (error, expected) in cases {
            let words = explain(&wrapped(error), CLIENT);
            assert!(words.contains(expected), "{words}");
            assert!(!words.contains("Other("), "{words}");
        }
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert!(explain(&eof, Side::Server).contains("the client closed the connection"));
        let words = explain(
            &wrapped(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Side::Server,
        );
        assert!(words.contains("client_ca_file"), "{words}");
    }
}
