//! How a `tls_client` relay trusts a server: a chain to a CA of `ca_file`
//! (rustls's WebPKI verifier), or, as stunnel users expect, a self-signed
//! certificate of `ca_file` that is the very certificate the server
//! presents (pinned), or a server key matching `pin_sha256`. A pinned
//! certificate must still name `server_name` and be within its dates, and
//! the server must still prove it holds the key.

use std::sync::Arc;

use ring::digest::{SHA256, digest};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The server's key is not the one `pin_sha256` names.
#[derive(Debug, thiserror::Error)]
#[error("the server's public key does not match pin_sha256")]
pub(crate) struct PinMismatch;

/// A server certificate verifier for `tls_client` relays.
#[derive(Debug)]
pub(super) struct ServerVerifier {
    /// Verifies chains to the CAs of `ca_file`; none without `ca_file`.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates of `ca_file`, trusted as themselves when presented.
    pinned: Vec<CertificateDer<'static>>,
    /// SHA-256 of the SubjectPublicKeyInfo the server must have.
    key_pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    /// A verifier trusting `chain` (with the certificates of its CA file in
    /// `pinned`) and, if given, requiring the key `key_pin`. Without a
    /// chain, the key pin alone is the trust.
    pub(super) fn new(
        chain: Option<(Arc<WebPkiServerVerifier>, Vec<CertificateDer<'static>>)>,
        key_pin: Option<[u8; 32]>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ServerVerifier {
        let (chain, pinned) =
            chain.map_or((None, Vec::new()), |(chain, pinned)| (Some(chain), pinned));
        ServerVerifier {
            chain,
            pinned,
            key_pin,
            algorithms,
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = &self.key_pin {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            let key = digest(&SHA256, certificate.subject_public_key_info().as_ref());
            if key.as_ref() != pin {
                return Err(CertificateError::Other(OtherError(Arc::new(PinMismatch))).into());
            }
        }
        let presented_is_pinned = self
            .pinned
            .iter()
            .any(|certificate| certificate.as_ref() == end_entity.as_ref());
        match &self.chain {
            Some(chain) if !presented_is_pinned => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            _ => verify_pinned(end_entity, server_name, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks a certificate trusted as itself: it must name `server_name` and
/// be valid at `now`.
fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
    let (not_before, not_after) = validity(end_entity).ok_or(CertificateError::BadEncoding)?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > not_after {
        return Err(CertificateError::Expired.into());
    }
    Ok(ServerCertVerified::assertion())
}

/// The first DER element of `input`: its tag, its contents and what follows.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// notBefore and notAfter of a DER certificate, in seconds since the epoch.
fn validity(certificate: &[u8]) -> Option<(i64, i64)> {
    let (SEQUENCE, certificate, _) = der_element(certificate)? else {
        return None;
    };
    let (SEQUENCE, mut fields, _) = der_element(certificate)? else {
        return None;
    };
    // TBSCertificate: [0] version (optional), serialNumber, signature,
    // issuer, then validity.
    if fields.first() == Some(&VERSION) {
        fields = der_element(fields)?.2;
    }
    for _ in 0..3 {
        fields = der_element(fields)?.2;
    }
    let (SEQUENCE, validity, _) = der_element(fields)? else {
        return None;
    };
    let (tag, not_before, rest) = der_element(validity)?;
    let not_before = asn1_time(tag, not_before)?;
    let (tag, not_after, _) = der_element(rest)?;
    Some((not_before, asn1_time(tag, not_after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) in
/// seconds since the epoch.
fn asn1_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, rest) = match (tag, text.len()) {
        // RFC 5280: two-digit years 50-99 are 19YY, 00-49 are 20YY.
        (UTC_TIME, 12) => {
            let year = number(0..2)?;
            (if year < 50 { 2000 + year } else { 1900 + year }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let field = |index: usize| number(rest + 2 * index..rest + 2 * index + 2);
    let days = days_from_civil(year, field(0)?, field(1)?);
    Some(days * 86_400 + field(2)? * 3_600 + field(3)? * 60 + field(4)?)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    /// Made by `openssl req -x509 -newkey ec -pkeyopt
    /// ec_paramgen_curve:prime256v1 -nodes -subj /CN=db.example -addext
    /// subjectAltName=DNS:db.example`: notBefore Nov 30 06:24:09 2026 GMT,
    /// notAfter Dec 30 06:24:09 2026 GMT.
    const SELF_SIGNED: &str = "-----BEGIN CERTIFICATE-----
MIIBljCCATygAwIBAgIUC+hQCIYZ7tZ/vMJwSiRUlzJnuSkwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKZGIuZXhhbXBsZTAeFw0yNjExMzAwNjI0MDlaFw0yNjEyMzAw
NjI0MDlaMBUxEzARBgNVBAMMCmRiLmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATsjXsfZplhRo1MTC2jYecKgTePu996TYN2pMS9gOLMrHgJQkxwHcI2
sZZh9k+LgCBAvEATvR5jniXxGmBAfbk/o2owaDAdBgNVHQ4EFgQU5bvLKYD/OvOo
SNbvTBnxs2JbBBAwHwYDVR0jBBgwFoAU5bvLKYD/OvOoSNbvTBnxs2JbBBAwDwYD
VR0TAQH/BAUwAwEB/zAVBgNVHREEDjAMggpkYi5leGFtcGxlMAoGCCqGSM49BAMC
A0gAMEUCIHvaPiRuuJcOUvu9uiowPKj52+CeTMJP4C6DXxja/zEOAiEA2ybkQPO5
wxCCF+JpNWvB1iJEVHoBEKInXAFXrVnsWX0=
-----END CERTIFICATE-----
";

    fn certificate() -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(SELF_SIGNED.as_bytes()).expect("PEM certificate")
    }

    #[test]
    fn validity_reads_both_dates() {
        assert_eq!(
            validity(&certificate()),
            Some((1_796_019_849, 1_798_611_849))
        );
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None, "not a certificate");
    }

    #[test]
    fn asn1_times_of_both_forms() {
        assert_eq!(asn1_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(
            asn1_time(GENERALIZED_TIME, b"20260101000000Z"),
            Some(1_767_225_600)
        );
        assert_eq!(asn1_time(UTC_TIME, b"7001010000+0Z"), None);
        assert_eq!(asn1_time(GENERALIZED_TIME, b"700101000000Z"), None);
    }

    #[test]
    fn a_pinned_certificate_is_checked_for_its_name_and_dates() {
        let certificate = certificate();
        let name = ServerName::try_from("db.example").expect("name");
        let at = |seconds: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        assert!(verify_pinned(&certificate, &name, at(1_797_000_000)).is_ok());
        let other = ServerName::try_from("other.example").expect("name");
        assert!(matches!(
            verify_pinned(&certificate, &other, at(1_797_000_000)),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ));
        assert_eq!(
            verify_pinned(&certificate, &name, at(1_796_019_848)).err(),
            Some(CertificateError::NotValidYet.into())
        );
        assert_eq!(
            verify_pinned(&certificate, &name, at(1_798_611_850)).err(),
            Some(CertificateError::Expired.into())
        );
    }
}
