//! Diffie-Hellman over RFC 3526 group 14 (2048-bit MODP, generator 2), as
//! spiped uses it, with a constant-time modular exponentiation.

use crypto_bigint::modular::{ConstMontyForm, ConstMontyParams};
use crypto_bigint::{U320, U2048, const_monty_params};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

const_monty_params!(
    Group14,
    U2048,
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
     98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
     9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
     E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718\
     3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    "The RFC 3526 group 14 prime."
);

type Residue = ConstMontyForm<Group14, { U2048::LIMBS }>;

/// Bytes of a group element on the wire (big-endian, left-padded).
pub const ELEMENT_LEN: usize = 256;

/// Bits of a private exponent: spiped's 2^258 + 256 random bits.
const EXPONENT_BITS: u32 = 259;

/// A group element as sent on the wire.
pub type Element = [u8; ELEMENT_LEN];

/// The value a side sends to skip Diffie-Hellman (spiped's `-f`).
pub const ONE: Element = {
    let mut one = [0; ELEMENT_LEN];
    one[ELEMENT_LEN - 1] = 1;
    one
};

/// An ephemeral private exponent; wiped on drop.
pub struct PrivateExponent(U320);

impl Drop for PrivateExponent {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PrivateExponent {
    /// A fresh exponent 2^258 + r with r uniform below 2^256.
    pub fn generate(random: &SystemRandom) -> Result<PrivateExponent, ring::error::Unspecified> {
        let mut bytes = [0u8; U320::BYTES];
        // Big-endian: byte 7 holds bits 256..264, so 0x04 is bit 258.
        bytes[7] = 0x04;
        random.fill(&mut bytes[8..])?;
        let exponent = U320::from_be_slice(&bytes);
        bytes.zeroize();
        Ok(PrivateExponent(exponent))
    }

    /// 2^x mod p: the value to send.
    pub fn public(&self) -> Element {
        encode(&Residue::new(&U2048::from_u8(2)).pow_bounded_exp(&self.0, EXPONENT_BITS))
    }

    /// peer^x mod p: the shared value. `peer` must be below p.
    pub fn shared(&self, peer: &U2048) -> Element {
        encode(&Residue::new(peer).pow_bounded_exp(&self.0, EXPONENT_BITS))
    }
}

/// Parses a peer's value, refusing values not below p (spiped does too).
pub fn parse_element(bytes: &Element) -> Option<U2048> {
    let value = U2048::from_be_slice(bytes);
    (value < *Group14::PARAMS.modulus().as_ref()).then_some(value)
}

fn encode(residue: &Residue) -> Element {
    let mut out = [0u8; ELEMENT_LEN];
    out.copy_from_slice(residue.retrieve().to_be_bytes().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_the_shared_value() {
        let random = SystemRandom::new();
        let a = PrivateExponent::generate(&random).unwrap();
        let b = PrivateExponent::generate(&random).unwrap();
        let a_public = parse_element(&a.public()).unwrap();
        let b_public = parse_element(&b.public()).unwrap();
        assert_eq!(a.shared(&b_public), b.shared(&a_public));
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn values_not_below_the_prime_are_refused() {
        let mut p = [0xff; ELEMENT_LEN];
        assert!(parse_element(&p).is_none());
        p.copy_from_slice(Group14::PARAMS.modulus().as_ref().to_be_bytes().as_ref());
        assert!(parse_element(&p).is_none(), "p itself");
        p[ELEMENT_LEN - 1] -= 1;
        assert!(parse_element(&p).is_some(), "p - 1");
        assert!(parse_element(&ONE).is_some());
    }

    #[test]
    fn one_to_any_power_is_one() {
        let random = SystemRandom::new();
        let a = PrivateExponent::generate(&random).unwrap();
        assert_eq!(a.shared(&parse_element(&ONE).unwrap()), ONE);
    }
}
