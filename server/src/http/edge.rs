//! The HTTP edge: how connections are accepted and served, and the limits that hold before any
//! handler runs (settings in [`crate::config::EdgeConfig`]; the why in `docs/architecture.md`).
//!
//! - **Connections**: a small accept loop over hyper's HTTP/1 connection builder (what
//!   `axum::serve` does, with the settings it does not expose). A semaphore of `max_connections`
//!   permits is taken before each accept, so beyond the limit new connections wait in the kernel's
//!   accept queue instead of taking memory. hyper's `header_read_timeout` closes a connection
//!   whose request head is not complete in time — also a kept-alive connection left idle that
//!   long — and its head buffer is bounded by [`MAX_HEAD_BUFFER`].
//! - **Requests** ([`limited`], on every route but the long poll and `/healthz`): at most
//!   `max_in_flight` at once, the rest shed at once with `503 overloaded` and `Retry-After`
//!   (tower's `ConcurrencyLimit` under `LoadShed`), and `request_timeout` for the whole request
//!   (tower's `Timeout`, `408 request_timeout`). Every route's body is read under
//!   [`crate::http::body_timeout`] (`body_read_timeout` between two pieces of a body). Long polls
//!   are bounded per device by [`crate::live`] and overall by the connection limit.
//! - **Shutdown**: stop accepting, answer open long polls at once ([`crate::live::Live::close`]),
//!   let requests in progress finish for up to `shutdown_grace` (hyper-util's
//!   `GracefulShutdown`, which also stops keep-alive), then drop what is left.
//!
//! HTTP/1.1 only, as `axum::serve` without its `http2` feature: the header timeout guards
//! HTTP/1 only, and HTTP/2 belongs to the TLS-terminating proxy in front.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower::ServiceExt as _;

use crate::config::EdgeConfig;
use crate::http::error::ApiError;
use crate::live::Live;

/// The most a connection may buffer of a request head (and of a body before the handler takes
/// it); a larger head is answered `431`. hyper's default (about 400 KiB) times 10,000 slow
/// connections would be 4 GB.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// How long to pause accepting after an error that is not one connection's (out of file
/// descriptors): accepting again at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// `Retry-After` for a request shed under load: soon, since requests take milliseconds.
const OVERLOAD_RETRY_S: u64 = 1;

/// `routes` under the request limits: shed beyond `max_in_flight` at once (one semaphore shared
/// by every route), and time out after `request_timeout`.
pub fn limited<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    config: &EdgeConfig,
) -> Router<S> {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    routes.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refusal))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                in_flight,
            ))
            .timeout(config.request_timeout),
    )
}

/// The answer for a request the limits stopped.
async fn refusal(error: tower::BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is handling as many requests as it takes; retry shortly",
        )
        .with_retry_after(OVERLOAD_RETRY_S)
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::request_timeout()
    } else {
        ApiError::internal("request limits", error)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    live: &Live,
    config: &EdgeConfig,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BUFFER);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    'serve: loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break 'serve,
            Some(_) = tasks.join_next() => continue 'serve,
            permit = connections.clone().acquire_owned() => permit.map_err(io::Error::other)?,
        };
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'serve,
                Some(_) = tasks.join_next() => {}
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => break accepted,
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "cannot accept connections; pausing");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        };
        // Requests and answers are small: send each at once rather than wait for more.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tasks.spawn(async move {
            // A client that closes or times out mid-request is routine, not an error of ours.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    live.close();
    let grace = config.shutdown_grace;
    let drained = async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "requests still in progress after the shutdown grace; dropping them"
        );
    }
    tasks.abort_all();
    Ok(())
}

/// Errors of one connection that was gone before it was accepted: carry on accepting.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
