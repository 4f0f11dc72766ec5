//! Feeds arbitrary bytes to the spiped parsers that face the network: the
//! first 288 bytes as a peer's Diffie-Hellman message, the rest as 1060-byte
//! packets. Forged input must be refused (never panic); a genuine packet
//! sealed with the same keys must still open after a refused one is skipped.

#![no_main]

use hafront::relay::spiped::{
    DH_MESSAGE_LEN, HandshakeError, Opener, PACKET_LEN, PacketError, Sealer, verify_dh_message,
};
use libfuzzer_sys::fuzz_target;

const MAC_KEY: [u8; 32] = [0x42; 32];
const CIPHER_KEY: [u8; 32] = [0x24; 32];

fuzz_target!(|data: &[u8]| {
    let (handshake, packets) = data.split_at(data.len().min(DH_MESSAGE_LEN));
    if let Ok(message) = <&[u8; DH_MESSAGE_LEN]>::try_from(handshake) {
        // Without the key, a forged tag passes with negligible probability.
        assert!(matches!(
            verify_dh_message(&MAC_KEY, message),
            Err(HandshakeError::BadMac)
        ));
    }
    let mut opener = Opener::new(&CIPHER_KEY, &MAC_KEY);
    for chunk in packets.chunks_exact(PACKET_LEN) {
        let mut packet: [u8; PACKET_LEN] = chunk.try_into().expect("packet length");
        assert_eq!(opener.open(&mut packet), Err(PacketError::BadTag));
    }
    // A refused packet does not advance the opener.
    let mut sealer = Sealer::new(&CIPHER_KEY, &MAC_KEY);
    let message = match &packets[..packets.len().min(1024)] {
        [] => &b"x"[..],
        message => message,
    };
    let mut packet = [0u8; PACKET_LEN];
    sealer.seal(message, &mut packet);
    assert_eq!(opener.open(&mut packet), Ok(message));
});
