//! The server's shared state and its wiring: configuration, storage, clock, outbound adapter,
//! caches, the change feed ([`crate::live`]) and the per-member lock ([`crate::locks`]). The
//! router and the credential checks behind its extractors are in [`crate::http`].

use std::sync::Arc;

use automerge::ActorId;
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::ids::sha256;

use loyalty_core::programme::Programme;

use crate::config::Config;
use crate::error::DomainError;
use crate::outbound::{LogOutbound, Outbound};
use crate::storage::{Change, Storage};

pub struct App {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    /// The Automerge actor of this process's own writes. Random per process, so two server
    /// instances sharing a database never claim the same actor's sequence numbers.
    pub actor: ActorId,
    locks: crate::locks::MemberLocks,
    pub(crate) operator_token_hash: Option<[u8; 32]>,
    pub(crate) till_token_hash: Option<[u8; 32]>,
    pub(crate) metrics_token_hash: Option<[u8; 32]>,
    /// The change feed long polls wait on (see [`crate::live`]).
    pub live: crate::live::Live,
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
    /// The bound on sync jobs running at once (see [`crate::sync_jobs`]).
    pub sync_jobs: crate::sync_jobs::SyncJobs,
}

/// Builds an [`App`]: the clock and the outbound adapter have defaults (the system clock, the
/// logging adapter); tests and embedders replace them.
pub struct AppBuilder {
    config: Config,
    storage: Arc<dyn Storage>,
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
            clock,
            outbound,
        } = self;
        let operator_token_hash = token_hash(&config.operator_token);
        let cards = crate::card_cache::CardCache::new(config.card_cache_entries);
        let till_token_hash = token_hash(&config.till_token);
        let metrics_token_hash = token_hash(&config.metrics_token);
        let sync_jobs = crate::sync_jobs::SyncJobs::new(config.sync_jobs);
        // Microseconds since the epoch: sequence numbers keep growing across restarts.
        let live = crate::live::Live::new(
            u64::try_from(clock.now_ms())
                .unwrap_or(0)
                .saturating_mul(1000),
            config.edge.long_polls_per_device,
            crate::live::RECENT_CHANGES,
        )
        .following(clock.clone());
        Arc::new(App {
            config,
            storage,
            clock: clock.clone(),
            actor: ActorId::random(),
            locks: crate::locks::MemberLocks::default(),
            operator_token_hash,
            till_token_hash,
            metrics_token_hash,
            live,
            programme: std::sync::RwLock::new(None),
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
            storage,
            clock: Arc::new(SystemClock),
            outbound: Arc::new(LogOutbound),
        }
    }

    /// The programme as operators configured it; before they do, one base tier earning the
    /// server's configured `points_per_unit`.
    pub async fn programme(&self) -> Result<Arc<Programme>, DomainError> {
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

    /// Tells waiting devices that a member's server documents changed, here and on the other
    /// instances sharing the database.
    pub fn notify(&self, member_id: &str) {
        self.live.notify(member_id);
        self.announce(Change::Member(member_id.to_string()));
    }

    /// Wakes every waiting device to re-check whether it has news (offers waiting to be projected
    /// after a fan-out): one call, however many members the fan-out reached, on every instance.
    pub fn wake_all(&self) {
        self.live.wake_all();
        self.announce(Change::Everyone);
    }

    /// Tells the other instances: the storage queues the change and sends it in the background,
    /// so the caller's answer does not wait for it.
    fn announce(&self, change: Change) {
        if !self.storage.shared() {
            return;
        }
        if let Err(e) = self.storage.announce(change) {
            tracing::warn!(error = %e, "could not tell the other instances of a change");
        }
    }

    /// The number of [`Self::wake_all`] calls so far (see [`crate::live::Live::wakes`]).
    pub fn wakes(&self) -> u64 {
        self.live.wakes()
    }

    /// Serialises work on one member's documents within this process (see [`crate::locks`]).
    /// Across processes the storage's optimistic versions take over.
    pub async fn lock_member(&self, member_id: &str) -> crate::locks::MemberGuard<'_> {
        self.locks.lock(member_id).await
    }
}

/// The SHA-256 of a configured token, or `None` when it is unset: an unset token must close its
/// API, not open it to anyone who sends an empty one.
fn token_hash(token: &str) -> Option<[u8; 32]> {
    (!token.is_empty()).then(|| sha256(token.as_bytes()))
}
