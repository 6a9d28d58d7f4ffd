//! The server's shared state, the router, authentication of devices and operators, and the
//! per-member lock that keeps one process from racing itself on a member's documents.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use automerge::ActorId;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use loyalty_core::api::parse_device_token;
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::ids::{constant_time_eq, sha256};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::error::ApiError;
use crate::storage::{DeviceRecord, Storage};

/// Lock stripes: enough that unrelated members rarely share one, few enough to allocate up front.
const LOCK_STRIPES: usize = 1024;

pub struct App {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    /// The Automerge actor of this process's own writes. Random per process, so two server
    /// instances sharing a database never claim the same actor's sequence numbers.
    pub actor: ActorId,
    locks: Vec<Mutex<()>>,
    operator_token_hash: [u8; 32],
}

impl App {
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Arc<Self> {
        Self::with_clock(config, storage, Arc::new(SystemClock))
    }

    pub fn with_clock(
        config: Config,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let operator_token_hash = sha256(config.operator_token.as_bytes());
        Arc::new(Self {
            config,
            storage,
            clock,
            actor: ActorId::random(),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            operator_token_hash,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Serialises work on one member's documents within this process. Across processes the
    /// storage's optimistic versions take over.
    pub async fn lock_member(&self, member_id: &str) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        member_id.hash(&mut h);
        let stripe = (h.finish() as usize) % LOCK_STRIPES;
        self.locks[stripe].lock().await
    }

    /// The device the request's credentials belong to, or 401/403.
    pub async fn authenticate_device(&self, headers: &HeaderMap) -> Result<DeviceRecord, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("device credentials are missing"))?;
        let (device_id, secret) = parse_device_token(header)
            .ok_or_else(|| ApiError::unauthorized("device credentials are malformed"))?;
        let wrong = || ApiError::unauthorized("device credentials are wrong");
        let device = self.storage.device(device_id).await?.ok_or_else(wrong)?;
        if !constant_time_eq(&sha256(secret.as_bytes()), &device.secret_hash) {
            return Err(wrong());
        }
        if device.revoked {
            return Err(ApiError::forbidden("this device has been revoked"));
        }
        Ok(device)
    }

    /// Checks the operator bearer token, or 401.
    pub fn authenticate_operator(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("operator token is missing"))?;
        if constant_time_eq(&sha256(token.as_bytes()), &self.operator_token_hash) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("operator token is wrong"))
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(loyalty_core::api::ENROLL_PATH, post(crate::enroll::enroll))
        .route("/v1/members/{member_id}/sync", post(crate::sync::sync))
        .route(
            "/v1/members/{member_id}/documents/{doc}",
            get(crate::sync::document),
        )
        .route("/v1/admin/members", post(crate::admin::create_member))
        .route(
            "/v1/admin/members/{member_id}",
            get(crate::admin::show_member),
        )
        .route(
            "/v1/admin/members/{member_id}/activation-codes",
            post(crate::admin::new_activation_code),
        )
        .route(
            "/v1/admin/members/{member_id}/offers",
            post(crate::admin::post_offer),
        )
        .route(
            "/v1/admin/members/{member_id}/messages",
            post(crate::admin::post_message),
        )
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
