//! The providers' route: a gateway behind the signed webhook posts delivery receipts back
//! (`crate::service::receipts`). No bearer token: the receipt is authenticated by its HMAC
//! signature under the webhook's secret, and a wrong one counts against the sender's address as
//! a wrong token does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use loyalty_core::api::{DeliveryReceipt, ReceiptRecorded, paths};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::guard::Attempt;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Conflict, NotFound, Refusals};
use crate::service::receipts::{self, SignedReceipt};

/// Records a provider's delivery receipt: the delivery it accepted arrived (`delivered`) or did
/// not (`failed`, with its reason). Signed as the webhook's own requests are.
#[utoipa::path(
    post,
    path = paths::OUTBOUND_RECEIPTS,
    tag = "outbound",
    params(
        ("Loyalty-Timestamp" = String, Header, description = "Unix seconds when the receipt was signed (within 5 minutes of the server's clock)"),
        ("Loyalty-Signature" = String, Header, description = "`v1=` and the lower-case hex HMAC-SHA256, under the webhook's secret, of the timestamp, a `.` and the body")
    ),
    request_body = DeliveryReceipt,
    responses(
        (status = 200, body = ReceiptRecorded),
        Refusals, Authentication, NotFound, Conflict
    )
)]
pub async fn receipt(
    State(app): State<Arc<App>>,
    attempt: Attempt,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReceiptRecorded>, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let signed = SignedReceipt {
        timestamp: header("loyalty-timestamp"),
        signature: header("loyalty-signature"),
        body: &body,
    };
    receipts::record(&app, signed)
        .await
        .map(Json)
        .map_err(|e| attempt.failed(e.into()))
}

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(receipt))
}
