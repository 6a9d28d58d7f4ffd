//! Operators adjust a member's points by hand (its route is `crate::http::admin::adjustments`): a
//! credit for a receipt the till never posted, a goodwill gesture, a correction; a debit to take
//! back what was given by mistake. Each adjustment is one posting of kind `adjust` through the
//! ledger ([`ledger::transact`]), so it runs under the member's lock like a purchase, with the
//! same revision guard, and the member's card shows it as one ledger entry: rule
//! `adjust:<reason>`, and the reason's words with the operator's note and reference.
//!
//! - The operator's idempotency key is its posting id in the operators' namespace
//!   (`adjust:<key>`), apart from every till's (`till:<till>:<key>`) and the programme's own, so
//!   no key of one can take another's posting. All operators share the namespace: a support
//!   ticket's id is a good key, and a second operator handling the same ticket cannot post it
//!   twice. The same key with the same body (for the same member) answers the first answer; with
//!   another body it is `409 idempotency_key_reused`.
//! - A credit is a new lot, available at once (nothing will refund it) and expiring under the
//!   programme's expiry rule from the day of the credit, like event points.
//! - A debit spends from the lots that expire first, like a redemption; more than the member has
//!   available is `409 insufficient_points` and changes nothing: an adjustment never takes the
//!   balance below zero (the lots' `remaining >= 0` check holds it in the database too). Pending
//!   points cannot be debited until they mature.
//! - A blocked member can be adjusted: a block stops the till, not support correcting the account.
//! - Adjustments do not count towards tiers (only purchases less refunds qualify); an operator who
//!   means to change a tier sets it (`crate::http::admin::programme::set_tier`).
//! - Who made it is recorded on the posting (its `operator` column).

use loyalty_core::api::{
    AdjustPoints, MAX_ADJUST_NOTE, MAX_ADJUST_POINTS, MAX_ADJUST_REFERENCE, PostingResponse,
};
use loyalty_core::lots::Insufficient;
use loyalty_core::reasons::{Reason, ReasonCode, ReasonParams};

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::service::checkout::{MAX_KEY, request_hash};
use crate::service::ledger::{self, Retry};
use crate::service::programme::programme_plan;
use crate::storage::PostingKind;

/// How every adjustment's posting id begins.
pub const POSTING_PREFIX: &str = "adjust:";

/// The posting id of an operator's idempotency key.
pub fn posting_id(key: &str) -> String {
    format!("{POSTING_PREFIX}{key}")
}

/// Credits or debits the member's points as `operator` asked; a retry with the same key and
/// body answers as the first did.
pub async fn adjust(
    app: &App,
    member_id: &str,
    operator: &str,
    request: AdjustPoints,
) -> Result<PostingResponse, DomainError> {
    validate(&request)?;
    let hash = request_hash(&request);
    let posting = posting_id(&request.idempotency_key);
    let retry = Retry {
        member_id: Some(member_id),
        till_id: "programme",
        kind: PostingKind::Adjust,
        request_hash: hash,
    };
    if let Some(answer) = ledger::replayed(app.storage.prior_posting(&posting).await?, &retry)? {
        return Ok(answer);
    }
    let rule = format!("adjust:{}", request.reason.as_str());
    let reason = structured(&request);
    let outcome = ledger::transact(app, member_id, false, |draft| {
        draft.operator = Some(operator.to_string());
        let mut plan = programme_plan(&posting, PostingKind::Adjust);
        plan.request_hash = hash;
        plan.receipt_id = request.reference.clone().unwrap_or_default();
        if request.points > 0 {
            draft.earn_available(&rule, request.points, reason.clone());
            plan.earned = request.points;
        } else {
            let points = -request.points;
            draft
                .spend(points, reason.clone(), &rule)
                .map_err(insufficient)?;
            plan.redeemed = points;
        }
        Ok(plan)
    })
    .await?;
    if outcome.written {
        metrics::counter!(crate::metrics::POSTINGS, "kind" => "adjust").increment(1);
        tracing::info!(
            member = %member_id,
            operator = %operator,
            points = request.points,
            reason = request.reason.as_str(),
            "points adjusted by an operator"
        );
    }
    Ok(outcome.response)
}

/// The ledger entry's structured reason: the operator's reason, the note, and the reference when
/// there is one (the card's text is worded from it by `loyalty_core::reasons::default_text`).
fn structured(request: &AdjustPoints) -> Reason {
    let params = ReasonParams {
        rule_id: Some(format!("adjust:{}", request.reason.as_str())),
        adjust_reason: Some(request.reason.as_str().to_string()),
        note: Some(request.note.trim().to_string()),
        receipt: request.reference.as_ref().map(|r| r.trim().to_string()),
        ..ReasonParams::default()
    };
    Reason::new(ReasonCode::Adjust, params)
}

fn insufficient(i: Insufficient) -> DomainError {
    DomainError::new(
        ErrorKind::Conflict,
        "insufficient_points",
        format!(
            "the member has {} points available, the adjustment debits {}: nothing was changed",
            i.available, i.wanted
        ),
    )
}

/// The checks of the module's guide: the key, the points, the note and the reference.
fn validate(r: &AdjustPoints) -> Result<(), DomainError> {
    let bad = |m: String| DomainError::bad_request("invalid_adjustment", m);
    if r.idempotency_key.is_empty()
        || r.idempotency_key.len() > MAX_KEY
        || r.idempotency_key.chars().any(char::is_control)
    {
        return Err(DomainError::bad_request(
            "invalid_idempotency_key",
            format!("idempotency_key must be 1 to {MAX_KEY} bytes, without control characters"),
        ));
    }
    if r.points == 0 || r.points.unsigned_abs() > MAX_ADJUST_POINTS.unsigned_abs() {
        return Err(bad(format!(
            "points must be 1 to {MAX_ADJUST_POINTS} (a credit) or -1 to -{MAX_ADJUST_POINTS} (a debit)"
        )));
    }
    text_field("note", &r.note, MAX_ADJUST_NOTE).map_err(bad)?;
    if let Some(reference) = &r.reference {
        text_field("reference", reference, MAX_ADJUST_REFERENCE).map_err(bad)?;
    }
    Ok(())
}

/// Text the member reads on their card: something to read, within its length, on one line.
fn text_field(name: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(format!(
            "{name} must be 1 to {max} characters, not all blank"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{name} must be one line without control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::api::AdjustReason;

    fn request(points: i64, note: &str, reference: Option<&str>) -> AdjustPoints {
        AdjustPoints {
            idempotency_key: "ticket-1".into(),
            points,
            reason: AdjustReason::Goodwill,
            note: note.into(),
            reference: reference.map(str::to_string),
        }
    }

    #[test]
    fn adjustments_out_of_bounds_are_refused() {
        for ok in [
            request(1, "n", None),
            request(-MAX_ADJUST_POINTS, "n", Some("T-1")),
            request(MAX_ADJUST_POINTS, &"é".repeat(MAX_ADJUST_NOTE), None),
        ] {
            assert!(validate(&ok).is_ok(), "{ok:?}");
        }
        for bad in [
            request(0, "n", None),
            request(MAX_ADJUST_POINTS + 1, "n", None),
            request(-MAX_ADJUST_POINTS - 1, "n", None),
            request(i64::MIN, "n", None),
            request(5, "", None),
            request(5, "   ", None),
            request(5, &"x".repeat(MAX_ADJUST_NOTE + 1), None),
            request(5, "two\nlines", None),
            request(5, "n", Some("")),
            request(5, "n", Some(&"r".repeat(MAX_ADJUST_REFERENCE + 1))),
        ] {
            assert_eq!(
                validate(&bad).unwrap_err().code,
                "invalid_adjustment",
                "{bad:?}"
            );
        }
        let mut key = request(5, "n", None);
        key.idempotency_key = "k".repeat(MAX_KEY + 1);
        assert_eq!(validate(&key).unwrap_err().code, "invalid_idempotency_key");
        key.idempotency_key.clear();
        assert_eq!(validate(&key).unwrap_err().code, "invalid_idempotency_key");
    }

    #[test]
    fn the_card_reads_the_reason_the_note_and_the_reference() {
        assert_eq!(
            structured(&request(5, " Sorry for the wait ", Some("T-42"))).text(),
            "Goodwill: Sorry for the wait (ref. T-42)"
        );
        let debit = structured(&request(-5, "Double credit", None));
        assert_eq!(debit.text(), "Goodwill: Double credit");
        assert_eq!(debit.code, ReasonCode::Adjust);
        assert_eq!(debit.params.adjust_reason.as_deref(), Some("goodwill"));
        assert_eq!(debit.params.note.as_deref(), Some("Double credit"));
    }
}
