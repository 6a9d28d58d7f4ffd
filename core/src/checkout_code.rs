//! Rotating offline checkout codes: the signed, time-stepped token a member's
//! device shows at the till, and everything a verifier needs to check one.
//!
//! This module owns the version-1 wire format (81 bytes, 122 Base45
//! characters), the device's Ed25519 signing key wrapper, the 30-second time
//! steps, and card-number (Luhn) helpers. It performs no I/O and keeps no
//! state: key storage, key registration and revocation, card status and
//! replay bookkeeping belong to the host and the server. The byte-level
//! specification for till vendors is `docs/checkout-code.md`.
//!
//! ```
//! use loyalty_core::checkout_code::{
//!     CheckoutCode, ParsedCode, SigningKey, generate_key_pair, with_luhn_check_digit,
//! };
//!
//! # fn main() -> Result<(), loyalty_core::checkout_code::CodeError> {
//! // Enrollment: make a key, keep the PKCS#8 bytes in the platform secret store,
//! // register the public key with the server.
//! let key = generate_key_pair()?;
//! let stored: Vec<u8> = key.pkcs8().to_vec();
//! let public_key = key.public_key();
//!
//! // At the till, on the device, with server-corrected time:
//! let key = SigningKey::from_pkcs8(&stored)?;
//! let card = with_luhn_check_digit(600_000_000_000_123);
//! let now_ms = 1_767_225_600_000;
//! let code = CheckoutCode::make(&key, card, now_ms);
//! assert_eq!(code.text.len(), 122);
//!
//! // On the server:
//! let parsed = ParsedCode::parse(&code.text)?;
//! parsed.verify_signature(&public_key)?;
//! parsed.check_time(now_ms + 31_000, 1)?;
//! assert_eq!(parsed.card_number, card);
//! # Ok(())
//! # }
//! ```

use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Format version carried in the first payload byte.
pub const VERSION: u8 = 1;
/// Length of one time step; a code is valid for the step it was made in.
pub const STEP_SECONDS: i64 = 30;
const STEP_MS: i64 = STEP_SECONDS * 1000;
/// Prefix of the signed message, so a checkout signature can never be
/// replayed as a signature over some other message made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"loyalty-checkout-v1\0";
/// Bytes covered by the signature: version, card number, key id, time step.
pub const SIGNED_LEN: usize = 1 + 8 + 4 + 4;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the whole binary payload.
pub const PAYLOAD_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;
/// Length of the Base45 text: 40 full byte pairs (3 characters each) plus
/// one trailing byte (2 characters).
pub const TEXT_LEN: usize = PAYLOAD_LEN / 2 * 3 + PAYLOAD_LEN % 2 * 2;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = crate::keys::PUBLIC_KEY_LEN;
/// Digits in a card number, check digit included.
pub const CARD_NUMBER_DIGITS: usize = 16;
const CARD_PREFIX_MODULUS: u64 = 1_000_000_000_000_000; // 10^15

/// Everything that can go wrong making, parsing or checking a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("could not generate an Ed25519 key pair")]
    KeyGeneration,
    #[error("signing key rejected: {reason}")]
    KeyRejected { reason: String },
    #[error("checkout code must be {expected} characters, got {actual}")]
    WrongLength { expected: usize, actual: usize },
    #[error("checkout code is not canonical Base45")]
    NotBase45,
    #[error("unsupported checkout code version {0}")]
    UnsupportedVersion(u8),
    #[error("public key must be {expected} bytes, got {actual}")]
    InvalidPublicKey { expected: usize, actual: usize },
    /// The registered key is one no honest device makes (small order, not canonical): a code
    /// "signed" with it proves nothing, so it is refused before its signature is looked at.
    #[error("the registered public key is unsafe: {0}")]
    UnsafePublicKey(crate::keys::KeyError),
    #[error("code names key id {code:08x} but the key given has id {key:08x}")]
    KeyIdMismatch { code: u32, key: u32 },
    #[error("checkout code signature is invalid")]
    BadSignature,
    #[error("checkout code expired (code step {code_step}, current step {now_step})")]
    Expired { code_step: u32, now_step: i64 },
    #[error("checkout code is not valid yet (code step {code_step}, current step {now_step})")]
    NotYetValid { code_step: u32, now_step: i64 },
    #[error("card number must be {CARD_NUMBER_DIGITS} decimal digits")]
    InvalidCardNumber,
    #[error("card number check digit is wrong")]
    BadCheckDigit,
}

/// The device's Ed25519 signing key, kept together with the PKCS#8 document
/// it was built from so the host can persist exactly those bytes.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
    public_key: [u8; PUBLIC_KEY_LEN],
    key_id: u32,
}

impl SigningKey {
    /// Rebuilds a key from the PKCS#8 v2 document returned by
    /// [`SigningKey::pkcs8`]. The strict v2 parser is used on purpose: it
    /// checks the embedded public key against the private one, so a corrupted
    /// secret-store entry fails here instead of producing codes nobody can
    /// verify.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CodeError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| CodeError::KeyRejected {
            reason: e.to_string(),
        })?;
        let public_key: [u8; PUBLIC_KEY_LEN] =
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| CodeError::KeyRejected {
                    reason: "public key is not 32 bytes".to_owned(),
                })?;
        // ring derives the public key from the seed, so this cannot fail for a key ring made; it
        // keeps the rule "the device never registers a key the server would refuse" in one place.
        crate::keys::check_public_key(&public_key).map_err(|e| CodeError::KeyRejected {
            reason: e.to_string(),
        })?;
        Ok(Self {
            pkcs8: pkcs8.to_vec(),
            pair,
            key_id: key_id(&public_key),
            public_key,
        })
    }

    /// The PKCS#8 v2 document to hand to the platform secret store.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The raw 32-byte public key to register with the server.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public_key
    }

    /// See [`key_id`].
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, signed: &[u8; SIGNED_LEN]) -> ring::signature::Signature {
        self.pair.sign(&signing_input(signed))
    }
}

// Hand-written so the private key can never end up in a log line.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// Makes a fresh key pair from the operating system's CSPRNG.
pub fn generate_key_pair() -> Result<SigningKey, CodeError> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| CodeError::KeyGeneration)?;
    SigningKey::from_pkcs8(document.as_ref())
}

/// Short identifier of a public key: the first four bytes (big-endian) of its
/// SHA-256. It only routes a code to candidate keys; it is not a security
/// boundary, since the signature is what proves the key.
pub fn key_id(public_key: &[u8]) -> u32 {
    let hash = digest::digest(&digest::SHA256, public_key);
    hash.as_ref()
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b))
}

/// The time step containing `unix_ms`. Times before 1970 map to step 0 and
/// times past the year 6053 to `u32::MAX`, so the field never wraps.
pub fn time_step_at(unix_ms: i64) -> u32 {
    let step = unix_ms.div_euclid(STEP_MS);
    u32::try_from(step).unwrap_or(if step < 0 { 0 } else { u32::MAX })
}

/// First millisecond of `time_step`.
pub fn step_start_ms(time_step: u32) -> i64 {
    i64::from(time_step).saturating_mul(STEP_MS)
}

fn signed_fields(card_number: u64, key_id: u32, time_step: u32) -> [u8; SIGNED_LEN] {
    let mut out = [0u8; SIGNED_LEN];
    let fields = [VERSION]
        .into_iter()
        .chain(card_number.to_be_bytes())
        .chain(key_id.to_be_bytes())
        .chain(time_step.to_be_bytes());
    for (slot, byte) in out.iter_mut().zip(fields) {
        *slot = byte;
    }
    out
}

fn signing_input(signed: &[u8; SIGNED_LEN]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + SIGNED_LEN);
    input.extend_from_slice(SIGNING_DOMAIN);
    input.extend_from_slice(signed);
    input
}

/// A code ready to show: its text plus the fields it encodes, so the UI can
/// schedule the next rotation without parsing its own output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCode {
    /// 122 characters of Base45, ready for an alphanumeric-mode QR code.
    pub text: String,
    pub card_number: u64,
    pub key_id: u32,
    pub time_step: u32,
    /// The first millisecond of the next step; show a new code from then on.
    pub expires_at_ms: i64,
}

impl CheckoutCode {
    /// Makes the code for the step containing `server_now_ms`. The caller must
    /// pass the server-corrected clock: phone clocks drift by minutes, and a
    /// code stamped with the wrong step is refused at the till.
    ///
    /// `card_number` is signed as given; card validity is the server's call.
    pub fn make(key: &SigningKey, card_number: u64, server_now_ms: i64) -> CheckoutCode {
        let time_step = time_step_at(server_now_ms);
        let signed = signed_fields(card_number, key.key_id(), time_step);
        let signature = key.sign(&signed);
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&signed);
        payload.extend_from_slice(signature.as_ref());
        CheckoutCode {
            text: base45::encode(&payload),
            card_number,
            key_id: key.key_id(),
            time_step,
            expires_at_ms: step_start_ms(time_step.saturating_add(1)),
        }
    }
}

/// A code read back from its text. The fields are only trustworthy after
/// [`ParsedCode::verify_signature`] and [`ParsedCode::check_time`] succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCode {
    pub card_number: u64,
    pub key_id: u32,
    pub time_step: u32,
    signature: [u8; SIGNATURE_LEN],
}

impl ParsedCode {
    /// Decodes a scanned code. Surrounding whitespace is dropped because
    /// keyboard-wedge scanners append CR/LF; a space is also a Base45 digit,
    /// so spaces are only trimmed when the text is not already 122 long.
    pub fn parse(text: &str) -> Result<ParsedCode, CodeError> {
        let text = trim_scanned(text);
        let actual = text.chars().count();
        if actual != TEXT_LEN {
            return Err(CodeError::WrongLength {
                expected: TEXT_LEN,
                actual,
            });
        }
        let payload = base45::decode(text).map_err(|_| CodeError::NotBase45)?;
        // The base45 crate folds an out-of-range final character pair
        // (value > 255) into a byte instead of rejecting it, so several texts
        // would decode to one payload. Re-encoding keeps exactly one accepted
        // spelling per code.
        if base45::encode(&payload) != text {
            return Err(CodeError::NotBase45);
        }
        let wrong_length = || CodeError::WrongLength {
            expected: TEXT_LEN,
            actual,
        };
        let (&version, rest) = payload.split_first().ok_or_else(wrong_length)?;
        if version != VERSION {
            return Err(CodeError::UnsupportedVersion(version));
        }
        let (card, rest) = rest.split_first_chunk::<8>().ok_or_else(wrong_length)?;
        let (key, rest) = rest.split_first_chunk::<4>().ok_or_else(wrong_length)?;
        let (step, rest) = rest.split_first_chunk::<4>().ok_or_else(wrong_length)?;
        let signature: [u8; SIGNATURE_LEN] = rest.try_into().map_err(|_| wrong_length())?;
        Ok(ParsedCode {
            card_number: u64::from_be_bytes(*card),
            key_id: u32::from_be_bytes(*key),
            time_step: u32::from_be_bytes(*step),
            signature,
        })
    }

    /// Checks the signature with the registered public key for
    /// [`ParsedCode::key_id`]. The signed bytes are rebuilt from the public
    /// fields, so a caller that edits a field after parsing gets a failure
    /// rather than a "verified" code with someone else's card number.
    pub fn verify_signature(&self, public_key: &[u8]) -> Result<(), CodeError> {
        if public_key.len() != PUBLIC_KEY_LEN {
            return Err(CodeError::InvalidPublicKey {
                expected: PUBLIC_KEY_LEN,
                actual: public_key.len(),
            });
        }
        let actual = key_id(public_key);
        if actual != self.key_id {
            return Err(CodeError::KeyIdMismatch {
                code: self.key_id,
                key: actual,
            });
        }
        // Keys registered before enrollment refused unsafe ones are still in databases: for a
        // small-order key the signature check below would accept a forgery.
        crate::keys::check_verifying_key(public_key).map_err(CodeError::UnsafePublicKey)?;
        let signed = signed_fields(self.card_number, self.key_id, self.time_step);
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&signing_input(&signed), &self.signature)
            .map_err(|_| CodeError::BadSignature)
    }

    /// Accepts the code if its step is within `skew_steps` of the step
    /// containing `now_ms` (the verifier's trusted clock), in either direction.
    pub fn check_time(&self, now_ms: i64, skew_steps: u32) -> Result<(), CodeError> {
        let now_step = now_ms.div_euclid(STEP_MS);
        let code = i64::from(self.time_step);
        let skew = i64::from(skew_steps);
        if code.saturating_add(skew) < now_step {
            return Err(CodeError::Expired {
                code_step: self.time_step,
                now_step,
            });
        }
        if code > now_step.saturating_add(skew) {
            return Err(CodeError::NotYetValid {
                code_step: self.time_step,
                now_step,
            });
        }
        Ok(())
    }

    /// Stable 16-byte id for "accept each code once". It hashes the signed
    /// fields rather than the signature, so it stays the same even if some
    /// verifier accepted a second (malleated) signature for the same code;
    /// Ed25519 signing is deterministic, so one card, key and step make
    /// exactly one legitimate code.
    pub fn code_id(&self) -> [u8; 16] {
        let signed = signed_fields(self.card_number, self.key_id, self.time_step);
        let hash = digest::digest(&digest::SHA256, &signing_input(&signed));
        hash.as_ref()
            .first_chunk::<16>()
            .copied()
            .unwrap_or_default()
    }
}

fn trim_scanned(text: &str) -> &str {
    let without_line_noise = text.trim_matches(|c: char| c.is_whitespace() && c != ' ');
    if without_line_noise.chars().count() == TEXT_LEN {
        without_line_noise
    } else {
        without_line_noise.trim()
    }
}

/// Luhn (mod 10) check over the decimal digits of `number`. Leading zeros do
/// not change the Luhn sum, so this equals the check over the zero-padded
/// 16-digit form.
pub fn luhn_valid(number: u64) -> bool {
    luhn_sum(number, false).is_multiple_of(10)
}

/// Appends the Luhn check digit to a 15-digit prefix. Only the low 15 digits
/// of `prefix15` are used, so the result always fits 16 digits.
pub fn with_luhn_check_digit(prefix15: u64) -> u64 {
    let prefix = prefix15 % CARD_PREFIX_MODULUS;
    // The check digit will sit in the rightmost place, so the prefix's last
    // digit is the first one doubled.
    let check = (10 - luhn_sum(prefix, true) % 10) % 10;
    prefix * 10 + check
}

fn luhn_sum(mut number: u64, mut double: bool) -> u64 {
    let mut sum = 0;
    while number > 0 {
        let digit = number % 10;
        sum += if double {
            let d = digit * 2;
            if d > 9 { d - 9 } else { d }
        } else {
            digit
        };
        double = !double;
        number /= 10;
    }
    sum
}

/// Parses a printed or typed card number: 16 decimal digits, optionally
/// grouped with spaces or hyphens ("6000 0000 0000 1237"), check digit
/// included.
pub fn card_number_to_u64(text: &str) -> Result<u64, CodeError> {
    let mut digits = 0usize;
    let mut number = 0u64;
    for c in text.trim().chars() {
        match c {
            ' ' | '-' => continue,
            '0'..='9' => {
                digits += 1;
                if digits > CARD_NUMBER_DIGITS {
                    return Err(CodeError::InvalidCardNumber);
                }
                number = number * 10 + u64::from(c as u8 - b'0');
            }
            _ => return Err(CodeError::InvalidCardNumber),
        }
    }
    if digits != CARD_NUMBER_DIGITS {
        return Err(CodeError::InvalidCardNumber);
    }
    if !luhn_valid(number) {
        return Err(CodeError::BadCheckDigit);
    }
    Ok(number)
}

/// The canonical 16-digit, zero-padded form. Numbers with more than 16 digits
/// are printed in full rather than truncated, so they cannot silently alias a
/// valid card.
pub fn format_card_number(number: u64) -> String {
    format!("{number:0width$}", width = CARD_NUMBER_DIGITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QR_ALPHANUMERIC: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a step boundary
    const EXAMPLE_SEED: [u8; 32] = {
        let mut seed = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            seed[i] = i as u8;
            i += 1;
        }
        seed
    };

    /// PKCS#8 v2 byte for byte as ring writes it (RFC 5958 OneAsymmetricKey,
    /// public key as `[1] IMPLICIT BIT STRING`), so a fixed seed can go through the same `from_pkcs8` path as a
    /// stored key.
    fn pkcs8_v2_from_seed(seed: &[u8; 32]) -> Vec<u8> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("seed");
        let mut doc = vec![
            0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        doc.extend_from_slice(seed);
        doc.extend_from_slice(&[0x81, 0x21, 0x00]);
        doc.extend_from_slice(pair.public_key().as_ref());
        doc
    }

    fn example_key() -> SigningKey {
        SigningKey::from_pkcs8(&pkcs8_v2_from_seed(&EXAMPLE_SEED)).expect("example key")
    }

    fn example_card() -> u64 {
        with_luhn_check_digit(600_000_000_000_123)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode_payload(text: &str) -> Vec<u8> {
        base45::decode(text).expect("base45")
    }

    #[test]
    fn round_trip() {
        let key = generate_key_pair().expect("keygen");
        let card = example_card();
        let code = CheckoutCode::make(&key, card, NOW_MS + 12_345);
        let parsed = ParsedCode::parse(&code.text).expect("parse");
        assert_eq!(parsed.card_number, card);
        assert_eq!(parsed.key_id, key.key_id());
        assert_eq!(parsed.time_step, code.time_step);
        assert_eq!(code.time_step, time_step_at(NOW_MS));
        assert_eq!(code.expires_at_ms, NOW_MS + 30_000);
        parsed
            .verify_signature(&key.public_key())
            .expect("signature");
        parsed.check_time(NOW_MS + 12_345, 0).expect("time");
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_key() {
        let key = generate_key_pair().expect("keygen");
        let again = SigningKey::from_pkcs8(key.pkcs8()).expect("reload");
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(again.key_id(), key.key_id());
        assert_eq!(key.key_id(), key_id(&key.public_key()));
        // The test helper must produce the same document layout as ring.
        let prefix = &pkcs8_v2_from_seed(&EXAMPLE_SEED)[..16];
        assert_eq!(&key.pkcs8()[..16], prefix);
        assert_eq!(key.pkcs8().len(), 83);
    }

    #[test]
    fn garbage_pkcs8_is_rejected() {
        assert!(matches!(
            SigningKey::from_pkcs8(b"not a key"),
            Err(CodeError::KeyRejected { .. })
        ));
        let mut doc = pkcs8_v2_from_seed(&EXAMPLE_SEED);
        if let Some(last) = doc.last_mut() {
            *last ^= 1; // public key no longer matches the seed
        }
        assert!(matches!(
            SigningKey::from_pkcs8(&doc),
            Err(CodeError::KeyRejected { .. })
        ));
    }

    #[test]
    fn debug_does_not_leak_the_private_key() {
        let key = example_key();
        let shown = format!("{key:?}");
        assert!(shown.contains(&format!("{:08x}", key.key_id())));
        assert!(!shown.contains("pkcs8"));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let payload = decode_payload(&code.text);
        for i in 1..PAYLOAD_LEN {
            let mut bad = payload.clone();
            bad[i] ^= 0x01;
            let parsed = ParsedCode::parse(&base45::encode(&bad)).expect("still parses");
            assert!(
                parsed.verify_signature(&key.public_key()).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn tampered_signature_byte_is_bad_signature() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let mut bad = decode_payload(&code.text);
        bad[40] ^= 0x80;
        let parsed = ParsedCode::parse(&base45::encode(&bad)).expect("parse");
        assert_eq!(
            parsed.verify_signature(&key.public_key()),
            Err(CodeError::BadSignature)
        );
    }

    #[test]
    fn edited_field_after_parse_fails() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let mut parsed = ParsedCode::parse(&code.text).expect("parse");
        parsed.card_number = with_luhn_check_digit(600_000_000_000_999);
        assert_eq!(
            parsed.verify_signature(&key.public_key()),
            Err(CodeError::BadSignature)
        );
    }

    #[test]
    fn another_key_fails() {
        let key = example_key();
        let other = generate_key_pair().expect("keygen");
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let parsed = ParsedCode::parse(&code.text).expect("parse");
        assert!(matches!(
            parsed.verify_signature(&other.public_key()),
            Err(CodeError::KeyIdMismatch { .. })
        ));
        // Same key id on the code (as with a 32-bit id collision), other key:
        // only the signature can tell them apart.
        let mut forged = decode_payload(&code.text);
        forged[9..13].copy_from_slice(&other.key_id().to_be_bytes());
        let parsed = ParsedCode::parse(&base45::encode(&forged)).expect("parse");
        assert_eq!(
            parsed.verify_signature(&other.public_key()),
            Err(CodeError::BadSignature)
        );
        assert!(matches!(
            parsed.verify_signature(&[0u8; 31]),
            Err(CodeError::InvalidPublicKey { actual: 31, .. })
        ));
    }

    /// The attack the key checks close: for the identity key, `R` = identity and `s` = 0 is a
    /// valid Ed25519 signature of every message. ring accepts it; `verify_signature` must not.
    #[test]
    fn a_trivial_signature_for_a_small_order_key_is_refused() {
        let mut identity = [0u8; PUBLIC_KEY_LEN];
        identity[0] = 1;
        let step = time_step_at(NOW_MS);
        let signed = signed_fields(example_card(), key_id(&identity), step);
        let mut forged_signature = [0u8; SIGNATURE_LEN];
        forged_signature[..PUBLIC_KEY_LEN].copy_from_slice(&identity);
        assert!(
            UnparsedPublicKey::new(&ED25519, &identity)
                .verify(&signing_input(&signed), &forged_signature)
                .is_ok(),
            "ring accepts the forgery, so the key check is what stops it"
        );
        let mut payload = signed.to_vec();
        payload.extend_from_slice(&forged_signature);
        let parsed = ParsedCode::parse(&base45::encode(&payload)).expect("parse");
        assert_eq!(
            parsed.verify_signature(&identity),
            Err(CodeError::UnsafePublicKey(
                crate::keys::KeyError::SmallOrder
            ))
        );
    }

    #[test]
    fn signature_covers_the_domain_prefix() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let payload = decode_payload(&code.text);
        let (signed, signature) = payload.split_at(SIGNED_LEN);
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(signed);
        let public_key = key.public_key();
        let verifier = UnparsedPublicKey::new(&ED25519, &public_key);
        assert!(verifier.verify(&message, signature).is_ok());
        assert!(verifier.verify(signed, signature).is_err());
    }

    #[test]
    fn wrong_length_garbage_and_version_errors() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        assert_eq!(
            ParsedCode::parse(&code.text[..121]),
            Err(CodeError::WrongLength {
                expected: 122,
                actual: 121
            })
        );
        assert_eq!(
            ParsedCode::parse(&format!("{}0", code.text)),
            Err(CodeError::WrongLength {
                expected: 122,
                actual: 123
            })
        );
        assert!(matches!(
            ParsedCode::parse(""),
            Err(CodeError::WrongLength { actual: 0, .. })
        ));
        let lowercase = code.text.to_lowercase();
        if lowercase != code.text {
            assert_eq!(ParsedCode::parse(&lowercase), Err(CodeError::NotBase45));
        }
        let mut junk = code.text.clone();
        junk.replace_range(10..11, "#");
        assert_eq!(ParsedCode::parse(&junk), Err(CodeError::NotBase45));
        let mut non_ascii = code.text.clone();
        non_ascii.replace_range(10..11, "é");
        assert_eq!(ParsedCode::parse(&non_ascii), Err(CodeError::NotBase45));
        // A triplet worth more than 65535 is outside Base45.
        let mut too_big = code.text.clone();
        too_big.replace_range(0..3, ":::");
        assert_eq!(ParsedCode::parse(&too_big), Err(CodeError::NotBase45));
        // A final pair worth more than 255 must be refused, not wrapped.
        let mut tail = code.text.clone();
        tail.replace_range(120..122, "::");
        assert_eq!(ParsedCode::parse(&tail), Err(CodeError::NotBase45));

        let mut v2 = decode_payload(&code.text);
        v2[0] = 2;
        assert_eq!(
            ParsedCode::parse(&base45::encode(&v2)),
            Err(CodeError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn whitespace_around_a_scan_is_ignored() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let expected = ParsedCode::parse(&code.text).expect("parse");
        for wrapped in [
            format!("{}\r\n", code.text),
            format!("  {}  ", code.text),
            format!("\t{}\n", code.text),
        ] {
            assert_eq!(ParsedCode::parse(&wrapped).as_ref(), Ok(&expected));
        }
    }

    #[test]
    fn leading_space_digit_survives_trimming() {
        // A first byte pair of 0x0105 encodes to a text starting with ' '.
        // Valid card numbers never produce it, but the parser must not eat
        // a Base45 digit when it does.
        let mut payload = vec![0u8; PAYLOAD_LEN];
        payload[0] = VERSION;
        payload[1] = 5;
        let text = base45::encode(&payload);
        assert!(text.starts_with(' '));
        let parsed = ParsedCode::parse(&format!("{text}\n")).expect("parse");
        assert_eq!(parsed.card_number, 5u64 << 56);
    }

    #[test]
    fn time_check_boundaries() {
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), NOW_MS);
        let parsed = ParsedCode::parse(&code.text).expect("parse");
        let step = STEP_SECONDS * 1000;

        // Anywhere inside its own step, with no skew.
        parsed.check_time(NOW_MS, 0).expect("start of step");
        parsed
            .check_time(NOW_MS + step - 1, 0)
            .expect("end of step");
        assert!(matches!(
            parsed.check_time(NOW_MS + step, 0),
            Err(CodeError::Expired { .. })
        ));
        assert!(matches!(
            parsed.check_time(NOW_MS - 1, 0),
            Err(CodeError::NotYetValid { .. })
        ));

        // Exactly one step either side with skew 1.
        parsed.check_time(NOW_MS + step, 1).expect("one step late");
        parsed
            .check_time(NOW_MS + 2 * step - 1, 1)
            .expect("one step late, last ms");
        parsed.check_time(NOW_MS - step, 1).expect("one step early");
        // Two steps either side refused.
        assert_eq!(
            parsed.check_time(NOW_MS + 2 * step, 1),
            Err(CodeError::Expired {
                code_step: code.time_step,
                now_step: i64::from(code.time_step) + 2
            })
        );
        assert_eq!(
            parsed.check_time(NOW_MS - step - 1, 1),
            Err(CodeError::NotYetValid {
                code_step: code.time_step,
                now_step: i64::from(code.time_step) - 2
            })
        );
        // Extreme clocks must not overflow.
        assert!(parsed.check_time(i64::MAX, u32::MAX).is_err());
        assert!(parsed.check_time(i64::MIN, u32::MAX).is_err());
    }

    #[test]
    fn time_steps_clamp_instead_of_wrapping() {
        assert_eq!(time_step_at(0), 0);
        assert_eq!(time_step_at(29_999), 0);
        assert_eq!(time_step_at(30_000), 1);
        assert_eq!(time_step_at(-1), 0);
        assert_eq!(time_step_at(i64::MIN), 0);
        assert_eq!(time_step_at(i64::MAX), u32::MAX);
        let key = example_key();
        let code = CheckoutCode::make(&key, example_card(), i64::MAX);
        assert_eq!(code.time_step, u32::MAX);
        assert!(code.expires_at_ms > 0);
    }

    #[test]
    fn text_is_122_qr_alphanumeric_characters() {
        let key = generate_key_pair().expect("keygen");
        for i in 0..200u64 {
            let card = with_luhn_check_digit(600_000_000_000_000 + i * 7_919);
            let code = CheckoutCode::make(&key, card, NOW_MS + (i as i64) * 30_000);
            assert_eq!(code.text.len(), TEXT_LEN);
            assert_eq!(TEXT_LEN, 122);
            assert!(
                code.text.chars().all(|c| QR_ALPHANUMERIC.contains(c)),
                "{}",
                code.text
            );
        }
    }

    #[test]
    fn code_id_is_stable_and_distinct() {
        let key = example_key();
        let a = CheckoutCode::make(&key, example_card(), NOW_MS);
        let a_again = CheckoutCode::make(&key, example_card(), NOW_MS + 29_999);
        let b = CheckoutCode::make(&key, example_card(), NOW_MS + 30_000);
        assert_eq!(a.text, a_again.text, "Ed25519 is deterministic");
        let id = |c: &CheckoutCode| ParsedCode::parse(&c.text).expect("parse").code_id();
        assert_eq!(id(&a), id(&a_again));
        assert_ne!(id(&a), id(&b));
    }

    #[test]
    fn luhn() {
        // Published test numbers.
        assert!(luhn_valid(4_111_111_111_111_111));
        assert!(luhn_valid(79_927_398_713));
        assert!(!luhn_valid(79_927_398_710));
        assert!(luhn_valid(0));
        assert_eq!(
            with_luhn_check_digit(411_111_111_111_111),
            4_111_111_111_111_111
        );
        assert_eq!(with_luhn_check_digit(7_992_739_871), 79_927_398_713);
        for prefix in [
            0,
            1,
            999_999_999_999_999,
            600_000_000_000_123,
            123_456_789_012_345,
        ] {
            let n = with_luhn_check_digit(prefix);
            assert!(luhn_valid(n));
            assert_eq!(n / 10, prefix);
            for wrong in 0..10 {
                if wrong != n % 10 {
                    assert!(!luhn_valid(n - n % 10 + wrong));
                }
            }
        }
        // Only 15 digits of prefix are used.
        assert_eq!(
            with_luhn_check_digit(7_000_000_000_000_000_123),
            with_luhn_check_digit(123)
        );
        assert_eq!(
            with_luhn_check_digit(u64::MAX) / 10,
            u64::MAX % CARD_PREFIX_MODULUS
        );
    }

    #[test]
    fn card_number_text() {
        assert_eq!(format_card_number(42), "0000000000000042");
        assert_eq!(
            format_card_number(4_111_111_111_111_111),
            "4111111111111111"
        );
        assert_eq!(
            card_number_to_u64("4111111111111111"),
            Ok(4_111_111_111_111_111)
        );
        assert_eq!(
            card_number_to_u64(" 4111 1111-1111 1111\n"),
            Ok(4_111_111_111_111_111)
        );
        assert_eq!(card_number_to_u64("0000000000000042"), Ok(42));
        assert_eq!(
            card_number_to_u64("4111111111111112"),
            Err(CodeError::BadCheckDigit)
        );
        for bad in [
            "",
            "411111111111111",
            "41111111111111111",
            "4111x11111111111",
            "४१११",
        ] {
            assert_eq!(
                card_number_to_u64(bad),
                Err(CodeError::InvalidCardNumber),
                "{bad}"
            );
        }
        let card = example_card();
        assert_eq!(card_number_to_u64(&format_card_number(card)), Ok(card));
    }

    /// Golden vector for docs/checkout-code.md: fixed seed, card and time, so
    /// the document's example is checked on every run. Run with
    /// `--nocapture` to print it.
    #[test]
    fn worked_example() {
        let key = example_key();
        let card = example_card();
        let code = CheckoutCode::make(&key, card, NOW_MS);
        let payload = decode_payload(&code.text);
        let parsed = ParsedCode::parse(&code.text).expect("parse");
        println!("seed          {}", hex(&EXAMPLE_SEED));
        println!("pkcs8         {}", hex(key.pkcs8()));
        println!("public key    {}", hex(&key.public_key()));
        println!("key id        {:08x} ({})", key.key_id(), key.key_id());
        println!("card          {} ({:016x})", format_card_number(card), card);
        println!("now ms        {NOW_MS}");
        println!("time step     {} ({:08x})", code.time_step, code.time_step);
        println!("expires ms    {}", code.expires_at_ms);
        println!(
            "signing input {}",
            hex(&signing_input(&signed_fields(
                card,
                key.key_id(),
                code.time_step
            )))
        );
        println!("payload       {}", hex(&payload));
        println!("signature     {}", hex(&payload[SIGNED_LEN..]));
        println!("code id       {}", hex(&parsed.code_id()));
        println!("text          [{}]", code.text);

        assert_eq!(card, 6_000_000_000_001_237);
        assert_eq!(code.time_step, 58_907_520);
        assert_eq!(code.expires_at_ms, 1_767_225_630_000);
        assert_eq!(
            hex(&key.public_key()),
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        );
        assert_eq!(code.text, EXAMPLE_TEXT);
        assert_eq!(hex(&parsed.code_id()), "ece588baf7734f943e335063d8f85152");
        parsed
            .verify_signature(&key.public_key())
            .expect("verifies");
        parsed
            .check_time(1_767_225_570_000, 1)
            .expect("first accepted ms");
        parsed
            .check_time(1_767_225_659_999, 1)
            .expect("last accepted ms");
        assert!(parsed.check_time(1_767_225_569_999, 1).is_err());
        assert!(parsed.check_time(1_767_225_660_000, 1).is_err());
        let qr = crate::qr::QrMatrix::encode(&code.text).expect("qr");
        assert_eq!(qr.version, 5);
    }

    const EXAMPLE_TEXT: &str = "V50BV22FV65LT/Q-0955LJOGK9GNMUK1H8%3 LAY%4R8O3FPNPLAFFRH7R0FRAUI3824Q061KDP+S87QMHWL/A0Y8AI-KV.J9F0AOCJKGQSL*:U2NUV2L1MCE0";
}
