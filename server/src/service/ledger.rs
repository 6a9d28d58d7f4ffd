//! The one way a member's points change. Purchases, refunds, the programme's own work (maturing and
//! expiring points, expiry warnings, tier reviews), event points and operator tier changes all run
//! through [`transact`]: under the member's lock it loads their lots and tier, expires what is due,
//! lets the caller add its movements, re-evaluates the tier, and writes it all as one posting
//! guarded by the member's revision — retrying when another instance got there first, and
//! answering a repeated idempotency key with the first answer. Everything a posting is computed
//! from is read under the lock, on each attempt, in one snapshot with the revision: a refund's
//! purchase and what was refunded of it too ([`transact_refund`]). The card document catches up
//! with the posting when it is next read (`crate::projection::card`), not here.

use crate::locks;
use crate::storage::PostingKind;
use std::sync::Arc;

use loyalty_core::api::{Movement, PostingResponse};
use loyalty_core::calendar::DAY_MS;
use loyalty_core::earning::{AppliedOffer, OfferCandidate};
use loyalty_core::ids;
use loyalty_core::lots::{Book, Insufficient, Lot};
use loyalty_core::programme::Programme;
use loyalty_core::reasons::{Money, Reason, ReasonCode, ReasonParams, is_pending};
use loyalty_core::tiers::{self, TierState};

use crate::app::App;
use crate::error::DomainError;
use crate::projection::card::with_review_date;
use crate::storage::{
    LedgerMovement, MemberBook, MemberProgramme, PostOutcome, Posting, PriorPosting, PurchaseRecord,
};

/// A posting being put together for one member.
pub struct Draft<'a> {
    pub now: i64,
    pub programme: &'a Programme,
    pub member_id: String,
    pub blocked: bool,
    pub tier: TierState,
    pub book: Book,
    pub movements: Vec<LedgerMovement>,
    pub applied: Vec<AppliedOffer>,
    pub discount_minor: i64,
    pub offer_uses: Vec<String>,
    /// The member's offers, loaded under the lock on each attempt when the caller asked for them.
    pub offers: Vec<OfferCandidate>,
    /// Added to the member's qualifying amount by this posting (it is not in the database yet).
    pub qualifying_delta: i64,
    /// For a refund ([`transact_refund`]): the purchase, with what was refunded of it so far.
    pub purchase: Option<PurchaseRecord>,
    /// What the answer reports, as the movements did it: points earned, or taken back by a
    /// refund (`earned`); points spent, or given back by a refund (`redeemed`).
    pub earned: i64,
    pub redeemed: i64,
    /// The operator making this posting (an adjustment), recorded with it.
    pub operator: Option<String>,
    /// A purchase's money side, for the till's answer and the cashier's prompts.
    pub cashier: Option<crate::service::prompts::Cashier>,
}

impl Draft<'_> {
    /// An amount in the programme's currency, for a reason's parameters.
    pub fn money(&self, minor: i64) -> Money {
        Money::new(minor, &self.programme.currency)
    }

    /// Books points earned under `rule` as a new lot, pending for the programme's period.
    pub fn earn(&mut self, rule: &str, points: i64, reason: Reason) {
        let lot = self
            .programme
            .points
            .lot(ids::new_record_id("lot"), rule, points, self.now);
        self.book_earning(lot, rule, reason);
    }

    /// Books an earning no refund can reverse (event points, an operator's credit): available at once.
    pub fn earn_available(&mut self, rule: &str, points: i64, reason: Reason) {
        let mut lot = self
            .programme
            .points
            .lot(ids::new_record_id("lot"), rule, points, self.now);
        lot.available_at_ms = self.now;
        self.book_earning(lot, rule, reason);
    }

    fn book_earning(&mut self, lot: Lot, rule: &str, reason: Reason) {
        // Pending is a state the entry carries, not words in its text: the card and the apps
        // compare `available_at` with their clock, so nothing goes stale when the points mature.
        let available_at = (lot.available_at_ms > self.now).then_some(lot.available_at_ms);
        let points = lot.points;
        self.book.add(lot);
        self.earned += points;
        self.movement(points, reason, rule, available_at);
    }

    /// Spends points from the lots that expire first.
    pub fn redeem(&mut self, points: i64, reason: Reason) -> Result<(), Insufficient> {
        self.spend(points, reason, "redeem")
    }

    /// Spends points from the lots that expire first, under `rule` (`redeem`, `adjust:…`); more
    /// than the member has available spends nothing.
    pub fn spend(&mut self, points: i64, reason: Reason, rule: &str) -> Result<(), Insufficient> {
        if points == 0 {
            return Ok(());
        }
        self.book.spend(points, self.now)?;
        self.redeemed += points;
        self.movement(-points, reason, rule, None);
        Ok(())
    }

    /// Takes back what a refunded purchase earned in `lot` (see `Book::take_back`); the reason
    /// gains the points that had already expired or were spent and could not be taken back.
    pub fn take_back(&mut self, lot: &Lot, points: i64, mut reason: Reason) {
        // A lot that is spent or expired is not among the open lots the book was loaded with.
        self.book.include(lot.clone());
        let back = self.book.take_back(&lot.lot_id, points, self.now);
        reason.params.already_expired = back.already_expired;
        reason.params.unrecovered = back.unrecovered;
        if back.unrecovered > 0 {
            tracing::warn!(member = %self.member_id, points = back.unrecovered, "refund could not take back spent points");
        }
        self.earned += back.taken;
        if back.taken > 0 || back.already_expired > 0 || back.unrecovered > 0 {
            self.movement(-back.taken, reason, "refund", None);
        }
    }

    /// Gives points back as a new lot available at once (a refunded redemption).
    pub fn give_back(&mut self, points: i64, reason: Reason) {
        if points <= 0 {
            return;
        }
        let lot = self
            .programme
            .points
            .returned_lot(ids::new_record_id("lot"), points, self.now);
        self.book.add(lot);
        self.redeemed += points;
        self.movement(points, reason, "refund", None);
    }

    /// Records a movement; its English text comes from the structured reason alone.
    fn movement(&mut self, points: i64, reason: Reason, rule: &str, available_at: Option<i64>) {
        self.movements.push(LedgerMovement {
            tx_id: ids::new_record_id("tx"),
            points,
            reason: reason.text(),
            rule: rule.to_string(),
            reason_code: reason.code,
            reason_params: reason.params,
            available_at_ms: available_at,
        });
    }
}

/// What the caller's posting is, besides its movements.
pub struct Plan {
    pub idempotency_key: String,
    pub request_hash: [u8; 32],
    pub kind: PostingKind,
    pub till_id: String,
    pub receipt_id: String,
    pub refers_to: Option<String>,
    pub total_minor: i64,
    /// Recorded on the posting: what a purchase earned and spent, the shares of them a refund
    /// reverses (the tier's points metric sums these). The answer reports what the movements
    /// actually did instead ([`Draft::earned`]).
    pub earned: i64,
    pub redeemed: i64,
    /// Write even when nothing changed (a till's purchase must be recorded; a settle need not).
    pub always: bool,
}

/// The outcome of [`transact`].
pub struct Outcome {
    pub response: PostingResponse,
    /// Whether this call wrote a posting (a replay or an idle settle does not).
    pub written: bool,
}

/// What an attempt reads under the lock besides the member's lots and tier.
#[derive(Clone, Copy)]
pub(crate) enum Reads<'a> {
    Book,
    /// The member's offers, so a purchase never applies an offer whose last use another purchase
    /// just took.
    Offers,
    /// The purchase a refund reverses, by posting id.
    Refund(&'a str),
}

impl Reads<'_> {
    fn offers(with_offers: bool) -> Self {
        if with_offers {
            Reads::Offers
        } else {
            Reads::Book
        }
    }
}

/// Runs `build` on the member's current points and writes the result as one posting. With
/// `with_offers`, the draft carries the member's offers, read under the lock on each attempt, so a
/// purchase never applies an offer whose last use another purchase just took.
pub async fn transact(
    app: &App,
    member_id: &str,
    with_offers: bool,
    build: impl FnMut(&mut Draft<'_>) -> Result<Plan, DomainError>,
) -> Result<Outcome, DomainError> {
    attempts(app, member_id, Reads::offers(with_offers), None, build).await
}

/// [`transact`], starting from a book the caller read before the lock (with offers when
/// `with_offers`) under the programme it read it with (the tier window and metric): if another
/// posting came between, the revision guard refuses the write and the next attempt reads the book
/// again.
pub async fn transact_from(
    app: &App,
    member_id: &str,
    with_offers: bool,
    first: Option<(Arc<Programme>, MemberBook)>,
    build: impl FnMut(&mut Draft<'_>) -> Result<Plan, DomainError>,
) -> Result<Outcome, DomainError> {
    attempts(app, member_id, Reads::offers(with_offers), first, build).await
}

/// [`transact`] for a refund of the purchase posted as `purchase`: each attempt reads the purchase
/// and what was refunded of it ([`Draft::purchase`]) in the snapshot of the member's book, under
/// the lock, and the posting is written only if that refunded total is still the stored one.
/// So refunds racing on one purchase, through one instance or several, reverse exactly their
/// shares.
pub async fn transact_refund(
    app: &App,
    member_id: &str,
    purchase: &str,
    build: impl FnMut(&mut Draft<'_>) -> Result<Plan, DomainError>,
) -> Result<Outcome, DomainError> {
    attempts(app, member_id, Reads::Refund(purchase), None, build).await
}

pub(crate) async fn attempts(
    app: &App,
    member_id: &str,
    reads: Reads<'_>,
    first: Option<(Arc<Programme>, MemberBook)>,
    mut build: impl FnMut(&mut Draft<'_>) -> Result<Plan, DomainError>,
) -> Result<Outcome, DomainError> {
    let (programme, mut first) = match first {
        Some((programme, book)) => (programme, Some(book)),
        None => (app.programme().await?, None),
    };
    let _guard = app.lock_member(member_id).await;
    let mut retry = locks::Retry::default();
    loop {
        retry.another()?;
        let now = app.now_ms();
        // The offers come in the book's read, from the same snapshot: one trip to the database.
        let (mut book, purchase) = match first.take() {
            Some(mut book) => {
                with_review_date(&programme, &mut book.state.tier);
                (book, None)
            }
            None => load_book(app, &programme, member_id, now, reads).await?,
        };
        let offers = std::mem::take(&mut book.offers);
        let revision = book.revision;
        let before = book.state.clone();
        let qualifying = book.qualifying;
        let mut draft = draft(&programme, book, now);
        draft.offers = offers;
        draft.purchase = purchase;
        let plan = build(&mut draft)?;
        let state = settle_tier(&programme, &mut draft, qualifying);
        let idle =
            draft.movements.is_empty() && draft.book.touched().next().is_none() && state == before;
        let response = response(&plan, member_id, &draft, &state, qualifying);
        if idle && !plan.always {
            return Ok(Outcome {
                response,
                written: false,
            });
        }
        let posting = Posting {
            idempotency_key: plan.idempotency_key.clone(),
            request_hash: plan.request_hash,
            member_id: member_id.to_string(),
            till_id: plan.till_id.clone(),
            receipt_id: plan.receipt_id.clone(),
            kind: plan.kind,
            refers_to: plan.refers_to.clone(),
            refunded_before: draft.purchase.as_ref().map(|p| p.refunded_minor),
            total_minor: plan.total_minor,
            earned: plan.earned,
            redeemed: plan.redeemed,
            movements: draft.movements.clone(),
            expected_revision: revision,
            state,
            lots: draft.book.touched().cloned().collect(),
            offer_uses: draft.offer_uses.clone(),
            at_ms: now,
            response: serde_json::to_vec(&response)
                .map_err(|e| DomainError::internal("posting answer", e))?,
            operator: draft.operator.clone(),
        };
        match app.storage.post(posting).await {
            Ok(PostOutcome::Posted) => {
                // Devices waiting on the member sync now, and their sync brings the card up.
                app.notify(member_id);
                return Ok(Outcome {
                    response,
                    written: true,
                });
            }
            Ok(PostOutcome::Conflict) => continue,
            Ok(PostOutcome::KeyTaken) => {
                // Another request with the same key won the race: answer as it did, if it is
                // the same request.
                let prior = app.storage.prior_posting(&plan.idempotency_key).await?;
                let response = replayed(prior, &Retry::of(&plan, member_id))?.ok_or_else(|| {
                    DomainError::internal("posting", "duplicate without an answer")
                })?;
                return Ok(Outcome {
                    response,
                    written: false,
                });
            }
            Ok(PostOutcome::RefundExceedsPurchase) => {
                return Err(refund_exceeds(
                    "another refund of this purchase came first: look at what is left and retry",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a posting found under a key must be for a request to be its retry: the same member (when
/// the request names one), till, kind and request.
pub struct Retry<'a> {
    pub member_id: Option<&'a str>,
    pub till_id: &'a str,
    pub kind: PostingKind,
    pub request_hash: [u8; 32],
}

impl<'a> Retry<'a> {
    fn of(plan: &'a Plan, member_id: &'a str) -> Self {
        Self {
            member_id: Some(member_id),
            till_id: &plan.till_id,
            kind: plan.kind,
            request_hash: plan.request_hash,
        }
    }
}

/// The points a refund of `amount` reverses out of a purchase's `points`, when `before` of its
/// `total` (minor units) was refunded already. The difference of proportional shares of the
/// running total, so refunds in parts add up exactly to a refund of the whole. In 128 bits: points
/// (up to 10^11 a receipt) times minor units (up to 10^9) does not fit in 64. Amounts beyond the
/// total count as the total.
pub fn refund_share(points: i64, total: i64, before: i64, amount: i64) -> i64 {
    let share = |upto: i64| {
        if total <= 0 {
            return points;
        }
        let upto = upto.clamp(0, total);
        let exact = i128::from(points) * i128::from(upto) / i128::from(total);
        // `upto` never exceeds the total, so the share never exceeds `points`.
        i64::try_from(exact).unwrap_or(points)
    };
    share(before.saturating_add(amount)) - share(before)
}

/// The first answer to an idempotency key used before, `None` when it was not; the same key with
/// another request — or found on another member's, till's or kind's posting — is
/// `409 idempotency_key_reused`.
pub fn replayed(
    prior: Option<PriorPosting>,
    retry: &Retry<'_>,
) -> Result<Option<PostingResponse>, DomainError> {
    let Some(prior) = prior else {
        return Ok(None);
    };
    let same = prior.till_id == retry.till_id
        && prior.kind == retry.kind
        && retry.member_id.is_none_or(|m| m == prior.member_id)
        && prior.request_hash == retry.request_hash;
    if !same {
        return Err(DomainError::new(
            crate::error::ErrorKind::Conflict,
            "idempotency_key_reused",
            "this idempotency key was used for a different request",
        ));
    }
    serde_json::from_slice(&prior.response)
        .map(Some)
        .map_err(|e| DomainError::internal("stored posting answer", e))
}

pub fn refund_exceeds(message: impl Into<String>) -> DomainError {
    DomainError::new(
        crate::error::ErrorKind::Conflict,
        "refund_exceeds_purchase",
        message,
    )
}

pub fn insufficient(i: Insufficient) -> DomainError {
    DomainError::new(
        crate::error::ErrorKind::Conflict,
        "insufficient_points",
        format!(
            "the member has {} points available, the purchase redeems {}",
            i.available, i.wanted
        ),
    )
}

pub(crate) async fn load_book(
    app: &App,
    programme: &Programme,
    member_id: &str,
    now: i64,
    reads: Reads<'_>,
) -> Result<(MemberBook, Option<PurchaseRecord>), DomainError> {
    let window_start = now.saturating_sub(programme.tiers.window_days * DAY_MS);
    let metric = programme.tiers.metric;
    let found = match reads {
        Reads::Refund(purchase) => {
            app.storage
                .refund_book(member_id, purchase, metric, window_start)
                .await?
        }
        Reads::Book | Reads::Offers => app
            .storage
            .member_book(
                member_id,
                metric,
                window_start,
                matches!(reads, Reads::Offers).then_some(now),
            )
            .await?
            .map(|book| (book, None)),
    };
    let (mut book, purchase) =
        found.ok_or_else(|| DomainError::not_found("member_not_found", "no such member"))?;
    with_review_date(programme, &mut book.state.tier);
    Ok((book, purchase))
}

pub(crate) fn draft(programme: &Programme, book: MemberBook, now: i64) -> Draft<'_> {
    let mut draft = Draft {
        now,
        programme,
        member_id: book.member_id,
        blocked: book.blocked,
        tier: book.state.tier,
        book: Book::new(book.lots),
        movements: Vec::new(),
        applied: Vec::new(),
        discount_minor: 0,
        offer_uses: Vec::new(),
        offers: Vec::new(),
        qualifying_delta: 0,
        purchase: None,
        earned: 0,
        redeemed: 0,
        operator: None,
        cashier: None,
    };
    // Whatever else this posting does, points whose time has come expire first, each with a
    // ledger entry the member can read.
    for e in draft.book.expire(now) {
        let params = ReasonParams {
            earned_at_ms: Some(e.earned_at_ms),
            ..ReasonParams::default()
        };
        draft.movement(
            -e.points,
            Reason::new(ReasonCode::Expiry, params),
            "expiry",
            None,
        );
    }
    draft
}

/// The member's state after the draft: balance and pending from the lots, the tier re-evaluated.
pub(crate) fn settle_tier(
    programme: &Programme,
    draft: &mut Draft<'_>,
    qualifying: i64,
) -> MemberProgramme {
    let qualifying = qualifying + draft.qualifying_delta;
    let tier = tiers::evaluate(&programme.tiers, &draft.tier, qualifying, draft.now);
    draft.tier = tier.clone();
    let warn_days = programme.points.warn_days;
    let next = [
        draft.book.next_event(draft.now, warn_days),
        tier.next_event(),
    ]
    .into_iter()
    .flatten()
    .min();
    MemberProgramme {
        balance: draft.book.available(draft.now),
        pending: draft.book.pending(draft.now),
        tier,
        next_event_at_ms: next,
    }
}

/// The answer to a posting. A purchase's carries its money side and the cashier's prompts, worded
/// from the member's book and tier as the posting leaves them (`qualifying` is before it).
pub(crate) fn response(
    plan: &Plan,
    member_id: &str,
    draft: &Draft<'_>,
    state: &MemberProgramme,
    qualifying: i64,
) -> PostingResponse {
    let cashier = draft.cashier.unwrap_or_default();
    let prompts = match draft.cashier {
        Some(c) => {
            let standing = crate::service::prompts::Standing {
                programme: draft.programme,
                tier: &state.tier,
                book: &draft.book,
                qualifying: qualifying + draft.qualifying_delta,
                now_ms: draft.now,
            };
            crate::service::prompts::after_purchase(&standing, &c, draft.earned, draft.redeemed)
        }
        None => Vec::new(),
    };
    PostingResponse {
        posting: plan.idempotency_key.clone(),
        member_id: member_id.to_string(),
        earned: draft.earned,
        redeemed: draft.redeemed,
        balance: state.balance,
        pending: state.pending,
        movements: draft
            .movements
            .iter()
            .map(|m| Movement {
                tx_id: m.tx_id.clone(),
                points: m.points,
                reason: m.reason.clone(),
                rule: m.rule.clone(),
                reason_code: m.reason_code,
                reason_params: m.reason_params.clone(),
                available_at_ms: m.available_at_ms,
                pending: is_pending(m.available_at_ms, draft.now),
            })
            .collect(),
        discount_minor: draft.discount_minor,
        offers_applied: draft.applied.clone(),
        points_discount_minor: cashier.points_discount_minor,
        charge_minor: cashier.charge_minor,
        earn_base_minor: cashier.earn_base_minor,
        prompts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A purchase's total, its points, and refunds in parts that add up to the whole: the cut
    /// points are where each part ends.
    fn refunds_in_parts() -> impl Strategy<Value = (i64, i64, Vec<i64>)> {
        (1i64..=1_000_000_000, 0i64..=100_000_000_000).prop_flat_map(|(total, points)| {
            proptest::collection::vec(0..total, 0..40).prop_map(move |mut cuts| {
                cuts.push(total);
                cuts.sort_unstable();
                cuts.dedup();
                let mut before = 0;
                let parts = cuts
                    .into_iter()
                    .filter(|&c| c > 0)
                    .map(|c| {
                        let part = c - before;
                        before = c;
                        part
                    })
                    .collect();
                (total, points, parts)
            })
        })
    }

    proptest! {
        #[test]
        fn refunds_in_parts_reverse_exactly_what_a_whole_refund_does(
            (total, points, parts) in refunds_in_parts()
        ) {
            let mut before = 0;
            let mut reversed = 0;
            for part in parts {
                let share = refund_share(points, total, before, part);
                prop_assert!((0..=points).contains(&share));
                reversed += share;
                before += part;
                // However the refunds so far were cut, they reverse what one refund of them would.
                prop_assert_eq!(reversed, refund_share(points, total, 0, before));
            }
            prop_assert_eq!(before, total);
            prop_assert_eq!(reversed, points);
            prop_assert_eq!(refund_share(points, total, 0, total), points);
        }
    }

    #[test]
    fn fifty_refunds_of_099_of_100_00_reverse_49_of_100_points() {
        let shares: i64 = (0..50).map(|i| refund_share(100, 10_000, i * 99, 99)).sum();
        assert_eq!(shares, 49);
        assert_eq!(refund_share(100, 10_000, 4_950, 5_050), 51);
    }

    fn prior(member: &str, till: &str, kind: &str, hash: [u8; 32]) -> Option<PriorPosting> {
        Some(PriorPosting {
            member_id: member.into(),
            till_id: till.into(),
            kind: PostingKind::from_name(kind).unwrap(),
            request_hash: hash,
            response: serde_json::to_vec(&PostingResponse {
                posting: "till:t1:k".into(),
                member_id: member.into(),
                earned: 1,
                redeemed: 0,
                balance: 1,
                pending: 0,
                movements: Vec::new(),
                discount_minor: 0,
                offers_applied: Vec::new(),
                points_discount_minor: 0,
                charge_minor: 0,
                earn_base_minor: 0,
                prompts: Vec::new(),
            })
            .unwrap(),
            operator: None,
        })
    }

    #[test]
    fn a_key_found_on_another_members_tills_or_kinds_posting_is_no_retry() {
        let retry = Retry {
            member_id: Some("m1"),
            till_id: "t1",
            kind: PostingKind::Purchase,
            request_hash: [1; 32],
        };
        let answer = replayed(prior("m1", "t1", "purchase", [1; 32]), &retry).unwrap();
        assert_eq!(answer.map(|a| a.earned), Some(1));
        assert!(replayed(None, &retry).unwrap().is_none());
        for other in [
            prior("m2", "t1", "purchase", [1; 32]),
            prior("m1", "t2", "purchase", [1; 32]),
            prior("m1", "t1", "refund", [1; 32]),
            prior("m1", "t1", "purchase", [2; 32]),
        ] {
            let e = replayed(other, &retry).unwrap_err();
            assert_eq!(e.code, "idempotency_key_reused");
        }
        // A retry whose member is not known any more (its session was swept) still needs the
        // same till, kind and request.
        let unknown = Retry {
            member_id: None,
            ..retry
        };
        assert!(replayed(prior("m9", "t1", "purchase", [1; 32]), &unknown).is_ok());
    }
}
