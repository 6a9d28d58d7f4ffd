//! The server's shared state, the router, the credential checks behind the extractors of
//! [`crate::extract`], and the per-member lock that keeps one process from racing itself on a
//! member's documents. The HTTP edge (connections, timeouts, limits) is [`crate::edge`]; the
//! change feed behind the long poll is [`crate::live`].

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

use loyalty_core::programme::Programme;

use crate::config::Config;
use crate::error::ApiError;
use crate::outbound::{LogOutbound, Outbound};
use crate::storage::{DeviceRecord, Storage};

pub use crate::live::Wait;

/// Lock stripes: enough that unrelated members rarely share one, few enough to allocate up front.
const LOCK_STRIPES: usize = 1024;

pub struct App {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    /// Targeted offers and segments, when the storage supports them (`crate::targeting`).
    pub targeting: Option<Arc<dyn crate::targeting::ProgrammeStorage>>,
    pub clock: Arc<dyn Clock>,
    /// The Automerge actor of this process's own writes. Random per process, so two server
    /// instances sharing a database never claim the same actor's sequence numbers.
    pub actor: ActorId,
    locks: Vec<Mutex<()>>,
    operator_token_hash: Option<[u8; 32]>,
    till_token_hash: Option<[u8; 32]>,
    /// The change feed long polls wait on (see [`crate::live`]).
    pub live: crate::live::Live,
    /// Rate limits per client address (see [`crate::guard`]).
    pub guard: crate::guard::Guard,
    /// The programme configuration, cached for [`PROGRAMME_TTL`] so a posting does not parse it
    /// from the database each time, yet other instances see an operator's change soon.
    programme: std::sync::RwLock<Option<(std::time::Instant, Arc<Programme>)>>,
    /// Where push, SMS and e-mail go out (see [`crate::outbound`]); chosen at startup.
    pub outbound: Arc<dyn Outbound>,
    /// Wakes the outbound worker when a send queued external deliveries.
    pub(crate) outbound_wake: tokio::sync::Notify,
    /// The UTC day (days since the epoch) this process last paid birthdays for, so the settle job
    /// looks for birthdays once a day rather than every run.
    pub(crate) birthdays_paid: std::sync::atomic::AtomicI64,
    /// Card documents between catch-ups with the ledger, so a catch-up neither loads the card nor
    /// saves its whole history (see [`crate::card_cache`]).
    pub cards: crate::card_cache::CardCache,
    /// The bound on sync jobs running at once (see [`crate::jobs`]).
    pub sync_jobs: crate::jobs::SyncJobs,
}

/// Builds an [`App`]: the clock and the outbound adapter have defaults (the system clock, the
/// logging adapter); tests and embedders replace them.
pub struct AppBuilder {
    config: Config,
    storage: Arc<dyn Storage>,
    targeting: Option<Arc<dyn crate::targeting::ProgrammeStorage>>,
    clock: Arc<dyn Clock>,
    outbound: Arc<dyn Outbound>,
}

impl AppBuilder {
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The push, SMS and e-mail provider (default: [`LogOutbound`], which only logs).
    pub fn outbound(mut self, outbound: Arc<dyn Outbound>) -> Self {
        self.outbound = outbound;
        self
    }

    pub fn build(self) -> Arc<App> {
        let AppBuilder {
            config,
            storage,
            targeting,
            clock,
            outbound,
        } = self;
        let operator_token_hash = token_hash(&config.operator_token);
        let cards = crate::card_cache::CardCache::new(config.card_cache_entries);
        let till_token_hash = token_hash(&config.till_token);
        let sync_jobs = crate::jobs::SyncJobs::new(config.sync_jobs);
        // Microseconds since the epoch: sequence numbers keep growing across restarts.
        let live = crate::live::Live::new(
            u64::try_from(clock.now_ms())
                .unwrap_or(0)
                .saturating_mul(1000),
            config.edge.long_polls_per_device,
            crate::live::RECENT_CHANGES,
        );
        let guard = crate::guard::Guard::new(&config.edge);
        Arc::new(App {
            config,
            storage,
            clock: clock.clone(),
            actor: ActorId::random(),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            operator_token_hash,
            till_token_hash,
            live,
            guard,
            programme: std::sync::RwLock::new(None),
            targeting,
            outbound,
            outbound_wake: tokio::sync::Notify::new(),
            birthdays_paid: std::sync::atomic::AtomicI64::new(i64::MIN),
            cards,
            sync_jobs,
        })
    }
}

/// How long an instance trusts its cached programme configuration.
const PROGRAMME_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Arc<Self> {
        Self::with_clock(config, storage, Arc::new(SystemClock))
    }

    pub fn with_clock(
        config: Config,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Self::builder(config, storage).clock(clock).build()
    }

    /// An [`AppBuilder`] with the defaults: system clock, logging outbound adapter.
    pub fn builder(config: Config, storage: Arc<dyn Storage>) -> AppBuilder {
        AppBuilder {
            config,
            targeting: storage.targeting(),
            storage,
            clock: Arc::new(SystemClock),
            outbound: Arc::new(LogOutbound),
        }
    }

    /// The programme as operators configured it; before they do, one base tier earning the
    /// server's configured `points_per_unit`.
    pub async fn programme(&self) -> Result<Arc<Programme>, ApiError> {
        if let Some((at, p)) = &*self.programme.read().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < PROGRAMME_TTL
        {
            return Ok(p.clone());
        }
        let programme = Arc::new(self.storage.programme().await?.unwrap_or_else(|| {
            let mut p = Programme::default();
            p.earning.default_rate = self.config.points_per_unit;
            p
        }));
        self.cache_programme(programme.clone());
        Ok(programme)
    }

    pub fn cache_programme(&self, programme: Arc<Programme>) {
        *self.programme.write().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), programme));
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tells waiting devices that a member's server documents changed.
    pub fn notify(&self, member_id: &str) {
        self.live.notify(member_id);
    }

    /// Wakes every waiting device to re-check whether it has news (offers waiting to be projected
    /// after a fan-out): one call, however many members the fan-out reached.
    pub fn wake_all(&self) {
        self.live.wake_all();
    }

    /// The number of [`Self::wake_all`] calls so far (see [`crate::live::Live::wakes`]).
    pub fn wakes(&self) -> u64 {
        self.live.wakes()
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
        check_bearer(headers, self.operator_token_hash.as_ref(), "operator")
    }

    /// Checks the till bearer token, or 401.
    pub fn authenticate_till_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        check_bearer(headers, self.till_token_hash.as_ref(), "till")
    }
}

/// The SHA-256 of a configured token, or `None` when it is unset: an unset token must close its
/// API, not open it to anyone who sends an empty one.
fn token_hash(token: &str) -> Option<[u8; 32]> {
    (!token.is_empty()).then(|| sha256(token.as_bytes()))
}

/// Checks `Authorization: Bearer <token>` against the hash of the configured token, in constant
/// time; `who` names the token in the error.
fn check_bearer(
    headers: &HeaderMap,
    expected: Option<&[u8; 32]>,
    who: &str,
) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized(format!("{who} token is missing")))?;
    let expected = expected.ok_or_else(|| {
        ApiError::unauthorized(format!("no {who} token is configured on this server"))
    })?;
    if constant_time_eq(&sha256(token.as_bytes()), expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!("{who} token is wrong")))
    }
}

/// Every route, with the request limits of [`crate::edge`]. Serve it with [`serve`] (which adds the
/// connection limits and records each client's address for the rate limits); an embedder serving
/// it otherwise gets no per-address rate limits unless it records `ConnectInfo<SocketAddr>`.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    let edge = app.config.edge.clone();
    // Long polls wait by design: bounded per device and by the connection limit, not by the
    // request limits, which would count them as busy. Health checks answer under load too.
    let waiting = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/members/{member_id}/changes", get(crate::sync::changes));
    let routes = Router::new()
        .route(loyalty_core::api::ENROLL_PATH, post(crate::enroll::enroll))
        .route("/v1/members/{member_id}/sync", post(crate::sync::sync))
        .route(
            "/v1/members/{member_id}/documents/{doc}",
            get(crate::sync::document),
        )
        .route("/v1/till/scan", post(crate::till::scan))
        .route("/v1/till/purchases", post(crate::till::purchase))
        .route("/v1/till/refunds", post(crate::till::refund))
        .route("/v1/admin/members", post(crate::admin::create_member))
        .route(
            "/v1/admin/programme",
            get(crate::programme::get_programme).put(crate::programme::put_programme),
        )
        .route(
            "/v1/admin/programme/settle",
            post(crate::programme::settle_now),
        )
        .route(
            "/v1/admin/members/{member_id}/tier",
            post(crate::programme::set_tier),
        )
        .route(
            "/v1/admin/members/{member_id}/block",
            post(crate::admin::block),
        )
        .route(
            "/v1/admin/members/{member_id}/unblock",
            post(crate::admin::unblock),
        )
        .route(
            "/v1/admin/members/{member_id}/card-qr",
            get(crate::admin::card_qr),
        )
        .route(
            "/v1/admin/devices/{device_id}/revoke",
            post(crate::admin::revoke_device),
        )
        .route(
            "/v1/admin/members/{member_id}",
            get(crate::admin::show_member),
        )
        .route(
            "/v1/admin/members/{member_id}/epochs",
            post(crate::epochs::start),
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
            post(crate::messaging::post_member_message),
        )
        .route("/v1/admin/messages", post(crate::messaging::send))
        .route("/v1/admin/deliveries", get(crate::messaging::deliveries))
        .route("/v1/admin/requests", get(crate::messaging::list_requests))
        .route(
            "/v1/admin/requests/{id}/replies",
            post(crate::messaging::reply),
        )
        .route(
            "/v1/admin/requests/{id}/close",
            post(crate::messaging::close),
        )
        .route("/v1/admin/offers", post(crate::programme_admin::post_offer))
        .route(
            "/v1/admin/segments",
            post(crate::programme_admin::create_segment).get(crate::programme_admin::segments),
        );
    crate::edge::limited(routes, &edge)
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
/// (an embedder that uses [`router`] alone runs [`crate::messaging::run_outbound_worker`] itself).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settler = tokio::spawn(crate::programme::settle_forever(
        app.clone(),
        app.config.settle_interval,
    ));
    let watcher = tokio::spawn(watch_fanouts(app.clone()));
    let worker = tokio::spawn(crate::messaging::run_outbound_worker(app.clone()));
    let housekeeper = tokio::spawn(guard_housekeeping(app.clone()));
    let served = crate::edge::run(
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

/// How often the server looks for fan-outs made by another process (the segment batch job).
const FANOUT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Wakes waiting devices when a fan-out happened elsewhere on the same database — the batch job
/// that recomputes segments runs as its own process and cannot call [`App::wake_all`]. One small
/// query every two seconds.
async fn watch_fanouts(app: Arc<App>) {
    let Some(programme) = app.targeting.clone() else {
        return;
    };
    let mut seen = None;
    loop {
        match programme.fanout_seq().await {
            Ok(seq) => {
                if seen.is_some_and(|s| s != seq) {
                    app.wake_all();
                }
                seen = Some(seq);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the fan-out sequence"),
        }
        tokio::time::sleep(FANOUT_POLL).await;
    }
}
