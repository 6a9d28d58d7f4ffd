//! Points lots: every earning is a lot that is pending for a while (so a refund can still take it
//! back), then available, and that expires on a rolling or fixed date. A member's spendable
//! balance is what their available lots hold; redemptions spend the lots that expire first.
//!
//! [`Book`] holds a member's open lots and does all the arithmetic; the server loads it, applies a
//! purchase, a refund or the passing of time, and writes back the lots it touched together with
//! one ledger movement per change. The invariant the ledger relies on, checked by property tests:
//! the sum of all ledger movements equals the points left in all lots.

use serde::{Deserialize, Serialize};

use crate::calendar::{self, DAY_MS};

/// How long points stay pending and when they expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsPolicy {
    /// Days earned points stay pending before they can be spent.
    #[serde(default)]
    pub pending_days: i64,
    #[serde(default)]
    pub expiry: Expiry,
    /// How many days ahead the member is told that points will expire.
    #[serde(default = "thirty")]
    pub warn_days: i64,
}

fn thirty() -> i64 {
    30
}

impl Default for PointsPolicy {
    fn default() -> Self {
        Self {
            pending_days: 0,
            expiry: Expiry::Never,
            warn_days: 30,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expiry {
    #[default]
    Never,
    /// `days` after the points were earned.
    Rolling { days: i64 },
    /// At the end of `month`/`day`, `years_after` years after the year they were earned (12/31/1:
    /// points earned in 2026 expire at the end of 2027).
    FixedDate {
        month: u8,
        day: u8,
        years_after: i32,
    },
}

impl PointsPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(0..=3_650).contains(&self.pending_days) || !(0..=3_650).contains(&self.warn_days) {
            return Err("pending_days and warn_days must be 0 to 3650".into());
        }
        match self.expiry {
            Expiry::Never => Ok(()),
            Expiry::Rolling { days } if (1..=36_500).contains(&days) => Ok(()),
            Expiry::Rolling { .. } => Err("rolling expiry must be 1 to 36500 days".into()),
            Expiry::FixedDate {
                month,
                day,
                years_after,
            } => {
                let probe = calendar::end_of_fixed_date(0, month, day, years_after);
                if probe.is_none() || !(0..=100).contains(&years_after) || day == 0 {
                    return Err("fixed expiry needs a real month/day and 0-100 years".into());
                }
                Ok(())
            }
        }
    }

    pub fn available_at(&self, earned_ms: i64) -> i64 {
        earned_ms.saturating_add(self.pending_days.saturating_mul(DAY_MS))
    }

    pub fn expires_at(&self, earned_ms: i64) -> Option<i64> {
        match self.expiry {
            Expiry::Never => None,
            Expiry::Rolling { days } => Some(earned_ms.saturating_add(days.saturating_mul(DAY_MS))),
            Expiry::FixedDate {
                month,
                day,
                years_after,
            } => calendar::end_of_fixed_date(earned_ms, month, day, years_after),
        }
    }

    /// A new lot of `points` earned at `now_ms` under `rule`.
    pub fn lot(&self, lot_id: String, rule: &str, points: i64, now_ms: i64) -> Lot {
        Lot {
            lot_id,
            rule: rule.into(),
            points,
            remaining: points,
            expired: 0,
            earned_at_ms: now_ms,
            available_at_ms: self.available_at(now_ms),
            expires_at_ms: self.expires_at(now_ms),
            warned: false,
        }
    }

    /// Points given back (a refunded redemption) are available at once and expire like new ones.
    pub fn returned_lot(&self, lot_id: String, points: i64, now_ms: i64) -> Lot {
        Lot {
            available_at_ms: now_ms,
            ..self.lot(lot_id, "refund", points, now_ms)
        }
    }
}

/// One earning and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lot {
    pub lot_id: String,
    /// The rule that produced it (`base:gold`, `offer:off_1`, `event:birthday`...).
    pub rule: String,
    pub points: i64,
    pub remaining: i64,
    /// Points of this lot that expired.
    pub expired: i64,
    pub earned_at_ms: i64,
    pub available_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Whether the member was told this lot will expire.
    pub warned: bool,
}

impl Lot {
    pub fn available(&self, now_ms: i64) -> bool {
        now_ms >= self.available_at_ms
    }

    /// What the lot holds towards the member's balances.
    pub fn balance(&self) -> LotBalance {
        LotBalance {
            remaining: self.remaining,
            available_at_ms: self.available_at_ms,
            expires_at_ms: self.expires_at_ms,
        }
    }

    /// Spending order: the first to expire first, never-expiring last, then oldest.
    fn spend_key(&self) -> (i64, i64, String) {
        (
            self.expires_at_ms.unwrap_or(i64::MAX),
            self.earned_at_ms,
            self.lot_id.clone(),
        )
    }
}

/// What a lot holds towards the member's balances: the points left, when they become spendable
/// and when they expire. The card's standing needs no more of a lot, so the server reads no more
/// for it; [`available`], [`pending`] and [`next_expiries`] are the one definition of those sums,
/// for a [`Book`] as for the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotBalance {
    pub remaining: i64,
    pub available_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// Points spendable at `now_ms`: matured and not expired.
pub fn available(lots: impl IntoIterator<Item = LotBalance>, now_ms: i64) -> i64 {
    lots.into_iter()
        .filter(|l| now_ms >= l.available_at_ms && l.expires_at_ms.is_none_or(|at| now_ms < at))
        .map(|l| l.remaining)
        .sum()
}

/// Points earned but not yet spendable at `now_ms`.
pub fn pending(lots: impl IntoIterator<Item = LotBalance>, now_ms: i64) -> i64 {
    lots.into_iter()
        .filter(|l| now_ms < l.available_at_ms)
        .map(|l| l.remaining)
        .sum()
}

/// The next `n` instants after `now_ms` at which points expire, with how many (points expiring at
/// the same instant added up), soonest first.
pub fn next_expiries(
    lots: impl IntoIterator<Item = LotBalance>,
    now_ms: i64,
    n: usize,
) -> Vec<(i64, i64)> {
    let mut by_time: std::collections::BTreeMap<i64, i64> = Default::default();
    for l in lots {
        if let Some(at) = l.expires_at_ms
            && at > now_ms
            && l.remaining > 0
        {
            *by_time.entry(at).or_default() += l.remaining;
        }
    }
    by_time.into_iter().take(n).collect()
}

/// Points that expired from one lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub lot_id: String,
    pub points: i64,
    pub earned_at_ms: i64,
}

/// What a refund could take back of the points a purchase earned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakeBack {
    /// Taken from the purchase's own lot and, for what was already spent, from other lots.
    pub taken: i64,
    /// Not taken because they had already expired from the purchase's lot.
    pub already_expired: i64,
    /// Already spent, and more than the member has now: not taken (the balance never goes below
    /// zero).
    pub unrecovered: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the member has {available} points available, {wanted} were asked for")]
pub struct Insufficient {
    pub available: i64,
    pub wanted: i64,
}

/// A member's open lots (those with points left), and which of them changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub lots: Vec<Lot>,
    touched: std::collections::BTreeSet<String>,
}

impl Book {
    pub fn new(lots: Vec<Lot>) -> Self {
        Self {
            lots,
            touched: Default::default(),
        }
    }

    /// Points the member can spend at `now_ms` ([`available`]).
    pub fn available(&self, now_ms: i64) -> i64 {
        available(self.balances(), now_ms)
    }

    /// Points earned but not yet spendable ([`pending`]).
    pub fn pending(&self, now_ms: i64) -> i64 {
        pending(self.balances(), now_ms)
    }

    /// What each lot holds towards the balances.
    pub fn balances(&self) -> impl Iterator<Item = LotBalance> + '_ {
        self.lots.iter().map(Lot::balance)
    }

    /// All points left in the lots, pending or not.
    pub fn total(&self) -> i64 {
        self.lots.iter().map(|l| l.remaining).sum()
    }

    /// The lots changed since the book was loaded, to be written back.
    pub fn touched(&self) -> impl Iterator<Item = &Lot> {
        self.lots
            .iter()
            .filter(|l| self.touched.contains(&l.lot_id))
    }

    /// Adds a lot as it is stored (a spent or expired one the book was not loaded with), unless
    /// the book holds it already; unlike [`Book::add`] it is not written back unless it changes.
    pub fn include(&mut self, lot: Lot) {
        if !self.lots.iter().any(|l| l.lot_id == lot.lot_id) {
            self.lots.push(lot);
        }
    }

    pub fn add(&mut self, lot: Lot) {
        self.touched.insert(lot.lot_id.clone());
        self.lots.push(lot);
    }

    /// Expires every lot whose time has come, returning what expired, lot by lot.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Expired> {
        let mut out = Vec::new();
        for l in &mut self.lots {
            if l.remaining > 0 && expired_at(l, now_ms) {
                out.push(Expired {
                    lot_id: l.lot_id.clone(),
                    points: l.remaining,
                    earned_at_ms: l.earned_at_ms,
                });
                l.expired += l.remaining;
                l.remaining = 0;
                self.touched.insert(l.lot_id.clone());
            }
        }
        out
    }

    /// Spends `points` from the available lots, first to expire first; nothing changes when they
    /// do not cover it.
    pub fn spend(&mut self, points: i64, now_ms: i64) -> Result<(), Insufficient> {
        let available = self.available(now_ms);
        if points > available {
            return Err(Insufficient {
                available,
                wanted: points,
            });
        }
        self.take_from_available(points, now_ms, None);
        Ok(())
    }

    fn take_from_available(&mut self, mut points: i64, now_ms: i64, skip: Option<&str>) -> i64 {
        let mut order: Vec<usize> = (0..self.lots.len())
            .filter(|&i| {
                let l = &self.lots[i];
                l.available(now_ms)
                    && !expired_at(l, now_ms)
                    && l.remaining > 0
                    && Some(l.lot_id.as_str()) != skip
            })
            .collect();
        order.sort_by_key(|&i| self.lots[i].spend_key());
        let mut taken = 0;
        for i in order {
            if points == 0 {
                break;
            }
            let l = &mut self.lots[i];
            let t = points.min(l.remaining);
            l.remaining -= t;
            points -= t;
            taken += t;
            self.touched.insert(l.lot_id.clone());
        }
        taken
    }

    /// Takes back `points` a refunded purchase earned in lot `lot_id`: first what is left of that
    /// lot (pending or not), then — for what the member already spent — from their other available
    /// lots, as far as they go. Points that already expired from the lot are not taken twice.
    pub fn take_back(&mut self, lot_id: &str, points: i64, now_ms: i64) -> TakeBack {
        let mut out = TakeBack::default();
        let mut rest = points;
        if let Some(l) = self.lots.iter_mut().find(|l| l.lot_id == lot_id) {
            let t = rest.min(l.remaining);
            l.remaining -= t;
            rest -= t;
            out.taken += t;
            let e = rest.min(l.expired);
            rest -= e;
            out.already_expired = e;
            self.touched.insert(l.lot_id.clone());
        }
        let t = self.take_from_available(rest, now_ms, Some(lot_id));
        out.taken += t;
        out.unrecovered = rest - t;
        out
    }

    /// The next expiries as (expiry time, points), soonest first, points on the same instant
    /// added up ([`next_expiries`]).
    pub fn next_expiries(&self, now_ms: i64, n: usize) -> Vec<(i64, i64)> {
        next_expiries(self.balances(), now_ms, n)
    }

    /// Lots expiring within `warn_days` that the member was not yet told about; marks them told.
    pub fn due_warnings(&mut self, now_ms: i64, warn_days: i64) -> Vec<(i64, i64)> {
        let horizon = now_ms.saturating_add(warn_days.saturating_mul(DAY_MS));
        let mut by_time: std::collections::BTreeMap<i64, i64> = Default::default();
        for l in &mut self.lots {
            if let Some(at) = l.expires_at_ms
                && !l.warned
                && l.remaining > 0
                && at > now_ms
                && at <= horizon
            {
                l.warned = true;
                *by_time.entry(at).or_default() += l.remaining;
                self.touched.insert(l.lot_id.clone());
            }
        }
        by_time.into_iter().collect()
    }

    /// Undoes [`Book::due_warnings`] for the lots expiring at `at`, when the warning could not be
    /// delivered: the next run warns again.
    pub fn unwarn(&mut self, at: i64) {
        for l in &mut self.lots {
            if l.warned && l.expires_at_ms == Some(at) && l.remaining > 0 {
                l.warned = false;
                self.touched.insert(l.lot_id.clone());
            }
        }
    }

    /// The next moment something happens to these lots by itself: points mature, a warning is due,
    /// or points expire.
    pub fn next_event(&self, now_ms: i64, warn_days: i64) -> Option<i64> {
        let warn = warn_days.saturating_mul(DAY_MS);
        self.lots
            .iter()
            .filter(|l| l.remaining > 0)
            .flat_map(|l| {
                let warning = l
                    .expires_at_ms
                    .filter(|_| !l.warned)
                    .map(|at| at.saturating_sub(warn));
                [
                    (l.available_at_ms > now_ms).then_some(l.available_at_ms),
                    warning,
                    l.expires_at_ms,
                ]
            })
            .flatten()
            .map(|t| t.max(now_ms))
            .min()
    }
}

fn expired_at(l: &Lot, now_ms: i64) -> bool {
    l.expires_at_ms.is_some_and(|at| now_ms >= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(pending_days: i64, expiry_days: i64) -> PointsPolicy {
        PointsPolicy {
            pending_days,
            expiry: Expiry::Rolling { days: expiry_days },
            warn_days: 30,
        }
    }

    #[test]
    fn pending_points_become_available_on_their_day() {
        let p = policy(14, 365);
        let mut b = Book::new(vec![]);
        b.add(p.lot("a".into(), "base:base", 100, 0));
        assert_eq!((b.available(0), b.pending(0)), (0, 100));
        let day14 = 14 * DAY_MS;
        assert_eq!(b.available(day14 - 1), 0);
        assert_eq!((b.available(day14), b.pending(day14)), (100, 0));
        assert!(
            b.spend(1, day14 - 1).is_err(),
            "pending points cannot be spent"
        );
    }

    #[test]
    fn expiry_takes_lots_in_order_and_only_when_due() {
        let p = policy(0, 10);
        let mut b = Book::new(vec![]);
        b.add(p.lot("a".into(), "r", 30, 0));
        b.add(p.lot("b".into(), "r", 50, 5 * DAY_MS));
        assert!(b.expire(10 * DAY_MS - 1).is_empty());
        let first = b.expire(10 * DAY_MS);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].lot_id.as_str(), first[0].points), ("a", 30));
        assert_eq!(b.available(10 * DAY_MS), 50);
        let second = b.expire(15 * DAY_MS);
        assert_eq!(second[0].points, 50);
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn a_redemption_spans_lots_first_to_expire_first() {
        let mut b = Book::new(vec![]);
        b.add(policy(0, 100).lot("late".into(), "r", 50, 0));
        b.add(policy(0, 10).lot("soon".into(), "r", 30, 0));
        b.add(PointsPolicy::default().lot("never".into(), "r", 40, 0));
        b.spend(70, 1).unwrap();
        let left: Vec<_> = b
            .lots
            .iter()
            .map(|l| (l.lot_id.as_str(), l.remaining))
            .collect();
        assert_eq!(left, [("late", 10), ("soon", 0), ("never", 40)]);
        assert_eq!(
            b.spend(51, 1),
            Err(Insufficient {
                available: 50,
                wanted: 51
            })
        );
        assert_eq!(b.total(), 50, "a refused redemption changes nothing");
    }

    #[test]
    fn a_refund_after_partial_expiry_does_not_take_expired_points_twice() {
        let p = policy(0, 10);
        let mut b = Book::new(vec![]);
        b.add(p.lot("purchase".into(), "r", 100, 0));
        b.add(policy(0, 100).lot("other".into(), "r", 100, 0));
        // 60 of the purchase's points are spent (first to expire first), the other 40 expire.
        b.spend(60, DAY_MS).unwrap();
        b.expire(10 * DAY_MS);
        let back = b.take_back("purchase", 100, 11 * DAY_MS);
        assert_eq!(
            back,
            TakeBack {
                taken: 60,
                already_expired: 40,
                unrecovered: 0
            }
        );
        assert_eq!(b.available(11 * DAY_MS), 40);
    }

    #[test]
    fn a_refund_never_takes_the_balance_below_zero() {
        let mut b = Book::new(vec![]);
        b.add(PointsPolicy::default().lot("purchase".into(), "r", 100, 0));
        b.spend(90, 1).unwrap();
        let back = b.take_back("purchase", 100, 2);
        assert_eq!(
            (back.taken, back.unrecovered),
            (10, 90),
            "what was spent and is gone stays gone"
        );
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn warnings_come_once_within_the_window() {
        let mut b = Book::new(vec![]);
        b.add(policy(0, 100).lot("a".into(), "r", 10, 0));
        assert!(b.due_warnings(69 * DAY_MS, 30).is_empty());
        assert_eq!(b.due_warnings(70 * DAY_MS, 30), vec![(100 * DAY_MS, 10)]);
        assert!(b.due_warnings(71 * DAY_MS, 30).is_empty());
        b.unwarn(100 * DAY_MS);
        assert_eq!(
            b.due_warnings(71 * DAY_MS, 30),
            vec![(100 * DAY_MS, 10)],
            "a warning that could not be delivered is due again"
        );
        assert_eq!(b.next_event(71 * DAY_MS, 30), Some(100 * DAY_MS));
    }

    #[test]
    fn fixed_date_expiry_and_validation() {
        let p = PointsPolicy {
            expiry: Expiry::FixedDate {
                month: 12,
                day: 31,
                years_after: 1,
            },
            ..PointsPolicy::default()
        };
        assert!(p.validate().is_ok());
        let at = p.expires_at(1_767_225_600_000).unwrap();
        assert_eq!(calendar::format_date(at - 1), "2027-12-31");
        let bad = PointsPolicy {
            expiry: Expiry::FixedDate {
                month: 2,
                day: 0,
                years_after: 1,
            },
            ..PointsPolicy::default()
        };
        assert!(bad.validate().is_err());
        assert!(policy(0, 0).validate().is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64),
        Spend(i64),
        Refund(usize, i64),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..500i64).prop_map(Op::Earn),
            (1..800i64).prop_map(Op::Spend),
            (0..20usize, 1..500i64).prop_map(|(i, p)| Op::Refund(i, p)),
            (0..40i64).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// The ledger the server writes (earn +, spend -, expire -, take back -) always adds up to
        /// the points left in the lots, and no lot ever holds a negative amount.
        #[test]
        fn the_ledger_always_equals_the_lots(ops in proptest::collection::vec(op(), 1..60)) {
            let p = policy(3, 20);
            let mut b = Book::new(vec![]);
            let mut ledger = 0i64;
            let mut now = 0i64;
            for (i, op) in ops.into_iter().enumerate() {
                for e in b.expire(now) { ledger -= e.points; }
                match op {
                    Op::Earn(pts) => { b.add(p.lot(format!("l{i}"), "r", pts, now)); ledger += pts; }
                    Op::Spend(pts) => if b.spend(pts, now).is_ok() { ledger -= pts; },
                    Op::Refund(j, pts) => { ledger -= b.take_back(&format!("l{j}"), pts, now).taken; }
                    Op::Wait(days) => now += days * DAY_MS,
                }
                prop_assert_eq!(ledger, b.total());
                prop_assert!(b.lots.iter().all(|l| l.remaining >= 0));
                prop_assert!(b.available(now) >= 0);
            }
        }
    }
}
