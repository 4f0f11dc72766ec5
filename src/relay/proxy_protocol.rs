//! The PROXY protocol (HAProxy's `proxy-protocol.txt`), versions 1 and 2:
//! a header a proxy sends before the client's bytes, naming the client's
//! address and the address it connected to.
//!
//! Sans-IO, in the manner of smoltcp's wire modules: [`Header`] is what a
//! header says, [`encode`] writes one, and [`parse`] reads one from the
//! start of a buffer, strictly and within [`MAX_HEADER_LEN`] bytes, telling
//! how many bytes it took or that it needs more. The version is detected
//! from the first bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The twelve bytes that open a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the protocol's own limit).
pub const V1_MAX_LEN: usize = 107;
/// The most bytes of addresses and TLVs accepted after a version 2 header's
/// fixed part. The protocol allows 65535; HAProxy accepts what fits its
/// buffer. Cloud load balancers send a few dozen bytes of TLVs.
pub const V2_MAX_PAYLOAD: usize = 2048;
/// The longest header [`parse`] accepts, of either version.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + V2_MAX_PAYLOAD;

/// Signature, version/command, family/protocol and length.
const V2_FIXED_LEN: usize = 16;
const V1_PREFIX: &[u8] = b"PROXY ";
const V2_VERSION: u8 = 0x20;
const V2_LOCAL: u8 = 0x00;
const V2_PROXY: u8 = 0x01;
const V2_UNSPEC: u8 = 0x00;
const V2_TCP4: u8 = 0x11;
const V2_UDP4: u8 = 0x12;
const V2_TCP6: u8 = 0x21;
const V2_UDP6: u8 = 0x22;
const V2_UNIX_STREAM: u8 = 0x31;
const V2_UNIX_DGRAM: u8 = 0x32;
const V2_INET_ADDRESSES_LEN: usize = 12;
const V2_INET6_ADDRESSES_LEN: usize = 36;
const V2_UNIX_ADDRESSES_LEN: usize = 216;
/// A TLV's type and length.
const V2_TLV_HEADER_LEN: usize = 3;

/// Which version of the protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text form: `PROXY TCP4 192.0.2.7 192.0.2.1 51234 3306\r\n`.
    V1,
    /// The binary form, with a fixed signature.
    V2,
}

/// What a header says about the connection that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied TCP connection: the client's address and the address it
    /// connected to.
    Proxy {
        /// The client.
        source: SocketAddr,
        /// Where the client connected (the proxy's listening address).
        destination: SocketAddr,
    },
    /// Version 2 `LOCAL`: the proxy's own connection (a health check); the
    /// connection's own addresses apply.
    Local,
    /// Version 1 `UNKNOWN`, or a version 2 family other than TCP (UDP,
    /// Unix, unspecified): no address to use; the connection's own apply.
    Unknown,
}

/// Why a buffer does not start with a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Neither the version 1 prefix nor the version 2 signature.
    NotProxy,
    /// A version 1 line without CRLF within [`V1_MAX_LEN`] bytes.
    V1TooLong,
    /// A version 1 line that is not `PROXY TCP4|TCP6 src dst sport dport`
    /// or `PROXY UNKNOWN ...`.
    V1Malformed,
    /// A version 2 version other than 2 or a command other than LOCAL or PROXY.
    V2BadVersionOrCommand(u8),
    /// A version 2 address family and protocol byte the protocol does not define.
    V2BadFamily(u8),
    /// A version 2 length beyond [`V2_MAX_PAYLOAD`].
    V2TooLong(usize),
    /// A version 2 length too short for the family's addresses.
    V2TooShort,
    /// A version 2 TLV that overruns the header.
    V2BadTlv,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotProxy => f.write_str("no PROXY protocol header (v1 or v2)"),
            ParseError::V1TooLong => {
                write!(f, "PROXY v1 line longer than {V1_MAX_LEN} bytes")
            }
            ParseError::V1Malformed => f.write_str("malformed PROXY v1 line"),
            ParseError::V2BadVersionOrCommand(byte) => {
                write!(
                    f,
                    "PROXY v2 version/command byte {byte:#04x} is not 0x20 or 0x21"
                )
            }
            ParseError::V2BadFamily(byte) => {
                write!(f, "PROXY v2 address family byte {byte:#04x} is undefined")
            }
            ParseError::V2TooLong(length) => write!(
                f,
                "PROXY v2 header of {length} bytes after its fixed part (at most {V2_MAX_PAYLOAD})"
            ),
            ParseError::V2TooShort => f.write_str("PROXY v2 header too short for its addresses"),
            ParseError::V2BadTlv => f.write_str("PROXY v2 TLV overruns the header"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Reads the header at the start of `buffer`: `Ok(None)` while the bytes so
/// far are a valid beginning of a header, else the header and the number
/// of bytes it takes (the bytes after it are the client's).
///
/// When the answer is `Ok(None)`, every byte of `buffer` belongs to the
/// header, so a reader may consume them all before reading more.
pub fn parse(buffer: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    if starts_like(buffer, &V2_SIGNATURE) {
        if buffer.len() < V2_SIGNATURE.len() {
            return Ok(None);
        }
        parse_v2(buffer)
    } else if starts_like(buffer, V1_PREFIX) {
        if buffer.len() < V1_PREFIX.len() {
            return Ok(None);
        }
        parse_v1(buffer)
    } else {
        Err(ParseError::NotProxy)
    }
}

/// Whether `buffer` and `prefix` agree on their common length (an empty
/// buffer agrees with anything).
fn starts_like(buffer: &[u8], prefix: &[u8]) -> bool {
    let common = buffer.len().min(prefix.len());
    buffer[..common] == prefix[..common]
}

fn parse_v1(buffer: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let window = &buffer[..buffer.len().min(V1_MAX_LEN)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if window.len() == V1_MAX_LEN {
            Err(ParseError::V1TooLong)
        } else if window.last() == Some(&b'\r') || !window.contains(&b'\r') {
            Ok(None)
        } else {
            // A CR not followed by LF.
            Err(ParseError::V1Malformed)
        };
    };
    let line = &window[V1_PREFIX.len()..end];
    // A CR not followed by LF is refused whether or not more bytes came
    // after it, so that the answer does not depend on how the bytes arrive.
    if line.contains(&b'\r') {
        return Err(ParseError::V1Malformed);
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::V1Malformed)?;
    let consumed = end + 2;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        // The receiver ignores whatever follows UNKNOWN.
        Some("UNKNOWN") => Header::Unknown,
        Some(family @ ("TCP4" | "TCP6")) => {
            let [source, destination, source_port, destination_port] =
                [(); 4].map(|()| fields.next().unwrap_or(""));
            if fields.next().is_some() {
                return Err(ParseError::V1Malformed);
            }
            let source = v1_address(source, family)?;
            let destination = v1_address(destination, family)?;
            Header::Proxy {
                source: SocketAddr::new(source, v1_port(source_port)?),
                destination: SocketAddr::new(destination, v1_port(destination_port)?),
            }
        }
        _ => return Err(ParseError::V1Malformed),
    };
    Ok(Some((header, consumed)))
}

fn v1_address(text: &str, family: &str) -> Result<IpAddr, ParseError> {
    let address = if family == "TCP4" {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    };
    address.map_err(|_| ParseError::V1Malformed)
}

/// A decimal port without sign or leading zero.
fn v1_port(text: &str) -> Result<u16, ParseError> {
    let digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(ParseError::V1Malformed);
    }
    text.parse().map_err(|_| ParseError::V1Malformed)
}

fn parse_v2(buffer: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let Some(fixed) = buffer.get(..V2_FIXED_LEN) else {
        // Check what has arrived of the fixed part already.
        if let Some(&version_command) = buffer.get(12) {
            v2_command(version_command)?;
        }
        if let Some(&family) = buffer.get(13) {
            v2_addresses_len(family)?;
        }
        return Ok(None);
    };
    let command = v2_command(fixed[12])?;
    let family = fixed[13];
    let addresses_len = v2_addresses_len(family)?;
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > V2_MAX_PAYLOAD {
        return Err(ParseError::V2TooLong(length));
    }
    if command == V2_PROXY && length < addresses_len {
        return Err(ParseError::V2TooShort);
    }
    let total = V2_FIXED_LEN + length;
    let Some(payload) = buffer.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    if command == V2_LOCAL {
        // The receiver ignores a LOCAL header's addresses.
        return Ok(Some((Header::Local, total)));
    }
    if family != V2_UNSPEC {
        check_tlvs(&payload[addresses_len..])?;
    }
    let header = match family {
        V2_TCP4 => {
            let ip = |at: usize| {
                Ipv4Addr::from(<[u8; 4]>::try_from(&payload[at..at + 4]).unwrap_or_default())
            };
            Header::Proxy {
                source: SocketAddr::new(ip(0).into(), port(&payload[8..10])),
                destination: SocketAddr::new(ip(4).into(), port(&payload[10..12])),
            }
        }
        V2_TCP6 => {
            let ip = |at: usize| {
                Ipv6Addr::from(<[u8; 16]>::try_from(&payload[at..at + 16]).unwrap_or_default())
            };
            Header::Proxy {
                source: SocketAddr::new(ip(0).into(), port(&payload[32..34])),
                destination: SocketAddr::new(ip(16).into(), port(&payload[34..36])),
            }
        }
        _ => Header::Unknown,
    };
    Ok(Some((header, total)))
}

fn port(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// The command of a version/command byte: LOCAL or PROXY, version 2.
fn v2_command(byte: u8) -> Result<u8, ParseError> {
    match (byte & 0xf0, byte & 0x0f) {
        (V2_VERSION, command @ (V2_LOCAL | V2_PROXY)) => Ok(command),
        _ => Err(ParseError::V2BadVersionOrCommand(byte)),
    }
}

/// The length of the address block of a family/protocol byte.
fn v2_addresses_len(family: u8) -> Result<usize, ParseError> {
    match family {
        V2_UNSPEC => Ok(0),
        V2_TCP4 | V2_UDP4 => Ok(V2_INET_ADDRESSES_LEN),
        V2_TCP6 | V2_UDP6 => Ok(V2_INET6_ADDRESSES_LEN),
        V2_UNIX_STREAM | V2_UNIX_DGRAM => Ok(V2_UNIX_ADDRESSES_LEN),
        _ => Err(ParseError::V2BadFamily(family)),
    }
}

/// Every TLV (type, 16-bit length, value) must end within `tlvs`.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ParseError> {
    while !tlvs.is_empty() {
        let Some(header) = tlvs.get(..V2_TLV_HEADER_LEN) else {
            return Err(ParseError::V2BadTlv);
        };
        let end = V2_TLV_HEADER_LEN + usize::from(u16::from_be_bytes([header[1], header[2]]));
        tlvs = tlvs.get(end..).ok_or(ParseError::V2BadTlv)?;
    }
    Ok(())
}

/// Writes `header` in `version`. Addresses of different families are both
/// written as IPv6 (IPv4 ones mapped, `::ffff:a.b.c.d`), as HAProxy does. A
/// version 1 header cannot say `LOCAL`: it becomes `UNKNOWN`; a version 2
/// `UNKNOWN` is a PROXY command with the unspecified family.
pub fn encode(version: Version, header: &Header) -> Vec<u8> {
    match version {
        Version::V1 => encode_v1(header),
        Version::V2 => encode_v2(header),
    }
}

fn encode_v1(header: &Header) -> Vec<u8> {
    let line = match header {
        Header::Proxy {
            source,
            destination,
        } => match same_family(*source, *destination) {
            (IpAddr::V4(from), IpAddr::V4(to)) => format!(
                "PROXY TCP4 {from} {to} {} {}\r\n",
                source.port(),
                destination.port()
            ),
            (from, to) => format!(
                "PROXY TCP6 {from} {to} {} {}\r\n",
                source.port(),
                destination.port()
            ),
        },
        Header::Local | Header::Unknown => "PROXY UNKNOWN\r\n".to_owned(),
    };
    line.into_bytes()
}

fn encode_v2(header: &Header) -> Vec<u8> {
    let mut bytes = V2_SIGNATURE.to_vec();
    let (command, family, addresses) = match header {
        Header::Proxy {
            source,
            destination,
        } => {
            let mut addresses = Vec::with_capacity(V2_INET6_ADDRESSES_LEN);
            let family = match same_family(*source, *destination) {
                (IpAddr::V4(from), IpAddr::V4(to)) => {
                    addresses.extend_from_slice(&from.octets());
                    addresses.extend_from_slice(&to.octets());
                    V2_TCP4
                }
                (from, to) => {
                    addresses.extend_from_slice(&as_ipv6(from).octets());
                    addresses.extend_from_slice(&as_ipv6(to).octets());
                    V2_TCP6
                }
            };
            addresses.extend_from_slice(&source.port().to_be_bytes());
            addresses.extend_from_slice(&destination.port().to_be_bytes());
            (V2_PROXY, family, addresses)
        }
        Header::Local => (V2_LOCAL, V2_UNSPEC, Vec::new()),
        Header::Unknown => (V2_PROXY, V2_UNSPEC, Vec::new()),
    };
    bytes.push(V2_VERSION | command);
    bytes.push(family);
    // At most 36 bytes: the length always fits.
    bytes.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&addresses);
    bytes
}

/// The two addresses in one family: unchanged when they share one, both
/// IPv6 otherwise.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (IpAddr, IpAddr) {
    match (source.ip(), destination.ip()) {
        (from @ IpAddr::V4(_), to @ IpAddr::V4(_)) => (from, to),
        (from, to) => (IpAddr::V6(as_ipv6(from)), IpAddr::V6(as_ipv6(to))),
    }
}

fn as_ipv6(address: IpAddr) -> Ipv6Addr {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn proxy(source: &str, destination: &str) -> Header {
        Header::Proxy {
            source: source.parse().expect("source"),
            destination: destination.parse().expect("destination"),
        }
    }

    #[test]
    fn v1_tcp4_is_the_documented_line() {
        let header = proxy("192.0.2.7:51234", "192.0.2.1:3306");
        let bytes = encode(Version::V1, &header);
        assert_eq!(bytes, b"PROXY TCP4 192.0.2.7 192.0.2.1 51234 3306\r\n");
        assert_eq!(parse(&bytes), Ok(Some((header, bytes.len()))));
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let header = proxy("[2001:db8::7]:1", "[2001:db8::1]:65535");
        let bytes = encode(Version::V1, &header);
        assert_eq!(bytes, b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n");
        assert_eq!(parse(&bytes), Ok(Some((header, bytes.len()))));
        assert_eq!(encode(Version::V1, &Header::Local), b"PROXY UNKNOWN\r\n");
        let unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest";
        assert_eq!(
            parse(unknown),
            Ok(Some((Header::Unknown, unknown.len() - 4)))
        );
    }

    #[test]
    fn v2_tcp4_is_the_documented_layout() {
        let header = proxy("192.0.2.7:51234", "192.0.2.1:3306");
        let bytes = encode(Version::V2, &header);
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 7, 192, 0, 2, 1]);
        expected.extend_from_slice(&51234u16.to_be_bytes());
        expected.extend_from_slice(&3306u16.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(parse(&bytes), Ok(Some((header, 28))));
    }

    #[test]
    fn v2_local_unknown_and_tlvs() {
        let local = encode(Version::V2, &Header::Local);
        assert_eq!(&local[12..], &[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local), Ok(Some((Header::Local, 16))));
        let unknown = encode(Version::V2, &Header::Unknown);
        assert_eq!(parse(&unknown), Ok(Some((Header::Unknown, 16))));
        // A TCP4 header with a NOOP TLV and an AWS-like TLV, then client bytes.
        let header = proxy("10.0.0.1:1000", "10.0.0.2:2000");
        let mut bytes = encode(Version::V2, &header);
        let tlvs = [0x04, 0, 2, 0, 0, 0xea, 0, 3, b'v', b'p', b'c'];
        bytes[15] += tlvs.len() as u8;
        bytes.extend_from_slice(&tlvs);
        let total = bytes.len();
        bytes.extend_from_slice(b"client");
        assert_eq!(parse(&bytes), Ok(Some((header, total))));
        // A UDP4 header: no usable address.
        let mut udp = encode(Version::V2, &header);
        udp[13] = 0x12;
        assert_eq!(parse(&udp), Ok(Some((Header::Unknown, udp.len()))));
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let header = proxy("192.0.2.7:1", "[2001:db8::1]:2");
        let mapped = proxy("[::ffff:192.0.2.7]:1", "[2001:db8::1]:2");
        for version in [Version::V1, Version::V2] {
            let bytes = encode(version, &header);
            assert_eq!(parse(&bytes), Ok(Some((mapped, bytes.len()))));
        }
    }

    #[test]
    fn truncated_headers_ask_for_more() {
        for header in [
            proxy("192.0.2.7:51234", "192.0.2.1:3306"),
            proxy("[2001:db8::7]:1", "[2001:db8::1]:2"),
        ] {
            for version in [Version::V1, Version::V2] {
                let bytes = encode(version, &header);
                for cut in 0..bytes.len() {
                    assert_eq!(parse(&bytes[..cut]), Ok(None), "{version:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn garbage_and_oversized_headers_are_refused() {
        let refused: &[(&[u8], ParseError)] = &[
            (b"GET / HTTP/1.1\r\n", ParseError::NotProxy),
            (b"\x16\x03\x01", ParseError::NotProxy),
            (b"proxy TCP4", ParseError::NotProxy),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                ParseError::V1Malformed,
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ParseError::V1Malformed),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", ParseError::V1Malformed),
            (
                b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
                ParseError::V1Malformed,
            ),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                ParseError::V1Malformed,
            ),
            (b"PROXY UNKNOWN a\rb\r\n", ParseError::V1Malformed),
        ];
        for (bytes, error) in refused {
            assert_eq!(
                parse(bytes),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(parse(&long), Err(ParseError::V1TooLong));
        let v2 = |tail: &[u8]| [V2_SIGNATURE.as_slice(), tail].concat();
        assert_eq!(
            parse(&v2(&[0x11])),
            Err(ParseError::V2BadVersionOrCommand(0x11))
        );
        assert_eq!(
            parse(&v2(&[0x22])),
            Err(ParseError::V2BadVersionOrCommand(0x22))
        );
        assert_eq!(
            parse(&v2(&[0x21, 0x13])),
            Err(ParseError::V2BadFamily(0x13))
        );
        assert_eq!(
            parse(&v2(&[0x21, 0x11, 0xff, 0xff])),
            Err(ParseError::V2TooLong(65535))
        );
        assert_eq!(
            parse(&v2(&[0x21, 0x21, 0, 12])),
            Err(ParseError::V2TooShort)
        );
        let mut overrun = v2(&[0x21, 0x11, 0, 15]);
        overrun.extend_from_slice(&[0; 12]);
        overrun.extend_from_slice(&[0x04, 0, 1]);
        assert_eq!(parse(&overrun), Err(ParseError::V2BadTlv));
    }

    fn address() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(Ipv4Addr::from(ip).into(), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(Ipv6Addr::from(ip).into(), port)),
        ]
    }

    proptest! {
        #[test]
        fn encoded_headers_parse_back(
            source in address(),
            destination in address(),
            v2 in any::<bool>(),
            trailing in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let header = Header::Proxy { source, destination };
            let (source_ip, destination_ip) = same_family(source, destination);
            let expected = Header::Proxy {
                source: SocketAddr::new(source_ip, source.port()),
                destination: SocketAddr::new(destination_ip, destination.port()),
            };
            let mut bytes = encode(version, &header);
            let length = bytes.len();
            let limit = if v2 { MAX_HEADER_LEN } else { V1_MAX_LEN };
            prop_assert!(length <= limit);
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(parse(&bytes), Ok(Some((expected, length))));
        }

        #[test]
        fn answers_do_not_depend_on_how_the_bytes_arrive(
            source in address(),
            destination in address(),
            v2 in any::<bool>(),
            flipped in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let mut bytes = encode(version, &Header::Proxy { source, destination });
            bytes.extend_from_slice(b"client bytes");
            let at = flipped.index(bytes.len());
            bytes[at] = byte;
            let whole = parse(&bytes);
            let arrived = cut.index(bytes.len() + 1);
            match parse(&bytes[..arrived]) {
                Err(_) => prop_assert!(whole.is_err()),
                Ok(Some(header)) => prop_assert_eq!(whole, Ok(Some(header))),
                Ok(None) => {
                    if let Ok(Some((_, length))) = whole {
                        prop_assert!(arrived < length);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_in_bounds(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(Some((_, consumed))) = parse(&bytes) {
                prop_assert!(consumed <= bytes.len() && consumed <= MAX_HEADER_LEN);
            }
        }
    }
}
