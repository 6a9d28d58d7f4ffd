//! The operator's programme routes: the configuration, a member's tier, settling now.

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, NotFound, Refusals};
use crate::jobs::settle::{SettleReport, settle};
use crate::service::programme as service;
use axum::extract::{Path, State};
use loyalty_core::api::SetTier;
use loyalty_core::api::paths;
use loyalty_core::programme::Programme;
use std::sync::Arc;

/// The programme: earning rules, points policy and tiers (`docs/programme.md`).
#[utoipa::path(
    get,
    path = paths::ADMIN_PROGRAMME,
    tag = "admin",
    responses(
        (status = 200, body = Programme),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn get_programme(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<Programme>, ApiError> {
    Ok(Json((*app.programme().await?).clone()))
}

/// Replaces the programme.
#[utoipa::path(
    put,
    path = paths::ADMIN_PROGRAMME,
    tag = "admin",
    request_body = Programme,
    responses(
        (status = 200, description = "The programme now in force", body = Programme),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn put_programme(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<Programme>, ApiError>,
) -> Result<Json<Programme>, ApiError> {
    let Json(programme) = body?;
    Ok(Json(service::replace(&app, programme).await?))
}

/// Pins the member's tier (`{"tier": "gold"}`) or hands them back to the ladder (`{"tier": null}`).
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_TIER,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = SetTier,
    responses(
        (status = 200, description = "The tier posting", body = loyalty_core::api::PostingResponse),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn set_tier(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Json<SetTier>, ApiError>,
) -> Result<Json<loyalty_core::api::PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(
        service::set_tier(&app, &member_id, request.tier).await?,
    ))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_PROGRAMME_SETTLE,
    tag = "admin",
    responses(
        (status = 200, body = SettleReport),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
/// Runs the settle job now and reports what it did.
pub async fn settle_now(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<SettleReport>, ApiError> {
    Ok(Json(settle(&app).await?))
}
