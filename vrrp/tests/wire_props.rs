//! Property tests of the codec: every valid advert survives emit then parse, and no byte
//! string makes the parser panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hafront_vrrp::wire::{MULTICAST_V4, MULTICAST_V6};
use hafront_vrrp::{Advert, Auth, Centiseconds, ChecksumForm, Password, Version};
use proptest::prelude::*;

fn v2_advert() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    (
        any::<u8>(),
        any::<u8>(),
        1..=255u16,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..=8)),
        prop::collection::vec(any::<[u8; 4]>(), 1..=20),
        any::<[u8; 4]>(),
    )
        .prop_map(|(vrid, priority, seconds, password, addresses, src)| {
            let advert = Advert {
                version: Version::V2,
                vrid,
                priority,
                interval: Centiseconds(seconds * 100),
                auth: password.map_or(Auth::None, |secret| {
                    Auth::Password(Password::new(&secret).expect("at most 8 bytes"))
                }),
                addresses: addresses.into_iter().map(IpAddr::from).collect(),
            };
            (advert, IpAddr::from(src), IpAddr::V4(MULTICAST_V4))
        })
}

fn v3_advert() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    (
        any::<u8>(),
        any::<u8>(),
        1..=4095u16,
        any::<bool>(),
        prop::collection::vec(any::<[u8; 16]>(), 1..=20),
        any::<[u8; 16]>(),
    )
        .prop_map(|(vrid, priority, centis, ipv6, addresses, src)| {
            let (addresses, src, dst): (Vec<IpAddr>, IpAddr, IpAddr) = if ipv6 {
                (
                    addresses.into_iter().map(IpAddr::from).collect(),
                    IpAddr::from(src),
                    IpAddr::V6(MULTICAST_V6),
                )
            } else {
                let v4 = |bytes: [u8; 16]| {
                    IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
                };
                (
                    addresses.into_iter().map(v4).collect(),
                    v4(src),
                    IpAddr::V4(MULTICAST_V4),
                )
            };
            let advert = Advert {
                version: Version::V3,
                vrid,
                priority,
                interval: Centiseconds(centis),
                auth: Auth::None,
                addresses,
            };
            (advert, src, dst)
        })
}

fn checksum_form() -> impl Strategy<Value = ChecksumForm> {
    prop_oneof![
        Just(ChecksumForm::PseudoHeader),
        Just(ChecksumForm::MessageOnly)
    ]
}

proptest! {
    #[test]
    fn emit_then_parse_round_trips(
        (advert, src, dst) in prop_oneof![v2_advert(), v3_advert()],
        form in checksum_form(),
    ) {
        let bytes = advert.emit(src, dst, form).expect("valid advert");
        prop_assert_eq!(Advert::parse(&bytes, src, dst), Ok(advert));
    }

    #[test]
    fn any_single_bit_flip_is_refused(
        (advert, src, dst) in prop_oneof![v2_advert(), v3_advert()],
        form in checksum_form(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut bytes = advert.emit(src, dst, form).expect("valid advert");
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // A flipped bit changes a field or breaks the checksum; it never yields the
        // original advert (the Internet checksum detects every single-bit error).
        prop_assert_ne!(Advert::parse(&bytes, src, dst), Ok(advert));
    }

    #[test]
    fn arbitrary_bytes_parse_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
    ) {
        for (src, dst) in [
            (IpAddr::from(v4), IpAddr::V4(MULTICAST_V4)),
            (IpAddr::V6(Ipv6Addr::from(v6)), IpAddr::V6(MULTICAST_V6)),
        ] {
            if let Ok(advert) = Advert::parse(&bytes, src, dst) {
                // Whatever parses is well formed: it emits again without error.
                let form = ChecksumForm::PseudoHeader;
                prop_assert!(advert.emit(src, dst, form).is_ok());
            }
        }
    }
}
