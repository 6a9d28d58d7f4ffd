//! The till's routes: scan a checkout code, post a purchase, post a refund. Each authenticates the
//! till from the request head, reads the body strictly, and calls `crate::service::checkout`.

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
use crate::http::openapi::{Authentication, Conflict, Gone, NotFound, Refusals, Unprocessable};
use crate::service::checkout;
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
        Refusals, Authentication, NotFound, Conflict, Gone
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

/// The till's routes.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(scan))
        .routes(routes!(purchase))
        .routes(routes!(refund))
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
