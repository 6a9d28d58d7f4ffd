//! The programme's configuration as operators set it: earning rules, how points mature and expire,
//! and the tier ladder. One JSON document, validated as a whole before the server stores it, so a
//! programme is never half-changed.
//!
//! ```
//! let p: loyalty_core::programme::Programme = serde_json::from_str(r#"{
//!     "earning": {"default_rate": 1, "tier_rates": {"gold": 2}},
//!     "points": {"pending_days": 14, "expiry": {"mode": "rolling", "days": 365}},
//!     "tiers": {"tiers": [
//!         {"id": "base", "name": "Member", "threshold": 0},
//!         {"id": "gold", "name": "Gold", "threshold": 100000, "benefits": ["Free coffee"]}
//!     ]}
//! }"#).unwrap();
//! assert!(p.validate().is_ok());
//! ```

use serde::{Deserialize, Serialize};

use crate::card_trust::CardPolicy;
use crate::earning::EarningRules;
use crate::lots::PointsPolicy;
use crate::offline::OfflinePolicy;
use crate::redemption::RedemptionPolicy;
use crate::tiers::TierLadder;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Programme {
    /// The ISO 4217 code of the receipts' currency (`EUR` when unset): ledger reasons carry it
    /// with every amount so an app can format money in the member's locale.
    #[serde(
        default = "default_currency",
        skip_serializing_if = "is_default_currency"
    )]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z]{3}$", example = "EUR"))]
    pub currency: String,
    #[serde(default)]
    pub earning: EarningRules,
    #[serde(default)]
    pub points: PointsPolicy,
    #[serde(default)]
    pub tiers: TierLadder,
    /// What a till may do for a member identified by card number alone (`crate::card_trust`).
    #[serde(default)]
    pub cards: CardPolicy,
    /// What points are worth and how they pay (`crate::redemption`).
    #[serde(default)]
    pub redemption: RedemptionPolicy,
    /// What a till may do without its server (`crate::offline`).
    #[serde(default)]
    pub offline: OfflinePolicy,
}

/// A programme configured before currencies were named counted in euros (the demo's and tests').
const DEFAULT_CURRENCY: &str = "EUR";

fn default_currency() -> String {
    DEFAULT_CURRENCY.to_string()
}

fn is_default_currency(c: &String) -> bool {
    c == DEFAULT_CURRENCY
}

impl Default for Programme {
    fn default() -> Self {
        Self {
            currency: default_currency(),
            earning: EarningRules::default(),
            points: PointsPolicy::default(),
            tiers: TierLadder::default(),
            cards: CardPolicy::default(),
            redemption: RedemptionPolicy::default(),
            offline: OfflinePolicy::default(),
        }
    }
}

impl Programme {
    pub fn validate(&self) -> Result<(), String> {
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "currency `{}` is not an ISO 4217 code (three capital letters)",
                self.currency
            ));
        }
        self.earning.validate()?;
        self.points.validate()?;
        self.tiers.validate()?;
        self.redemption.validate()?;
        self.cards.validate()?;
        self.offline.validate()?;
        for tier in self.earning.tier_rates.keys() {
            if self.tiers.get(tier).is_none() {
                return Err(format!("earning rate for unknown tier `{tier}`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_programme_is_valid_and_a_rate_needs_its_tier() {
        assert!(Programme::default().validate().is_ok());
        let mut p = Programme::default();
        p.earning.tier_rates.insert("platinum".into(), 5);
        assert!(p.validate().is_err());
    }

    #[test]
    fn the_currency_defaults_to_euros_and_must_be_an_iso_code() {
        let p: Programme = serde_json::from_str("{}").unwrap();
        assert_eq!(p.currency, "EUR");
        assert!(!serde_json::to_string(&p).unwrap().contains("currency"));
        for bad in ["eur", "EURO", "", "E1R"] {
            let p = Programme {
                currency: bad.into(),
                ..Programme::default()
            };
            assert!(p.validate().is_err(), "{bad}");
        }
        let chf: Programme = serde_json::from_str(r#"{"currency":"CHF"}"#).unwrap();
        assert!(chf.validate().is_ok());
        assert!(serde_json::to_string(&chf).unwrap().contains("CHF"));
    }
}
