//! The cashier's prompts: a few short lines in a scan's and a purchase's answer that a till shows
//! on its screen and prints on the receipt — what the points are worth, how far the next tier is,
//! the offers the member clipped, points about to expire. Worded here, once, from the member's
//! book as the answer leaves it.

use loyalty_core::calendar::{DAY_MS, format_date};
use loyalty_core::lots::Book;
use loyalty_core::programme::Programme;
use loyalty_core::redemption::money;
use loyalty_core::tiers::{self, Metric, TierState};

use crate::storage::TillOffer;

/// What a purchase did, in money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cashier {
    pub points_discount_minor: i64,
    pub charge_minor: i64,
    pub earn_base_minor: i64,
}

/// The member as the prompts see them.
pub struct Standing<'a> {
    pub programme: &'a Programme,
    pub tier: &'a TierState,
    pub book: &'a Book,
    pub qualifying: i64,
    pub now_ms: i64,
}

/// At a scan: the balance and its worth, tier progress, clipped offers, expiring points.
pub fn at_scan(s: &Standing<'_>, offers: &[TillOffer]) -> Vec<String> {
    let mut lines = vec![balance(s)];
    lines.extend(progress(s));
    let clipped = offers
        .iter()
        .filter(|c| c.activated_at_ms.is_some() && usable(&c.offer, s.now_ms))
        .count();
    match clipped {
        0 => {}
        1 => lines.push("1 offer clipped".into()),
        n => lines.push(format!("{n} offers clipped")),
    }
    lines.extend(expiring(s));
    lines
}

/// After a purchase: what the points paid, what was earned on what, then as at a scan.
pub fn after_purchase(s: &Standing<'_>, c: &Cashier, earned: i64, redeemed: i64) -> Vec<String> {
    let mut lines = Vec::new();
    if redeemed > 0 {
        lines.push(format!(
            "{redeemed} points paid {}",
            money(c.points_discount_minor)
        ));
    }
    if earned > 0 {
        lines.push(format!(
            "{earned} points earned on {}",
            money(c.earn_base_minor)
        ));
    }
    lines.push(balance(s));
    lines.extend(progress(s));
    lines.extend(expiring(s));
    lines
}

/// Valid now and not used up (whether a basket qualifies is for the purchase to say).
fn usable(o: &loyalty_core::offers::Offer, now_ms: i64) -> bool {
    (o.valid_from_ms..o.valid_until_ms).contains(&now_ms)
        && (o.use_limit == 0 || o.use_count < o.use_limit)
}

fn balance(s: &Standing<'_>) -> String {
    let points = s.book.available(s.now_ms);
    format!(
        "{points} points, worth {}",
        money(s.programme.redemption.worth(points))
    )
}

fn progress(s: &Standing<'_>) -> Option<String> {
    let p = tiers::progress(&s.programme.tiers, s.tier, s.qualifying);
    let name = p.next_tier_name?;
    Some(match p.metric {
        Metric::Spend => format!("{} more to {name}", money(p.needed)),
        Metric::Points => format!("{} more points to {name}", p.needed),
    })
}

fn expiring(s: &Standing<'_>) -> Option<String> {
    let horizon = s.now_ms + s.programme.points.warn_days * DAY_MS;
    let (at, points) = s.book.next_expiries(s.now_ms, 1).into_iter().next()?;
    (at <= horizon).then(|| format!("{points} points expire on {}", format_date(at)))
}
