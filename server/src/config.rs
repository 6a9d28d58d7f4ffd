//! Server configuration: where it listens, where it stores, the operator token and the limits.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The embedded SQLite database file.
    pub database: PathBuf,
    /// The bearer token operators present on `/v1/admin/...`.
    pub operator_token: String,
    /// How long an activation code stays usable.
    pub activation_ttl_ms: i64,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The bearer token tills present on `/v1/till/...`.
    pub till_token: String,
    /// Points earned per whole currency unit spent (per 100 minor units), until an operator
    /// configures the programme's earning rules.
    pub points_per_unit: i64,
    /// How often the settle job matures and expires points and reviews tiers.
    pub settle_interval: std::time::Duration,
    /// Marketing messages a member may get per day (UTC); more are refused as `rate_limited`.
    pub marketing_per_day: i64,
    /// Card documents kept in memory between catch-ups with the ledger (`crate::card_cache`); 0
    /// turns the cache off. A card of a few dozen postings takes about 40 KiB.
    pub card_cache_entries: usize,
    /// Sync jobs (the Automerge work of answering a sync) that may run at once; more wait their
    /// turn (`crate::jobs`).
    pub sync_jobs: usize,
    /// When a member's document starts afresh by itself (a new epoch, `loyalty_core::epoch`).
    pub epochs: loyalty_core::epoch::EpochPolicy,
}

impl Config {
    pub const DEFAULT_ACTIVATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_MARKETING_PER_DAY: i64 = 3;
    pub const DEFAULT_CARD_CACHE_ENTRIES: usize = 1024;

    /// One sync job per core: they are CPU-bound, so more at once only adds memory.
    pub fn default_sync_jobs() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    pub fn new(database: PathBuf, operator_token: String) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database,
            operator_token,
            activation_ttl_ms: Self::DEFAULT_ACTIVATION_TTL_MS,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            till_token: String::new(),
            points_per_unit: 1,
            settle_interval: std::time::Duration::from_secs(60),
            marketing_per_day: Self::DEFAULT_MARKETING_PER_DAY,
            card_cache_entries: Self::DEFAULT_CARD_CACHE_ENTRIES,
            sync_jobs: Self::default_sync_jobs(),
            epochs: loyalty_core::epoch::EpochPolicy::default(),
        }
    }
}
