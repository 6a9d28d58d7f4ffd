//! Members as an operator manages them: creation, blocking.

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents::{self};

use loyalty_core::{DocKind, card};

/// Card numbers drawn before giving up on finding a free one.
pub(crate) const CARD_NUMBER_ATTEMPTS: usize = 8;

pub(crate) async fn ensure_member(app: &App, member_id: &str) -> Result<(), DomainError> {
    match app.storage.member(member_id).await? {
        Some(_) => Ok(()),
        None => Err(DomainError::not_found("member_not_found", "no such member")),
    }
}

pub(crate) async fn set_blocked(
    app: &App,
    member_id: &str,
    blocked: bool,
) -> Result<(), DomainError> {
    if !app.storage.set_blocked(member_id, blocked).await? {
        return Err(DomainError::not_found("member_not_found", "no such member"));
    }
    let status = if blocked {
        card::CardStatus::Blocked
    } else {
        card::CardStatus::Active
    };
    documents::update(app, member_id, DocKind::Card, |doc| {
        card::set_status(doc, status).map_err(|e| DomainError::internal("card status", e))
    })
    .await?;
    tracing::info!(member = %member_id, blocked, "card status changed");
    Ok(())
}
