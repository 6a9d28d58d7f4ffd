//! A ledger entry's structured reason as the apps see it (issue 13 §6): the code as an enum whose
//! `Other` case stands for any code this library does not know, typed parameters (amounts in minor
//! units with their currency, dates as epoch ms), and the two functions an app needs to word an
//! entry itself — whether it is still pending at a time, and the core's default English text.

use loyalty_core::reasons::{
    self, Money as CoreMoney, ReasonCode as CoreCode, ReasonParams as CoreParams,
};

use crate::LedgerEntry;

/// Why points moved. An app words each case in the member's language; `Other` is a code this
/// library does not know (a newer server's) or an entry written before codes existed: show the
/// entry's `reason` text then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ReasonCode {
    /// Earned by a purchase under an earning rule.
    Purchase,
    /// Earned by a purchase through an offer (`offer_id`, `title`).
    PurchaseOffer,
    /// Spent at the till (`amount`: what the points paid).
    Redeem,
    /// Taken back by a refund (`amount`: the refund; `already_expired`, `unrecovered`).
    Refund,
    /// Spent points given back by a refund.
    RefundRedeem,
    /// Expired unused (`earned_at_ms`: when they were earned).
    Expiry,
    /// Granted for a tier.
    TierBonus,
    /// Granted by an event (`rule_id` `event:birthday`…, `title`).
    Event,
    /// An operator's adjustment (`adjust_reason`, `note`, `receipt`: the reference).
    Adjust,
    Other,
}

impl From<CoreCode> for ReasonCode {
    fn from(c: CoreCode) -> Self {
        match c {
            CoreCode::Purchase => Self::Purchase,
            CoreCode::PurchaseOffer => Self::PurchaseOffer,
            CoreCode::Redeem => Self::Redeem,
            CoreCode::Refund => Self::Refund,
            CoreCode::RefundRedeem => Self::RefundRedeem,
            CoreCode::Expiry => Self::Expiry,
            CoreCode::TierBonus => Self::TierBonus,
            CoreCode::Event => Self::Event,
            CoreCode::Adjust => Self::Adjust,
            CoreCode::Other => Self::Other,
        }
    }
}

impl From<ReasonCode> for CoreCode {
    fn from(c: ReasonCode) -> Self {
        match c {
            ReasonCode::Purchase => Self::Purchase,
            ReasonCode::PurchaseOffer => Self::PurchaseOffer,
            ReasonCode::Redeem => Self::Redeem,
            ReasonCode::Refund => Self::Refund,
            ReasonCode::RefundRedeem => Self::RefundRedeem,
            ReasonCode::Expiry => Self::Expiry,
            ReasonCode::TierBonus => Self::TierBonus,
            ReasonCode::Event => Self::Event,
            ReasonCode::Adjust => Self::Adjust,
            ReasonCode::Other => Self::Other,
        }
    }
}

/// An amount of money: `minor` units (cents) of the ISO 4217 `currency`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

/// What a reason names; each code uses some of these (see [`ReasonCode`]), the rest are `None`/0.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ReasonParams {
    /// The earning rule, offer, event or adjustment behind the entry (`base:gold`, `offer:o1`…).
    pub rule_id: Option<String>,
    pub offer_id: Option<String>,
    /// The offer's or event's title as the operator wrote it (not translated).
    pub title: Option<String>,
    /// The till's receipt, or an adjustment's reference.
    pub receipt: Option<String>,
    pub amount: Option<Money>,
    /// Purchases: the points-per-receipt cap when it cut this entry's points; 0 when it did not.
    pub capped_at: i64,
    /// Expiries: when the expired points were earned.
    pub earned_at_ms: Option<i64>,
    /// Refunds: points that had already expired, and points already spent that could not be taken
    /// back.
    pub already_expired: i64,
    pub unrecovered: i64,
    /// Adjustments: `member_request`, `missing_receipt`, `goodwill`, `correction`, `other`.
    pub adjust_reason: Option<String>,
    /// Adjustments: the operator's note (not translated).
    pub note: Option<String>,
}

impl From<CoreParams> for ReasonParams {
    fn from(p: CoreParams) -> Self {
        Self {
            rule_id: p.rule_id,
            offer_id: p.offer_id,
            title: p.title,
            receipt: p.receipt,
            amount: p.amount.map(|m| Money {
                minor: m.minor,
                currency: m.currency,
            }),
            capped_at: p.capped_at,
            earned_at_ms: p.earned_at_ms,
            already_expired: p.already_expired,
            unrecovered: p.unrecovered,
            adjust_reason: p.adjust_reason,
            note: p.note,
        }
    }
}

impl From<ReasonParams> for CoreParams {
    fn from(d: ReasonParams) -> Self {
        Self {
            rule_id: d.rule_id,
            offer_id: d.offer_id,
            title: d.title,
            receipt: d.receipt,
            amount: d.amount.map(|m| CoreMoney {
                minor: m.minor,
                currency: m.currency,
            }),
            capped_at: d.capped_at,
            earned_at_ms: d.earned_at_ms,
            already_expired: d.already_expired,
            unrecovered: d.unrecovered,
            adjust_reason: d.adjust_reason,
            note: d.note,
        }
    }
}

/// Whether `entry`'s points are still pending (not yet spendable) at `now_ms`. Decided from the
/// entry's `available_at_ms` and the clock, so an entry becomes available without new text.
#[uniffi::export]
pub fn ledger_entry_is_pending(entry: &LedgerEntry, now_ms: i64) -> bool {
    reasons::is_pending(entry.available_at_ms, now_ms)
}

/// The core's default English wording of a reason (what the server puts in `reason`), for an app
/// that translates some codes and falls back to English for the rest.
#[uniffi::export]
pub fn reason_default_text(code: ReasonCode, params: ReasonParams) -> String {
    reasons::default_text(code.into(), &params.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_and_parameter_crosses_both_ways() {
        for code in CoreCode::ALL {
            assert_eq!(CoreCode::from(ReasonCode::from(code)), code);
        }
        let p = CoreParams {
            rule_id: Some("offer:o1".into()),
            offer_id: Some("o1".into()),
            title: Some("Coffee".into()),
            receipt: Some("R1".into()),
            amount: Some(CoreMoney::new(1250, "EUR")),
            capped_at: 100,
            earned_at_ms: Some(5),
            already_expired: 3,
            unrecovered: 2,
            adjust_reason: Some("goodwill".into()),
            note: Some("n".into()),
        };
        assert_eq!(CoreParams::from(ReasonParams::from(p.clone())), p);
        assert_eq!(
            reason_default_text(ReasonCode::Refund, ReasonParams::from(p.clone())),
            reasons::default_text(CoreCode::Refund, &p)
        );
    }
}
