//! Earning rules and the pricing of one basket: which personal offers apply, what they take off
//! the bill, and how many points each rule earns. Pure functions of the programme's rules, the
//! member's tier and offers, the basket and the time, so the server's till and any test can run
//! them without a database.
//!
//! The order is fixed and documented in docs/programme.md: percent-off offers first (points are
//! earned on what the member pays), then the base rate of the member's tier, then the highest
//! multiplier that applies to each line (multipliers do not stack), then the cap per receipt, and
//! last the points offers (fixed points, points multipliers), which the cap does not limit.
//!
//! ```
//! use loyalty_core::earning::{Basket, EarningRules, price};
//! let rules = EarningRules { default_rate: 2, ..EarningRules::default() };
//! let pricing = price(&rules, "base", &Basket::total(12_345), &[], 0);
//! assert_eq!(pricing.points(), 246); // 123.45 at 2 points per unit
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::offers::{Offer, Reward};

/// Points per currency unit, multipliers and caps: what an operator configures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EarningRules {
    /// Points per whole currency unit (100 minor units) for tiers without their own rate.
    #[serde(default = "one")]
    pub default_rate: i64,
    /// Points per currency unit by tier id.
    #[serde(default)]
    pub tier_rates: BTreeMap<String, i64>,
    /// Multipliers on a category's lines (or the whole basket), optionally within dates.
    #[serde(default)]
    pub multipliers: Vec<Multiplier>,
    /// Receipts below this (after discounts, in minor units) earn no rule points.
    #[serde(default)]
    pub min_purchase_minor: i64,
    /// The most rule points one receipt earns; 0 for no cap.
    #[serde(default)]
    pub cap_per_receipt: i64,
    /// Points for things other than purchases.
    #[serde(default)]
    pub events: EventPoints,
}

/// One line of a basket as the till sends it (`loyalty_core::api::PurchaseRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PurchaseLine {
    pub sku: String,
    #[serde(default)]
    pub description: String,
    /// The product category earning rules and offers match on ("coffee", "fresh"); empty for none.
    #[serde(default)]
    pub category: String,
    #[serde(default = "one")]
    pub quantity: i64,
    /// The line's total in minor units (cents).
    pub amount_minor: i64,
}

fn one() -> i64 {
    1
}

impl Default for EarningRules {
    fn default() -> Self {
        Self {
            default_rate: 1,
            tier_rates: BTreeMap::new(),
            multipliers: Vec::new(),
            min_purchase_minor: 0,
            cap_per_receipt: 0,
            events: EventPoints::default(),
        }
    }
}

/// Extra points on a category (or, with an empty category, the whole basket), optionally limited
/// to a date range: `percent` 200 earns double points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Multiplier {
    pub id: String,
    #[serde(default)]
    pub category: String,
    pub percent: i64,
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub until_ms: Option<i64>,
}

impl Multiplier {
    fn active(&self, now_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| now_ms >= f) && self.until_ms.is_none_or(|u| now_ms < u)
    }

    fn covers(&self, category: &str) -> bool {
        self.category.is_empty() || self.category == category
    }
}

/// Points for events other than purchases, each awarded once (the birthday once a year).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventPoints {
    #[serde(default)]
    pub enrollment: i64,
    #[serde(default)]
    pub birthday: i64,
    #[serde(default)]
    pub profile_complete: i64,
    /// Preferences that make a profile complete (for example `name`, `email`, `birthday`).
    #[serde(default)]
    pub profile_fields: Vec<String>,
}

/// The largest number of points any one rule or receipt may give: far below overflow when added up.
pub const MAX_POINTS: i64 = 1_000_000_000_000;

impl EarningRules {
    pub fn validate(&self) -> Result<(), String> {
        let rates = std::iter::once(self.default_rate).chain(self.tier_rates.values().copied());
        for rate in rates {
            if !(0..=10_000).contains(&rate) {
                return Err(format!("rate {rate} must be 0 to 10000 points per unit"));
            }
        }
        for m in &self.multipliers {
            if !crate::ids::valid_record_id(&m.id) {
                return Err(format!("multiplier id `{}` is not a valid id", m.id));
            }
            if !(100..=10_000).contains(&m.percent) {
                return Err(format!(
                    "multiplier `{}` must be 100 to 10000 percent",
                    m.id
                ));
            }
            if let (Some(f), Some(u)) = (m.from_ms, m.until_ms)
                && u <= f
            {
                return Err(format!("multiplier `{}` must end after it starts", m.id));
            }
        }
        let e = &self.events;
        for (name, v) in [
            ("min_purchase_minor", self.min_purchase_minor),
            ("cap_per_receipt", self.cap_per_receipt),
            ("enrollment points", e.enrollment),
            ("birthday points", e.birthday),
            ("profile points", e.profile_complete),
        ] {
            if !(0..=MAX_POINTS).contains(&v) {
                return Err(format!("{name} must be 0 to {MAX_POINTS}"));
            }
        }
        if e.profile_complete > 0 && e.profile_fields.is_empty() {
            return Err("profile points need the profile_fields that complete a profile".into());
        }
        Ok(())
    }

    pub fn rate(&self, tier: &str) -> i64 {
        self.tier_rates
            .get(tier)
            .copied()
            .unwrap_or(self.default_rate)
    }
}

/// What the till sends: the receipt total and its lines (which may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    pub total_minor: i64,
    pub lines: Vec<PurchaseLine>,
}

impl Basket {
    /// A basket known only by its total.
    pub fn total(total_minor: i64) -> Self {
        Self {
            total_minor,
            lines: Vec::new(),
        }
    }

    /// The lines as (category, amount), one uncategorised line for a basket without lines.
    fn priced_lines(&self) -> Vec<(String, i64)> {
        if self.lines.is_empty() {
            return vec![(String::new(), self.total_minor)];
        }
        self.lines
            .iter()
            .map(|l| (l.category.clone(), l.amount_minor))
            .collect()
    }
}

/// An offer the member holds, as the till sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferCandidate {
    /// `use_count` is how often the member has used it so far.
    pub offer: Offer,
    pub activated_at_ms: Option<i64>,
}

/// Points a rule gave, with the rule's name and a reason the member can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Earning {
    pub rule: String,
    pub points: i64,
    pub reason: String,
    /// The receipt's cap (`cap_per_receipt`) when it cut this rule's points; 0 when it did not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capped_at: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// An offer the till applied to this basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppliedOffer {
    pub offer_id: String,
    pub title: String,
    pub reward: Reward,
    /// Taken off the bill, in minor units.
    pub discount_minor: i64,
    /// Points the offer gave.
    pub points: i64,
}

/// The outcome of pricing a basket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pricing {
    /// What the offers take off the receipt total.
    pub discount_minor: i64,
    /// What the points redeemed take off what is left (`crate::redemption`).
    #[serde(default)]
    pub points_discount_minor: i64,
    /// What the member pays in money: the total less both discounts.
    pub paid_minor: i64,
    /// The amount the rules earned points on: what is left after offers, less the part paid with
    /// points unless the programme lets that part earn.
    #[serde(default)]
    pub earn_base_minor: i64,
    pub earnings: Vec<Earning>,
    pub applied: Vec<AppliedOffer>,
}

impl Pricing {
    pub fn points(&self) -> i64 {
        self.earnings.iter().map(|e| e.points).sum()
    }
}

/// Why an offer the member holds does not apply to this basket, or `None` when it does.
pub fn offer_blocker(c: &OfferCandidate, basket: &Basket, now_ms: i64) -> Option<&'static str> {
    let o = &c.offer;
    if now_ms < o.valid_from_ms {
        return Some("not valid yet");
    }
    if now_ms >= o.valid_until_ms {
        return Some("expired");
    }
    if o.needs_activation && c.activated_at_ms.is_none() {
        return Some("not activated");
    }
    if o.use_limit > 0 && o.use_count >= o.use_limit {
        return Some("use limit reached");
    }
    let spend: i64 = basket
        .priced_lines()
        .iter()
        .filter(|(cat, _)| o.category.is_empty() || *cat == o.category)
        .map(|(_, a)| a)
        .sum();
    if spend == 0 || spend < o.min_spend_minor {
        return Some("minimum spend not met");
    }
    None
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Prices `basket` for a member of `tier` holding `offers`, at `now_ms`.
pub fn price(
    rules: &EarningRules,
    tier: &str,
    basket: &Basket,
    offers: &[OfferCandidate],
    now_ms: i64,
) -> Pricing {
    price_with_points(rules, tier, basket, offers, now_ms, &PointsPaid::default())
}

/// Part of a receipt paid with points (after offers), and whether that part earns points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointsPaid {
    pub minor: i64,
    pub earns: bool,
}

/// [`price`] with `points` paying part of what is left after the offers: it comes off what the
/// member pays, and off what earns unless the programme lets the part paid with points earn (the
/// lines are reduced in proportion, so category rules still see their share).
pub fn price_with_points(
    rules: &EarningRules,
    tier: &str,
    basket: &Basket,
    offers: &[OfferCandidate],
    now_ms: i64,
    points: &PointsPaid,
) -> Pricing {
    let usable: Vec<&Offer> = offers
        .iter()
        .filter(|c| offer_blocker(c, basket, now_ms).is_none())
        .map(|c| &c.offer)
        .collect();
    let mut lines = basket.priced_lines();
    let mut applied = Vec::new();
    for o in usable.iter().filter(|o| o.reward == Reward::PercentOff) {
        let mut discount = 0;
        for (cat, amount) in lines.iter_mut() {
            if o.category.is_empty() || *cat == o.category {
                let off = *amount * o.value / 100;
                *amount -= off;
                discount += off;
            }
        }
        applied.push(AppliedOffer {
            offer_id: o.id.clone(),
            title: o.title.clone(),
            reward: o.reward,
            discount_minor: discount,
            points: 0,
        });
    }
    let after_offers: i64 = lines.iter().map(|(_, a)| a).sum();
    let points_minor = points.minor.clamp(0, after_offers.max(0));
    if !points.earns {
        take_pro_rata(&mut lines, points_minor);
    }
    let earn_base: i64 = lines.iter().map(|(_, a)| a).sum();
    let rate = rules.rate(tier);
    let mut earnings = rule_earnings(rules, tier, rate, &lines, earn_base, now_ms);
    for o in &usable {
        let points = match o.reward {
            Reward::PercentOff => continue,
            Reward::FixedPoints => o.value,
            Reward::PointsMultiplier => {
                let scope: i64 = lines
                    .iter()
                    .filter(|(cat, _)| o.category.is_empty() || *cat == o.category)
                    .map(|(_, a)| a)
                    .sum();
                scope.saturating_mul(rate).saturating_mul(o.value - 100) / 10_000
            }
        }
        .clamp(0, MAX_POINTS);
        earnings.push(Earning {
            rule: format!("offer:{}", o.id),
            points,
            reason: format!("Offer “{}”", o.title),
            capped_at: 0,
        });
        applied.push(AppliedOffer {
            offer_id: o.id.clone(),
            title: o.title.clone(),
            reward: o.reward,
            discount_minor: 0,
            points,
        });
    }
    earnings.retain(|e| e.points > 0);
    Pricing {
        discount_minor: basket.total_minor - after_offers,
        points_discount_minor: points_minor,
        paid_minor: after_offers - points_minor,
        earn_base_minor: earn_base,
        earnings,
        applied,
    }
}

/// Takes `minor` off the lines in proportion to their amounts (rounded down, the remainder a cent
/// at a time from the first lines with something left), never below zero.
fn take_pro_rata(lines: &mut [(String, i64)], minor: i64) {
    let total: i64 = lines.iter().map(|(_, a)| *a).sum();
    if minor <= 0 || total <= 0 {
        return;
    }
    let mut left = minor.min(total);
    for (_, amount) in lines.iter_mut() {
        let cut = i64::try_from(i128::from(*amount) * i128::from(minor) / i128::from(total))
            .unwrap_or(0)
            .min(*amount);
        *amount -= cut;
        left -= cut;
    }
    for (_, amount) in lines.iter_mut() {
        let cut = left.min(*amount);
        *amount -= cut;
        left -= cut;
    }
}

/// Base and multiplier points for the paid lines, capped per receipt.
fn rule_earnings(
    rules: &EarningRules,
    tier: &str,
    rate: i64,
    lines: &[(String, i64)],
    paid: i64,
    now_ms: i64,
) -> Vec<Earning> {
    if paid < rules.min_purchase_minor || paid <= 0 {
        return Vec::new();
    }
    let mut earnings = vec![Earning {
        rule: format!("base:{tier}"),
        points: paid.saturating_mul(rate) / 100,
        reason: format!(
            "Earned on a purchase of {} ({rate} per unit, {tier} rate)",
            money(paid)
        ),
        capped_at: 0,
    }];
    // Each line earns extra at the highest multiplier that covers it; the extra is booked to that
    // multiplier so the ledger names the rule behind every point.
    let mut extra: BTreeMap<usize, i64> = BTreeMap::new();
    for (cat, amount) in lines {
        let best = rules
            .multipliers
            .iter()
            .enumerate()
            .filter(|(_, m)| m.active(now_ms) && m.covers(cat))
            .max_by_key(|(_, m)| m.percent);
        if let Some((i, _)) = best {
            *extra.entry(i).or_default() += amount;
        }
    }
    for (i, amount) in extra {
        let m = &rules.multipliers[i];
        let points = amount.saturating_mul(rate).saturating_mul(m.percent - 100) / 10_000;
        let scope = if m.category.is_empty() {
            "the basket".to_string()
        } else {
            format!("{} ({})", m.category, money(amount))
        };
        earnings.push(Earning {
            rule: format!("multiplier:{}", m.id),
            points,
            reason: format!("{}% points on {scope}", m.percent),
            capped_at: 0,
        });
    }
    cap(&mut earnings, rules.cap_per_receipt);
    earnings
}

/// Trims the earnings to `cap` points in all, taking from the last rules (the multipliers) first.
fn cap(earnings: &mut [Earning], cap: i64) {
    let total: i64 = earnings.iter().map(|e| e.points).sum();
    if cap <= 0 || total <= cap {
        return;
    }
    let mut excess = total - cap;
    for e in earnings.iter_mut().rev() {
        let cut = excess.min(e.points);
        e.points -= cut;
        excess -= cut;
        if cut > 0 {
            e.capped_at = cap;
            e.reason
                .push_str(&format!(" (capped at {cap} points per receipt)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn coffee_and_bread() -> Basket {
        basket(vec![line("coffee", 600), line("bread", 400)])
    }

    #[test]
    fn points_paid_come_off_what_earns_in_proportion_unless_they_earn() {
        let mut rules = EarningRules::default();
        rules.multipliers.push(Multiplier {
            id: "coffee".into(),
            category: "coffee".into(),
            percent: 200,
            from_ms: None,
            until_ms: None,
        });
        let paid = |minor, earns| PointsPaid { minor, earns };
        let p = price_with_points(
            &rules,
            "base",
            &coffee_and_bread(),
            &[],
            0,
            &paid(500, false),
        );
        assert_eq!(
            (p.points_discount_minor, p.paid_minor, p.earn_base_minor),
            (500, 500, 500)
        );
        // Half of each line is left: 3.00 of coffee earns double, 2.00 of bread single.
        assert_eq!(p.points(), 5 + 3);
        let p = price_with_points(
            &rules,
            "base",
            &coffee_and_bread(),
            &[],
            0,
            &paid(500, true),
        );
        assert_eq!(
            (p.paid_minor, p.earn_base_minor, p.points()),
            (500, 1_000, 10 + 6)
        );
        // Never more than the receipt.
        let p = price_with_points(
            &rules,
            "base",
            &coffee_and_bread(),
            &[],
            0,
            &paid(5_000, false),
        );
        assert_eq!(
            (p.points_discount_minor, p.paid_minor, p.points()),
            (1_000, 0, 0)
        );
    }

    proptest! {
        #[test]
        fn taking_pro_rata_takes_exactly_what_it_can_and_leaves_no_line_negative(
            amounts in proptest::collection::vec(0i64..1_000_000, 1..20),
            minor in 0i64..30_000_000,
        ) {
            let mut lines: Vec<(String, i64)> =
                amounts.iter().map(|a| (String::new(), *a)).collect();
            let total: i64 = amounts.iter().sum();
            take_pro_rata(&mut lines, minor);
            let left: i64 = lines.iter().map(|(_, a)| *a).sum();
            prop_assert_eq!(total - left, minor.min(total));
            for ((_, after), before) in lines.iter().zip(&amounts) {
                prop_assert!(*after >= 0 && after <= before);
            }
        }
    }

    use super::*;

    fn line(category: &str, amount_minor: i64) -> PurchaseLine {
        PurchaseLine {
            sku: format!("sku-{category}"),
            description: String::new(),
            category: category.into(),
            quantity: 1,
            amount_minor,
        }
    }

    fn basket(lines: Vec<PurchaseLine>) -> Basket {
        Basket {
            total_minor: lines.iter().map(|l| l.amount_minor).sum(),
            lines,
        }
    }

    fn offer(id: &str, reward: Reward, value: i64, category: &str) -> OfferCandidate {
        OfferCandidate {
            offer: Offer {
                id: id.into(),
                title: format!("Offer {id}"),
                description: String::new(),
                terms: String::new(),
                valid_from_ms: 100,
                valid_until_ms: 1_000,
                needs_activation: false,
                reward,
                value,
                category: category.into(),
                min_spend_minor: 0,
                use_limit: 1,
                use_count: 0,
            },
            activated_at_ms: None,
        }
    }

    fn rules() -> EarningRules {
        EarningRules {
            default_rate: 1,
            tier_rates: [("gold".to_string(), 3)].into(),
            ..EarningRules::default()
        }
    }

    fn rule_points(p: &Pricing, rule: &str) -> i64 {
        p.earnings
            .iter()
            .filter(|e| e.rule == rule)
            .map(|e| e.points)
            .sum()
    }

    #[test]
    fn the_base_rate_follows_the_tier_and_rounds_down() {
        let r = rules();
        assert_eq!(
            price(&r, "base", &Basket::total(1_999), &[], 500).points(),
            19
        );
        assert_eq!(
            price(&r, "gold", &Basket::total(1_999), &[], 500).points(),
            59
        );
        let p = price(&r, "gold", &Basket::total(1_000), &[], 500);
        assert_eq!(p.earnings[0].rule, "base:gold");
    }

    #[test]
    fn the_minimum_purchase_is_inclusive() {
        let r = EarningRules {
            min_purchase_minor: 1_000,
            ..rules()
        };
        assert_eq!(price(&r, "base", &Basket::total(999), &[], 0).points(), 0);
        assert_eq!(
            price(&r, "base", &Basket::total(1_000), &[], 0).points(),
            10
        );
    }

    #[test]
    fn category_multipliers_apply_to_their_lines_within_their_dates() {
        let r = EarningRules {
            multipliers: vec![Multiplier {
                id: "coffee2x".into(),
                category: "coffee".into(),
                percent: 200,
                from_ms: Some(100),
                until_ms: Some(200),
            }],
            ..rules()
        };
        let b = basket(vec![line("coffee", 1_000), line("bread", 500)]);
        let p = price(&r, "base", &b, &[], 150);
        assert_eq!(rule_points(&p, "base:base"), 15);
        assert_eq!(rule_points(&p, "multiplier:coffee2x"), 10);
        // `from` is inclusive, `until` exclusive.
        assert_eq!(price(&r, "base", &b, &[], 100).points(), 25);
        assert_eq!(price(&r, "base", &b, &[], 200).points(), 15);
        assert_eq!(price(&r, "base", &b, &[], 99).points(), 15);
    }

    #[test]
    fn multipliers_do_not_stack_the_highest_wins_per_line() {
        let r = EarningRules {
            multipliers: vec![
                Multiplier {
                    id: "weekend".into(),
                    category: String::new(),
                    percent: 150,
                    from_ms: None,
                    until_ms: None,
                },
                Multiplier {
                    id: "coffee3x".into(),
                    category: "coffee".into(),
                    percent: 300,
                    from_ms: None,
                    until_ms: None,
                },
            ],
            ..rules()
        };
        let b = basket(vec![line("coffee", 1_000), line("bread", 1_000)]);
        let p = price(&r, "base", &b, &[], 0);
        assert_eq!(rule_points(&p, "base:base"), 20);
        assert_eq!(rule_points(&p, "multiplier:coffee3x"), 20);
        assert_eq!(rule_points(&p, "multiplier:weekend"), 5);
    }

    #[test]
    fn the_cap_trims_multipliers_before_the_base() {
        let r = EarningRules {
            cap_per_receipt: 25,
            multipliers: vec![Multiplier {
                id: "double".into(),
                category: String::new(),
                percent: 200,
                from_ms: None,
                until_ms: None,
            }],
            ..rules()
        };
        let p = price(&r, "base", &Basket::total(2_000), &[], 0);
        assert_eq!(p.points(), 25);
        assert_eq!(rule_points(&p, "base:base"), 20);
        assert!(p.earnings[1].reason.contains("capped"));
        assert!(p.earnings[1].capped_at > 0);
        // Exactly at the cap nothing is trimmed.
        let p = price(&r, "base", &Basket::total(1_250), &[], 0);
        assert_eq!(p.points(), 24);
    }

    #[test]
    fn percent_off_lowers_what_is_paid_and_what_earns() {
        let b = basket(vec![line("coffee", 1_000), line("bread", 1_000)]);
        let o = offer("o1", Reward::PercentOff, 20, "coffee");
        let p = price(&rules(), "base", &b, &[o], 500);
        assert_eq!(p.discount_minor, 200);
        assert_eq!(p.paid_minor, 1_800);
        assert_eq!(p.points(), 18);
        assert_eq!(p.applied[0].discount_minor, 200);
    }

    #[test]
    fn points_offers_add_to_the_rules_and_ignore_the_cap() {
        let r = EarningRules {
            cap_per_receipt: 5,
            ..rules()
        };
        let offers = [
            offer("fixed", Reward::FixedPoints, 50, ""),
            offer("x2", Reward::PointsMultiplier, 200, ""),
        ];
        let p = price(&r, "base", &Basket::total(1_000), &offers, 500);
        assert_eq!(rule_points(&p, "base:base"), 5);
        assert_eq!(rule_points(&p, "offer:fixed"), 50);
        assert_eq!(rule_points(&p, "offer:x2"), 10);
        assert_eq!(p.applied.len(), 2);
    }

    #[test]
    fn offers_apply_only_when_valid_activated_within_limit_and_spend() {
        let b = Basket::total(1_000);
        let mut o = offer("o", Reward::FixedPoints, 10, "");
        assert_eq!(offer_blocker(&o, &b, 99), Some("not valid yet"));
        assert_eq!(offer_blocker(&o, &b, 1_000), Some("expired"));
        assert_eq!(offer_blocker(&o, &b, 500), None);
        o.offer.needs_activation = true;
        assert_eq!(offer_blocker(&o, &b, 500), Some("not activated"));
        o.activated_at_ms = Some(400);
        o.offer.use_count = 1;
        assert_eq!(offer_blocker(&o, &b, 500), Some("use limit reached"));
        o.offer.use_limit = 0;
        o.offer.min_spend_minor = 1_001;
        assert_eq!(offer_blocker(&o, &b, 500), Some("minimum spend not met"));
        o.offer.min_spend_minor = 1_000;
        assert_eq!(offer_blocker(&o, &b, 500), None);
        o.offer.category = "coffee".into();
        assert_eq!(
            offer_blocker(&o, &b, 500),
            Some("minimum spend not met"),
            "a category offer needs that category in the basket"
        );
    }

    #[test]
    fn validation_refuses_bad_rules() {
        assert!(rules().validate().is_ok());
        let mut r = rules();
        r.default_rate = -1;
        assert!(r.validate().is_err());
        let mut r = rules();
        r.multipliers.push(Multiplier {
            id: "m".into(),
            category: String::new(),
            percent: 50,
            from_ms: None,
            until_ms: None,
        });
        assert!(r.validate().is_err());
        let mut r = rules();
        r.events.profile_complete = 10;
        assert!(r.validate().is_err());
    }
}
