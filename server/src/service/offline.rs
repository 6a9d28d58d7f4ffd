//! The offline till's side of the server (`docs/checkout-code.md` §9–10): the key feed tills
//! cache to check codes without us, and the purchases they made meanwhile, posted when the link
//! returns.
//!
//! A flushed purchase is checked as a scan would have been, against the till's clock at the scan
//! instead of ours (the code's signature, its key as registered, the card), then its code is
//! claimed: the first posting to claim a code keeps it, and another till's purchase with the same
//! code is not posted but recorded as a suspicious reuse. Earning is always honoured; redemption up
//! to the programme's offline allowance and never below a zero balance — what the till gave and
//! the ledger cannot honour is recorded as a shortfall. Every exception is kept for operators
//! (`GET /v1/admin/till-exceptions`). A retried flush (same key, same body) gets the first answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use loyalty_core::api::PostingResponse;
use loyalty_core::api::offline::{
    FeedCard, FeedKey, KeyFeed, OfflinePurchaseRequest, TillException, TillExceptionKind,
};
use loyalty_core::checkout_code::{ParsedCode, format_card_number, step_start_ms};
use loyalty_core::earning::Basket;
use loyalty_core::offline::SKEW_STEPS;
use loyalty_core::programme::Programme;

use crate::app::App;
use crate::error::DomainError;
use crate::service::checkout::{
    self, PurchaseTerms, Redeem, book_purchase, posting_id, request_hash,
};
use crate::service::checkout_session::{code_refusal, refused};
use crate::service::ledger::{self, Retry};
use crate::storage::{CodeClaim, FeedEntry, PostingKind};

/// Changes per page of the key feed when the till does not say.
pub const FEED_PAGE: u32 = 1_000;
/// The most a till may ask for in one page.
pub const MAX_FEED_PAGE: u32 = 10_000;
/// The longest code text a flush may carry (a code is 122 characters; scanners add line ends).
const MAX_CODE_TEXT: usize = 256;
/// How far ahead of our clock a till's scan time may be (its clock drifts between refreshes).
const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;

/// One page of the key feed after `since`.
pub async fn key_feed(app: &App, since: u64, limit: Option<u32>) -> Result<KeyFeed, DomainError> {
    let limit = limit.unwrap_or(FEED_PAGE);
    if !(1..=MAX_FEED_PAGE).contains(&limit) {
        return Err(DomainError::bad_request(
            "malformed_query",
            format!("limit must be 1 to {MAX_FEED_PAGE}"),
        ));
    }
    let programme = app.programme().await?;
    let server_time_ms = app.now_ms();
    let mut changes = app.storage.key_feed(since, limit + 1).await?;
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    let cursor = changes.last().map_or(since, |c| c.seq);
    let (mut keys, mut cards) = (Vec::new(), Vec::new());
    for change in changes {
        match change.entry {
            FeedEntry::Key {
                card_number,
                key_id,
                public_key,
                revoked,
            } => keys.push(FeedKey {
                card_number,
                key_id,
                public_key: URL_SAFE_NO_PAD.encode(&public_key),
                revoked,
            }),
            FeedEntry::Card {
                card_number,
                blocked,
            } => cards.push(FeedCard {
                card_number,
                blocked,
            }),
        }
    }
    Ok(KeyFeed {
        cursor,
        more,
        server_time_ms,
        offline: programme.offline.clone(),
        redemption: programme.redemption.clone(),
        keys,
        cards,
    })
}

/// The exceptions flushes recorded, newest first.
pub async fn exceptions(app: &App, limit: u32) -> Result<Vec<TillException>, DomainError> {
    Ok(app.storage.till_exceptions(limit).await?)
}

/// What the checks of a flushed purchase found.
struct Checked {
    member_id: String,
    code_id: [u8; 16],
    code_time_ms: i64,
    /// The points the till may have redeemed: 0 if the signing device was revoked before the scan.
    allowance: i64,
    key_revoked: bool,
}

/// Posts a purchase a till made offline (see the module's guide).
pub async fn purchase(
    app: &App,
    till_id: String,
    request: OfflinePurchaseRequest,
) -> Result<PostingResponse, DomainError> {
    validate(&request)?;
    let hash = request_hash(&request);
    let posting = posting_id(&till_id, &request.idempotency_key);
    let retry = Retry {
        member_id: None,
        till_id: &till_id,
        kind: PostingKind::Purchase,
        request_hash: hash,
    };
    if let Some(answer) = ledger::replayed(app.storage.prior_posting(&posting).await?, &retry)? {
        return Ok(answer);
    }
    let programme = app.programme().await?;
    let exception = |kind, member_id: Option<String>, points, detail: &str| TillException {
        posting: posting.clone(),
        kind,
        member_id,
        till_id: till_id.clone(),
        points,
        detail: detail.to_string(),
        at_ms: app.now_ms(),
    };
    let refuse = async |member: Option<String>, e: DomainError| {
        let record = exception(
            TillExceptionKind::Refused,
            member,
            request.redeem_points,
            e.code,
        );
        app.storage.record_till_exception(&record).await?;
        Err::<PostingResponse, DomainError>(e)
    };
    let checked = match check(app, &request, &programme).await {
        Ok(checked) => checked,
        Err((member, e)) => return refuse(member, e).await,
    };
    let claim = app
        .storage
        .claim_offline_code(
            checked.code_id,
            &posting,
            &till_id,
            checked.code_time_ms,
            app.now_ms(),
            app.now_ms() - programme.offline.max_queue_age_ms() - 60_000,
        )
        .await?;
    if let CodeClaim::Taken { by_till } = claim {
        let detail = by_till.map_or("code_replayed: used online".to_string(), |t| {
            format!("code_replayed: used offline at till {t}")
        });
        let record = exception(
            TillExceptionKind::CodeReuse,
            Some(checked.member_id.clone()),
            request.redeem_points,
            &detail,
        );
        app.storage.record_till_exception(&record).await?;
        return Err(refused(
            "code_replayed",
            "this code was already used at another till: the purchase is recorded for operators",
        ));
    }
    let basket = Basket {
        total_minor: request.total_minor,
        lines: request.lines.clone(),
    };
    let terms = PurchaseTerms {
        posting: &posting,
        request_hash: hash,
        till_id: &till_id,
        receipt: &request.receipt_id,
        basket: &basket,
    };
    let allowed = request.redeem_points.min(checked.allowance);
    // Why the ledger honoured less than the allowance let through, as the last attempt saw it.
    let mut short_of_balance = false;
    let posted = ledger::transact_from(app, &checked.member_id, true, None, |draft| {
        if draft.blocked {
            return Err(refused("card_blocked", "this card is blocked"));
        }
        short_of_balance = draft.book.available(draft.now) < allowed;
        book_purchase(draft, &terms, Redeem::Honour(allowed))
    })
    .await;
    let outcome = match posted {
        Ok(outcome) => outcome,
        Err(e) if e.code == "card_blocked" => {
            return refuse(Some(checked.member_id), e).await;
        }
        Err(e) => return Err(e),
    };
    let short = request.redeem_points - outcome.response.redeemed;
    if short > 0 {
        let detail = if checked.key_revoked {
            "key_revoked"
        } else if request.redeem_points > checked.allowance {
            "over_allowance"
        } else if short_of_balance {
            "balance"
        } else {
            "redemption_rules"
        };
        let record = exception(
            TillExceptionKind::RedeemShortfall,
            Some(checked.member_id.clone()),
            short,
            detail,
        );
        app.storage.record_till_exception(&record).await?;
    }
    if outcome.written {
        metrics::counter!(crate::metrics::POSTINGS, "kind" => "offline_purchase").increment(1);
    }
    Ok(outcome.response)
}

fn validate(r: &OfflinePurchaseRequest) -> Result<(), DomainError> {
    checkout::validate_purchase(&loyalty_core::api::PurchaseRequest {
        session_id: String::new(),
        idempotency_key: r.idempotency_key.clone(),
        receipt_id: r.receipt_id.clone(),
        total_minor: r.total_minor,
        lines: r.lines.clone(),
        redeem_points: r.redeem_points,
        redeem_minor: 0,
    })?;
    if r.code.len() > MAX_CODE_TEXT {
        return Err(DomainError::bad_request(
            "invalid_purchase",
            format!("code must be at most {MAX_CODE_TEXT} bytes"),
        ));
    }
    if r.scanned_at_ms < 0 {
        return Err(DomainError::bad_request(
            "invalid_purchase",
            "scanned_at_ms must be a time since 1970",
        ));
    }
    Ok(())
}

/// The checks a scan makes, with the till's scan time for the clock, and how much the till could
/// have redeemed. A refusal names the member when the code named a known card.
async fn check(
    app: &App,
    r: &OfflinePurchaseRequest,
    programme: &Programme,
) -> Result<Checked, (Option<String>, DomainError)> {
    let now = app.now_ms();
    if r.scanned_at_ms > now + MAX_CLOCK_AHEAD_MS {
        return Err((
            None,
            refused(
                "code_not_yet_valid",
                "scanned_at_ms is in the future: the till's clock is far off",
            ),
        ));
    }
    let parsed = ParsedCode::parse(&r.code).map_err(|e| (None, code_refusal(e)))?;
    let member = app
        .storage
        .member_by_card(&format_card_number(parsed.card_number))
        .await
        .map_err(|e| (None, e.into()))?
        .ok_or_else(|| (None, refused("unknown_card", "no member has this card")))?;
    let named = |e: DomainError| (Some(member.member_id.clone()), e);
    if now - r.scanned_at_ms > programme.offline.max_queue_age_ms() {
        return Err(named(refused(
            "offline_too_old",
            format!(
                "scanned more than {} days ago: too old to post",
                programme.offline.max_queue_age_days
            ),
        )));
    }
    let key = app
        .storage
        .device_key(&member.member_id, parsed.key_id)
        .await
        .map_err(|e| named(e.into()))?
        .ok_or_else(|| {
            named(refused(
                "unknown_key",
                "the code was signed with a key this server never registered for the card",
            ))
        })?;
    parsed
        .verify_signature(&key.public_key)
        .map_err(|e| named(code_refusal(e)))?;
    parsed
        .check_time(r.scanned_at_ms, SKEW_STEPS)
        .map_err(|e| named(code_refusal(e)))?;
    // Revoked before the scan: the till's cache was behind (the documented window). The purchase
    // still earns for the card's member; what it redeemed is not honoured.
    let key_revoked = key.revoked_at_ms.is_some_and(|at| at <= r.scanned_at_ms);
    Ok(Checked {
        member_id: member.member_id,
        code_id: parsed.code_id(),
        code_time_ms: step_start_ms(parsed.time_step),
        allowance: if key_revoked {
            0
        } else {
            programme.offline.redeem_points_per_day
        },
        key_revoked,
    })
}
