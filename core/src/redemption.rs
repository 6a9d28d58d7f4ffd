//! What points are worth at the till: the programme's redemption policy (`redemption` in its
//! configuration) and the arithmetic a purchase does with it. A point has a money value; a receipt
//! may be paid with points up to a share of what is left after offers; a member redeems only from a
//! minimum balance and in steps; and the part paid with points earns points only if the programme
//! says so (by default it does not).
//!
//! ```
//! use loyalty_core::redemption::RedemptionPolicy;
//!
//! let policy = RedemptionPolicy { max_share_percent: 50, step: 10, ..Default::default() };
//! // 1 point = 0.01 by default: 250 points pay 2.50.
//! assert_eq!(policy.worth(250), 250);
//! // Paying 3.05 with points takes 300 points (whole steps, never more than asked).
//! assert_eq!(policy.points_for(305), 300);
//! // At most half of a 4.00 receipt: 250 points are too many, 200 are fine.
//! assert!(policy.check(250, 1_000, 400).is_err());
//! assert_eq!(policy.check(200, 1_000, 400).unwrap(), 200);
//! ```

use serde::{Deserialize, Serialize};

/// The programme's redemption rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedemptionPolicy {
    /// `value_points` points are worth `value_minor` minor units (default 1 point = 0.01).
    #[serde(default = "one")]
    pub value_points: i64,
    #[serde(default = "one")]
    pub value_minor: i64,
    /// The largest share of a receipt, after offers, that points may pay (percent).
    #[serde(default = "hundred")]
    pub max_share_percent: i64,
    /// Points a member must have available before redeeming any.
    #[serde(default)]
    pub min_balance: i64,
    /// Points are redeemed in whole multiples of this.
    #[serde(default = "one")]
    pub step: i64,
    /// Whether the part of a receipt paid with points earns points.
    #[serde(default)]
    pub paid_with_points_earns: bool,
}

fn one() -> i64 {
    1
}

fn hundred() -> i64 {
    100
}

impl Default for RedemptionPolicy {
    fn default() -> Self {
        Self {
            value_points: 1,
            value_minor: 1,
            max_share_percent: 100,
            min_balance: 0,
            step: 1,
            paid_with_points_earns: false,
        }
    }
}

/// Why a redemption is not allowed: a sentence for the cashier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

/// The most any value in the policy may be: far from overflow when multiplied together.
const MAX_VALUE: i64 = 1_000_000;

impl RedemptionPolicy {
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("value_points", self.value_points),
            ("value_minor", self.value_minor),
            ("step", self.step),
        ] {
            if !(1..=MAX_VALUE).contains(&value) {
                return Err(format!("redemption.{name} must be 1 to {MAX_VALUE}"));
            }
        }
        if !(0..=100).contains(&self.max_share_percent) {
            return Err("redemption.max_share_percent must be 0 to 100".into());
        }
        if !(0..=1_000_000_000).contains(&self.min_balance) {
            return Err("redemption.min_balance must be 0 to 1000000000".into());
        }
        Ok(())
    }

    /// What `points` are worth, in minor units (rounded down: a fraction of a cent is not paid).
    pub fn worth(&self, points: i64) -> i64 {
        mul_div(points, self.value_minor, self.value_points)
    }

    /// The points that pay `minor` (or as near below it as whole steps go): never worth more than
    /// asked.
    pub fn points_for(&self, minor: i64) -> i64 {
        let points = mul_div(minor, self.value_points, self.value_minor);
        let points = points - points.rem_euclid(self.step);
        // Rounding the value down may leave the points worth a little more than asked.
        if self.worth(points) > minor {
            (points - self.step).max(0)
        } else {
            points
        }
    }

    /// The most that may be paid with points on a receipt of `payable_minor` (after offers).
    pub fn max_payable(&self, payable_minor: i64) -> i64 {
        mul_div(payable_minor.max(0), self.max_share_percent, 100)
    }

    /// Checks a redemption of `points` by a member with `available` points on a receipt of
    /// `payable_minor` after offers; answers what the points take off the receipt.
    pub fn check(
        &self,
        points: i64,
        available: i64,
        payable_minor: i64,
    ) -> Result<i64, NotAllowed> {
        if points == 0 {
            return Ok(0);
        }
        if points % self.step != 0 {
            return Err(NotAllowed(format!(
                "points are redeemed in multiples of {}",
                self.step
            )));
        }
        if available < self.min_balance {
            return Err(NotAllowed(format!(
                "a member redeems from {} points available; this one has {available}",
                self.min_balance
            )));
        }
        let discount = self.worth(points);
        let cap = self.max_payable(payable_minor);
        if discount > cap {
            return Err(NotAllowed(format!(
                "points may pay at most {}% of this receipt: {} ({} points)",
                self.max_share_percent,
                money(cap),
                self.points_for(cap)
            )));
        }
        Ok(discount)
    }

    /// The most of `wanted` points that the rules allow here (for a redemption the till already
    /// gave offline, which the server honours as far as it can rather than refusing).
    pub fn clamp(&self, wanted: i64, available: i64, payable_minor: i64) -> i64 {
        if available < self.min_balance {
            return 0;
        }
        let points = wanted.min(available).max(0);
        let points = points.min(self.points_for(self.max_payable(payable_minor)));
        points - points.rem_euclid(self.step)
    }
}

/// `a * b / c`, rounded down, in 128 bits so no product of policy values overflows; saturating.
fn mul_div(a: i64, b: i64, c: i64) -> i64 {
    if c == 0 {
        return 0;
    }
    let value = i128::from(a) * i128::from(b) / i128::from(c);
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Minor units as money for people: 1234 → "12.34".
pub fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02}", minor / 100, minor % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_money_round_in_the_members_disfavour_never_the_tills() {
        // 1 point = 0.005: 3 points are worth 1 cent (1.5 rounded down).
        let half = RedemptionPolicy {
            value_points: 2,
            value_minor: 1,
            ..Default::default()
        };
        assert_eq!(half.worth(3), 1);
        assert_eq!(half.points_for(101), 202);
        assert_eq!(half.worth(half.points_for(101)), 101);
        // 100 points = 1.00 in steps of 50: 1.30 asks 130 points, whole steps give 100.
        let steps = RedemptionPolicy {
            step: 50,
            ..Default::default()
        };
        assert_eq!(steps.points_for(130), 100);
        // 3 points = 0.10: 0.25 is worth 7.5 points, and 7 points are worth 0.23 (never above).
        let odd = RedemptionPolicy {
            value_points: 3,
            value_minor: 10,
            ..Default::default()
        };
        assert_eq!(odd.points_for(25), 7);
        assert!(odd.worth(7) <= 25);
        assert_eq!(money(-5), "-0.05");
    }

    #[test]
    fn the_share_the_step_and_the_minimum_balance_bound_a_redemption() {
        let p = RedemptionPolicy {
            max_share_percent: 30,
            min_balance: 100,
            step: 10,
            ..Default::default()
        };
        // A 10.00 receipt: at most 3.00 in points.
        assert_eq!(p.check(300, 1_000, 1_000), Ok(300));
        assert!(p.check(310, 1_000, 1_000).unwrap_err().0.contains("30%"));
        assert!(
            p.check(15, 1_000, 1_000)
                .unwrap_err()
                .0
                .contains("multiples of 10")
        );
        assert!(
            p.check(10, 99, 1_000)
                .unwrap_err()
                .0
                .contains("from 100 points")
        );
        assert_eq!(
            p.check(0, 0, 0),
            Ok(0),
            "redeeming nothing is always allowed"
        );
        // Clamped instead: what may be honoured of a redemption already given.
        assert_eq!(p.clamp(500, 1_000, 1_000), 300);
        assert_eq!(p.clamp(500, 255, 1_000), 250);
        assert_eq!(p.clamp(500, 99, 1_000), 0);
    }

    #[test]
    fn the_policy_refuses_values_out_of_range() {
        assert!(RedemptionPolicy::default().validate().is_ok());
        for bad in [
            RedemptionPolicy {
                value_points: 0,
                ..Default::default()
            },
            RedemptionPolicy {
                step: -1,
                ..Default::default()
            },
            RedemptionPolicy {
                max_share_percent: 101,
                ..Default::default()
            },
            RedemptionPolicy {
                min_balance: -1,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
