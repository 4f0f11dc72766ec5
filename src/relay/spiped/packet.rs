//! spiped data packets: 1024-byte messages padded, length-tagged, encrypted
//! with AES-256-CTR and authenticated with HMAC-SHA256, one packet number
//! per direction. Sealing and opening work in place and never allocate.

use aes::Aes256;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use ring::hmac;
use subtle::ConstantTimeEq;

/// Most message bytes one packet carries.
pub const MAX_MESSAGE: usize = 1024;
/// Padded message plus its 32-bit length: the encrypted part.
const BLOCK_LEN: usize = MAX_MESSAGE + 4;
/// HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;
/// Bytes of one packet on the wire: 1060.
pub const PACKET_LEN: usize = BLOCK_LEN + TAG_LEN;

type CtrCore = ctr::CtrCore<Aes256, ctr::flavors::Ctr64BE>;

/// Why a received packet was refused; either one ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The tag does not match: wrong key, or bytes changed in flight.
    #[error("spiped packet failed authentication (tampered or out of order)")]
    BadTag,
    /// Authentic, but the length field is 0 or above 1024.
    #[error("spiped packet has an invalid length")]
    BadLength,
}

/// The keys and counter of one direction.
struct DirectionKeys {
    cipher: Aes256,
    mac: hmac::Key,
    packet_number: u64,
}

impl DirectionKeys {
    fn new(cipher_key: &[u8; 32], mac_key: &[u8; 32]) -> Self {
        DirectionKeys {
            cipher: Aes256::new(cipher_key.into()),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key),
            packet_number: 0,
        }
    }

    /// XORs the keystream of the current packet into `block`.
    fn apply_keystream(&self, block: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&self.packet_number.to_be_bytes());
        let core = CtrCore::inner_iv_init(self.cipher.clone(), &iv.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(block);
    }

    fn tag(&self, ciphertext: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.mac);
        context.update(ciphertext);
        context.update(&self.packet_number.to_be_bytes());
        context.sign()
    }
}

/// Seals the messages of one direction into packets.
pub struct Sealer(DirectionKeys);

impl Sealer {
    /// A sealer with cipher key `cipher_key` and MAC key `mac_key`,
    /// starting at packet number 0.
    pub fn new(cipher_key: &[u8; 32], mac_key: &[u8; 32]) -> Self {
        Sealer(DirectionKeys::new(cipher_key, mac_key))
    }

    /// Writes the packet carrying `message` (1..=1024 bytes) into `packet`.
    ///
    /// # Panics
    /// If `message` is empty or longer than [`MAX_MESSAGE`].
    pub fn seal(&mut self, message: &[u8], packet: &mut [u8; PACKET_LEN]) {
        assert!(
            (1..=MAX_MESSAGE).contains(&message.len()),
            "a spiped message holds 1..=1024 bytes"
        );
        let (block, tag) = packet.split_at_mut(BLOCK_LEN);
        block[..message.len()].copy_from_slice(message);
        block[message.len()..MAX_MESSAGE].fill(0);
        // Bounded by MAX_MESSAGE above.
        block[MAX_MESSAGE..].copy_from_slice(&(message.len() as u32).to_be_bytes());
        self.0.apply_keystream(block);
        tag.copy_from_slice(self.0.tag(block).as_ref());
        self.0.packet_number += 1;
    }
}

/// Opens the packets of one direction, in order.
pub struct Opener(DirectionKeys);

impl Opener {
    /// An opener with cipher key `cipher_key` and MAC key `mac_key`,
    /// starting at packet number 0.
    pub fn new(cipher_key: &[u8; 32], mac_key: &[u8; 32]) -> Self {
        Opener(DirectionKeys::new(cipher_key, mac_key))
    }

    /// Checks and decrypts `packet` in place; returns the message, which
    /// starts at the beginning of `packet`. The tag is checked first, in
    /// constant time, and nothing is decrypted if it fails.
    pub fn open<'a>(&mut self, packet: &'a mut [u8; PACKET_LEN]) -> Result<&'a [u8], PacketError> {
        let (block, tag) = packet.split_at_mut(BLOCK_LEN);
        let expected = self.0.tag(block);
        if !bool::from(expected.as_ref().ct_eq(tag)) {
            return Err(PacketError::BadTag);
        }
        self.0.apply_keystream(block);
        self.0.packet_number += 1;
        let length = u32::from_be_bytes(block[MAX_MESSAGE..].try_into().expect("4 bytes"));
        match usize::try_from(length) {
            Ok(length @ 1..=MAX_MESSAGE) => Ok(&block[..length]),
            _ => Err(PacketError::BadLength),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIPHER_KEY: [u8; 32] = [7; 32];
    const MAC_KEY: [u8; 32] = [9; 32];

    fn pair() -> (Sealer, Opener) {
        (
            Sealer::new(&CIPHER_KEY, &MAC_KEY),
            Opener::new(&CIPHER_KEY, &MAC_KEY),
        )
    }

    #[test]
    fn messages_round_trip_in_order() {
        let (mut sealer, mut opener) = pair();
        let mut packet = [0u8; PACKET_LEN];
        for length in [1, 17, 1023, 1024] {
            let message: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            sealer.seal(&message, &mut packet);
            assert_ne!(&packet[..length], &message[..], "ciphertext differs");
            assert_eq!(opener.open(&mut packet).unwrap(), &message[..]);
        }
    }

    #[test]
    fn the_same_message_encrypts_differently_per_packet_number() {
        let (mut sealer, _) = pair();
        let (mut first, mut second) = ([0u8; PACKET_LEN], [0u8; PACKET_LEN]);
        sealer.seal(b"same", &mut first);
        sealer.seal(b"same", &mut second);
        assert_ne!(first, second);
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let (mut sealer, _) = pair();
        let mut sealed = [0u8; PACKET_LEN];
        sealer.seal(b"hello", &mut sealed);
        for position in [0, 5, 1023, 1024, 1027, 1028, 1059] {
            let mut packet = sealed;
            packet[position] ^= 0x01;
            let (_, mut opener) = pair();
            assert_eq!(opener.open(&mut packet), Err(PacketError::BadTag));
        }
    }

    #[test]
    fn a_replayed_or_reordered_packet_is_refused() {
        let (mut sealer, mut opener) = pair();
        let (mut first, mut second) = ([0u8; PACKET_LEN], [0u8; PACKET_LEN]);
        sealer.seal(b"one", &mut first);
        sealer.seal(b"two", &mut second);
        let mut replay = second;
        assert_eq!(opener.open(&mut replay), Err(PacketError::BadTag));
        assert_eq!(opener.open(&mut first).unwrap(), b"one");
        assert_eq!(opener.open(&mut second).unwrap(), b"two");
    }

    #[test]
    fn an_authentic_packet_with_a_bad_length_is_refused() {
        for length in [0u32, 1025, u32::MAX] {
            let keys = DirectionKeys::new(&CIPHER_KEY, &MAC_KEY);
            let mut packet = [0u8; PACKET_LEN];
            packet[MAX_MESSAGE..BLOCK_LEN].copy_from_slice(&length.to_be_bytes());
            keys.apply_keystream(&mut packet[..BLOCK_LEN]);
            let tag = keys.tag(&packet[..BLOCK_LEN]);
            packet[BLOCK_LEN..].copy_from_slice(tag.as_ref());
            let (_, mut opener) = pair();
            assert_eq!(opener.open(&mut packet), Err(PacketError::BadLength));
        }
    }
}
