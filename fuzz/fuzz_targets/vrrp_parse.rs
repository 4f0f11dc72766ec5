//! Feeds arbitrary bytes to the VRRP parser over IPv4 and IPv6. Whatever parses must emit
//! again and parse back to the same advert (with the checksum form it arrived in).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hafront_vrrp::wire::{MULTICAST_V4, MULTICAST_V6};
use hafront_vrrp::{Advert, ChecksumForm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let endpoints = [
        (IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1)), IpAddr::V4(MULTICAST_V4)),
        (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)), IpAddr::V6(MULTICAST_V6)),
    ];
    for (src, dst) in endpoints {
        if let Ok(advert) = Advert::parse(data, src, dst) {
            for form in [ChecksumForm::PseudoHeader, ChecksumForm::MessageOnly] {
                let bytes = advert.emit(src, dst, form).expect("a parsed advert emits");
                assert_eq!(Advert::parse(&bytes, src, dst).as_ref(), Ok(&advert));
            }
        }
    }
});
