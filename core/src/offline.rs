//! The till without its server: the programme's offline policy, and the check a till makes of a
//! checkout code against the keys it cached from the key feed (`GET /v1/till/keys`,
//! `docs/checkout-code.md` §9). The check is pure — the till's own store supplies the cached keys
//! and card status and remembers the codes it saw — so any till vendor can run it over whatever
//! store it has.
//!
//! Offline, a till can trust a code only as far as its cache is fresh. The verdict says how far:
//! a code signed by a cached, unrevoked key of an active card, within the clock window, may earn
//! and redeem up to the programme's per-member allowance ([`OfflineTrust::Verified`]); a code
//! whose key the cache does not know yet (a phone enrolled since the last refresh) or whose
//! cache is older than the policy allows may only earn ([`OfflineTrust::EarnOnly`]), and the
//! server checks it at flush. Everything else is refused under the same names the server uses.
//!
//! ```
//! use loyalty_core::checkout_code::{CheckoutCode, SigningKey, generate_key_pair};
//! use loyalty_core::offline::{CachedKey, OfflinePolicy, OfflineTrust, check_code};
//!
//! let key = generate_key_pair().unwrap();
//! let now = 1_767_225_600_000;
//! let code = CheckoutCode::make(&key, 6_000_000_000_001_237, now);
//! let cached = [CachedKey { public_key: key.public_key().to_vec(), revoked: false }];
//! let policy = OfflinePolicy::default();
//! let check = check_code(&code.text, now, &cached, false, now - 60_000, &policy).unwrap();
//! assert_eq!(check.trust, OfflineTrust::Verified);
//! assert_eq!(check.card_number, 6_000_000_000_001_237);
//! ```

use serde::{Deserialize, Serialize};

use crate::calendar::DAY_MS;
use crate::checkout_code::{CodeError, ParsedCode};

/// Time steps of clock skew an offline till tolerates either side of its clock (as the server).
pub const SKEW_STEPS: u32 = 1;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// What a till may do without its server (programme configuration, `offline` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflinePolicy {
    /// Points one member may redeem at one offline till per day (till-local day, UTC). 0: no
    /// redemption offline. The server never lets a balance go below zero when the till flushes:
    /// what it cannot honour is reported as a shortfall (`docs/checkout-code.md` §10).
    #[serde(default)]
    pub redeem_points_per_day: i64,
    /// A till whose key cache is older than this may still earn offline, but not redeem.
    #[serde(default = "default_cache_hours")]
    pub max_cache_age_hours: i64,
    /// The server refuses offline purchases scanned longer ago than this when they are flushed.
    #[serde(default = "default_queue_days")]
    pub max_queue_age_days: i64,
}

fn default_cache_hours() -> i64 {
    24
}

fn default_queue_days() -> i64 {
    7
}

impl Default for OfflinePolicy {
    fn default() -> Self {
        Self {
            redeem_points_per_day: 0,
            max_cache_age_hours: default_cache_hours(),
            max_queue_age_days: default_queue_days(),
        }
    }
}

impl OfflinePolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(0..=1_000_000_000).contains(&self.redeem_points_per_day) {
            return Err("offline.redeem_points_per_day must be 0 to 1000000000".into());
        }
        if !(1..=24 * 30).contains(&self.max_cache_age_hours) {
            return Err("offline.max_cache_age_hours must be 1 to 720".into());
        }
        if !(1..=30).contains(&self.max_queue_age_days) {
            return Err("offline.max_queue_age_days must be 1 to 30".into());
        }
        Ok(())
    }

    /// How long after its scan an offline purchase may still be flushed.
    pub fn max_queue_age_ms(&self) -> i64 {
        self.max_queue_age_days.saturating_mul(DAY_MS)
    }

    /// Whether a cache refreshed at `refreshed_at_ms` is fresh enough to redeem at `now_ms`.
    pub fn cache_fresh(&self, refreshed_at_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(refreshed_at_ms) <= self.max_cache_age_hours.saturating_mul(HOUR_MS)
    }
}

/// A key the till cached for the code's card and key id (several keys may share an id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    pub public_key: Vec<u8>,
    pub revoked: bool,
}

/// How far an offline till may trust a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineTrust {
    /// Signed by a cached key of an active card, with a fresh cache: earn, and redeem within the
    /// allowance.
    Verified,
    /// The cache cannot vouch for it (key unknown to the cache, or the cache is stale): earn only;
    /// the server verifies it at flush.
    EarnOnly,
}

/// A code the till accepted offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineCheck {
    pub card_number: u64,
    pub code_id: [u8; 16],
    /// When the code stops passing the time check: the till may forget it from then on.
    pub forget_after_ms: i64,
    pub trust: OfflineTrust,
}

/// Why a till refuses a code offline: the server's error code, and a sentence for the cashier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OfflineRefusal {
    pub code: &'static str,
    pub message: String,
}

fn refusal(code: &'static str, message: impl Into<String>) -> OfflineRefusal {
    OfflineRefusal {
        code,
        message: message.into(),
    }
}

/// The error code the server answers a [`CodeError`] with (`docs/checkout-code.md` §7).
pub fn refusal_code(e: &CodeError) -> &'static str {
    match e {
        CodeError::BadSignature | CodeError::KeyIdMismatch { .. } => "bad_signature",
        CodeError::InvalidPublicKey { .. } => "bad_signature",
        CodeError::UnsafePublicKey(_) => "unsafe_key",
        CodeError::Expired { .. } => "code_expired",
        CodeError::NotYetValid { .. } => "code_not_yet_valid",
        _ => "malformed_code",
    }
}

fn from_code_error(e: CodeError) -> OfflineRefusal {
    refusal(refusal_code(&e), e.to_string())
}

/// Checks a scanned code offline: shape, the cached keys for its card and key id (`keys`, as the
/// till's store found them), signature, card status, time. Not replay: the till records
/// [`OfflineCheck::code_id`] in its own store, atomically with the sale, and refuses a code it
/// saw (`code_replayed`).
pub fn check_code(
    text: &str,
    now_ms: i64,
    keys: &[CachedKey],
    card_blocked: bool,
    cache_refreshed_at_ms: i64,
    policy: &OfflinePolicy,
) -> Result<OfflineCheck, OfflineRefusal> {
    let parsed = ParsedCode::parse(text).map_err(from_code_error)?;
    parsed
        .check_time(now_ms, SKEW_STEPS)
        .map_err(from_code_error)?;
    if card_blocked {
        return Err(refusal("card_blocked", "this card is blocked"));
    }
    let mut trust = OfflineTrust::EarnOnly;
    if !keys.is_empty() {
        let signer = signer(&parsed, keys)?;
        if signer.revoked {
            return Err(refusal(
                "key_revoked",
                "the code was signed by a device that has been revoked",
            ));
        }
        if policy.cache_fresh(cache_refreshed_at_ms, now_ms) {
            trust = OfflineTrust::Verified;
        }
    }
    let step_ms = crate::checkout_code::step_start_ms(parsed.time_step);
    Ok(OfflineCheck {
        card_number: parsed.card_number,
        code_id: parsed.code_id(),
        forget_after_ms: step_ms + i64::from(SKEW_STEPS + 1) * 30_000,
        trust,
    })
}

/// The cached key the code verifies under; several keys may share the id.
fn signer<'k>(parsed: &ParsedCode, keys: &'k [CachedKey]) -> Result<&'k CachedKey, OfflineRefusal> {
    let mut last = None;
    for key in keys {
        match parsed.verify_signature(&key.public_key) {
            Ok(()) => return Ok(key),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || refusal("unknown_key", "no cached key has this id"),
        from_code_error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout_code::{CheckoutCode, SigningKey, generate_key_pair};

    const NOW: i64 = 1_767_225_600_000;
    const CARD: u64 = 6_000_000_000_001_237;

    fn cached(key: &SigningKey, revoked: bool) -> CachedKey {
        CachedKey {
            public_key: key.public_key().to_vec(),
            revoked,
        }
    }

    fn check(
        text: &str,
        keys: &[CachedKey],
        blocked: bool,
        refreshed: i64,
    ) -> Result<OfflineCheck, OfflineRefusal> {
        check_code(
            text,
            NOW,
            keys,
            blocked,
            refreshed,
            &OfflinePolicy::default(),
        )
    }

    #[test]
    fn a_cached_key_verifies_and_a_stale_or_missing_cache_only_earns() {
        let key = generate_key_pair().unwrap();
        let code = CheckoutCode::make(&key, CARD, NOW);
        let fresh = check(&code.text, &[cached(&key, false)], false, NOW).unwrap();
        assert_eq!(fresh.trust, OfflineTrust::Verified);
        assert_eq!(fresh.forget_after_ms, NOW + 60_000);
        let stale = check(
            &code.text,
            &[cached(&key, false)],
            false,
            NOW - 25 * HOUR_MS,
        )
        .unwrap();
        assert_eq!(stale.trust, OfflineTrust::EarnOnly);
        let unknown = check(&code.text, &[], false, NOW).unwrap();
        assert_eq!(unknown.trust, OfflineTrust::EarnOnly);
        assert_eq!(unknown.code_id, fresh.code_id);
    }

    #[test]
    fn refusals_carry_the_servers_codes() {
        let key = generate_key_pair().unwrap();
        let other = generate_key_pair().unwrap();
        let code = CheckoutCode::make(&key, CARD, NOW);
        let code_of = |r: Result<OfflineCheck, OfflineRefusal>| r.unwrap_err().code;
        assert_eq!(
            code_of(check(&code.text, &[cached(&key, true)], false, NOW)),
            "key_revoked"
        );
        assert_eq!(
            code_of(check(&code.text, &[cached(&key, false)], true, NOW)),
            "card_blocked"
        );
        assert_eq!(
            code_of(check(&code.text, &[cached(&other, false)], false, NOW)),
            "bad_signature"
        );
        assert_eq!(code_of(check("V50", &[], false, NOW)), "malformed_code");
        let old = CheckoutCode::make(&key, CARD, NOW - 120_000);
        assert_eq!(
            code_of(check(&old.text, &[cached(&key, false)], false, NOW)),
            "code_expired"
        );
        // Blocked cards are refused even when the key is unknown to the cache.
        assert_eq!(code_of(check(&code.text, &[], true, NOW)), "card_blocked");
    }

    #[test]
    fn the_policy_refuses_out_of_range_settings() {
        assert!(OfflinePolicy::default().validate().is_ok());
        for bad in [
            OfflinePolicy {
                redeem_points_per_day: -1,
                ..Default::default()
            },
            OfflinePolicy {
                max_cache_age_hours: 0,
                ..Default::default()
            },
            OfflinePolicy {
                max_queue_age_days: 31,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
