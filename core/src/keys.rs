//! Which Ed25519 public keys the programme accepts as a device's checkout key, checked in one place
//! for the server's enrollment, the till's verification and the device's own key generation.
//!
//! A checkout code is trusted because only the device holds the private key for its registered
//! public key. That holds only for keys in the prime-order subgroup: for a point of small order
//! (the identity, `01` then 31 zero bytes, is one) a "signature" can be made without any private
//! key — `R` = the identity and `s` = 0 verifies for every message under the identity key — so a
//! card enrolled with such a key could be spent by anyone who knows its number. ring verifies
//! signatures but does not refuse such keys, so they are refused here: [`check_public_key`] before a
//! key is registered (and when the device makes one), [`check_verifying_key`] again before every
//! signature check, for keys stored before the check existed. Registered keys are exactly what
//! honest key generation produces:
//!
//! - **canonical**: the 32 bytes are the one encoding of their point (y < p, and no sign bit on a
//!   point whose x is 0), so a key has one spelling and one key id;
//! - **on the curve** and **not of small order**;
//! - **torsion-free** (in the prime-order subgroup): a key `a·B + T` with a small-order `T` is
//!   never made by a real key generator, and refusing it keeps every Ed25519 verifier (cofactored
//!   or not) in agreement about which signatures are valid.
//!
//! ```
//! use loyalty_core::keys::{KeyError, check_public_key};
//!
//! let identity = {
//!     let mut k = [0u8; 32];
//!     k[0] = 1;
//!     k
//! };
//! assert_eq!(check_public_key(&identity), Err(KeyError::SmallOrder));
//! ```

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Why a public key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an Ed25519 public key is {PUBLIC_KEY_LEN} bytes (64 hex characters), not {0}")]
    WrongLength(usize),
    #[error("an Ed25519 public key is 64 hexadecimal characters")]
    NotHex,
    #[error("the public key is not a point of the Ed25519 curve")]
    NotOnCurve,
    #[error("the public key is not in canonical form (y is not reduced, or a sign bit on x = 0)")]
    NonCanonical,
    #[error("the public key is a point of small order: anyone could sign for it")]
    SmallOrder,
    #[error("the public key has a small-order component: no real key generator makes one")]
    NotTorsionFree,
}

/// Checks that `key` is an Ed25519 public key a device could honestly have made (see the module
/// documentation) and returns it as an array. For registering a key: enrollment, key generation.
pub fn check_public_key(key: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], KeyError> {
    let (bytes, point) = decode(key)?;
    if !point.is_torsion_free() {
        return Err(KeyError::NotTorsionFree);
    }
    Ok(bytes)
}

/// The part of [`check_public_key`] that stops forgeries, for every signature check: a canonical
/// point not of small order. A key with a small-order component still needs its private part to
/// sign, so the costlier subgroup check (a full scalar multiplication, as dear as the signature
/// check itself) is left to registration.
pub fn check_verifying_key(key: &[u8]) -> Result<(), KeyError> {
    decode(key).map(|_| ())
}

/// The key's point, if it is a canonical encoding of a point not of small order.
fn decode(key: &[u8]) -> Result<([u8; PUBLIC_KEY_LEN], EdwardsPoint), KeyError> {
    let bytes: [u8; PUBLIC_KEY_LEN] = key
        .try_into()
        .map_err(|_| KeyError::WrongLength(key.len()))?;
    let compressed = CompressedEdwardsY(bytes);
    // decompress reduces y modulo p and takes any sign bit, so it accepts several spellings of one
    // point; re-encoding tells the one canonical spelling from the others.
    let point = compressed.decompress().ok_or(KeyError::NotOnCurve)?;
    if point.compress() != compressed {
        return Err(KeyError::NonCanonical);
    }
    if point.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    Ok((bytes, point))
}

/// A public key from its 64 hexadecimal characters (either case, nothing else), checked with
/// [`check_public_key`].
pub fn parse_public_key_hex(text: &str) -> Result<[u8; PUBLIC_KEY_LEN], KeyError> {
    let digits = text.as_bytes();
    if digits.len() != 2 * PUBLIC_KEY_LEN {
        return Err(if digits.iter().all(u8::is_ascii_hexdigit) {
            KeyError::WrongLength(digits.len() / 2)
        } else {
            KeyError::NotHex
        });
    }
    let mut key = [0u8; PUBLIC_KEY_LEN];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    check_public_key(&key)
}

fn nibble(digit: u8) -> Result<u8, KeyError> {
    // `char::to_digit` rather than `u8::from_str_radix`, which would take a leading `+`.
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or(KeyError::NotHex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::hex;

    fn unhex(text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// The eight points of small order, each in its canonical encoding (the list libsodium and
    /// "Taming the many EdDSAs", Chalkias et al. 2020, refuse): the identity, the point of order
    /// 2, the two of order 4 and the four of order 8.
    pub(crate) const SMALL_ORDER: [&str; 8] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];

    /// Every 32-byte string whose y (the low 255 bits) is p = 2^255 - 19 or more, with either
    /// sign bit: 19 values of y times 2.
    fn unreduced_encodings() -> Vec<[u8; 32]> {
        let mut all = Vec::new();
        for excess in 0u8..19 {
            for sign in [0u8, 0x80] {
                // p + excess in little-endian: 0xed + excess, then 0xff..., top byte 0x7f.
                let mut bytes = [0xffu8; 32];
                bytes[0] = 0xed + excess;
                bytes[31] = 0x7f | sign;
                all.push(bytes);
            }
        }
        all
    }

    #[test]
    fn all_eight_small_order_points_are_refused() {
        for text in SMALL_ORDER {
            assert_eq!(
                check_public_key(&unhex(text)),
                Err(KeyError::SmallOrder),
                "{text}"
            );
            assert_eq!(parse_public_key_hex(text), Err(KeyError::SmallOrder));
            assert_eq!(check_verifying_key(&unhex(text)), Err(KeyError::SmallOrder));
        }
        // Eight different points: together they are the whole 8-torsion subgroup.
        let points: std::collections::HashSet<_> = SMALL_ORDER.iter().collect();
        assert_eq!(points.len(), 8);
    }

    #[test]
    fn unreduced_encodings_are_refused_and_some_would_decode() {
        let mut decodable = 0;
        let mut large_order = 0;
        for bytes in unreduced_encodings() {
            let refusal = check_public_key(&bytes).expect_err(&hex(&bytes));
            assert_eq!(check_verifying_key(&bytes), Err(refusal));
            assert!(
                matches!(refusal, KeyError::NonCanonical | KeyError::NotOnCurve),
                "{} gave {refusal:?}",
                hex(&bytes)
            );
            if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                decodable += 1;
                assert_eq!(refusal, KeyError::NonCanonical);
                if !point.is_small_order() {
                    large_order += 1;
                }
            }
        }
        // The check is not vacuous: the decoder takes some of these spellings, and some name
        // points of large order (which the small-order check alone would let through).
        assert!(
            decodable > 0 && large_order > 0,
            "{decodable} {large_order}"
        );
    }

    #[test]
    fn a_sign_bit_on_x_zero_is_not_canonical() {
        // y = 1 and y = -1 have x = 0; with the sign bit set they decode to the same points.
        for text in [
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert_eq!(
                check_public_key(&unhex(text)),
                Err(KeyError::NonCanonical),
                "{text}"
            );
        }
    }

    #[test]
    fn a_key_with_a_torsion_component_is_refused() {
        let key = crate::checkout_code::generate_key_pair().unwrap();
        let honest = CompressedEdwardsY(key.public_key()).decompress().unwrap();
        let order_two = CompressedEdwardsY(unhex(SMALL_ORDER[1]))
            .decompress()
            .unwrap();
        let mixed = (honest + order_two).compress().to_bytes();
        assert_eq!(check_public_key(&mixed), Err(KeyError::NotTorsionFree));
        // Only its private key's holder can sign for it, so verification need not pay for this.
        assert_eq!(check_verifying_key(&mixed), Ok(()));
    }

    #[test]
    fn keys_from_key_generation_are_accepted() {
        for _ in 0..64 {
            let key = crate::checkout_code::generate_key_pair().unwrap();
            assert_eq!(check_public_key(&key.public_key()), Ok(key.public_key()));
            let text = hex(&key.public_key());
            assert_eq!(parse_public_key_hex(&text), Ok(key.public_key()));
            assert_eq!(
                parse_public_key_hex(&text.to_uppercase()),
                Ok(key.public_key())
            );
        }
    }

    #[test]
    fn points_off_the_curve_and_bad_text_are_refused() {
        // y = 2 has no x on the curve.
        let mut off = [0u8; 32];
        off[0] = 2;
        assert_eq!(check_public_key(&off), Err(KeyError::NotOnCurve));
        assert_eq!(check_public_key(&[1u8; 31]), Err(KeyError::WrongLength(31)));
        let good = hex(&crate::checkout_code::generate_key_pair()
            .unwrap()
            .public_key());
        for (text, want) in [
            (&good[..62], KeyError::WrongLength(31)),
            ("", KeyError::WrongLength(0)),
            (&format!("{good}00"), KeyError::WrongLength(33)),
            (&format!("+{}", &good[1..]), KeyError::NotHex),
            (&format!("{}g", &good[..63]), KeyError::NotHex),
            (&format!("{}é", &good[..62]), KeyError::NotHex),
            (&format!(" {}", &good[..63]), KeyError::NotHex),
        ] {
            assert_eq!(parse_public_key_hex(text), Err(want), "{text:?}");
        }
    }
}
