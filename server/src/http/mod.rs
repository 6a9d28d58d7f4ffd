//! The HTTP layer: the router (one per area: [`device`], [`till`], [`admin`]), the edge's limits,
//! the extractors that authenticate from the request head, our JSON body, and the error body.
//! Handlers decode a request, call the domain ([`crate::service`]), and encode its answer; no
//! module outside this one names axum.

pub mod admin;
pub mod device;
pub mod edge;
pub mod error;
pub mod extract;
pub mod guard;
pub mod json;
pub mod till;

use loyalty_core::api::paths;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::app::App;
use error::ApiError;

/// Every route, with the request limits of [`edge`]. Serve it with [`serve`] (which adds the
/// connection limits and records each client's address for the rate limits); an embedder serving
/// it otherwise gets no per-address rate limits unless it records `ConnectInfo<SocketAddr>`.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    let edge = app.config.edge.clone();
    // Long polls wait by design: bounded per device and by the connection limit, not by the
    // request limits, which would count them as busy. Health checks answer under load too.
    let waiting = Router::new()
        .route(paths::HEALTHZ, get(|| async { "ok" }))
        .route(paths::MEMBER_CHANGES, get(device::changes));
    let routes = device::routes()
        .merge(till::routes())
        .merge(admin::routes());
    edge::limited(routes, &edge)
        .merge(waiting)
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            edge.body_read_timeout,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
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
    let worker = tokio::spawn(crate::jobs::outbound::run_outbound_worker(app.clone()));
    let housekeeper = tokio::spawn(guard_housekeeping(app.clone()));
    let served = edge::run(
        listener,
        &app.live,
        &app.config.edge,
        router(app.clone()),
        shutdown,
    )
    .await;
    housekeeper.abort();
    watcher.abort();
    settler.abort();
    // A delivery cut off here stays claimed until its lease runs out, then goes out again.
    worker.abort();
    served
}

/// Forgets, once a minute, the rate-limit state of addresses that are quiet again.
async fn guard_housekeeping(app: Arc<App>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        app.guard.housekeeping();
    }
}
