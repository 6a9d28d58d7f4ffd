//! The operations endpoints: `/readyz` (readiness, [`crate::service::health`]) and `/metrics`
//! (Prometheus text, [`crate::metrics`], behind the metrics token). `/healthz` is in
//! [`super`]: it needs nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use loyalty_core::api::{Readiness, paths};

use crate::app::App;
use crate::http::extract::MetricsScraper;
use crate::http::openapi::Authentication;

/// `Retry-After` of a `503` from `/readyz`: a probe asks again on its own schedule; this tells a
/// person or a script when it is worth asking.
const NOT_READY_RETRY_S: u64 = 5;

/// Readiness: `200` when the database answers at this binary's schema version and the server is
/// not shutting down; `503` with `Retry-After` otherwise. Both carry every check.
#[utoipa::path(
    get,
    path = paths::READYZ,
    tag = "service",
    responses(
        (status = 200, description = "Ready: every check passed", body = Readiness),
        (status = 503, description = "Not ready: the checks say which failed", body = Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again")))
    )
)]
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let readiness = crate::service::health::readiness(&app).await;
    if readiness.ready {
        return (StatusCode::OK, axum::Json(readiness)).into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, NOT_READY_RETRY_S)],
        axum::Json(readiness),
    )
        .into_response()
}

/// Prometheus metrics in the text exposition format; the gauges that are a read of state (open
/// long polls, the database pool) are read now.
#[utoipa::path(
    get,
    path = paths::METRICS,
    tag = "service",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain; version=0.0.4"),
        Authentication
    ),
    security(("metrics" = []))
)]
pub async fn metrics(State(app): State<Arc<App>>, _: MetricsScraper) -> Response {
    use crate::metrics::{DB_POOL_AVAILABLE, DB_POOL_SIZE, LONG_POLLS};
    metrics::gauge!(LONG_POLLS).set(app.live.open_polls() as f64);
    if let Some(pool) = app.storage.pool_status() {
        metrics::gauge!(DB_POOL_SIZE).set(pool.size as f64);
        metrics::gauge!(DB_POOL_AVAILABLE).set(pool.available as f64);
    }
    let text = crate::metrics::handle()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
