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
use crate::service::checkout;

pub async fn scan(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<ScanRequest>, ApiError>,
) -> Result<Json<ScanResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::scan(&app, till_id, request).await?))
}

pub async fn purchase(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<PurchaseRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::purchase(&app, till_id, request).await?))
}

pub async fn refund(
    State(app): State<Arc<App>>,
    Till { till_id }: Till,
    body: Result<Json<RefundRequest>, ApiError>,
) -> Result<Json<PostingResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(checkout::refund(&app, till_id, request).await?))
}

/// The till's routes.
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::post;
    axum::Router::new()
        .route(paths::TILL_SCAN, post(scan))
        .route(paths::TILL_PURCHASES, post(purchase))
        .route(paths::TILL_REFUNDS, post(refund))
}
