//! Identifiers and secrets: member, device and offer ids, device secrets, card numbers and activation
//! codes. Everything random here comes from the operating system's generator via `ring`.

use ring::rand::{SecureRandom, SystemRandom};

/// Fills a fixed-size array with secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system generator fails only when the OS cannot supply entropy at all. Handing out a
    // predictable secret would be worse than stopping, so retry briefly and then abort.
    for _ in 0..3 {
        if SystemRandom::new().fill(&mut out).is_ok() {
            return out;
        }
    }
    std::process::abort()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn new_member_id() -> String {
    format!("mbr_{}", hex(&random_bytes::<12>()))
}

pub fn new_device_id() -> String {
    format!("dev_{}", hex(&random_bytes::<12>()))
}

pub fn new_device_secret() -> String {
    hex(&random_bytes::<32>())
}

/// A short id for server-issued records (offers, messages, ledger entries).
pub fn new_record_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex(&random_bytes::<8>()))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a record id (offer, message) is well formed: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Card numbers: 16 decimal digits, the last a Luhn check digit, so a mistyped number is caught.
/// The arithmetic lives with the checkout code, which carries the number as an integer.
pub mod card_number {
    use crate::checkout_code::{card_number_to_u64, format_card_number, with_luhn_check_digit};

    /// The programme's prefix: the first three digits of every card.
    pub const PREFIX: u64 = 627;

    /// Whether `number` is exactly 16 digits with a valid check digit (no spaces or dashes).
    pub fn is_valid(number: &str) -> bool {
        number.len() == 16
            && number.bytes().all(|b| b.is_ascii_digit())
            && card_number_to_u64(number).is_ok()
    }

    /// A new random card number with the programme prefix.
    pub fn generate() -> String {
        let n = u64::from_be_bytes(super::random_bytes::<8>()) % 1_000_000_000_000;
        format_card_number(with_luhn_check_digit(PREFIX * 1_000_000_000_000 + n))
    }
}

/// Activation codes: 12 characters of Crockford Base32 (60 bits), shown as `XXXX-XXXX-XXXX`.
/// Typing mistakes that Crockford forgives (o for 0, i or l for 1, lower case, missing dashes) are
/// normalised away before the code is hashed.
pub mod activation_code {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    pub fn generate() -> String {
        let bytes = super::random_bytes::<12>();
        let chars: Vec<char> = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        let s: String = chars.into_iter().collect();
        format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
    }

    /// The canonical form of a code as typed, or `None` when it cannot be a code at all.
    pub fn normalize(input: &str) -> Option<String> {
        let mut out = String::with_capacity(12);
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return None;
            }
            out.push(c);
        }
        (out.len() == 12).then_some(out)
    }

    /// A new code as the member sees it, and the hash the server keeps of it.
    pub fn issue() -> (String, [u8; 32]) {
        let code = generate();
        // Generated codes are canonical already; normalising is the same step a typed code takes.
        let hashed = hash(&normalize(&code).unwrap_or_default());
        (code, hashed)
    }

    /// What the server stores instead of the code itself.
    pub fn hash(normalized: &str) -> [u8; 32] {
        super::sha256(normalized.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_luhn_valid_and_catch_typos() {
        for _ in 0..50 {
            let n = card_number::generate();
            assert!(card_number::is_valid(&n), "{n}");
            let mut typo: Vec<u8> = n.clone().into_bytes();
            typo[5] = if typo[5] == b'9' { b'0' } else { typo[5] + 1 };
            assert!(!card_number::is_valid(&String::from_utf8(typo).unwrap()));
        }
        assert!(card_number::is_valid("4111111111111111"));
        assert!(!card_number::is_valid("411111111111111x"));
        assert!(!card_number::is_valid("41111"));
    }

    #[test]
    fn activation_codes_normalise_forgiving_typos() {
        let code = activation_code::generate();
        assert_eq!(code.len(), 14);
        let norm = activation_code::normalize(&code).unwrap();
        let (issued, hashed) = activation_code::issue();
        assert_eq!(
            hashed,
            activation_code::hash(&activation_code::normalize(&issued).unwrap())
        );
        assert_eq!(
            activation_code::normalize(&code.to_lowercase()),
            Some(norm.clone())
        );
        assert_eq!(
            activation_code::normalize(&norm.replace('0', "o")),
            Some(norm)
        );
        assert_eq!(activation_code::normalize("ABCD-EFGH-JKM"), None);
        assert_eq!(activation_code::normalize("ABCD-EFGH-JKMU"), None);
        assert_eq!(activation_code::normalize("ÄBCD-EFGH-JKMN"), None);
    }

    #[test]
    fn ids_have_their_shape() {
        assert!(new_member_id().starts_with("mbr_"));
        assert_eq!(new_device_secret().len(), 64);
        assert_ne!(new_device_id(), new_device_id());
        assert!(valid_record_id("off_12.a-b"));
        assert!(!valid_record_id(""));
        assert!(!valid_record_id("a/b"));
        assert!(!valid_record_id(&"x".repeat(65)));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
