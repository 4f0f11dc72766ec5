//! Feeds arbitrary bytes to the PROXY protocol header parser. Nothing may
//! panic; a header it accepts lies within the input and the bound, and
//! what it says encodes and parses back to the same header.

#![no_main]

use hafront::relay::proxy_protocol::{self, Header, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match proxy_protocol::parse(data) {
        Ok(Some((header, consumed))) => {
            assert!(consumed <= data.len() && consumed <= proxy_protocol::MAX_HEADER_LEN);
            // Every prefix of an accepted header is an unfinished one.
            assert_eq!(proxy_protocol::parse(&data[..consumed - 1]), Ok(None));
            for version in [Version::V1, Version::V2] {
                let bytes = proxy_protocol::encode(version, &header);
                let again = proxy_protocol::parse(&bytes).expect("own header parses");
                let expected = match (version, header) {
                    (Version::V1, Header::Local) => Header::Unknown,
                    _ => header,
                };
                assert_eq!(again, Some((expected, bytes.len())));
            }
        }
        // An unfinished header is within bounds.
        Ok(None) => assert!(data.len() < proxy_protocol::MAX_HEADER_LEN),
        Err(_) => {}
    }
});
