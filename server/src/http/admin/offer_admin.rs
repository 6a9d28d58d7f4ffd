//! Offers as operators manage them (`crate::service::offer_admin`): the list with each offer's
//! figures, one offer, and ending one early or withdrawing it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use loyalty_core::api::offer_admin::{OfferEnd, OfferRecord, OfferUptake};
use loyalty_core::api::paths;

use crate::http::report_format::{Format, answer};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, NotFound, Refusals};
use crate::http::query::Query;
use crate::service::offer_admin;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OfferQuery {
    /// Only offers that are `upcoming`, `active`, `ended` or `withdrawn` now.
    #[serde(default)]
    #[param(pattern = "^(upcoming|active|ended|withdrawn)$")]
    status: Option<String>,
    /// The page after this offer id (the last of the previous page).
    #[serde(default)]
    after: Option<String>,
    /// At most this many (1 to 200; 50 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Offers in id order, a page at a time, each with its target, status and figures: members
/// reached, members who activated it, members who used it and its uses.
#[utoipa::path(
    get,
    path = paths::ADMIN_OFFERS,
    tag = "admin",
    params(OfferQuery),
    responses((status = 200, body = Vec<OfferRecord>), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn list_offers(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<OfferQuery>,
) -> Result<Json<Vec<OfferRecord>>, ApiError> {
    let list = offer_admin::list(&app, q.status.as_deref(), q.after, q.limit).await?;
    Ok(Json(list))
}

/// One offer with its target, status and figures.
#[utoipa::path(
    get,
    path = paths::ADMIN_OFFER,
    tag = "admin",
    params(("offer_id" = String, Path, description = "The offer")),
    responses((status = 200, body = OfferRecord), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn show_offer(
    State(app): State<Arc<App>>,
    Path(offer_id): Path<String>,
    _: Operator,
) -> Result<Json<OfferRecord>, ApiError> {
    Ok(Json(offer_admin::show(&app, &offer_id).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UptakeQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// The offer's uptake in every segment: members, reached, activated, used by, uses.
#[utoipa::path(
    get,
    path = paths::ADMIN_OFFER_UPTAKE,
    tag = "admin",
    params(("offer_id" = String, Path, description = "The offer"), UptakeQuery),
    responses(
        (status = 200, description = "The uptake: JSON, or with format=csv the rows segment_id,name,members,reached,activated,used_by,uses",
            content((OfferUptake = "application/json"), (String = "text/csv"))),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn offer_uptake(
    State(app): State<Arc<App>>,
    Path(offer_id): Path<String>,
    _: Operator,
    Query(q): Query<UptakeQuery>,
) -> Result<Response, ApiError> {
    let uptake = offer_admin::uptake(&app, &offer_id).await?;
    answer(q.format, uptake, OfferUptake::to_csv, "uptake.csv")
}

/// Ends the offer now: tills stop applying it at once, members see it ended at their next sync.
/// An offer already over is left as it is.
#[utoipa::path(
    post,
    path = paths::ADMIN_OFFER_END,
    tag = "admin",
    params(("offer_id" = String, Path, description = "The offer")),
    responses((status = 200, body = OfferRecord), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn end_offer(
    State(app): State<Arc<App>>,
    Path(offer_id): Path<String>,
    _: Operator,
) -> Result<Json<OfferRecord>, ApiError> {
    Ok(Json(
        offer_admin::end(&app, &offer_id, OfferEnd::End).await?,
    ))
}

/// Withdraws the offer: tills stop applying it at once, and it leaves members' phones at their
/// next sync (for an offer published by mistake). Withdrawing again changes nothing.
#[utoipa::path(
    post,
    path = paths::ADMIN_OFFER_WITHDRAW,
    tag = "admin",
    params(("offer_id" = String, Path, description = "The offer")),
    responses((status = 200, body = OfferRecord), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn withdraw_offer(
    State(app): State<Arc<App>>,
    Path(offer_id): Path<String>,
    _: Operator,
) -> Result<Json<OfferRecord>, ApiError> {
    Ok(Json(
        offer_admin::end(&app, &offer_id, OfferEnd::Withdraw).await?,
    ))
}
