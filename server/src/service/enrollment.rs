//! Device enrollment: an activation code from the operator buys one device its credentials. Only a
//! hash of the device secret is stored; the secret itself is in this one answer and nowhere else.
//! Attempts are rate-limited per client address before the body is read ([`EnrollAttempt`]).

use loyalty_core::keys;

use crate::error::DomainError;

pub(crate) const MAX_DEVICE_NAME: usize = 128;

/// The device's Ed25519 key from its 64 hex characters, refused unless it is a key a device could
/// honestly have made (`loyalty_core::keys`: canonical, not of small order, in the prime-order
/// subgroup): for a small-order key anyone could sign checkout codes for the card.
pub fn parse_public_key(hex: &str) -> Result<[u8; 32], DomainError> {
    keys::parse_public_key_hex(hex).map_err(|e| {
        DomainError::bad_request(
            "invalid_public_key",
            format!(
                "public_key must be the device's 32-byte Ed25519 key as 64 hex characters: {e}"
            ),
        )
    })
}
