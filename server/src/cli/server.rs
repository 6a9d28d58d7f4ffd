//! `loyalty server`: runs the HTTP server until interrupted, on its embedded SQLite database or,
//! for a `postgres://` URL, on PostgreSQL (where several instances share one database).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use loyalty_server::config::EdgeConfig;
use loyalty_server::storage::Storage;
use loyalty_server::storage::postgres::{PgStorage, is_postgres_url};
use loyalty_server::storage::sqlite::SqliteStorage;
use loyalty_server::{App, Config};

use super::{CliResult, LogFormat};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "LOYALTY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The SQLite database file (created when absent), or a PostgreSQL URL (`postgres://…`,
    /// several hosts allowed, with `target_session_attrs=read-write` to follow a failover).
    #[arg(long, env = "LOYALTY_DATABASE", default_value = "loyalty-server.db")]
    database: String,
    /// Connections this instance keeps to PostgreSQL (plus one for the change feed); ignored for
    /// SQLite.
    #[arg(long, env = "LOYALTY_DB_POOL", default_value_t = 16)]
    db_pool: usize,
    /// Token operators must present (at least 16 characters).
    #[arg(long, env = "LOYALTY_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// Token tills must present (at least 16 characters).
    #[arg(long, env = "LOYALTY_TILL_TOKEN", hide_env_values = true)]
    till_token: String,
    /// Points earned per whole currency unit spent.
    #[arg(long, env = "LOYALTY_POINTS_PER_UNIT", default_value_t = 1)]
    points_per_unit: i64,
    /// Seconds between runs of the programme's settle job (maturity, expiry, tier reviews).
    #[arg(long, env = "LOYALTY_SETTLE_INTERVAL_S", default_value_t = 60)]
    settle_interval_s: u64,
    /// Hours an activation code stays valid.
    #[arg(long, env = "LOYALTY_ACTIVATION_TTL_HOURS", default_value_t = 24 * 7)]
    activation_ttl_hours: i64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "LOYALTY_MAX_BODY_BYTES", default_value_t = Config::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Marketing messages a member may get per day (UTC); more are refused as rate_limited.
    #[arg(long, env = "LOYALTY_MARKETING_PER_DAY", default_value_t = Config::DEFAULT_MARKETING_PER_DAY)]
    marketing_per_day: i64,
    /// Card documents kept in memory between catch-ups with the ledger, as when a member's phone
    /// syncs after each purchase (about 40 KiB each for a card of a few dozen postings); 0 turns
    /// the cache off.
    #[arg(long, env = "LOYALTY_CARD_CACHE", default_value_t = Config::DEFAULT_CARD_CACHE_ENTRIES)]
    card_cache: usize,
    /// Sync requests whose Automerge work may run at once; more wait their turn (default: one
    /// per core).
    #[arg(long, env = "LOYALTY_SYNC_JOBS")]
    sync_jobs: Option<usize>,
    /// A document whose history passes this many changes starts afresh (a new epoch) at its
    /// next sync.
    #[arg(long, env = "LOYALTY_EPOCH_AFTER_CHANGES", default_value_t = loyalty_core::epoch::EpochPolicy::DEFAULT_AFTER_CHANGES)]
    epoch_after_changes: u64,
    /// A document whose history passes this many operations starts afresh at its next sync, when
    /// that at least halves it.
    #[arg(long, env = "LOYALTY_EPOCH_AFTER_OPS", default_value_t = loyalty_core::epoch::EpochPolicy::DEFAULT_AFTER_OPS)]
    epoch_after_ops: u64,
    /// Token a Prometheus scraper presents on /metrics (at least 16 characters); unset closes
    /// /metrics.
    #[arg(
        long,
        env = "LOYALTY_METRICS_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    metrics_token: String,
    /// One `loyalty::access` log line per request (method, route template, status, duration,
    /// bytes; no ids, query strings or credentials).
    #[arg(long, env = "LOYALTY_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    access_log: bool,
    /// Log lines as text for people or JSON (one object a line) for a log collector.
    #[arg(long, env = "LOYALTY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The most points a `support` operator may credit or debit in one adjustment.
    #[arg(long, env = "LOYALTY_SUPPORT_ADJUST_LIMIT", default_value_t = Config::DEFAULT_SUPPORT_ADJUST_LIMIT)]
    support_adjust_limit: i64,
    /// Mark the console's session cookie `Secure`: set it when the console is reached over HTTPS
    /// (a proxy that sends `X-Forwarded-Proto: https` gets it without this).
    #[arg(long, env = "LOYALTY_CONSOLE_SECURE_COOKIE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    console_secure_cookie: bool,
    /// A TOML file with any of these settings by their long names (`max-connections = 5000`);
    /// a flag or an environment variable given as well wins over the file.
    #[arg(long, env = "LOYALTY_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    outbound: super::outbound_flags::OutboundFlags,
}

/// The HTTP edge's settings (`EdgeConfig`); defaults suit one shop's server.
#[derive(Args)]
struct EdgeArgs {
    /// Connections served at once (an open long poll is one); beyond it new connections wait to
    /// be accepted. The open-file limit is raised to its maximum at startup to fit them.
    #[arg(long, env = "LOYALTY_MAX_CONNECTIONS", default_value_t = EdgeConfig::default().max_connections)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (and the longest idle time between
    /// requests on a kept-alive connection); then the connection is closed.
    #[arg(long, env = "LOYALTY_HEADER_TIMEOUT_S", default_value_t = EdgeConfig::default().header_read_timeout.as_secs())]
    header_timeout_s: u64,
    /// Longest pause in seconds while a request body arrives; then 408 and the connection closes.
    #[arg(long, env = "LOYALTY_BODY_TIMEOUT_S", default_value_t = EdgeConfig::default().body_read_timeout.as_secs())]
    body_timeout_s: u64,
    /// Seconds a request may take in all, body included (long polls excepted); then 408.
    #[arg(long, env = "LOYALTY_REQUEST_TIMEOUT_S", default_value_t = EdgeConfig::default().request_timeout.as_secs())]
    request_timeout_s: u64,
    /// Requests handled at once (long polls excepted); more are answered 503 with Retry-After.
    #[arg(long, env = "LOYALTY_MAX_IN_FLIGHT", default_value_t = EdgeConfig::default().max_in_flight)]
    max_in_flight: usize,
    /// Long polls one device may hold open; a newer one ends the oldest (409 poll_superseded).
    #[arg(long, env = "LOYALTY_LONG_POLLS_PER_DEVICE", default_value_t = EdgeConfig::default().long_polls_per_device)]
    long_polls_per_device: usize,
    /// Enrollment attempts per client address and minute (0: no limit); more get 429.
    #[arg(long, env = "LOYALTY_ENROLL_PER_MINUTE", default_value_t = EdgeConfig::default().enroll_per_minute)]
    enroll_per_minute: u32,
    /// Failed authentications per client address and minute (0: no limit); then the address
    /// gets 429 on every authenticated request until Retry-After.
    #[arg(long, env = "LOYALTY_AUTH_FAILURES_PER_MINUTE", default_value_t = EdgeConfig::default().auth_failures_per_minute)]
    auth_failures_per_minute: u32,
    /// A reverse proxy whose X-Forwarded-For names the client (repeat for several).
    #[arg(
        long = "trusted-proxy",
        env = "LOYALTY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<IpAddr>,
    /// Seconds requests in progress may take to finish at shutdown (long polls are answered at
    /// once).
    #[arg(long, env = "LOYALTY_SHUTDOWN_GRACE_S", default_value_t = EdgeConfig::default().shutdown_grace.as_secs())]
    shutdown_grace_s: u64,
}

impl EdgeArgs {
    fn config(self) -> Result<EdgeConfig, String> {
        let positive = |name: &str, secs: u64| {
            if secs == 0 {
                Err(format!("--{name} must be at least 1 second"))
            } else {
                Ok(Duration::from_secs(secs))
            }
        };
        if self.max_connections == 0 || self.max_in_flight == 0 || self.long_polls_per_device == 0 {
            return Err(
                "--max-connections, --max-in-flight and --long-polls-per-device must be at least 1"
                    .into(),
            );
        }
        Ok(EdgeConfig {
            max_connections: self.max_connections,
            header_read_timeout: positive("header-timeout-s", self.header_timeout_s)?,
            body_read_timeout: positive("body-timeout-s", self.body_timeout_s)?,
            request_timeout: positive("request-timeout-s", self.request_timeout_s)?,
            max_in_flight: self.max_in_flight,
            long_polls_per_device: self.long_polls_per_device,
            enroll_per_minute: self.enroll_per_minute,
            auth_failures_per_minute: self.auth_failures_per_minute,
            trusted_proxies: self.trusted_proxies,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_s),
        })
    }
}

/// Raises the soft open-file limit as far as the hard one allows: every connection is a file
/// descriptor, and the usual soft limit (1,024) would cap the server far below `max_connections`.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            // The database, its journal and the listener need a few descriptors of their own.
            let needed = max_connections as u64 + 64;
            if limit < needed {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open-file limit is below --max-connections; raise it (ulimit -n) or \
                     connections beyond it wait until others close"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

pub async fn run(args: ServerArgs) -> CliResult {
    super::init_logging_as("info,tower_http=info", args.log_format);
    if args.operator_token.len() < 16 || args.till_token.len() < 16 {
        return Err("the operator and till tokens must be at least 16 characters".into());
    }
    if args.till_token == args.operator_token {
        return Err("the till token must differ from the operator token".into());
    }
    if !args.metrics_token.is_empty()
        && (args.metrics_token.len() < 16
            || args.metrics_token == args.operator_token
            || args.metrics_token == args.till_token)
    {
        return Err(
            "the metrics token must be at least 16 characters and differ from the other tokens"
                .into(),
        );
    }
    if args.db_pool == 0 {
        return Err("--db-pool must be at least 1".into());
    }
    let outbound = args.outbound.settings()?;
    let routes = outbound.build().map_err(|e| e.to_string())?;
    tracing::info!(channels = %outbound.describe(), "outbound adapters");
    let storage = open_storage(&args.database, args.db_pool).await?;
    let mut config = Config::new(args.operator_token);
    config.activation_ttl_ms = args.activation_ttl_hours.saturating_mul(3_600_000);
    config.max_body_bytes = args.max_body_bytes;
    config.till_token = args.till_token;
    config.points_per_unit = args.points_per_unit;
    config.settle_interval = std::time::Duration::from_secs(args.settle_interval_s.max(1));
    if args.marketing_per_day < 0 {
        return Err("--marketing-per-day cannot be negative".into());
    }
    config.marketing_per_day = args.marketing_per_day;
    config.card_cache_entries = args.card_cache;
    if args.sync_jobs == Some(0) {
        return Err("--sync-jobs must be at least 1".into());
    }
    config.sync_jobs = args.sync_jobs.unwrap_or_else(Config::default_sync_jobs);
    config.epochs = loyalty_core::epoch::EpochPolicy {
        after_ops: args.epoch_after_ops,
        after_changes: args.epoch_after_changes,
    };
    config.edge = args.edge.config()?;
    config.metrics_token = args.metrics_token;
    config.access_log = args.access_log;
    if args.support_adjust_limit < 0 {
        return Err("--support-adjust-limit cannot be negative".into());
    }
    config.support_adjust_limit = args.support_adjust_limit;
    config.console_secure_cookie = args.console_secure_cookie;
    raise_open_file_limit(config.edge.max_connections);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        %addr,
        database = %describe_database(&args.database),
        config = ?args.config,
        "loyalty server listening"
    );
    let shutdown = shutdown_signal();
    // Scripts wait for this line to know the port (useful with --listen 127.0.0.1:0).
    println!("listening on http://{addr}");
    let app = App::builder(config, storage)
        .outbound(Arc::new(routes))
        .build();
    loyalty_server::serve(listener, app, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// The storage `database` names: PostgreSQL for a URL (migrated at once; several instances may
/// start together), else the SQLite file.
async fn open_storage(database: &str, pool: usize) -> Result<Arc<dyn Storage>, String> {
    if is_postgres_url(database) {
        let storage = PgStorage::connect(database, pool)
            .await
            .map_err(|e| format!("cannot open the PostgreSQL database: {}", with_causes(&e)))?;
        return Ok(Arc::new(storage));
    }
    let storage = SqliteStorage::open(Path::new(database)).map_err(|e| e.to_string())?;
    Ok(Arc::new(storage))
}

/// An error and its causes, outermost first: PostgreSQL's own message ("database \"x\" does not
/// exist", "password authentication failed") is a cause of the pool's "db error".
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// What the log says of the database: a file's path, or a URL's hosts and database name (never
/// its password).
fn describe_database(database: &str) -> String {
    if !is_postgres_url(database) {
        return database.to_string();
    }
    match database.parse::<tokio_postgres::Config>() {
        Ok(config) => format!(
            "postgres hosts {:?} database {:?}",
            config.get_hosts(),
            config.get_dbname().unwrap_or_default()
        ),
        Err(_) => "postgres (an unreadable URL)".into(),
    }
}

/// Resolves at Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a SIGTERM right after the "listening" line (a supervisor stopping a
/// server it just started) is a graceful shutdown, not the default action's abrupt exit.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            let (term, int) = signals;
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
