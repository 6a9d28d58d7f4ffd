//! The operator's routes for plastic cards: link one to a member, report one lost (the member's
//! points stay with them; a new card is linked the same way).

use std::sync::Arc;

use axum::extract::{Path, State};
use loyalty_core::api::{LinkCard, LinkedCard, paths};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Conflict, NotFound, Refusals, Unprocessable};
use crate::service::cards;

/// Links a plastic card to the member: scanned at a till, it opens a card session for them.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_CARDS,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = LinkCard,
    responses(
        (status = 200, body = Vec<LinkedCard>, description = "The member's linked cards"),
        Refusals, Authentication, NotFound, Conflict, Unprocessable
    ),
    security(("operator" = []))
)]
pub async fn link(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Json<LinkCard>, ApiError>,
) -> Result<Json<Vec<LinkedCard>>, ApiError> {
    let Json(request) = body?;
    Ok(Json(
        cards::link(&app, &member_id, &request.card_number).await?,
    ))
}

/// Reports one of the member's linked cards lost: it opens nothing from now on.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_CARD_LOST,
    tag = "admin",
    params(
        ("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$"),
        ("card_number" = String, Path, description = "The linked card's 16 digits")
    ),
    responses(
        (status = 200, body = Vec<LinkedCard>, description = "The member's linked cards"),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn lost(
    State(app): State<Arc<App>>,
    Path((member_id, card_number)): Path<(String, String)>,
    _: Operator,
) -> Result<Json<Vec<LinkedCard>>, ApiError> {
    Ok(Json(
        cards::report_lost(&app, &member_id, &card_number).await?,
    ))
}
