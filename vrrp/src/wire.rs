//! VRRP advertisement codec: version 2 (RFC 3768) and version 3 (RFC 5798 / RFC 9568).
//!
//! Modelled on smoltcp's `wire` module: [`Packet`] is a read-only view over received bytes
//! with field accessors, and [`Advert`] is the plain representation that is parsed from and
//! emitted to bytes. Parsing never panics and refuses malformed input with a [`DropReason`]
//! that names exactly one receive check, so a driver can count drops by reason.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP.
pub const IP_PROTOCOL: u8 = 112;
/// TTL / hop limit every advert is sent with and must arrive with.
pub const REQUIRED_HOP_LIMIT: u8 = 255;
/// IPv4 multicast group adverts are sent to.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group adverts are sent to.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Fixed header length shared by both versions.
const HEADER_LEN: usize = 8;
/// Authentication data trailing a v2 advert.
const V2_AUTH_DATA_LEN: usize = 8;
/// The only VRRP message type (advertisement).
const TYPE_ADVERTISEMENT: u8 = 1;
/// v2 authentication type "no authentication".
const AUTH_TYPE_NONE: u8 = 0;
/// v2 authentication type "simple text password".
const AUTH_TYPE_PASSWORD: u8 = 1;
/// Largest v3 max advert interval (12 bits of centiseconds).
const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, intervals in seconds, optional simple password.
    V2,
    /// RFC 5798 / RFC 9568: IPv4 and IPv6, intervals in centiseconds.
    V3,
}

impl Version {
    fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// An advert interval in centiseconds, the unit of VRRPv3 (v2 intervals are whole seconds,
/// that is multiples of 100 here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Centiseconds(pub u16);

impl Centiseconds {
    /// The interval as a [`Duration`].
    pub fn to_duration(self) -> Duration {
        Duration::from_millis(u64::from(self.0) * 10)
    }
}

/// How the checksum of a v3 advert over IPv4 is computed when sending. Receiving accepts
/// both forms; v2 is always message-only and v3 over IPv6 always uses the pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumForm {
    /// Include the IPv4 pseudo-header (RFC 5798, keepalived).
    #[default]
    PseudoHeader,
    /// Over the VRRP message only (RFC 9568).
    MessageOnly,
}

/// A v2 simple text password: 8 bytes, shorter passwords padded with zeros (as keepalived
/// does). `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Password([u8; 8]);

impl Password {
    /// A password from at most 8 bytes; `None` when longer.
    pub fn new(secret: &[u8]) -> Option<Password> {
        let mut bytes = [0; 8];
        bytes.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(Password(bytes))
    }

    /// The 8 bytes sent on the wire.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// v2 authentication (v3 has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    /// Authentication type 0.
    #[default]
    None,
    /// Authentication type 1: a clear-text password, which guards against misconfiguration,
    /// not against attackers.
    Password(Password),
}

/// Why a received advert was dropped. Each variant is one receive check;
/// [`DropReason::as_str`] gives a stable name for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// The TTL / hop limit was not 255: the advert crossed a router or was forged off-link.
    #[error("TTL / hop limit is not 255")]
    HopLimit,
    /// Shorter than the fixed VRRP header.
    #[error("shorter than the VRRP header")]
    Truncated,
    /// A version other than 2 or 3, or other than the instance's version.
    #[error("unsupported or unexpected VRRP version")]
    Version,
    /// A message type other than advertisement.
    #[error("not an advertisement")]
    Type,
    /// The length does not match the address count and family.
    #[error("length does not match the address count")]
    Length,
    /// The checksum is wrong (in every accepted form).
    #[error("bad checksum")]
    Checksum,
    /// IPv4 and IPv6 mixed in source and destination, or v2 over IPv6.
    #[error("address family not valid for this version")]
    AddressFamily,
    /// No virtual router with this VRID is configured on the interface.
    #[error("VRID not configured here")]
    UnknownVrid,
    /// v2 authentication type differs from the configured one.
    #[error("authentication type mismatch")]
    AuthType,
    /// v2 password differs from the configured one.
    #[error("authentication data mismatch")]
    AuthData,
    /// v2 interval differs from the configured one, or a v3 max advert interval of zero.
    #[error("advert interval mismatch or zero")]
    Interval,
    /// An address count of zero.
    #[error("no addresses")]
    AddressCount,
    /// The address list differs from the configured one and the sender is not the owner.
    #[error("virtual address list mismatch")]
    AddressMismatch,
    /// The advert carries this router's own primary address (looped back).
    #[error("own advert")]
    OwnAdvert,
    /// Unicast mode: the sender is not a configured peer.
    #[error("sender is not a configured unicast peer")]
    UnknownPeer,
}

impl DropReason {
    /// Every reason in declaration order (`reason as usize` indexes it), for
    /// pre-registering metrics.
    pub const ALL: [DropReason; 15] = [
        DropReason::HopLimit,
        DropReason::Truncated,
        DropReason::Version,
        DropReason::Type,
        DropReason::Length,
        DropReason::Checksum,
        DropReason::AddressFamily,
        DropReason::UnknownVrid,
        DropReason::AuthType,
        DropReason::AuthData,
        DropReason::Interval,
        DropReason::AddressCount,
        DropReason::AddressMismatch,
        DropReason::OwnAdvert,
        DropReason::UnknownPeer,
    ];

    /// Stable snake_case name, suitable as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::HopLimit => "hop_limit",
            DropReason::Truncated => "truncated",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Length => "length",
            DropReason::Checksum => "checksum",
            DropReason::AddressFamily => "address_family",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::AuthType => "auth_type",
            DropReason::AuthData => "auth_data",
            DropReason::Interval => "interval",
            DropReason::AddressCount => "address_count",
            DropReason::AddressMismatch => "address_mismatch",
            DropReason::OwnAdvert => "own_advert",
            DropReason::UnknownPeer => "unknown_peer",
        }
    }
}

/// Why an [`Advert`] cannot be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// No addresses, or more than 255.
    #[error("an advert carries 1 to 255 addresses")]
    AddressCount,
    /// Addresses, source and destination are not all of one family, or v2 with IPv6.
    #[error("addresses, source and destination must share one family (IPv4 only for v2)")]
    AddressFamily,
    /// v2: not whole seconds in 1..=255 s; v3: not 1..=4095 cs.
    #[error("advert interval out of range for this version")]
    Interval,
    /// Authentication on a v3 advert.
    #[error("VRRPv3 has no authentication")]
    Auth,
}

/// Checks the TTL / hop limit an advert arrived with.
pub fn check_hop_limit(hop_limit: u8) -> Result<(), DropReason> {
    if hop_limit == REQUIRED_HOP_LIMIT {
        Ok(())
    } else {
        Err(DropReason::HopLimit)
    }
}

/// A read-only view of a VRRP message. [`Packet::new_checked`] guarantees the fixed header
/// is present, so the header accessors cannot panic.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    bytes: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Wraps `bytes` after checking the header is complete and names a known version and
    /// the advertisement type.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Packet<'a>, DropReason> {
        if bytes.len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let packet = Packet { bytes };
        if !matches!(packet.version_number(), 2 | 3) {
            return Err(DropReason::Version);
        }
        if packet.message_type() != TYPE_ADVERTISEMENT {
            return Err(DropReason::Type);
        }
        Ok(packet)
    }

    /// The version nibble.
    pub fn version_number(&self) -> u8 {
        self.bytes[0] >> 4
    }

    /// The type nibble.
    pub fn message_type(&self) -> u8 {
        self.bytes[0] & 0x0f
    }

    /// Virtual router id.
    pub fn vrid(&self) -> u8 {
        self.bytes[1]
    }

    /// Sender's priority.
    pub fn priority(&self) -> u8 {
        self.bytes[2]
    }

    /// Number of addresses listed.
    pub fn address_count(&self) -> u8 {
        self.bytes[3]
    }

    /// v2 authentication type (meaningless for v3).
    pub fn auth_type(&self) -> u8 {
        self.bytes[4]
    }

    /// v2: the advert interval in seconds; v3: the max advert interval in centiseconds.
    pub fn raw_interval(&self) -> u16 {
        match self.version_number() {
            2 => u16::from(self.bytes[5]),
            _ => u16::from_be_bytes([self.bytes[4], self.bytes[5]]) & V3_MAX_INTERVAL_CS,
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]])
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router id.
    pub vrid: u8,
    /// Sender's priority: 255 owner, 1..=254 backup, 0 resigning master.
    pub priority: u8,
    /// Advert interval (v2: a multiple of 100 cs; v3: the max advert interval).
    pub interval: Centiseconds,
    /// v2 authentication; always [`Auth::None`] for v3.
    pub auth: Auth,
    /// The virtual addresses, all of the family of the carrying IP packet.
    pub addresses: Vec<IpAddr>,
}

impl Advert {
    /// Parses and verifies a message that arrived from `src` to `dst` (the IP header's
    /// addresses, needed for the v3 pseudo-header). The hop limit is checked separately
    /// by [`check_hop_limit`]; instance-specific checks belong to the state machine.
    pub fn parse(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advert, DropReason> {
        let packet = Packet::new_checked(bytes)?;
        let version = if packet.version_number() == 2 {
            Version::V2
        } else {
            Version::V3
        };
        let address_len = match (src, dst, version) {
            (IpAddr::V4(_), IpAddr::V4(_), _) => 4,
            (IpAddr::V6(_), IpAddr::V6(_), Version::V3) => 16,
            _ => return Err(DropReason::AddressFamily),
        };
        let trailer_len = match version {
            Version::V2 => V2_AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        let count = usize::from(packet.address_count());
        if bytes.len() != HEADER_LEN + count * address_len + trailer_len {
            return Err(DropReason::Length);
        }
        let checksum_ok = match (version, src, dst) {
            (Version::V2, _, _) => checksum(0, bytes) == 0,
            (Version::V3, IpAddr::V4(_), _) => {
                checksum(pseudo_header_sum(src, dst, bytes.len()), bytes) == 0
                    || checksum(0, bytes) == 0
            }
            (Version::V3, IpAddr::V6(_), _) => {
                checksum(pseudo_header_sum(src, dst, bytes.len()), bytes) == 0
            }
        };
        if !checksum_ok {
            return Err(DropReason::Checksum);
        }
        if count == 0 {
            return Err(DropReason::AddressCount);
        }
        let interval = match version {
            Version::V2 => Centiseconds(packet.raw_interval() * 100),
            Version::V3 => Centiseconds(packet.raw_interval()),
        };
        if interval.0 == 0 {
            return Err(DropReason::Interval);
        }
        let auth_data_start = HEADER_LEN + count * address_len;
        let auth = match (version, packet.auth_type()) {
            (Version::V3, _) | (Version::V2, AUTH_TYPE_NONE) => Auth::None,
            (Version::V2, AUTH_TYPE_PASSWORD) => {
                let mut password = [0; 8];
                password.copy_from_slice(&bytes[auth_data_start..]);
                Auth::Password(Password(password))
            }
            (Version::V2, _) => return Err(DropReason::AuthType),
        };
        let addresses = bytes[HEADER_LEN..auth_data_start]
            .chunks_exact(address_len)
            .map(|chunk| match <[u8; 4]>::try_from(chunk) {
                Ok(v4) => IpAddr::from(v4),
                Err(_) => {
                    let mut v6 = [0; 16];
                    v6.copy_from_slice(chunk);
                    IpAddr::from(v6)
                }
            })
            .collect();
        Ok(Advert {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            interval,
            auth,
            addresses,
        })
    }

    /// Emits the message sent from `src` to `dst`; `form` chooses the checksum of v3 over
    /// IPv4 and is ignored otherwise.
    pub fn emit(
        &self,
        src: IpAddr,
        dst: IpAddr,
        form: ChecksumForm,
    ) -> Result<Vec<u8>, EncodeError> {
        if self.addresses.is_empty() || self.addresses.len() > usize::from(u8::MAX) {
            return Err(EncodeError::AddressCount);
        }
        let is_v4 = src.is_ipv4();
        if dst.is_ipv4() != is_v4
            || self
                .addresses
                .iter()
                .any(|address| address.is_ipv4() != is_v4)
            || (self.version == Version::V2 && !is_v4)
        {
            return Err(EncodeError::AddressFamily);
        }
        let interval_field: [u8; 2] = match self.version {
            Version::V2 => {
                let seconds = self.interval.0 / 100;
                if self.interval.0 % 100 != 0 || !(1..=255).contains(&seconds) {
                    return Err(EncodeError::Interval);
                }
                let auth_type = match self.auth {
                    Auth::None => AUTH_TYPE_NONE,
                    Auth::Password(_) => AUTH_TYPE_PASSWORD,
                };
                [auth_type, seconds as u8]
            }
            Version::V3 => {
                if !(1..=V3_MAX_INTERVAL_CS).contains(&self.interval.0) {
                    return Err(EncodeError::Interval);
                }
                if self.auth != Auth::None {
                    return Err(EncodeError::Auth);
                }
                self.interval.0.to_be_bytes()
            }
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + 16 * self.addresses.len() + 8);
        bytes.push(self.version.number() << 4 | TYPE_ADVERTISEMENT);
        bytes.push(self.vrid);
        bytes.push(self.priority);
        bytes.push(self.addresses.len() as u8);
        bytes.extend_from_slice(&interval_field);
        bytes.extend_from_slice(&[0, 0]);
        for address in &self.addresses {
            match address {
                IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()),
            }
        }
        if self.version == Version::V2 {
            match &self.auth {
                Auth::None => bytes.extend_from_slice(&[0; V2_AUTH_DATA_LEN]),
                Auth::Password(password) => bytes.extend_from_slice(password.as_bytes()),
            }
        }
        let initial = match (self.version, is_v4, form) {
            (Version::V2, _, _) | (Version::V3, true, ChecksumForm::MessageOnly) => 0,
            (Version::V3, _, _) => pseudo_header_sum(src, dst, bytes.len()),
        };
        let sum = checksum(initial, &bytes);
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(bytes)
    }
}

/// The one's-complement sum of the IPv4 / IPv6 pseudo-header for protocol 112, unfolded.
fn pseudo_header_sum(src: IpAddr, dst: IpAddr, length: usize) -> u64 {
    let mut sum = 0;
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            sum = add_words(sum, &src.octets());
            sum = add_words(sum, &dst.octets());
            sum = add_words(sum, &[0, IP_PROTOCOL]);
            sum = add_words(sum, &(length as u16).to_be_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            sum = add_words(sum, &src.octets());
            sum = add_words(sum, &dst.octets());
            sum = add_words(sum, &(length as u32).to_be_bytes());
            sum = add_words(sum, &[0, 0, 0, IP_PROTOCOL]);
        }
        _ => {}
    }
    sum
}

/// Adds `bytes` as big-endian 16-bit words (an odd tail padded with zero).
fn add_words(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The Internet checksum (RFC 1071) of `bytes` on top of `initial`: zero when `bytes`
/// already carries a correct checksum.
fn checksum(initial: u64, bytes: &[u8]) -> u16 {
    let mut sum = add_words(initial, bytes);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    const DST: IpAddr = IpAddr::V4(MULTICAST_V4);

    fn v3_advert() -> Advert {
        Advert {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            interval: Centiseconds(100),
            auth: Auth::None,
            addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100))],
        }
    }

    /// A VRRPv2 advert as keepalived lays it out (auth PASS "secret", VRID 51, priority 100,
    /// interval 1 s, VIP 192.168.1.100), checksum computed independently of this module.
    #[test]
    fn parses_v2_password_advert() {
        let mut bytes = vec![0x21, 51, 100, 1, 1, 1, 0x7b, 0x71, 192, 168, 1, 100];
        bytes.extend_from_slice(b"secret\0\0");
        let advert = Advert::parse(&bytes, SRC, DST).unwrap();
        assert_eq!(advert.version, Version::V2);
        assert_eq!(advert.interval, Centiseconds(100));
        assert_eq!(
            advert.auth,
            Auth::Password(Password::new(b"secret").unwrap())
        );
        assert_eq!(
            advert.emit(SRC, DST, ChecksumForm::PseudoHeader).unwrap(),
            bytes
        );
    }

    #[test]
    fn v3_over_ipv4_accepts_both_checksum_forms_and_sends_the_chosen_one() {
        let advert = v3_advert();
        let pseudo = advert.emit(SRC, DST, ChecksumForm::PseudoHeader).unwrap();
        let message_only = advert.emit(SRC, DST, ChecksumForm::MessageOnly).unwrap();
        assert_ne!(pseudo, message_only);
        assert_eq!(checksum(0, &message_only), 0);
        assert_eq!(Advert::parse(&pseudo, SRC, DST).unwrap(), advert);
        assert_eq!(Advert::parse(&message_only, SRC, DST).unwrap(), advert);
        // The pseudo-header form depends on the addresses: another source must fail.
        let other = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(
            Advert::parse(&pseudo, other, DST),
            Err(DropReason::Checksum)
        );
    }

    #[test]
    fn v3_over_ipv6_requires_the_pseudo_header() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(MULTICAST_V6);
        let advert = Advert {
            addresses: vec![
                "fe80::100".parse().unwrap(),
                "2001:db8::100".parse().unwrap(),
            ],
            ..v3_advert()
        };
        let bytes = advert.emit(src, dst, ChecksumForm::MessageOnly).unwrap();
        assert_eq!(bytes.len(), 8 + 32);
        assert_ne!(checksum(0, &bytes), 0, "IPv6 ignores MessageOnly");
        assert_eq!(Advert::parse(&bytes, src, dst).unwrap(), advert);
    }

    #[test]
    fn each_malformation_has_its_own_reason() {
        let good = v3_advert()
            .emit(SRC, DST, ChecksumForm::PseudoHeader)
            .unwrap();
        let with = |index: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[index] = value;
            Advert::parse(&bytes, SRC, DST)
        };
        assert_eq!(
            Advert::parse(&good[..7], SRC, DST),
            Err(DropReason::Truncated)
        );
        assert_eq!(with(0, 0x41), Err(DropReason::Version));
        assert_eq!(with(0, 0x32), Err(DropReason::Type));
        assert_eq!(with(3, 2), Err(DropReason::Length));
        assert_eq!(with(2, 99), Err(DropReason::Checksum));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(
            Advert::parse(&good, v6, DST),
            Err(DropReason::AddressFamily)
        );
        assert_eq!(check_hop_limit(254), Err(DropReason::HopLimit));
        assert_eq!(check_hop_limit(255), Ok(()));

        let zero_interval = Advert {
            interval: Centiseconds(0),
            ..v3_advert()
        };
        let mut bytes = v3_advert()
            .emit(SRC, DST, ChecksumForm::MessageOnly)
            .unwrap();
        bytes[4..6].copy_from_slice(&[0, 0]);
        bytes[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &bytes);
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(Advert::parse(&bytes, SRC, DST), Err(DropReason::Interval));
        assert_eq!(
            zero_interval.emit(SRC, DST, ChecksumForm::MessageOnly),
            Err(EncodeError::Interval)
        );

        let mut no_addresses = vec![0x31, 51, 100, 0, 0, 100, 0, 0];
        let sum = checksum(0, &no_addresses);
        no_addresses[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            Advert::parse(&no_addresses, SRC, DST),
            Err(DropReason::AddressCount)
        );

        let mut ah_auth = vec![
            0x21, 51, 100, 1, 2, 1, 0, 0, 192, 168, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let sum = checksum(0, &ah_auth);
        ah_auth[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(Advert::parse(&ah_auth, SRC, DST), Err(DropReason::AuthType));
    }

    #[test]
    fn drop_reason_names_are_unique() {
        let mut names: Vec<_> = DropReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (index, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, index);
        }
    }

    #[test]
    fn password_debug_is_redacted_and_length_limited() {
        let password = Password::new(b"hunter2").unwrap();
        assert!(!format!("{:?}", Auth::Password(password)).contains("hunter2"));
        assert_eq!(Password::new(b"123456789"), None);
        assert_eq!(password.as_bytes(), b"hunter2\0");
    }

    #[test]
    fn emit_refuses_invalid_adverts() {
        let v2 = Advert {
            version: Version::V2,
            interval: Centiseconds(150),
            ..v3_advert()
        };
        assert_eq!(
            v2.emit(SRC, DST, ChecksumForm::PseudoHeader),
            Err(EncodeError::Interval)
        );
        let v6: IpAddr = "fe80::1".parse().unwrap();
        let v2 = Advert {
            version: Version::V2,
            ..v3_advert()
        };
        assert_eq!(
            v2.emit(v6, v6, ChecksumForm::PseudoHeader),
            Err(EncodeError::AddressFamily)
        );
        let empty = Advert {
            addresses: vec![],
            ..v3_advert()
        };
        assert_eq!(
            empty.emit(SRC, DST, ChecksumForm::PseudoHeader),
            Err(EncodeError::AddressCount)
        );
        let authenticated = Advert {
            auth: Auth::Password(Password::new(b"x").unwrap()),
            ..v3_advert()
        };
        assert_eq!(
            authenticated.emit(SRC, DST, ChecksumForm::PseudoHeader),
            Err(EncodeError::Auth)
        );
    }
}
