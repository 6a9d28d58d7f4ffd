//! The till's routes: scan a checkout code, post a purchase, post a refund (`crate::service::checkout`);
//! read the key feed and flush a purchase made offline (`crate::service::offline`). Each
//! authenticates the till from the request head, reads the body strictly, and calls the service.

use loyalty_core::api::paths;
use std::sync::Arc;

use axum::extract::State;
use loyalty_core::api::{
    PostingResponse, PurchaseRequest, RefundRequest, ScanRequest, ScanResponse,
};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Till;
use crate::http::json::Json;
use crate::http::openapi::{
    Authentication, Conflict, Forbidden, Gone, NotFound, Refusals, Unprocessable,
};
use crate::http::query::Query;
use crate::service::{checkout, offline};
use loyalty_core::api::offline::{KeyFeed, OfflinePurchaseRequest};
use loyalty_core::api::{PinEntry, SessionStanding};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Reads a member's checkout code and opens a checkout session for the purchase that follows.
#[utoipa::path(
    post,
    path = paths::TILL_SCAN,
    tag = "till",
    params(TillId),
    request_body = ScanRequest,
    responses(
        (status = 200, body = ScanResponse),
        Refusals, Authentication, NotFound, Unprocessable
    ),
    security(("till" = []))
)]
pub async fn scan(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<ScanRequest>, ApiError>,
) -> Result<Json<ScanResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::scan(&app, till_id, request).await?))
}

/// Posts a purchase: points earned and spent, offers applied. Safe to retry with the same key.
#[utoipa::path(
    post,
    path = paths::TILL_PURCHASES,
    tag = "till",
    params(TillId),
    request_body = PurchaseRequest,
    responses(
        (status = 200, body = PostingResponse),
        Refusals, Authentication, NotFound, Conflict, Gone, Unprocessable
    ),
    security(("till" = []))
)]
pub async fn purchase(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<PurchaseRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::purchase(&app, till_id, request).await?))
}

/// Gives back part or all of a purchase. Safe to retry with the same key.
#[utoipa::path(
    post,
    path = paths::TILL_REFUNDS,
    tag = "till",
    params(TillId),
    request_body = RefundRequest,
    responses(
        (status = 200, body = PostingResponse),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("till" = []))
)]
pub async fn refund(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<RefundRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::refund(&app, till_id, request).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyFeedQuery {
    /// The `cursor` of the till's last page; 0 (or absent) for everything.
    #[serde(default)]
    since: u64,
    /// Changes per page: 1 to 10000, 1000 when absent.
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// The device keys and card status changed since the till's cursor, for checking codes offline
/// (`docs/checkout-code.md` §9).
#[utoipa::path(
    get,
    path = paths::TILL_KEYS,
    tag = "till",
    params(TillId, KeyFeedQuery),
    responses((status = 200, body = KeyFeed), Refusals, Authentication),
    security(("till" = []))
)]
pub async fn keys(
    State(app): State<Arc<App>>,
    _: Till,
    Query(q): Query<KeyFeedQuery>,
) -> Result<Json<KeyFeed>, ApiError> {
    Ok(Json(offline::key_feed(&app, q.since, q.limit).await?))
}

/// Posts a purchase the till made while it could not reach the server. Safe to retry with the
/// same key; a code another till used first is refused and recorded for operators.
#[utoipa::path(
    post,
    path = paths::TILL_OFFLINE_PURCHASES,
    tag = "till",
    params(TillId),
    request_body = OfflinePurchaseRequest,
    responses(
        (status = 200, body = PostingResponse),
        Refusals, Authentication, Conflict, Unprocessable
    ),
    security(("till" = []))
)]
pub async fn offline_purchase(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<OfflinePurchaseRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(offline::purchase(&app, till_id, request).await?))
}

/// The member's PIN, entered at the till for a session opened by card number: with it the session
/// may redeem. Wrong PINs lock after the programme's number of tries.
#[utoipa::path(
    post,
    path = paths::TILL_SESSION_PIN,
    tag = "till",
    params(TillId, ("session_id" = String, Path, description = "The session the card scan opened")),
    request_body = PinEntry,
    responses(
        (status = 200, body = SessionStanding),
        Refusals, Authentication, Forbidden, NotFound, Gone, Unprocessable
    ),
    security(("till" = []))
)]
pub async fn session_pin(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    axum::extract::Path(session_id): axum::extract::Path<String>,
    body: Result<Json<PinEntry>, ApiError>,
) -> Result<Json<SessionStanding>, ApiError> {
    let Json(entry) = body?;
    Ok(Json(
        crate::service::cards::enter_pin(&app, &till_id, &session_id, &entry.pin).await?,
    ))
}

/// The till's routes.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(scan))
        .routes(routes!(purchase))
        .routes(routes!(refund))
        .routes(routes!(keys))
        .routes(routes!(offline_purchase))
        .routes(routes!(session_pin))
}

/// The till's id, which the ledger records with every movement (documentation of the header the
/// [`Till`] extractor reads).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct TillId {
    /// 1-64 of `A-Z a-z 0-9 _ - .`; missing or malformed: `400 missing_till_id`.
    #[serde(rename = "X-Till-Id")]
    #[param(pattern = r"^[A-Za-z0-9_.\-]{1,64}$")]
    x_till_id: String,
}
