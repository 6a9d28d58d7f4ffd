//! The member's history for the operator's one window (`crate::service::history`): the whole
//! ledger a page at a time, and the member's devices with when each was last seen.

use std::sync::Arc;

use axum::extract::{Path, State};
use loyalty_core::api::history::{DeviceView, LedgerPage};
use loyalty_core::api::paths;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, NotFound, Refusals};
use crate::http::query::Query;
use crate::service::history;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// The previous page's `next`: movements older than its last.
    #[serde(default)]
    before: Option<String>,
    /// At most this many (1 to 500; 50 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The member's whole ledger, newest first, a page at a time: every movement with its reason,
/// rule, when pending points become available, and the posting, till and receipt it came from.
#[utoipa::path(
    get,
    path = paths::ADMIN_MEMBER_LEDGER,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$"), LedgerQuery),
    responses((status = 200, body = LedgerPage), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn member_ledger(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    Query(q): Query<LedgerQuery>,
) -> Result<Json<LedgerPage>, ApiError> {
    let page = history::ledger(&app, &member_id, q.before.as_deref(), q.limit).await?;
    Ok(Json(page))
}

/// The member's devices, revoked ones too, oldest first: name, when enrolled, when revoked, and
/// when last seen (to within five minutes).
#[utoipa::path(
    get,
    path = paths::ADMIN_MEMBER_DEVICES,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    responses((status = 200, body = Vec<DeviceView>), Refusals, Authentication, NotFound),
    security(("operator" = []))
)]
pub async fn member_devices(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    Ok(Json(history::devices(&app, &member_id).await?))
}
