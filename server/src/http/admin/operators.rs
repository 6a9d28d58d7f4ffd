//! The operator accounts and the audit log (admin only; `crate::service::operators`).

use std::sync::Arc;

use axum::extract::{Path, State};
use loyalty_core::api::{AuditEntry, CreatedOperator, NewOperator, OperatorAccount, paths};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, NotFound, Refusals};
use crate::http::query::Query;
use crate::service::operators;

/// Every operator account, oldest first (tokens are never shown again).
#[utoipa::path(
    get,
    path = paths::ADMIN_OPERATORS,
    tag = "admin",
    responses((status = 200, body = Vec<OperatorAccount>), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn list_operators(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<Vec<OperatorAccount>>, ApiError> {
    Ok(Json(operators::list(&app).await?))
}

/// Creates a named operator account with a role; the answer holds its token, this once.
#[utoipa::path(
    post,
    path = paths::ADMIN_OPERATORS,
    tag = "admin",
    request_body = NewOperator,
    responses((status = 200, body = CreatedOperator), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn create_operator(
    State(app): State<Arc<App>>,
    operator: Operator,
    body: Result<Json<NewOperator>, ApiError>,
) -> Result<Json<CreatedOperator>, ApiError> {
    let Json(request) = body?;
    Ok(Json(
        operators::create(&app, &operator.identity, request).await?,
    ))
}

/// Disables an account: its token is refused from the next request on.
#[utoipa::path(
    post,
    path = paths::ADMIN_OPERATOR_DISABLE,
    tag = "admin",
    params(("operator_id" = String, Path, description = "The account")),
    responses((status = 204, description = "Disabled (again: no change)"), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn disable_operator(
    State(app): State<Arc<App>>,
    Path(operator_id): Path<String>,
    operator: Operator,
) -> Result<axum::http::StatusCode, ApiError> {
    operators::disable(&app, &operator.identity, &operator_id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this operator's writes.
    #[serde(default)]
    operator_id: Option<String>,
    /// Only entries older than this id: the next page.
    #[serde(default)]
    before: Option<i64>,
    /// At most this many (1 to 500; 100 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Every operator write, newest first: who, what, which, when, from where, and its status.
#[utoipa::path(
    get,
    path = paths::ADMIN_AUDIT,
    tag = "admin",
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn audit(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(
        operators::audit(&app, q.operator_id, q.before, q.limit).await?,
    ))
}
