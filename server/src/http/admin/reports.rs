//! The operators' reports (`crate::service::reports`): points liability, points activity, members
//! and message deliveries, as JSON or, with `format=csv`, as CSV for a spreadsheet.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use loyalty_core::api::paths;
use loyalty_core::api::reports::{
    DeliveryReport, LiabilityReport, MembersReport, PointsActivity, SegmentsReport,
};
use loyalty_core::api::watch_list::{WatchList, WatchOrder};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::openapi::{Authentication, NotFound, Refusals};
use crate::http::query::Query;
use crate::http::report_format::{Format, answer};
use crate::service::reports;
use crate::service::watch::{self, WatchRequest};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
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
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let report = reports::liability(&app).await?;
    answer(q.format, report, LiabilityReport::to_csv, "liability.csv")
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// One send; without it, the sends created in the period.
    #[serde(default)]
    message_id: Option<String>,
    /// The period's start (ms since the epoch; default 30 days before its end).
    #[serde(default)]
    from_ms: Option<i64>,
    /// The period's end, exclusive (default now).
    #[serde(default)]
    to_ms: Option<i64>,
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// What became of one send, or of the sends of a period: deliveries by channel, status and
/// reason, consent refusals among them.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_DELIVERIES,
    tag = "admin",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "The report: JSON, or with format=csv the rows channel,status,reason,count",
            content((DeliveryReport = "application/json"), (String = "text/csv"))),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn deliveries(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<DeliveryQuery>,
) -> Result<Response, ApiError> {
    let report = reports::deliveries(&app, q.message_id, q.from_ms, q.to_ms).await?;
    answer(q.format, report, DeliveryReport::to_csv, "deliveries.csv")
}

/// The members now: by tier, blocked, newly enrolled, active in the last 30 and 90 days, and the
/// repeat purchase rate.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_MEMBERS,
    tag = "admin",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or with format=csv the rows measure,value",
            content((MembersReport = "application/json"), (String = "text/csv"))),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn members(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let report = reports::members(&app).await?;
    answer(q.format, report, MembersReport::to_csv, "members.csv")
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PointsQuery {
    /// `day`, `week` (from Monday) or `month` (the default), in UTC.
    #[serde(default)]
    #[param(pattern = "^(day|week|month)$")]
    period: Option<String>,
    /// The window's start (ms since the epoch; default 365 days before its end).
    #[serde(default)]
    from_ms: Option<i64>,
    /// The window's end, exclusive (default now); at most 3660 days after its start.
    #[serde(default)]
    to_ms: Option<i64>,
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// Points earned, redeemed, expired, refunded and adjusted per day, week or month, with the
/// window's redemption and breakage rates.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_POINTS,
    tag = "admin",
    params(PointsQuery),
    responses(
        (status = 200, description = "The report: JSON, or with format=csv the rows period_start,earned,redeemed,expired,refunded,adjusted",
            content((PointsActivity = "application/json"), (String = "text/csv"))),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn points(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<PointsQuery>,
) -> Result<Response, ApiError> {
    let report = reports::points_activity(&app, q.period.as_deref(), q.from_ms, q.to_ms).await?;
    answer(q.format, report, PointsActivity::to_csv, "points.csv")
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SegmentsQuery {
    /// Recomputes shown per segment, newest first (default 10, at most 100).
    #[serde(default)]
    runs: Option<u32>,
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// Every segment's size now and at its latest recomputes, with how many members joined and
/// departed at each (the migration between two recomputes), and the members per RFM score.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_SEGMENTS,
    tag = "admin",
    params(SegmentsQuery),
    responses(
        (status = 200, description = "The report: JSON, or with format=csv the rows row,id,computed_at_ms,members,joined,departed",
            content((SegmentsReport = "application/json"), (String = "text/csv"))),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn segments(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<SegmentsQuery>,
) -> Result<Response, ApiError> {
    let report = reports::segments(&app, q.runs).await?;
    answer(q.format, report, SegmentsReport::to_csv, "segments.csv")
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// What members and tills are ranked by: `purchases` (the default), `redeemed` (points),
    /// `refunds` or `refused_codes`.
    #[serde(default)]
    #[param(inline)]
    by: Option<WatchOrder>,
    /// The window's start (ms since the epoch; default 7 days before its end).
    #[serde(default)]
    from_ms: Option<i64>,
    /// The window's end, exclusive (default now); at most 92 days after its start.
    #[serde(default)]
    to_ms: Option<i64>,
    /// Members and tills listed (default 20, at most 200).
    #[serde(default)]
    limit: Option<u32>,
    /// Members with at least this many live devices are listed (default 3, 2 to 1000).
    #[serde(default)]
    min_devices: Option<i64>,
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// The fraud watch list: members and tills ranked by purchases, points redeemed, refunds or
/// refused codes over a window, with their refund rates and offline exceptions; members with many
/// live devices; refused codes and offline exceptions by reason.
#[utoipa::path(
    get,
    path = paths::ADMIN_REPORT_WATCH,
    tag = "admin",
    params(WatchQuery),
    responses(
        (status = 200, description = "The list: JSON, or with format=csv the rows list,id,card_number,purchases,redemptions,points_redeemed,refunds,refund_rate,refused_codes,offline_exceptions,devices",
            content((WatchList = "application/json"), (String = "text/csv"))),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn watch(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    let request = WatchRequest {
        by: q.by,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        limit: q.limit,
        min_devices: q.min_devices,
    };
    let list = watch::watch_list(&app, request).await?;
    answer(q.format, list, WatchList::to_csv, "watch.csv")
}
