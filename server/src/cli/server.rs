//! `loyalty server`: runs the HTTP server on its embedded SQLite database until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use loyalty_server::sqlite::SqliteStorage;
use loyalty_server::{App, Config};

use super::CliResult;

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "LOYALTY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The SQLite database file (created when absent).
    #[arg(long, env = "LOYALTY_DATABASE", default_value = "loyalty-server.db")]
    database: PathBuf,
    /// Token operators must present (at least 16 characters).
    #[arg(long, env = "LOYALTY_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// Token tills must present (at least 16 characters).
    #[arg(long, env = "LOYALTY_TILL_TOKEN", hide_env_values = true)]
    till_token: String,
    /// Points earned per whole currency unit spent.
    #[arg(long, default_value_t = 1)]
    points_per_unit: i64,
    /// Seconds between runs of the programme's settle job (maturity, expiry, tier reviews).
    #[arg(long, default_value_t = 60)]
    settle_interval_s: u64,
    /// Hours an activation code stays valid.
    #[arg(long, default_value_t = 24 * 7)]
    activation_ttl_hours: i64,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = Config::DEFAULT_MAX_BODY_BYTES)]
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
}

pub async fn run(args: ServerArgs) -> CliResult {
    super::init_logging("info,tower_http=info");
    if args.operator_token.len() < 16 || args.till_token.len() < 16 {
        return Err("the operator and till tokens must be at least 16 characters".into());
    }
    if args.till_token == args.operator_token {
        return Err("the till token must differ from the operator token".into());
    }
    let storage = SqliteStorage::open(&args.database).map_err(|e| e.to_string())?;
    let mut config = Config::new(args.database.clone(), args.operator_token);
    config.listen = args.listen;
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, database = %args.database.display(), "loyalty server listening");
    // Scripts wait for this line to know the port (useful with --listen 127.0.0.1:0).
    println!("listening on http://{addr}");
    let app = App::new(config, Arc::new(storage));
    loyalty_server::serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
