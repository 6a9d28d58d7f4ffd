//! The HTTP layer: the router (one per area: [`device`], [`till`], [`admin`]), the edge's limits,
//! the extractors that authenticate from the request head, our JSON body, and the error body.
//! Handlers decode a request, call the domain ([`crate::service`]), and encode its answer; no
//! module outside this one names axum. Each handler's `#[utoipa::path]` annotation gives its path
//! (from [`loyalty_core::api::paths`]) and methods, and utoipa-axum mounts it there while building
//! the OpenAPI document ([`openapi`]) from the same annotations: the router and the document are
//! one list, and cannot disagree.

pub mod access;
pub mod admin;
pub mod audit;
pub mod body_timeout;
pub mod console;
pub mod console_session;
pub mod device;
pub mod edge;
pub mod error;
pub mod extract;
pub mod guard;
pub mod json;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod receipts;
pub mod report_format;
pub mod till;

use loyalty_core::api::paths;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use error::ApiError;

/// Every route, with the request limits of [`edge`]. Serve it with [`serve`] (which adds the
/// connection limits and records each client's address for the rate limits); an embedder serving
/// it otherwise gets no per-address rate limits unless it records `ConnectInfo<SocketAddr>`.
pub fn router(app: Arc<App>) -> Router {
    let guard = Arc::new(guard::Guard::new(&app.config.edge));
    router_guarded(app, guard)
}

/// [`router`] with the per-address limits given, so [`serve`] can keep them tidy.
fn router_guarded(app: Arc<App>, guard: Arc<guard::Guard>) -> Router {
    let limit = app.config.max_body_bytes;
    let edge = app.config.edge.clone();
    let body_read_timeout = edge.body_read_timeout;
    let Routes {
        limited,
        waiting,
        document,
    } = routes();
    let document = openapi::Document::new(&document);
    // Installed before the first request, so the first scrape already has every series.
    let _ = crate::metrics::handle();
    // One stack, outermost first, given to the router as one layer: axum wraps each route in a
    // boxed service once per `layer` call, and per request clones each box and boxes its future;
    // one call instead of seven saved a "nothing changed" about 8,700 instructions
    // (docs/benchmarks.md).
    // The body's read timeout comes last: the middleware functions take axum's own body type.
    let around_every_route = tower::ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(Extension(guard))
        .layer(Extension(document))
        .layer(DefaultBodyLimit::max(limit))
        // Outside the limits: counts and logs what they refused too.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            observe::observe,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            audit::audit_writes,
        ))
        .layer(tower::util::MapRequestLayer::new(
            move |request: axum::extract::Request| {
                request.map(|body| body_timeout::TimeoutBody::new(body_read_timeout, body))
            },
        ));
    edge::limited(limited, &edge)
        .merge(waiting)
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint") })
        .layer(around_every_route)
        .with_state(app)
}

/// The OpenAPI 3.1 document of every route [`router`] mounts (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().document
}

/// The routes, in two groups, and the document of both.
struct Routes {
    /// Under the request limits of [`edge::limited`].
    limited: Router<Arc<App>>,
    /// Long polls wait by design: bounded per device and by the connection limit, not by the
    /// request limits, which would count them as busy. Health and readiness checks and metrics
    /// answer under load too: a probe failing under load would take a busy instance out.
    waiting: Router<Arc<App>>,
    document: utoipa::openapi::OpenApi,
}

fn routes() -> Routes {
    let (limited, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(device::routes())
        .merge(till::routes())
        .merge(receipts::routes())
        .merge(admin::routes())
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(
            console_session::login,
            console_session::current,
            console_session::logout
        ))
        .split_for_parts();
    let limited = limited.merge(console::routes());
    let (waiting, waiting_document) = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(device::changes))
        .split_for_parts();
    document.merge(waiting_document);
    openapi::optional_bodies(&mut document);
    Routes {
        limited,
        waiting,
        document,
    }
}

/// Liveness: answers `ok` while the process serves, under any load.
#[utoipa::path(
    get,
    path = paths::HEALTHZ,
    tag = "service",
    responses((status = 200, description = "The server is up", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Serves until `shutdown` resolves, with the outbound worker running beside the HTTP server
/// (an embedder that uses [`router`] alone runs [`crate::jobs::outbound::run_outbound_worker`] itself).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settler = tokio::spawn(crate::jobs::settle::settle_forever(
        app.clone(),
        app.config.settle_interval,
    ));
    let watcher = tokio::spawn(crate::jobs::fanouts::watch_fanouts(app.clone()));
    let listener_task = tokio::spawn(crate::jobs::changes::hear_other_instances(app.clone()));
    let worker = tokio::spawn(crate::jobs::outbound::run_outbound_worker(app.clone()));
    let guard = Arc::new(guard::Guard::new(&app.config.edge));
    let housekeeper = tokio::spawn(guard_housekeeping(guard.clone()));
    let folder = tokio::spawn(crate::metrics::fold_histograms_forever());
    let served = edge::run(
        listener,
        &app.live,
        &app.config.edge,
        router_guarded(app.clone(), guard),
        shutdown,
    )
    .await;
    housekeeper.abort();
    folder.abort();
    listener_task.abort();
    watcher.abort();
    settler.abort();
    // A delivery cut off here stays claimed until its lease runs out, then goes out again.
    worker.abort();
    served
}

/// Forgets, once a minute, the rate-limit state of addresses that are quiet again.
async fn guard_housekeeping(guard: Arc<guard::Guard>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        guard.housekeeping();
    }
}
