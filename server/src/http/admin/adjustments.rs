//! The operator's route for adjusting a member's points by hand; the rules are
//! `crate::service::adjustments`.

use std::sync::Arc;

use axum::extract::{Path, State};
use loyalty_core::api::{AdjustPoints, PostingResponse, paths};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Conflict, NotFound, Refusals};
use crate::service::{adjustments, operators};

/// Credits (`points` > 0) or debits (`points` < 0) the member's points, with a reason the member's
/// card shows; a debit never takes the balance below zero. Safe to retry with the same key.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_ADJUSTMENTS,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = AdjustPoints,
    responses(
        (status = 200, description = "The adjustment's posting", body = PostingResponse),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
pub async fn adjust(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    operator: Operator,
    body: Result<Json<AdjustPoints>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    operators::may_adjust(
        &operator.identity,
        request.points,
        app.config.support_adjust_limit,
    )?;
    Ok(Json(
        adjustments::adjust(&app, &member_id, &operator.id, request).await?,
    ))
}
