//! Structured reasons for ledger entries (issue 13 §6): a stable [`ReasonCode`] plus typed
//! [`ReasonParams`], and the ONE function ([`default_text`]) that words them in English, so the server
//! and every app phrase an entry the same way and an app can translate it from the code instead.
//!
//! Pending is deliberately not part of the text: an entry carries `available_at_ms` and the reader
//! decides pending vs available from its clock ([`is_pending`]), so the wording cannot go stale.
//! Codes are snake_case strings on the wire; a code this build does not know reads as
//! [`ReasonCode::Other`] so an older app never fails on a newer server.

use serde::{Deserialize, Serialize};

/// Why points moved. New variants may appear; readers must handle [`ReasonCode::Other`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Points earned by a purchase under an earning rule.
    Purchase,
    /// Points earned by a purchase through an activated offer.
    PurchaseOffer,
    /// Points spent at the till or for a reward.
    Redeem,
    /// Points taken back because the purchase that earned them was refunded.
    Refund,
    /// Spent points given back because the redemption was refunded.
    RefundRedeem,
    /// Points that reached their expiry date unused.
    Expiry,
    /// Points granted for reaching or keeping a tier.
    TierBonus,
    /// Points granted by an event (sign-up, birthday, campaign).
    Event,
    /// A manual adjustment by an operator.
    Adjust,
    /// A code this build does not know, or a row written before codes existed.
    #[default]
    #[serde(other)]
    Other,
}

impl ReasonCode {
    /// Every code, for tests and the bindings' mapping.
    pub const ALL: [Self; 10] = [
        Self::Purchase,
        Self::PurchaseOffer,
        Self::Redeem,
        Self::Refund,
        Self::RefundRedeem,
        Self::Expiry,
        Self::TierBonus,
        Self::Event,
        Self::Adjust,
        Self::Other,
    ];

    /// The code as stored and sent (`purchase_offer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::PurchaseOffer => "purchase_offer",
            Self::Redeem => "redeem",
            Self::Refund => "refund",
            Self::RefundRedeem => "refund_redeem",
            Self::Expiry => "expiry",
            Self::TierBonus => "tier_bonus",
            Self::Event => "event",
            Self::Adjust => "adjust",
            Self::Other => "other",
        }
    }

    /// The code a stored name names; a name this build does not know is [`ReasonCode::Other`].
    pub fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(Self::Other)
    }

    /// The code of a stored entry: its own when it has one, else derived from its rule (rows and
    /// card entries written before codes existed).
    pub fn stored(code: Option<&str>, rule: &str) -> Self {
        match code {
            Some(name) if !name.is_empty() => Self::parse(name),
            _ => Self::from_rule(rule),
        }
    }

    /// Derives a code from a legacy ledger `rule` (rows written before codes existed).
    pub fn from_rule(rule: &str) -> Self {
        match rule {
            "redeem" => Self::Redeem,
            "refund" => Self::Refund,
            "expiry" => Self::Expiry,
            _ => match rule.split(':').next().unwrap_or(rule) {
                // The server's rule prefixes: core/src/earning.rs, service/programme.rs, adjustments.rs.
                "base" | "multiplier" => Self::Purchase,
                "offer" => Self::PurchaseOffer,
                "event" => Self::Event,
                "adjust" => Self::Adjust,
                "tier" => Self::TierBonus,
                _ => Self::Other,
            },
        }
    }
}

/// An amount of money in minor units (cents) with its ISO 4217 currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

/// The parameters a reason may carry; all optional so codes can share one shape and grow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonParams {
    /// The earning rule, offer or tier that produced the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
    /// Human-facing title of the offer, rule or event, as the operator named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Receipt or posting reference at the till.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Purchases: the points-per-receipt cap when it cut this entry's points.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capped_at: i64,
    /// Expiries: when the expired points were earned (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earned_at_ms: Option<i64>,
    /// Refunds: points that had already expired when the purchase was refunded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub already_expired: i64,
    /// Refunds: points already spent that could not be taken back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unrecovered: i64,
    /// Adjustments: the operator's reason (`goodwill`, `correction`, …) and free note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjust_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A reason being put together for a ledger entry: the code, its parameters, and the default text
/// they give.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub params: ReasonParams,
}

impl Reason {
    pub fn new(code: ReasonCode, params: ReasonParams) -> Self {
        Self { code, params }
    }

    /// The default English wording ([`default_text`]).
    pub fn text(&self) -> String {
        default_text(self.code, &self.params)
    }
}

impl Money {
    pub fn new(minor: i64, currency: &str) -> Self {
        Self {
            minor,
            currency: currency.to_string(),
        }
    }
}

/// Whether an entry whose points mature at `available_at_ms` is still pending at `now_ms`.
pub fn is_pending(available_at_ms: Option<i64>, now_ms: i64) -> bool {
    available_at_ms.is_some_and(|at| at > now_ms)
}

/// The default English wording of a reason. Dates and pending state are not included (see the module doc).
pub fn default_text(code: ReasonCode, p: &ReasonParams) -> String {
    let title = p.title.as_deref();
    let mut text = match code {
        ReasonCode::Purchase => with_amount("Purchase", p),
        ReasonCode::PurchaseOffer => match title {
            Some(t) => format!(
                "{} with offer \u{201c}{t}\u{201d}",
                with_amount("Purchase", p)
            ),
            None => with_amount("Purchase with an offer", p),
        },
        ReasonCode::Redeem => "Points redeemed".to_string(),
        ReasonCode::Refund => with_amount("Refund", p),
        ReasonCode::RefundRedeem => "Redeemed points returned".to_string(),
        ReasonCode::Expiry => match p.earned_at_ms {
            Some(at) => format!(
                "Points earned on {} expired",
                crate::calendar::format_date(at)
            ),
            None => "Points expired".to_string(),
        },
        ReasonCode::TierBonus => titled("Tier bonus", title),
        ReasonCode::Event => titled("Bonus", title),
        // The operator's reason in the words the admin API gives it (`AdjustReason::label`).
        ReasonCode::Adjust => match p.adjust_reason.as_deref() {
            Some(r) => match AdjustReason::from_name(r) {
                Some(known) => known.label().to_string(),
                None => format!("Adjustment ({})", r.replace('_', " ")),
            },
            None => "Adjustment".to_string(),
        },
        ReasonCode::Other => titled("Points", title),
    };
    if p.capped_at > 0 {
        text.push_str(&format!(" (capped at {} points per receipt)", p.capped_at));
    }
    if p.already_expired > 0 {
        text.push_str(&format!("; {} had already expired", p.already_expired));
    }
    if p.unrecovered > 0 {
        text.push_str(&format!(
            "; {} already spent could not be taken back",
            p.unrecovered
        ));
    }
    if let Some(note) = p.note.as_deref().filter(|n| !n.is_empty()) {
        text.push_str(&format!(": {note}"));
    }
    if let Some(receipt) = p.receipt.as_deref().filter(|r| !r.is_empty()) {
        // An operator's adjustment names the member's request or ticket; everything else a receipt.
        let label = if code == ReasonCode::Adjust {
            "ref."
        } else {
            "receipt"
        };
        text.push_str(&format!(" ({label} {receipt})"));
    }
    text
}

impl ReasonParams {
    /// Parses the stored JSON form; an empty string (rows written before parameters existed) is
    /// no parameters.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        if json.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(json)
    }

    /// The stored JSON form (`{}` for none).
    pub fn to_stored(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

fn titled(base: &str, title: Option<&str>) -> String {
    match title {
        Some(t) => format!("{base}: {t}"),
        None => base.to_string(),
    }
}

fn with_amount(base: &str, p: &ReasonParams) -> String {
    match &p.amount {
        Some(m) => format!("{base} of {}", format_money(m)),
        None => base.to_string(),
    }
}

/// `1234 EUR` → `12.34 EUR`; minor units are assumed to be hundredths (all currencies we ship).
fn format_money(m: &Money) -> String {
    format!("{} {}", crate::redemption::money(m.minor), m.currency)
}

/// Why an operator adjusted a member's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    /// The member asked (a complaint, a request through the app).
    MemberRequest,
    /// A purchase the till did not post (the member brings the receipt).
    MissingReceipt,
    /// A gesture of goodwill.
    Goodwill,
    /// A correction of an earlier mistake.
    Correction,
    Other,
}

impl AdjustReason {
    pub const ALL: [Self; 5] = [
        Self::MemberRequest,
        Self::MissingReceipt,
        Self::Goodwill,
        Self::Correction,
        Self::Other,
    ];

    /// Its name on the wire and in the ledger's rule (`adjust:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemberRequest => "member_request",
            Self::MissingReceipt => "missing_receipt",
            Self::Goodwill => "goodwill",
            Self::Correction => "correction",
            Self::Other => "other",
        }
    }

    /// The reason named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// How the member's card words it, before the operator's note.
    pub fn label(self) -> &'static str {
        match self {
            Self::MemberRequest => "At your request",
            Self::MissingReceipt => "Missing receipt",
            Self::Goodwill => "Goodwill",
            Self::Correction => "Correction",
            Self::Other => "Adjustment",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Option<Money> {
        Some(Money {
            minor,
            currency: "EUR".into(),
        })
    }

    #[test]
    fn purchase_with_offer_is_worded_from_its_parameters() {
        let p = ReasonParams {
            title: Some("Double coffee".into()),
            amount: eur(1250),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::PurchaseOffer, &p),
            "Purchase of 12.50 EUR with offer \u{201c}Double coffee\u{201d}"
        );
    }

    #[test]
    fn refund_names_expired_and_unrecovered_points() {
        let p = ReasonParams {
            amount: eur(-705),
            already_expired: 3,
            unrecovered: 2,
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Refund, &p),
            "Refund of -7.05 EUR; 3 had already expired; 2 already spent could not be taken back"
        );
    }

    #[test]
    fn adjustment_carries_reason_and_note() {
        let p = ReasonParams {
            adjust_reason: Some("missing_receipt".into()),
            note: Some("receipt 42".into()),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Adjust, &p),
            "Missing receipt: receipt 42"
        );
        let newer = ReasonParams {
            adjust_reason: Some("fraud_review".into()),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Adjust, &newer),
            "Adjustment (fraud review)"
        );
    }

    #[test]
    fn wording_never_mentions_pending() {
        let text = default_text(ReasonCode::Purchase, &ReasonParams::default());
        assert!(!text.contains("pending"), "{text}");
        assert!(is_pending(Some(2_000), 1_000));
        assert!(!is_pending(Some(2_000), 2_000));
        assert!(!is_pending(None, 0));
    }

    #[test]
    fn codes_are_snake_case_and_unknown_codes_read_as_other() {
        let json = serde_json::to_string(&ReasonCode::PurchaseOffer).unwrap();
        assert_eq!(json, "\"purchase_offer\"");
        let back: ReasonCode = serde_json::from_str("\"cashback_2030\"").unwrap();
        assert_eq!(back, ReasonCode::Other);
    }

    #[test]
    fn params_round_trip_and_old_empty_params_read() {
        let p = ReasonParams {
            rule_id: Some("r1".into()),
            amount: eur(100),
            already_expired: 1,
            ..Default::default()
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<ReasonParams>(&json).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<ReasonParams>("{}").unwrap(),
            ReasonParams::default()
        );
    }

    #[test]
    fn receipts_references_and_expiry_dates_are_worded() {
        let mut purchase = ReasonParams {
            amount: eur(1250),
            receipt: Some("R-7".into()),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Purchase, &purchase),
            "Purchase of 12.50 EUR (receipt R-7)"
        );
        purchase.capped_at = 100;
        assert_eq!(
            default_text(ReasonCode::Purchase, &purchase),
            "Purchase of 12.50 EUR (capped at 100 points per receipt) (receipt R-7)"
        );
        let adjust = ReasonParams {
            adjust_reason: Some("goodwill".into()),
            note: Some("sorry".into()),
            receipt: Some("T-1".into()),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Adjust, &adjust),
            "Goodwill: sorry (ref. T-1)"
        );
        let expiry = ReasonParams {
            earned_at_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(
            default_text(ReasonCode::Expiry, &expiry),
            "Points earned on 1970-01-01 expired"
        );
    }

    #[test]
    fn stored_codes_read_back_and_rows_without_one_derive_it() {
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(
            ReasonCode::stored(Some("refund_redeem"), "refund"),
            ReasonCode::RefundRedeem
        );
        assert_eq!(
            ReasonCode::stored(None, "offer:o1"),
            ReasonCode::PurchaseOffer
        );
        assert_eq!(ReasonCode::stored(Some(""), "expiry"), ReasonCode::Expiry);
        assert_eq!(
            ReasonCode::stored(Some("cashback_2030"), "x"),
            ReasonCode::Other
        );
        assert_eq!(
            ReasonParams::from_stored("").unwrap(),
            ReasonParams::default()
        );
        let p = ReasonParams {
            offer_id: Some("o1".into()),
            ..Default::default()
        };
        assert_eq!(ReasonParams::from_stored(&p.to_stored()).unwrap(), p);
        assert!(ReasonParams::from_stored("{not json").is_err());
    }

    #[test]
    fn legacy_rules_map_to_codes() {
        assert_eq!(ReasonCode::from_rule("redeem"), ReasonCode::Redeem);
        assert_eq!(ReasonCode::from_rule("refund"), ReasonCode::Refund);
        assert_eq!(ReasonCode::from_rule("adjust:goodwill"), ReasonCode::Adjust);
        assert_eq!(ReasonCode::from_rule("base:gold"), ReasonCode::Purchase);
        assert_eq!(ReasonCode::from_rule("multiplier:m1"), ReasonCode::Purchase);
        assert_eq!(ReasonCode::from_rule("offer:o1"), ReasonCode::PurchaseOffer);
        assert_eq!(ReasonCode::from_rule("event:birthday"), ReasonCode::Event);
        assert_eq!(ReasonCode::from_rule("legacy"), ReasonCode::Other);
    }
}
