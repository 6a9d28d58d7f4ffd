//! The checkout session a scan opens, whatever was scanned (the app's signed code in
//! `crate::service::checkout`, a card number in `crate::service::cards`): how long it stays open,
//! the shape of a refused scan, the session a purchase may use, and the one answer a scan gives
//! with the cashier's prompts.

use loyalty_core::api::ScanResponse;
use loyalty_core::calendar::DAY_MS;
use loyalty_core::checkout_code::CodeError;
use loyalty_core::programme::Programme;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::storage::CheckoutSession;

/// How long a scan's session stays open for its purchase.
pub(crate) const SESSION_MS: i64 = 10 * 60 * 1000;
/// Time steps of clock skew tolerated either side of the server's.
pub(crate) const SKEW_STEPS: u32 = 1;

/// A refused scan (`422` over HTTP) under the refusal's own code.
pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::new(ErrorKind::Refused, code, message)
}

/// A code refused by the core's checks, under the name the core gives it (one table for the server
/// and offline tills: `loyalty_core::offline::refusal_code`).
pub(crate) fn code_refusal(e: CodeError) -> DomainError {
    let code = loyalty_core::offline::refusal_code(&e);
    let message = match code {
        "bad_signature" => "the code's signature does not verify: a forged or altered code".into(),
        "unsafe_key" => "the key registered for this card is one anyone could sign for: the device must enroll again".into(),
        "code_expired" => "the code has expired: ask the member to show the current one".into(),
        "code_not_yet_valid" => "the code is from the future: the phone's clock is far off".into(),
        _ => format!("not a checkout code: {e}"),
    };
    refused(code, message)
}

/// The session a purchase names, if it is this till's and still open.
pub(crate) fn open_session(
    app: &App,
    session: Option<CheckoutSession>,
    till_id: &str,
) -> Result<CheckoutSession, DomainError> {
    let session = session.ok_or_else(|| {
        DomainError::not_found(
            "session_not_found",
            "no such checkout session: scan the member's code first",
        )
    })?;
    if session.till_id != till_id {
        return Err(DomainError::forbidden(
            "the checkout session belongs to another till",
        ));
    }
    if app.now_ms() >= session.expires_at_ms {
        return Err(DomainError::new(
            ErrorKind::Gone,
            "session_expired",
            "the checkout session has expired: scan again",
        ));
    }
    Ok(session)
}

/// The answer to a scan that opened `session`, with the cashier's prompts: one shape for the
/// app's code and for a card number.
pub(crate) async fn scan_answer(
    app: &App,
    programme: &Programme,
    session: CheckoutSession,
    member: crate::storage::TillMember,
    card_number: String,
    trust: loyalty_core::card_trust::SessionTrust,
) -> Result<ScanResponse, DomainError> {
    let prompts = scan_prompts(app, programme, &member.member_id, app.now_ms()).await?;
    Ok(ScanResponse {
        session_id: session.session_id,
        session_expires_at_ms: session.expires_at_ms,
        member_id: member.member_id,
        card_number,
        tier: member.tier,
        balance: member.balance,
        balance_value_minor: programme.redemption.worth(member.balance),
        prompts,
        trust,
        may_redeem: trust.may_redeem(&programme.cards),
    })
}

/// The cashier's prompts at a scan, from the member's book with their offers.
async fn scan_prompts(
    app: &App,
    programme: &Programme,
    member_id: &str,
    now: i64,
) -> Result<Vec<String>, DomainError> {
    let window_start = now.saturating_sub(programme.tiers.window_days * DAY_MS);
    let Some(book) = app
        .storage
        .member_book(member_id, programme.tiers.metric, window_start, Some(now))
        .await?
    else {
        return Ok(Vec::new());
    };
    let lots = loyalty_core::lots::Book::new(book.lots);
    let standing = crate::service::prompts::Standing {
        programme,
        tier: &book.state.tier,
        book: &lots,
        qualifying: book.qualifying,
        now_ms: now,
    };
    Ok(crate::service::prompts::at_scan(&standing, &book.offers))
}
