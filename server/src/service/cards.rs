//! Serving a shopper without the app (`docs/programme.md`, "Cards without the app"): a till
//! identifies the member by a card number (their own, printed; or a plastic card linked to them;
//! a QR code or the number typed), which anyone could copy, so the session it opens may earn but redeems only as the
//! programme's card policy allows — by default after the member's PIN is entered at the till. The
//! member sets the PIN from the app; it is kept as a salted PBKDF2 hash, and wrong tries lock it
//! (each try is reserved before it is checked, so simultaneous guesses get no more tries).

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use loyalty_core::api::{LinkedCard, LinkedCardStatus, ScanResponse, SessionStanding};
use loyalty_core::card_trust::{PIN_DIGITS, SessionTrust, check_pin};
use loyalty_core::checkout_code::{CodeError, card_number_to_u64, format_card_number};
use loyalty_core::ids::{self, card_number};
use ring::pbkdf2;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::service::checkout_session::{SESSION_MS, open_session, refused, scan_answer};
use crate::storage::{CardLink, CheckoutSession, PinTry};

/// How card sessions' ids begin (the app's code opens `chk_…` sessions).
pub const CARD_SESSION: &str = "crd_";
const PBKDF2_ROUNDS: u32 = 60_000;
const HASH_NAME: &str = "pbkdf2-sha256";

/// Opens a session for a member identified by card number alone; `named` learns the member once
/// the card is known (a refusal is counted against them).
pub async fn scan(
    app: &App,
    till_id: String,
    text: &str,
    named: &mut Option<String>,
) -> Result<ScanResponse, DomainError> {
    let programme = app.programme().await?;
    if !programme.cards.scans {
        return Err(refused(
            "card_scans_off",
            "this programme accepts only the app's code at the till",
        ));
    }
    let card_number = card_number_of(text)?;
    let (member, status) = app
        .storage
        .card_holder(&card_number)
        .await?
        .ok_or_else(|| refused("unknown_card", "no member has this card"))?;
    *named = Some(member.member_id.clone());
    if status == LinkedCardStatus::Lost {
        return Err(refused(
            "card_lost",
            "this card was reported lost: the member's points are safe on their account",
        ));
    }
    if member.blocked {
        return Err(refused("card_blocked", "this card is blocked"));
    }
    let now = app.now_ms();
    let session = CheckoutSession {
        session_id: ids::new_record_id("crd"),
        member_id: member.member_id.clone(),
        till_id,
        expires_at_ms: now + SESSION_MS,
    };
    app.storage.open_card_session(&session, now).await?;
    let trust = SessionTrust::Card;
    scan_answer(app, &programme, session, member, card_number, trust).await
}

/// A card number as typed or scanned, in its canonical 16 digits, or why it is not one.
fn card_number_of(text: &str) -> Result<String, DomainError> {
    let number = card_number_to_u64(text).map_err(|e| match e {
        CodeError::BadCheckDigit => refused(
            "bad_check_digit",
            "the card number's check digit is wrong: a digit was mistyped",
        ),
        _ => refused("invalid_card_number", "a card number is 16 digits"),
    })?;
    Ok(format_card_number(number))
}

/// Links a plastic card to the member (from the operator or the member's app); linking it again
/// changes nothing. Answers the member's linked cards.
pub async fn link(app: &App, member_id: &str, text: &str) -> Result<Vec<LinkedCard>, DomainError> {
    let card_number = card_number_of(text)?;
    // The server draws members' own numbers from its prefix: a plastic card from that range could
    // one day be drawn for someone else.
    if card_number.starts_with(&card_number::PREFIX.to_string()) {
        return Err(refused(
            "invalid_card_number",
            format!(
                "numbers beginning {} are the programme's own, not a plastic card's",
                card_number::PREFIX
            ),
        ));
    }
    crate::service::members::ensure_member(app, member_id).await?;
    match app
        .storage
        .link_card(member_id, &card_number, app.now_ms())
        .await?
    {
        CardLink::Linked | CardLink::Already => {}
        CardLink::Taken => {
            return Err(DomainError::new(
                ErrorKind::Conflict,
                "card_taken",
                "this card is another member's, or was reported lost",
            ));
        }
    }
    Ok(app.storage.linked_cards(member_id).await?)
}

/// Marks one of the member's linked cards lost: it opens nothing from now on; their points stay.
pub async fn report_lost(
    app: &App,
    member_id: &str,
    card_number: &str,
) -> Result<Vec<LinkedCard>, DomainError> {
    crate::service::members::ensure_member(app, member_id).await?;
    if !app.storage.report_card_lost(member_id, card_number).await? {
        return Err(DomainError::not_found(
            "card_not_found",
            "the member has no linked card with this number",
        ));
    }
    Ok(app.storage.linked_cards(member_id).await?)
}

/// How far a session is trusted, as a purchase in it needs to know.
pub async fn session_trust(app: &App, session_id: &str) -> Result<SessionTrust, DomainError> {
    if !session_id.starts_with(CARD_SESSION) {
        return Ok(SessionTrust::Code);
    }
    Ok(if app.storage.session_verified(session_id).await? {
        SessionTrust::CardAndPin
    } else {
        SessionTrust::Card
    })
}

/// Refuses a redemption the session's trust does not allow.
pub async fn check_may_redeem(app: &App, session_id: &str) -> Result<(), DomainError> {
    let programme = app.programme().await?;
    if session_trust(app, session_id)
        .await?
        .may_redeem(&programme.cards)
    {
        return Ok(());
    }
    Err(refused(
        "second_factor_required",
        "a card number alone may only earn: redeem with the app's code or the member's PIN",
    ))
}

/// The member sets (or changes) their till PIN.
pub async fn set_pin(app: &App, member_id: &str, pin: &str) -> Result<(), DomainError> {
    check_pin(pin).map_err(|e| DomainError::bad_request("invalid_pin", e.0))?;
    let pin = pin.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_pin(&pin))
        .await
        .map_err(|e| DomainError::internal("pin hash", e))?;
    app.storage.set_pin(member_id, &hash).await?;
    Ok(())
}

/// The member's PIN entered at the till for a session opened by card number.
pub async fn enter_pin(
    app: &App,
    till_id: &str,
    session_id: &str,
    pin: &str,
) -> Result<SessionStanding, DomainError> {
    let programme = app.programme().await?;
    let session = open_session(
        app,
        app.storage.checkout_session(session_id).await?,
        till_id,
    )?;
    let standing = |trust: SessionTrust| SessionStanding {
        session_id: session_id.to_string(),
        trust,
        may_redeem: trust.may_redeem(&programme.cards),
    };
    if !session_id.starts_with(CARD_SESSION) {
        return Ok(standing(SessionTrust::Code));
    }
    if !PIN_DIGITS.contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::bad_request(
            "invalid_pin",
            "a PIN is 4 to 8 digits",
        ));
    }
    let now = app.now_ms();
    let max = programme.cards.pin_attempts;
    let hash = match app
        .storage
        .take_pin_try(&session.member_id, now, max)
        .await?
    {
        PinTry::NoPin => {
            return Err(refused(
                "no_pin",
                "the member has not set a PIN: they can in the app",
            ));
        }
        PinTry::Locked { .. } => {
            return Err(DomainError::new(
                ErrorKind::Refused,
                "pin_locked",
                format!(
                    "too many wrong PINs: locked for up to {} minutes",
                    programme.cards.pin_lock_minutes
                ),
            ));
        }
        PinTry::Check { hash } => hash,
    };
    let pin = pin.to_string();
    let right = tokio::task::spawn_blocking(move || verify_pin(&hash, &pin))
        .await
        .map_err(|e| DomainError::internal("pin check", e))?;
    let locked_until = now + programme.cards.pin_lock_ms();
    app.storage
        .pin_checked(&session.member_id, right, max, locked_until)
        .await?;
    if !right {
        tracing::info!(member = %session.member_id, "wrong PIN at a till");
        return Err(refused("wrong_pin", "the PIN is wrong"));
    }
    app.storage.verify_session(session_id, now).await?;
    Ok(standing(SessionTrust::CardAndPin))
}

fn rounds() -> NonZeroU32 {
    NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN)
}

/// `pbkdf2-sha256$ROUNDS$SALT$HASH`, base64: the parameters travel with the hash, so they can
/// change without a migration.
fn hash_pin(pin: &str) -> String {
    let salt = ids::random_bytes::<16>();
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds(),
        &salt,
        pin.as_bytes(),
        &mut out,
    );
    format!(
        "{HASH_NAME}${PBKDF2_ROUNDS}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

fn verify_pin(stored: &str, pin: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(HASH_NAME), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(rounds), Ok(salt), Ok(hash)) = (
        rounds.parse::<u32>().ok().and_then(NonZeroU32::new),
        STANDARD_NO_PAD.decode(salt),
        STANDARD_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        pin.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_verifies_against_its_salted_hash_only() {
        let stored = hash_pin("4071");
        assert!(stored.starts_with("pbkdf2-sha256$60000$"));
        assert!(verify_pin(&stored, "4071"));
        assert!(!verify_pin(&stored, "4072"));
        assert_ne!(
            hash_pin("4071"),
            stored,
            "salted: the same PIN hashes differently"
        );
        assert!(!verify_pin("pbkdf2-sha256$0$AA$AA", "4071"));
        assert!(!verify_pin("garbage", "4071"));
    }
}
