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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Programme {
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

impl Programme {
    pub fn validate(&self) -> Result<(), String> {
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
}
