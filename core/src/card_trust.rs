//! Serving a shopper without the app: a till may identify a member by the card number alone (a
//! printed or plastic card's QR code, the number typed), a weaker proof than the app's signed
//! code — anyone can copy a card number. The programme's policy (`cards` in its configuration)
//! says what such a session may do: earning is allowed; redeeming needs the app's code, or the
//! member's PIN entered at the till, or is not allowed at all. The PIN's rules live here so an app
//! can check one before sending it.
//!
//! ```
//! use loyalty_core::card_trust::{check_pin, CardPolicy, CardRedeem};
//!
//! assert_eq!(CardPolicy::default().redeem, CardRedeem::WithPin);
//! assert!(check_pin("4071").is_ok());
//! assert!(check_pin("1234").is_err(), "a sequence anyone would try first");
//! ```

use serde::{Deserialize, Serialize};

/// What a session opened by card number may redeem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CardRedeem {
    /// Nothing: redeeming needs the app's code.
    Never,
    /// After the member's PIN was entered at the till.
    #[default]
    WithPin,
    /// Anything, as with the app's code (a programme that accepts the risk of a copied number).
    Always,
}

/// The programme's policy for cards without the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CardPolicy {
    /// Whether tills may identify members by card number at all.
    #[serde(default = "yes")]
    pub scans: bool,
    #[serde(default)]
    pub redeem: CardRedeem,
    /// Wrong PINs in a row before the PIN locks.
    #[serde(default = "five")]
    pub pin_attempts: i64,
    /// How long a locked PIN stays locked.
    #[serde(default = "thirty")]
    pub pin_lock_minutes: i64,
}

fn yes() -> bool {
    true
}

fn five() -> i64 {
    5
}

fn thirty() -> i64 {
    30
}

impl Default for CardPolicy {
    fn default() -> Self {
        Self {
            scans: true,
            redeem: CardRedeem::WithPin,
            pin_attempts: five(),
            pin_lock_minutes: thirty(),
        }
    }
}

impl CardPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=20).contains(&self.pin_attempts) {
            return Err("cards.pin_attempts must be 1 to 20".into());
        }
        if !(1..=7 * 24 * 60).contains(&self.pin_lock_minutes) {
            return Err("cards.pin_lock_minutes must be 1 to 10080".into());
        }
        Ok(())
    }

    pub fn pin_lock_ms(&self) -> i64 {
        self.pin_lock_minutes.saturating_mul(60_000)
    }
}

/// How a checkout session knows its member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionTrust {
    /// The app's signed, single-use code.
    #[default]
    Code,
    /// The card number alone.
    Card,
    /// The card number and the member's PIN.
    CardAndPin,
}

impl SessionTrust {
    /// Whether a session of this trust may redeem under `policy`.
    pub fn may_redeem(self, policy: &CardPolicy) -> bool {
        match self {
            SessionTrust::Code => true,
            SessionTrust::Card => policy.redeem == CardRedeem::Always,
            SessionTrust::CardAndPin => policy.redeem != CardRedeem::Never,
        }
    }
}

/// Digits in a PIN.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=8;

/// Why a PIN is refused when a member sets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPin(pub &'static str);

/// Checks a PIN a member chooses: 4 to 8 digits, not one digit repeated, not a run up or down.
pub fn check_pin(pin: &str) -> Result<(), WeakPin> {
    let digits: Vec<u8> = pin.bytes().collect();
    if !PIN_DIGITS.contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return Err(WeakPin("a PIN is 4 to 8 digits"));
    }
    if digits.windows(2).all(|w| w[0] == w[1]) {
        return Err(WeakPin("a PIN of one digit repeated is guessed first"));
    }
    let run = |step: i16| {
        digits
            .windows(2)
            .all(|w| i16::from(w[1]) - i16::from(w[0]) == step)
    };
    if run(1) || run(-1) {
        return Err(WeakPin("a PIN of consecutive digits is guessed first"));
    }
    Ok(())
}

/// Whether a scanned text is a card number rather than a checkout code: digits, with the spaces
/// and dashes printed cards use (a checkout code always starts with `V`).
pub fn looks_like_card_number(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text.len() <= 40
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_pins_are_refused() {
        for ok in ["4071", "90210", "13572468", "0001"] {
            assert!(check_pin(ok).is_ok(), "{ok}");
        }
        for bad in [
            "123",
            "123456789",
            "12a4",
            "0000",
            "1234",
            "9876",
            "3456789",
            " 4071",
        ] {
            assert!(check_pin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_each_trust_may_redeem() {
        let mut p = CardPolicy::default();
        assert!(SessionTrust::Code.may_redeem(&p));
        assert!(!SessionTrust::Card.may_redeem(&p));
        assert!(SessionTrust::CardAndPin.may_redeem(&p));
        p.redeem = CardRedeem::Never;
        assert!(!SessionTrust::CardAndPin.may_redeem(&p));
        p.redeem = CardRedeem::Always;
        assert!(SessionTrust::Card.may_redeem(&p));
        assert!(
            CardPolicy {
                pin_attempts: 0,
                ..CardPolicy::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn card_numbers_are_told_from_codes() {
        assert!(looks_like_card_number("6000 0000 0000 1237"));
        assert!(looks_like_card_number("6000-0000-0000-1237\r\n"));
        assert!(!looks_like_card_number("V50BV22FV65LT"));
        assert!(!looks_like_card_number(""));
    }
}
