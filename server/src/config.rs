//! Server configuration: the operator and till tokens, the programme's defaults and the limits,
//! among them the HTTP edge's ([`EdgeConfig`]: timeouts, connection and request limits, rate limits,
//! long polls).

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
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
    /// turn (`crate::sync_jobs`).
    pub sync_jobs: usize,
    /// When a member's document starts afresh by itself (a new epoch, `loyalty_core::epoch`).
    pub epochs: loyalty_core::epoch::EpochPolicy,
    /// Timeouts, connection and request limits, rate limits and long-poll limits of the HTTP edge.
    pub edge: EdgeConfig,
    /// The bearer token a Prometheus scraper presents on `/metrics`; empty closes `/metrics`
    /// (`401`). Its own token, so a monitoring system holds no operator rights.
    pub metrics_token: String,
    /// One `loyalty::access` log line per request (`crate::http::observe`).
    pub access_log: bool,
    /// The most points an operator of the `support` role may credit or debit in one adjustment.
    pub support_adjust_limit: i64,
    /// Mark the console's session cookie `Secure` (set it when the console is served over HTTPS
    /// through a proxy that does not send `X-Forwarded-Proto: https`).
    pub console_secure_cookie: bool,
}

/// The HTTP edge's settings (see `docs/architecture.md`, "The HTTP edge"). Every one is a
/// `loyalty server` flag.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Connections served at once. Beyond it new connections wait in the kernel's accept queue
    /// until one closes. Each costs a file descriptor: an open long poll is one connection.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection may
    /// sit idle between requests; then the connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// The longest pause allowed while a request body arrives; then `408 request_timeout` and the
    /// connection is closed.
    pub body_read_timeout: Duration,
    /// The longest a request may take, body included (long polls excepted: they have `wait_s`);
    /// then `408 request_timeout`.
    pub request_timeout: Duration,
    /// Requests handled at once (long polls excepted); more are answered `503 overloaded` with
    /// `Retry-After` at once rather than queued.
    pub max_in_flight: usize,
    /// Long polls one device may hold open at once; a newer one ends the oldest with
    /// `409 poll_superseded`.
    pub long_polls_per_device: usize,
    /// Enrollment attempts allowed per client address and minute (0: no limit); more are answered
    /// `429 too_many_attempts` with `Retry-After`.
    pub enroll_per_minute: u32,
    /// Failed authentications allowed per client address and minute (0: no limit); once they are
    /// spent, every authenticated request from the address is answered `429 too_many_attempts`
    /// until `Retry-After` has passed.
    pub auth_failures_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (its last entry); from any other peer the
    /// header is ignored and the peer's address is the client's.
    pub trusted_proxies: Vec<IpAddr>,
    /// At shutdown, how long requests in progress may take to finish (open long polls are
    /// answered at once); after it the remaining connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 512,
            long_polls_per_device: 2,
            enroll_per_minute: 10,
            auth_failures_per_minute: 20,
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
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

    /// The defaults with this operator token. Where the server listens and which database it
    /// opens are the caller's (`loyalty server --listen --database`), not the App's.
    /// Points a support operator may adjust at once by default.
    pub const DEFAULT_SUPPORT_ADJUST_LIMIT: i64 = 1000;

    pub fn new(operator_token: String) -> Self {
        Self {
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
            edge: EdgeConfig::default(),
            metrics_token: String::new(),
            access_log: true,
            support_adjust_limit: Self::DEFAULT_SUPPORT_ADJUST_LIMIT,
            console_secure_cookie: false,
        }
    }
}
