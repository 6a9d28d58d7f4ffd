//! Members as an operator manages them: creation, blocking.

use crate::app::App;
use crate::http::error::ApiError;
use crate::projection::documents::{self};
use axum::http::StatusCode;
use loyalty_core::{DocKind, card};

/// Card numbers drawn before giving up on finding a free one.
pub(crate) const CARD_NUMBER_ATTEMPTS: usize = 8;

pub(crate) async fn ensure_member(app: &App, member_id: &str) -> Result<(), ApiError> {
    match app.storage.member(member_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("member_not_found", "no such member")),
    }
}

pub(crate) async fn set_blocked(
    app: &App,
    member_id: &str,
    blocked: bool,
) -> Result<StatusCode, ApiError> {
    if !app.storage.set_blocked(member_id, blocked).await? {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    let status = if blocked {
        card::CardStatus::Blocked
    } else {
        card::CardStatus::Active
    };
    documents::update(app, member_id, DocKind::Card, |doc| {
        card::set_status(doc, status).map_err(|e| ApiError::internal("card status", e))
    })
    .await?;
    tracing::info!(member = %member_id, blocked, "card status changed");
    Ok(StatusCode::NO_CONTENT)
}
