//! Feeds arbitrary bytes to the gateway's request parsing: line framing,
//! then token decryption and the allow-list. Nothing may panic, and a line
//! without a valid token under the secret must never resolve.

#![no_main]

use std::time::Duration;

use hafront::relay::gateway::{Gateway, LineEnd, find_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gateway = Gateway::new(
        b"fuzzing secret",
        vec![
            "0.0.0.0/0".parse().expect("network"),
            "::/0".parse().expect("network"),
        ],
        Duration::from_secs(1),
    );
    match find_line(data) {
        LineEnd::Complete { token_len, next } => {
            assert!(token_len < next && next <= data.len());
            assert_eq!(data[next - 1], b'\n');
            // Forging a token without the secret means guessing the padding
            // and an address: possible, so only the absence of panics is checked.
            let _ = gateway.resolve(&data[..token_len]);
        }
        LineEnd::Incomplete => assert!(!data.contains(&b'\n')),
    }
});
