//! The till's domain (its routes are `crate::http::till`): scan the code on a member's phone, post
//! a purchase that earns and redeems points, refund. The relational ledger in the server's database
//! is the system of record; the card document is its projection, which a posting does not write:
//! it catches up with the ledger when it is next read (`crate::projection::card`).
//!
//! A scan checks, in order: the text is a version-1 code; the card exists; the key id is registered
//! for that card and not revoked; the signature; the time step is within one step of server time;
//! the card is active; and the code was never used before. Only then is the code marked used and a
//! checkout session opened — a refused scan changes nothing but the count of refused codes the fraud
//! watch list reads (`crate::service::watch`).
//!
//! A till's idempotency key is its own retry token, scoped by till: the posting it makes is stored
//! as `till:<till id>:<key>` (its posting id, in every answer's `posting`), so two tills never
//! collide and no till can take a key of the programme's own postings (`event:<member>:<event>`).
//! A refund names its purchase by that posting id from any till, or by its key at the same till.

use crate::service::prompts::Cashier;
use loyalty_core::api::{
    PostingResponse, PurchaseRequest, RefundRequest, ScanRequest, ScanResponse,
};
use loyalty_core::calendar::DAY_MS;
use loyalty_core::checkout_code::{ParsedCode, format_card_number};
use loyalty_core::earning::{AppliedOffer, Basket, Earning, PointsPaid, price, price_with_points};
use loyalty_core::ids;
use loyalty_core::reasons::{Reason, ReasonCode, ReasonParams};
use loyalty_core::tiers::Metric;

use crate::service::checkout_session::{
    SESSION_MS, SKEW_STEPS, code_refusal, open_session, refused, scan_answer,
};
use crate::service::ledger::{self, Plan, Retry};
use crate::storage::{CheckoutOpening, PostingKind};
use loyalty_core::ids::sha256;

use crate::app::App;
use crate::error::DomainError;
use crate::storage::CheckoutSession;

pub(crate) const MAX_KEY: usize = 128;
/// A refund's `purchase`: a key, or a posting id (`till:`, a till id of up to 64, `:`, a key).
pub(crate) const MAX_PURCHASE_NAME: usize = 256;
/// Points a till may redeem in one purchase: far above any real basket, far below overflow when
/// added up.
pub const MAX_POINTS: i64 = 1_000_000_000_000;
/// Ten million in the major unit: a receipt beyond that is a typo.
pub const MAX_TOTAL_MINOR: i64 = 1_000_000_000;
/// Lines on one receipt: a generous supermarket trolley.
pub(crate) const MAX_LINES: usize = 1_000;

pub(crate) fn request_hash<T: serde::Serialize>(request: &T) -> [u8; 32] {
    sha256(&serde_json::to_vec(request).unwrap_or_default())
}

/// How every till posting's id begins: `till:<till id>:<idempotency key>`.
pub(crate) const POSTING_PREFIX: &str = "till:";

/// The posting id of a till's idempotency key: the key in the till's own namespace. Till ids have
/// no `:`, so the id names one till and one key.
pub(crate) fn posting_id(till_id: &str, key: &str) -> String {
    format!("{POSTING_PREFIX}{till_id}:{key}")
}

/// The posting id a refund's `purchase` names: a posting id as the purchase's answer gave it (any
/// till may refund it), or else this till's own key for it.
pub(crate) fn purchase_posting(till_id: &str, purchase: &str) -> String {
    if purchase.starts_with(POSTING_PREFIX) {
        purchase.to_string()
    } else {
        posting_id(till_id, purchase)
    }
}

pub(crate) fn check_key(key: &str) -> Result<(), DomainError> {
    let bad = |m: String| DomainError::bad_request("invalid_idempotency_key", m);
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(bad(format!("idempotency_key must be 1 to {MAX_KEY} bytes")));
    }
    // Reserved, so that a refund's `purchase` is a posting id exactly when it looks like one.
    if key.starts_with(POSTING_PREFIX) {
        return Err(bad(format!(
            "idempotency keys beginning with `{POSTING_PREFIX}` are reserved for posting ids"
        )));
    }
    Ok(())
}

pub(crate) fn validate_refund(r: &RefundRequest) -> Result<(), DomainError> {
    let bad = |m: String| DomainError::bad_request("invalid_refund", m);
    check_key(&r.idempotency_key)?;
    if r.receipt_id.is_empty() || r.receipt_id.len() > MAX_KEY {
        return Err(bad(format!("receipt_id must be 1 to {MAX_KEY} bytes")));
    }
    if r.purchase.is_empty() || r.purchase.len() > MAX_PURCHASE_NAME {
        return Err(bad(format!(
            "purchase must be 1 to {MAX_PURCHASE_NAME} bytes: a posting id or a key"
        )));
    }
    if !(1..=MAX_TOTAL_MINOR).contains(&r.amount_minor) {
        return Err(bad(format!("amount_minor must be 1 to {MAX_TOTAL_MINOR}")));
    }
    Ok(())
}

pub(crate) fn validate_purchase(p: &PurchaseRequest) -> Result<(), DomainError> {
    let bad = |m: String| DomainError::bad_request("invalid_purchase", m);
    check_key(&p.idempotency_key)?;
    if p.receipt_id.is_empty() || p.receipt_id.len() > MAX_KEY {
        return Err(bad(format!("receipt_id must be 1 to {MAX_KEY} bytes")));
    }
    if !(0..=MAX_TOTAL_MINOR).contains(&p.total_minor) {
        return Err(bad(format!("total_minor must be 0 to {MAX_TOTAL_MINOR}")));
    }
    if !(0..=MAX_POINTS).contains(&p.redeem_points) {
        return Err(bad(format!("redeem_points must be 0 to {MAX_POINTS}")));
    }
    if !(0..=MAX_TOTAL_MINOR).contains(&p.redeem_minor) {
        return Err(bad(format!("redeem_minor must be 0 to {MAX_TOTAL_MINOR}")));
    }
    if p.redeem_points > 0 && p.redeem_minor > 0 {
        return Err(bad("give redeem_points or redeem_minor, not both".into()));
    }
    if p.lines.len() > MAX_LINES {
        return Err(bad(format!("a receipt has at most {MAX_LINES} lines")));
    }
    if p.lines
        .iter()
        .any(|l| l.amount_minor < 0 || l.category.len() > MAX_KEY)
    {
        return Err(bad(
            "line amounts must not be negative, categories at most 128 bytes".into(),
        ));
    }
    if !p.lines.is_empty() {
        let sum = p
            .lines
            .iter()
            .try_fold(0i64, |acc, l| acc.checked_add(l.amount_minor));
        if sum != Some(p.total_minor) {
            return Err(bad("the lines do not add up to total_minor".into()));
        }
    }
    Ok(())
}

pub(crate) fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

pub(crate) fn purchase_not_found() -> DomainError {
    DomainError::not_found(
        "purchase_not_found",
        "no purchase has that posting id, nor this till that idempotency key",
    )
}

/// Checks a scanned code (see the module's guide for the order of the checks) and opens a checkout
/// session for it. A refused code changes nothing but a count for the fraud watch list (by till,
/// reason, and the member it named when it named a known card).
pub async fn scan(
    app: &App,
    till_id: String,
    request: ScanRequest,
) -> Result<ScanResponse, DomainError> {
    let mut named = None;
    let outcome = if loyalty_core::card_trust::looks_like_card_number(&request.code) {
        crate::service::cards::scan(app, till_id.clone(), &request.code, &mut named).await
    } else {
        scan_code(app, till_id.clone(), request, &mut named).await
    };
    crate::service::watch::count_refusal(app, &till_id, named.as_deref(), &outcome).await;
    outcome
}

/// Checks the app's signed code; `named` learns the member the code names once its card is known.
async fn scan_code(
    app: &App,
    till_id: String,
    request: ScanRequest,
    named: &mut Option<String>,
) -> Result<ScanResponse, DomainError> {
    let parsed = ParsedCode::parse(&request.code).map_err(code_refusal)?;
    let card_number = format_card_number(parsed.card_number);
    let member = app
        .storage
        .member_by_card(&card_number)
        .await?
        .ok_or_else(|| refused("unknown_card", "no member has this card"))?;
    *named = Some(member.member_id.clone());
    let key = app
        .storage
        .device_key(&member.member_id, parsed.key_id)
        .await?
        .ok_or_else(|| {
            refused(
                "unknown_key",
                "the code was signed with a key this server never registered for the card",
            )
        })?;
    if key.revoked {
        return Err(refused(
            "key_revoked",
            "the code was signed by a device that has been revoked",
        ));
    }
    parsed
        .verify_signature(&key.public_key)
        .map_err(code_refusal)?;
    let now = app.now_ms();
    parsed.check_time(now, SKEW_STEPS).map_err(code_refusal)?;
    if member.blocked {
        return Err(refused("card_blocked", "this card is blocked"));
    }
    let session = CheckoutSession {
        session_id: ids::new_record_id("chk"),
        member_id: member.member_id.clone(),
        till_id,
        expires_at_ms: now + SESSION_MS,
    };
    let opening = app
        .storage
        .open_checkout(parsed.code_id(), &session, now)
        .await?;
    if opening == CheckoutOpening::Replayed {
        return Err(refused(
            "code_replayed",
            "this code was already used: a screenshot or a second scan",
        ));
    }
    tracing::info!(member = %member.member_id, till = %session.till_id, "checkout code accepted");
    let programme = app.programme().await?;
    let trust = loyalty_core::card_trust::SessionTrust::Code;
    scan_answer(app, &programme, session, member, card_number, trust).await
}

/// Posts a purchase at a till: answers a retry of the same request as it was answered, otherwise
/// earns and redeems under the member's lock through the ledger.
pub async fn purchase(
    app: &App,
    till_id: String,
    request: PurchaseRequest,
) -> Result<PostingResponse, DomainError> {
    validate_purchase(&request)?;
    let hash = request_hash(&request);
    let posting = posting_id(&till_id, &request.idempotency_key);
    // A retry is answered before the session is checked: its session may have expired since.
    let programme = app.programme().await?;
    let now = app.now_ms();
    let context = app
        .storage
        .purchase_context(
            &posting,
            &request.session_id,
            programme.tiers.metric,
            now.saturating_sub(programme.tiers.window_days * DAY_MS),
            now,
        )
        .await?;
    let retry = Retry {
        // The session's member, while the session is still kept.
        member_id: context.session.as_ref().map(|s| s.member_id.as_str()),
        till_id: &till_id,
        kind: PostingKind::Purchase,
        request_hash: hash,
    };
    if let Some(answer) = ledger::replayed(context.prior, &retry)? {
        return Ok(answer);
    }
    let session = open_session(app, context.session, &till_id)?;
    if request.redeem_points > 0 || request.redeem_minor > 0 {
        crate::service::cards::check_may_redeem(app, &session.session_id).await?;
    }
    let basket = Basket {
        total_minor: request.total_minor,
        lines: request.lines.clone(),
    };
    let receipt = request.receipt_id.clone();
    let first = context.book.map(|book| (programme, book));
    let terms = PurchaseTerms {
        posting: &posting,
        request_hash: hash,
        till_id: &till_id,
        receipt: &receipt,
        basket: &basket,
    };
    let outcome = ledger::transact_from(app, &session.member_id, true, first, |draft| {
        // Checked here, under the lock, rather than at the door: a block that lands while the
        // till waits still counts.
        if draft.blocked {
            return Err(refused("card_blocked", "this card is blocked"));
        }
        let redeem = match request.redeem_minor {
            0 => Redeem::Points(request.redeem_points),
            minor => Redeem::Money(minor),
        };
        book_purchase(draft, &terms, redeem)
    })
    .await?;
    if outcome.written {
        metrics::counter!(crate::metrics::POSTINGS, "kind" => "purchase").increment(1);
    }
    Ok(outcome.response)
}

/// What a purchase posts, whether the till was online or flushes it later.
pub(crate) struct PurchaseTerms<'a> {
    pub posting: &'a str,
    pub request_hash: [u8; 32],
    pub till_id: &'a str,
    pub receipt: &'a str,
    pub basket: &'a Basket,
}

/// What a purchase redeems.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Redeem {
    /// Points the till asked for: refused beyond the programme's rules or the balance.
    Points(i64),
    /// Money the till asked to pay with points: the points worth at most this, in whole steps.
    Money(i64),
    /// Points an offline till already gave: honoured as far as the rules and the balance allow.
    Honour(i64),
}

/// Books a purchase into a draft under the member's lock: the offers, then the redemption (paying
/// part of what the offers leave, within the programme's rules), then what the rest earns, and the
/// tier's qualifying amount (the money paid, or the points earned).
pub(crate) fn book_purchase(
    draft: &mut ledger::Draft<'_>,
    terms: &PurchaseTerms<'_>,
    redeem: Redeem,
) -> Result<Plan, DomainError> {
    let receipt = terms.receipt;
    let programme = draft.programme;
    let policy = &programme.redemption;
    let offers_only = price(
        &programme.earning,
        &draft.tier.tier,
        terms.basket,
        &draft.offers,
        draft.now,
    );
    let payable = offers_only.paid_minor;
    let available = draft.book.available(draft.now);
    let points = match redeem {
        Redeem::Points(points) => points,
        Redeem::Money(minor) => {
            let points = policy.points_for(minor);
            if minor > 0 && points == 0 {
                return Err(not_allowed(format!(
                    "{} buys no whole step of points",
                    money(minor)
                )));
            }
            points
        }
        Redeem::Honour(points) => policy.clamp(points, available, payable),
    };
    let points_discount = policy
        .check(points, available, payable)
        .map_err(|e| not_allowed(e.0))?;
    let redeemed = ReasonParams {
        receipt: Some(receipt.to_string()),
        amount: Some(draft.money(points_discount)),
        ..ReasonParams::default()
    };
    draft
        .redeem(points, Reason::new(ReasonCode::Redeem, redeemed))
        .map_err(ledger::insufficient)?;
    let pricing = if points == 0 {
        offers_only
    } else {
        let paid = PointsPaid {
            minor: points_discount,
            earns: policy.paid_with_points_earns,
        };
        price_with_points(
            &programme.earning,
            &draft.tier.tier,
            terms.basket,
            &draft.offers,
            draft.now,
            &paid,
        )
    };
    for e in &pricing.earnings {
        let reason = earning_reason(draft, e, &pricing.applied, terms);
        draft.earn(&e.rule, e.points, reason);
    }
    draft.qualifying_delta = match programme.tiers.metric {
        Metric::Spend => pricing.paid_minor,
        Metric::Points => pricing.points(),
    };
    draft.offer_uses = pricing.applied.iter().map(|a| a.offer_id.clone()).collect();
    draft.discount_minor = pricing.discount_minor;
    draft.applied = pricing.applied.clone();
    draft.cashier = Some(Cashier {
        points_discount_minor: pricing.points_discount_minor,
        charge_minor: pricing.paid_minor,
        earn_base_minor: pricing.earn_base_minor,
    });
    Ok(Plan {
        idempotency_key: terms.posting.to_string(),
        request_hash: terms.request_hash,
        kind: PostingKind::Purchase,
        till_id: terms.till_id.to_string(),
        receipt_id: receipt.to_string(),
        refers_to: None,
        total_minor: terms.basket.total_minor,
        earned: pricing.points(),
        redeemed: points,
        always: true,
    })
}

/// The structured reason of a purchase's earning: the receipt and its total, the cap when it cut
/// the rule's points, and for an offer's points the offer and its title as the operator named it.
fn earning_reason(
    draft: &ledger::Draft<'_>,
    earning: &Earning,
    applied: &[AppliedOffer],
    terms: &PurchaseTerms<'_>,
) -> Reason {
    let rule = earning.rule.as_str();
    let code = ReasonCode::from_rule(rule);
    let offer = rule
        .strip_prefix("offer:")
        .and_then(|id| applied.iter().find(|a| a.offer_id == id));
    let params = ReasonParams {
        rule_id: Some(rule.to_string()),
        offer_id: offer.map(|o| o.offer_id.clone()),
        title: offer.map(|o| o.title.clone()),
        receipt: Some(terms.receipt.to_string()),
        amount: Some(draft.money(terms.basket.total_minor)),
        capped_at: earning.capped_at,
        ..ReasonParams::default()
    };
    Reason::new(code, params)
}

fn not_allowed(message: String) -> DomainError {
    refused("redemption_not_allowed", message)
}

/// Posts a refund of (part of) a purchase: takes back the shares of what it earned and gives back
/// the shares of what it redeemed, read under the member's lock.
pub async fn refund(
    app: &App,
    till_id: String,
    request: RefundRequest,
) -> Result<PostingResponse, DomainError> {
    validate_refund(&request)?;
    let hash = request_hash(&request);
    let posting = posting_id(&till_id, &request.idempotency_key);
    let purchase_id = purchase_posting(&till_id, &request.purchase);
    // Read here only for whose it is (that never changes); what was refunded of it is read again
    // under the member's lock.
    let purchase = app
        .storage
        .purchase(&purchase_id)
        .await?
        .ok_or_else(purchase_not_found)?;
    let retry = Retry {
        member_id: Some(&purchase.member_id),
        till_id: &till_id,
        kind: PostingKind::Refund,
        request_hash: hash,
    };
    if let Some(answer) = ledger::replayed(app.storage.prior_posting(&posting).await?, &retry)? {
        return Ok(answer);
    }
    let receipt = request.receipt_id.clone();
    let outcome = ledger::transact_refund(app, &purchase.member_id, &purchase_id, |draft| {
        let purchase = draft.purchase.clone().ok_or_else(purchase_not_found)?;
        let left = purchase.total_minor - purchase.refunded_minor;
        if request.amount_minor > left {
            return Err(ledger::refund_exceeds(format!(
                "{} of the purchase is left to refund",
                money(left)
            )));
        }
        let share = |points| {
            ledger::refund_share(
                points,
                purchase.total_minor,
                purchase.refunded_minor,
                request.amount_minor,
            )
        };
        let refunded = ReasonParams {
            receipt: Some(receipt.clone()),
            amount: Some(draft.money(request.amount_minor)),
            ..ReasonParams::default()
        };
        for lot in &purchase.lots {
            let back = share(lot.points);
            if back > 0 {
                let params = ReasonParams {
                    rule_id: Some(lot.rule.clone()),
                    ..refunded.clone()
                };
                draft.take_back(lot, back, Reason::new(ReasonCode::Refund, params));
            }
        }
        let earned_back = share(purchase.earned);
        let redeemed_back = share(purchase.redeemed);
        draft.give_back(
            redeemed_back,
            Reason::new(ReasonCode::RefundRedeem, refunded),
        );
        draft.qualifying_delta = match draft.programme.tiers.metric {
            Metric::Spend => -request.amount_minor,
            Metric::Points => -earned_back,
        };
        Ok(Plan {
            idempotency_key: posting.clone(),
            request_hash: hash,
            kind: PostingKind::Refund,
            till_id: till_id.clone(),
            receipt_id: receipt.clone(),
            refers_to: Some(purchase.posting.clone()),
            total_minor: request.amount_minor,
            earned: earned_back,
            redeemed: redeemed_back,
            always: true,
        })
    })
    .await?;
    if outcome.written {
        metrics::counter!(crate::metrics::POSTINGS, "kind" => "refund").increment(1);
    }
    Ok(outcome.response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(total_minor: i64, redeem_points: i64) -> PurchaseRequest {
        PurchaseRequest {
            session_id: "chk_1".into(),
            idempotency_key: "k".into(),
            receipt_id: "r".into(),
            total_minor,
            lines: Vec::new(),
            redeem_points,
            redeem_minor: 0,
        }
    }

    #[test]
    fn purchases_out_of_range_are_refused_not_overflowed() {
        assert!(validate_purchase(&purchase(4_250, 0)).is_ok());
        for bad in [purchase(100, i64::MAX), purchase(100, -1), purchase(-1, 0)] {
            assert_eq!(
                validate_purchase(&bad).unwrap_err().code,
                "invalid_purchase"
            );
        }
        let mut lines = purchase(100, 0);
        lines.lines = vec![loyalty_core::api::PurchaseLine {
            sku: "s".into(),
            description: String::new(),
            category: "c".into(),
            quantity: 1,
            amount_minor: 99,
        }];
        assert_eq!(
            validate_purchase(&lines).unwrap_err().code,
            "invalid_purchase"
        );
    }
}
