//! The server's shared state, the router, authentication of devices and operators, and the
//! per-member lock that keeps one process from racing itself on a member's documents.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use automerge::ActorId;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use loyalty_core::api::parse_device_token;
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::ids::{constant_time_eq, sha256};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, MutexGuard, broadcast};

use loyalty_core::programme::Programme;

use crate::config::Config;
use crate::error::ApiError;
use crate::outbound::{LogOutbound, Outbound};
use crate::storage::{DeviceRecord, Storage};

/// The member id of a wake-all notification; no member id is empty.
const WAKE_ALL: &str = "";

/// How a wait for a member's change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The member's documents changed; wait from this sequence number next.
    Changed(u64),
    /// Everyone was asked to re-check (a fan-out); nothing is known about this member yet.
    Woken,
    /// Nothing happened before the deadline; wait from this sequence number next.
    TimedOut(u64),
}

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
    changes: Changes,
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
        Arc::new(App {
            config,
            storage,
            clock: clock.clone(),
            actor: ActorId::random(),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            operator_token_hash,
            till_token_hash,
            changes: Changes {
                seq: AtomicU64::new(
                    u64::try_from(clock.now_ms())
                        .unwrap_or(0)
                        .saturating_mul(1000),
                ),
                wakes: AtomicU64::new(0),
                last: std::sync::Mutex::new(HashMap::new()),
                tx: broadcast::channel(1024).0,
            },
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

/// Which members' documents changed, for devices waiting on `GET /v1/members/{id}/changes`.
/// Sequence numbers start at the process's start time in microseconds, so they keep growing across
/// restarts and a device's `since` from before a restart never hides a later change.
/// A notification for the empty member id ([`WAKE_ALL`]) asks every waiter to re-check.
struct Changes {
    seq: AtomicU64,
    /// How many times [`App::wake_all`] was called; lets a waiter tell it missed one.
    wakes: AtomicU64,
    last: std::sync::Mutex<HashMap<String, u64>>,
    tx: broadcast::Sender<(String, u64)>,
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
        let seq = self.changes.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.changes
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(member_id.to_string(), seq);
        // Nobody listening is fine.
        let _ = self.changes.tx.send((member_id.to_string(), seq));
    }

    /// Wakes every waiting device to re-check whether it has news (offers waiting to be projected
    /// after a fan-out): one broadcast, however many members the fan-out reached.
    pub fn wake_all(&self) {
        self.changes.wakes.fetch_add(1, Ordering::SeqCst);
        let seq = self.changes.seq.load(Ordering::SeqCst);
        let _ = self.changes.tx.send((WAKE_ALL.to_string(), seq));
    }

    /// Waits until the member's documents change after `since`, or `timeout` passes. Returns the
    /// sequence number to wait from next and whether anything changed.
    pub async fn wait_for_change(
        &self,
        member_id: &str,
        since: u64,
        timeout: std::time::Duration,
    ) -> (u64, bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self
                .wait_for_change_until(member_id, since, self.wakes(), deadline)
                .await
            {
                Wait::Changed(seq) => return (seq, true),
                Wait::TimedOut(seq) => return (seq, false),
                Wait::Woken => continue,
            }
        }
    }

    /// The number of [`Self::wake_all`] calls so far: read it before checking a condition, pass
    /// it to [`Self::wait_for_change_until`], and a wake between the check and the wait is not lost.
    pub fn wakes(&self) -> u64 {
        self.changes.wakes.load(Ordering::SeqCst)
    }

    /// Like [`Self::wait_for_change`], but also returns [`Wait::Woken`] when [`Self::wake_all`]
    /// is called (or was, since `wakes_seen` was read), so the caller can re-check its own
    /// condition and wait again until the same deadline.
    pub async fn wait_for_change_until(
        &self,
        member_id: &str,
        since: u64,
        wakes_seen: u64,
        deadline: tokio::time::Instant,
    ) -> Wait {
        let mut rx = self.changes.tx.subscribe();
        if self.wakes() != wakes_seen {
            return Wait::Woken;
        }
        let current = self
            .changes
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(member_id)
            .copied()
            .unwrap_or(0);
        if current > since {
            return Wait::Changed(current);
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok((member, seq))) if member == member_id => return Wait::Changed(seq),
                Ok(Ok((member, _))) if member == WAKE_ALL => return Wait::Woken,
                Ok(Ok(_)) => continue,
                // Missed notifications: tell the device to sync rather than risk missing its own.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    return Wait::Changed(self.changes.seq.load(Ordering::SeqCst));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                    return Wait::TimedOut(since.max(current));
                }
            }
        }
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
        .route("/v1/members/{member_id}/changes", get(crate::sync::changes))
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
        )
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
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
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    settler.abort();
    // A delivery cut off here stays claimed until its lease runs out, then goes out again.
    worker.abort();
    served
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
