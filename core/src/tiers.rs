//! Tiers: thresholds on qualifying spend or points over a rolling window. A member moves up as soon
//! as they qualify; they move down only at their review date, and only after a grace period in
//! which they can still requalify. A tier an operator sets by hand stays until an operator
//! releases it, and the card shows it as such.
//!
//! [`evaluate`] is the whole policy as one pure function of the ladder, the member's tier state,
//! what they qualify with and the time; the server calls it at every posting and when a review or
//! grace date passes.

use serde::{Deserialize, Serialize};

use crate::calendar::DAY_MS;

/// What counts towards a tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Money spent (purchases less refunds), in minor units.
    #[default]
    Spend,
    /// Points earned on purchases.
    Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    pub id: String,
    pub name: String,
    /// Qualifying amount needed; the first tier's is 0.
    pub threshold: i64,
    #[serde(default)]
    pub benefits: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierLadder {
    #[serde(default)]
    pub metric: Metric,
    /// The rolling window qualifying amounts are counted over.
    #[serde(default = "year")]
    pub window_days: i64,
    /// Days from reaching a tier (or passing a review) to its next review.
    #[serde(default = "year")]
    pub review_days: i64,
    /// Days after a failed review before the downgrade.
    #[serde(default)]
    pub grace_days: i64,
    /// Lowest first.
    pub tiers: Vec<TierDef>,
}

fn year() -> i64 {
    365
}

impl Default for TierLadder {
    fn default() -> Self {
        Self {
            metric: Metric::Spend,
            window_days: 365,
            review_days: 365,
            grace_days: 0,
            tiers: vec![TierDef {
                id: "base".into(),
                name: "Member".into(),
                threshold: 0,
                benefits: Vec::new(),
            }],
        }
    }
}

impl TierLadder {
    pub fn validate(&self) -> Result<(), String> {
        let Some(first) = self.tiers.first() else {
            return Err("a ladder needs at least one tier".into());
        };
        if first.threshold != 0 {
            return Err("the first tier's threshold must be 0".into());
        }
        for pair in self.tiers.windows(2) {
            if pair[1].threshold <= pair[0].threshold {
                return Err("thresholds must rise from one tier to the next".into());
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in &self.tiers {
            if !crate::ids::valid_record_id(&t.id) || !ids.insert(&t.id) {
                return Err(format!("tier id `{}` is invalid or repeated", t.id));
            }
            if t.name.trim().is_empty() || t.benefits.iter().any(|b| b.len() > 512) {
                return Err(format!("tier `{}` needs a name and short benefits", t.id));
            }
        }
        for (name, days) in [
            ("window_days", self.window_days),
            ("review_days", self.review_days),
        ] {
            if !(1..=3_650).contains(&days) {
                return Err(format!("{name} must be 1 to 3650"));
            }
        }
        if !(0..=3_650).contains(&self.grace_days) {
            return Err("grace_days must be 0 to 3650".into());
        }
        Ok(())
    }

    fn rank(&self, id: &str) -> usize {
        self.tiers.iter().position(|t| t.id == id).unwrap_or(0)
    }

    /// The highest tier `qualifying` reaches.
    pub fn entitled(&self, qualifying: i64) -> usize {
        self.tiers
            .iter()
            .rposition(|t| qualifying >= t.threshold)
            .unwrap_or(0)
    }

    pub fn get(&self, id: &str) -> Option<&TierDef> {
        self.tiers.iter().find(|t| t.id == id)
    }
}

/// Where a member stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierState {
    pub tier: String,
    /// Set by an operator: evaluation leaves it alone.
    pub manual: bool,
    pub since_ms: i64,
    pub review_at_ms: i64,
    /// Set once a review found the member below their tier: the downgrade happens then.
    pub downgrade_at_ms: Option<i64>,
}

impl TierState {
    /// A new member on the ladder's first tier.
    pub fn start(ladder: &TierLadder, now_ms: i64) -> Self {
        Self {
            tier: ladder
                .tiers
                .first()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            manual: false,
            since_ms: now_ms,
            review_at_ms: now_ms.saturating_add(ladder.review_days * DAY_MS),
            downgrade_at_ms: None,
        }
    }

    /// When evaluation must run again even without a purchase.
    pub fn next_event(&self) -> Option<i64> {
        if self.manual {
            return None;
        }
        Some(self.downgrade_at_ms.unwrap_or(self.review_at_ms))
    }
}

/// The member's tier state after counting `qualifying` at `now_ms`.
pub fn evaluate(ladder: &TierLadder, state: &TierState, qualifying: i64, now_ms: i64) -> TierState {
    // A ladder without tiers is refused by validation; should one get here, nothing changes.
    if state.manual || ladder.tiers.is_empty() {
        return state.clone();
    }
    let current = ladder.rank(&state.tier);
    let entitled = ladder.entitled(qualifying);
    let review = |since: i64| since.saturating_add(ladder.review_days * DAY_MS);
    if entitled > current || ladder.get(&state.tier).is_none() {
        return TierState {
            tier: ladder.tiers[entitled].id.clone(),
            manual: false,
            since_ms: now_ms,
            review_at_ms: review(now_ms),
            downgrade_at_ms: None,
        };
    }
    let mut next = state.clone();
    if entitled == current {
        // Requalified (perhaps during a grace period): the tier holds until the next review.
        next.downgrade_at_ms = None;
        if next.review_at_ms <= now_ms {
            let period = (ladder.review_days * DAY_MS).max(1);
            let missed = (now_ms - next.review_at_ms) / period + 1;
            next.review_at_ms = next
                .review_at_ms
                .saturating_add(missed.saturating_mul(period));
        }
        return next;
    }
    if now_ms < state.review_at_ms {
        return next;
    }
    let downgrade_at = state.downgrade_at_ms.unwrap_or_else(|| {
        state
            .review_at_ms
            .saturating_add(ladder.grace_days * DAY_MS)
    });
    if now_ms < downgrade_at {
        next.downgrade_at_ms = Some(downgrade_at);
        return next;
    }
    TierState {
        tier: ladder.tiers[entitled].id.clone(),
        manual: false,
        since_ms: now_ms,
        review_at_ms: review(now_ms),
        downgrade_at_ms: None,
    }
}

/// How far the member is from the next tier, for the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub metric: Metric,
    pub qualifying: i64,
    /// The next tier up, if any.
    pub next_tier: Option<String>,
    pub next_tier_name: Option<String>,
    /// What is still missing to reach it.
    pub needed: i64,
}

pub fn progress(ladder: &TierLadder, state: &TierState, qualifying: i64) -> Progress {
    let next = ladder.tiers.get(ladder.rank(&state.tier) + 1);
    Progress {
        metric: ladder.metric,
        qualifying,
        next_tier: next.map(|t| t.id.clone()),
        next_tier_name: next.map(|t| t.name.clone()),
        needed: next.map_or(0, |t| (t.threshold - qualifying).max(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> TierLadder {
        let tier = |id: &str, threshold| TierDef {
            id: id.into(),
            name: id.to_uppercase(),
            threshold,
            benefits: vec![format!("{id} benefit")],
        };
        TierLadder {
            metric: Metric::Spend,
            window_days: 365,
            review_days: 365,
            grace_days: 30,
            tiers: vec![
                tier("base", 0),
                tier("silver", 50_000),
                tier("gold", 100_000),
            ],
        }
    }

    #[test]
    fn upgrade_is_immediate_and_skips_tiers() {
        let l = ladder();
        let s = TierState::start(&l, 0);
        let up = evaluate(&l, &s, 49_999, 10);
        assert_eq!(up.tier, "base");
        let up = evaluate(&l, &s, 120_000, 10);
        assert_eq!((up.tier.as_str(), up.since_ms), ("gold", 10));
        assert_eq!(up.review_at_ms, 10 + 365 * DAY_MS);
    }

    #[test]
    fn downgrade_waits_for_the_review_and_the_grace() {
        let l = ladder();
        let gold = evaluate(&l, &TierState::start(&l, 0), 100_000, 0);
        // Before the review the member keeps gold, whatever they spend.
        assert_eq!(evaluate(&l, &gold, 0, 364 * DAY_MS).tier, "gold");
        // At the review they fall short: gold holds through the grace, with the date shown.
        let review = 365 * DAY_MS;
        let at_risk = evaluate(&l, &gold, 60_000, review);
        assert_eq!(at_risk.tier, "gold");
        assert_eq!(at_risk.downgrade_at_ms, Some(review + 30 * DAY_MS));
        assert_eq!(at_risk.next_event(), Some(review + 30 * DAY_MS));
        let still = evaluate(&l, &at_risk, 60_000, review + 30 * DAY_MS - 1);
        assert_eq!(still.tier, "gold");
        // Then down to what they qualify for, not to the bottom.
        let down = evaluate(&l, &still, 60_000, review + 30 * DAY_MS);
        assert_eq!(down.tier, "silver");
        assert_eq!(down.downgrade_at_ms, None);
    }

    #[test]
    fn requalifying_in_the_grace_keeps_the_tier_until_the_next_review() {
        let l = ladder();
        let gold = evaluate(&l, &TierState::start(&l, 0), 100_000, 0);
        let review = 365 * DAY_MS;
        let at_risk = evaluate(&l, &gold, 0, review);
        let kept = evaluate(&l, &at_risk, 100_000, review + DAY_MS);
        assert_eq!(kept.tier, "gold");
        assert_eq!(kept.downgrade_at_ms, None);
        assert_eq!(kept.review_at_ms, 2 * review);
    }

    #[test]
    fn a_manual_tier_is_kept() {
        let l = ladder();
        let mut s = TierState::start(&l, 0);
        s.tier = "gold".into();
        s.manual = true;
        let after = evaluate(&l, &s, 0, 1_000 * DAY_MS);
        assert_eq!((after.tier.as_str(), after.manual), ("gold", true));
        assert_eq!(after.next_event(), None);
    }

    #[test]
    fn progress_names_the_next_tier_and_the_gap() {
        let l = ladder();
        let s = TierState::start(&l, 0);
        let p = progress(&l, &s, 20_000);
        assert_eq!(p.next_tier.as_deref(), Some("silver"));
        assert_eq!(p.needed, 30_000);
        let top = evaluate(&l, &s, 200_000, 0);
        assert_eq!(progress(&l, &top, 200_000).next_tier, None);
    }

    #[test]
    fn validation_refuses_bad_ladders() {
        assert!(ladder().validate().is_ok());
        let mut l = ladder();
        l.tiers[1].threshold = 0;
        assert!(l.validate().is_err());
        let mut l = ladder();
        l.tiers[0].threshold = 5;
        assert!(l.validate().is_err());
        let mut l = ladder();
        l.tiers.clear();
        assert!(l.validate().is_err());
        let mut l = ladder();
        l.tiers[2].id = "base".into();
        assert!(l.validate().is_err());
    }
}
