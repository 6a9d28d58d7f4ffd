//! The operators' reports (`crate::service::reports`), as JSON or, with `format=csv`, as CSV for
//! a spreadsheet.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use loyalty_core::api::paths;
use loyalty_core::api::reports::LiabilityReport;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Refusals};
use crate::service::reports;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The programme's outstanding points: available, pending and expiring within 30/60/90 days, in
/// points and at the redemption value.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_LIABILITY,
    tag = "admin",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or with format=csv the rows measure,points,value_minor",
            content((LiabilityReport = "application/json"), (String = "text/csv"))),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn liability(
    State(app): State<Arc<App>>,
    _: Operator,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
    let report = reports::liability(&app).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"liability.csv\"",
                ),
            ],
            report.to_csv(),
        )
            .into_response()),
        Some(_) => Err(ApiError::bad_request(
            "malformed_query",
            "format must be json or csv",
        )),
    }
}
