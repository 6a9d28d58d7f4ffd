//! The operator's view of what offline tills' flushes could not do as the till did it.

use std::sync::Arc;

use axum::extract::State;
use loyalty_core::api::offline::TillExceptions;
use loyalty_core::api::paths;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Refusals};
use crate::http::query::Query;
use crate::service::offline;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExceptionsQuery {
    /// At most this many (1 to 1000; 100 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Reused codes, redemption shortfalls and refused postings from offline tills, newest first.
#[utoipa::path(
    get,
    path = paths::ADMIN_TILL_EXCEPTIONS,
    tag = "admin",
    params(ExceptionsQuery),
    responses((status = 200, body = TillExceptions), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn till_exceptions(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<ExceptionsQuery>,
) -> Result<Json<TillExceptions>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(TillExceptions {
        exceptions: offline::exceptions(&app, limit).await?,
    }))
}
