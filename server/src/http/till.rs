//! The till's routes: scan a checkout code, post a purchase, post a refund.

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Till;
use crate::http::json::Json;
use crate::service::checkout::*;
use crate::service::ledger::{self, Plan, Retry};
use crate::storage::PostingKind;
use crate::storage::{CheckoutSession, StorageError};
use axum::extract::State;
use loyalty_core::api::{
    PostingResponse, PurchaseRequest, RefundRequest, ScanRequest, ScanResponse,
};
use loyalty_core::calendar::DAY_MS;
use loyalty_core::checkout_code::{ParsedCode, format_card_number};
use loyalty_core::earning::{Basket, price};
use loyalty_core::ids::{self};
use loyalty_core::tiers::Metric;
use std::sync::Arc;

pub async fn scan(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<ScanRequest>, ApiError>,
) -> Result<Json<ScanResponse>, ApiError> {
    let Json(request) = body?;
    let parsed = ParsedCode::parse(&request.code).map_err(code_refusal)?;
    let card_number = format_card_number(parsed.card_number);
    let member = app
        .storage
        .member_by_card(&card_number)
        .await?
        .ok_or_else(|| refused("unknown_card", "no member has this card"))?;
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
        )
        .into());
    }
    parsed
        .verify_signature(&key.public_key)
        .map_err(code_refusal)?;
    let now = app.now_ms();
    parsed.check_time(now, SKEW_STEPS).map_err(code_refusal)?;
    if member.blocked {
        return Err(refused("card_blocked", "this card is blocked").into());
    }
    let session = CheckoutSession {
        session_id: ids::new_record_id("chk"),
        member_id: member.member_id.clone(),
        till_id,
        expires_at_ms: now + SESSION_MS,
    };
    app.storage
        .open_checkout(parsed.code_id(), &session, now)
        .await
        .map_err(|e| match e {
            StorageError::CodeReplayed => refused(
                "code_replayed",
                "this code was already used: a screenshot or a second scan",
            ),
            other => other.into(),
        })?;
    tracing::info!(member = %member.member_id, till = %session.till_id, "checkout code accepted");
    Ok(Json(ScanResponse {
        session_id: session.session_id,
        session_expires_at_ms: session.expires_at_ms,
        member_id: member.member_id,
        card_number,
        tier: member.tier,
        balance: member.balance,
    }))
}

pub async fn purchase(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<PurchaseRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
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
    if let Some(answer) = ledger::replayed(context.prior, &retry)?.map(Json) {
        return Ok(answer);
    }
    let session = open_session(&app, context.session, &till_id)?;
    let basket = Basket {
        total_minor: request.total_minor,
        lines: request.lines.clone(),
    };
    let receipt = request.receipt_id.clone();
    let first = context.book.map(|book| (programme, book));
    let outcome = ledger::transact_from(&app, &session.member_id, true, first, |draft| {
        // Checked here, under the lock, rather than at the door: a block that lands while the
        // till waits still counts.
        if draft.blocked {
            return Err(refused("card_blocked", "this card is blocked"));
        }
        let pricing = price(
            &draft.programme.earning,
            &draft.tier.tier,
            &basket,
            &draft.offers,
            draft.now,
        );
        draft
            .redeem(
                request.redeem_points,
                format!("Redeemed at the till (receipt {receipt})"),
            )
            .map_err(ledger::insufficient)?;
        for e in &pricing.earnings {
            let mut e = e.clone();
            e.reason = format!("{} (receipt {receipt})", e.reason);
            draft.earn(&e);
        }
        draft.qualifying_delta = match draft.programme.tiers.metric {
            Metric::Spend => pricing.paid_minor,
            Metric::Points => pricing.points(),
        };
        draft.offer_uses = pricing.applied.iter().map(|a| a.offer_id.clone()).collect();
        draft.discount_minor = pricing.discount_minor;
        draft.applied = pricing.applied.clone();
        Ok(Plan {
            idempotency_key: posting.clone(),
            request_hash: hash,
            kind: PostingKind::Purchase,
            till_id: till_id.clone(),
            receipt_id: receipt.clone(),
            refers_to: None,
            total_minor: request.total_minor,
            earned: pricing.points(),
            redeemed: request.redeem_points,
            always: true,
        })
    })
    .await?;
    Ok(Json(outcome.response))
}

pub async fn refund(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<RefundRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
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
        return Ok(Json(answer));
    }
    let receipt = request.receipt_id.clone();
    let amount = money(request.amount_minor);
    let outcome = ledger::transact_refund(&app, &purchase.member_id, &purchase_id, |draft| {
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
        for lot in &purchase.lots {
            let back = share(lot.points);
            if back > 0 {
                draft.take_back(
                    lot,
                    back,
                    &format!("Refund of {amount} (receipt {receipt}): earned points taken back"),
                );
            }
        }
        let earned_back = share(purchase.earned);
        let redeemed_back = share(purchase.redeemed);
        draft.give_back(
            redeemed_back,
            format!("Refund of {amount} (receipt {receipt}): redeemed points returned"),
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
    Ok(Json(outcome.response))
}

/// The till's routes.
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::post;
    axum::Router::new()
        .route("/v1/till/scan", post(scan))
        .route("/v1/till/purchases", post(purchase))
        .route("/v1/till/refunds", post(refund))
}
