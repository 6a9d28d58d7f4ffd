//! The PostgreSQL backend, selected by a `postgres://` database URL: a pool of connections
//! (deadpool-postgres over tokio-postgres) and the schema ([`schema`]). tokio-postgres was chosen
//! over sqlx because it takes a multi-host connection string with
//! `target_session_attrs=read-write`, which is how instances find the new primary after a
//! failover, and it has no compile-time query checking that would need a database at build time.
//!
//! Each aggregate trait is implemented in its own file, as on SQLite, with the same outcomes for
//! the same inputs (the conformance suite runs on both): `members.rs`, `ledger.rs`,
//! `programme.rs`, `offers.rs` (with the chunked fan-out in `fanout.rs` and the set-based batch
//! recompute in `segments.rs`), `messages.rs`, `changes.rs` (LISTEN/NOTIFY) and `health.rs`.
//! Concurrency is PostgreSQL's own: guarded writes are conditional `UPDATE`s (`WHERE version =
//! $n`, `WHERE used_at IS NULL`) whose zero rows are the typed outcome, run at READ COMMITTED,
//! where a write blocked by a concurrent one re-checks its condition once that one commits.

mod cards;
mod changes;
mod directory;
mod fanout;
mod health;
mod history;
mod ledger;
mod members;
mod messages;
mod offer_admin;
mod offers;
mod offline;
mod operators;
mod programme;
mod reports;
mod rfm_moves;
pub mod schema;
mod segments;
mod watch;

pub use ledger::UNSEEN_MOVEMENTS_SQL;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use crate::storage::StorageError;

/// Whether a `--database` value names a PostgreSQL database (a `postgres://` or `postgresql://`
/// URL, or libpq's key=value form starting `host=`) rather than a SQLite file path.
pub fn is_postgres_url(database: &str) -> bool {
    ["postgres://", "postgresql://", "host="]
        .iter()
        .any(|prefix| database.starts_with(prefix))
}

/// Statements through the connection's statement cache (deadpool-postgres keeps one per pooled
/// connection): a statement is parsed and planned once per connection, and each use is one round
/// trip (Bind/Execute) instead of two (Parse/Describe first). With a dozen statements per purchase
/// this halved the round trips and the database's CPU per purchase (`docs/benchmarks.md`).
/// Implemented for a pooled connection and its transactions.
#[async_trait::async_trait]
pub(crate) trait Cached: GenericClient {
    async fn fetch_all(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn fetch_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn fetch_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<T: GenericClient + ?Sized> Cached for T {}

/// Any failure of the database as the traits report it, its cause kept for the log.
pub(crate) fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    StorageError::Backend(e.into())
}

/// A stored 32-byte hash; a value of another length (which the schema never stores) is refused
/// rather than padded.
fn hash_from(bytes: &[u8]) -> Result<[u8; 32], StorageError> {
    <[u8; 32]>::try_from(bytes).map_err(backend)
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("the database URL is not valid: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("cannot get a database connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

/// The longest a request waits for a pooled connection, or for a new one to connect.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connections to one PostgreSQL database, its schema migrated.
#[derive(Clone)]
pub struct PgStorage {
    pool: Pool,
    /// How to open the change feed's own connection (`changes.rs`).
    config: tokio_postgres::Config,
    /// Names this instance in the change feed, so it skips its own announcements.
    instance: String,
    /// This instance's announcements, sent by `changes::announcer` in batches.
    announcer: tokio::sync::mpsc::UnboundedSender<crate::storage::Change>,
}

impl PgStorage {
    /// Connects to `url` (libpq's URL or key=value form, several hosts allowed), migrates the
    /// schema, and keeps up to `max_connections` connections.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, PgError> {
        let config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                // A connection back in the pool is reused if its connection task is still alive:
                // one the server closed (a failover, a restart) has ended its task and is
                // replaced. No test query: `Verified` costs a round trip per checkout, and a
                // purchase checks out several (about a quarter of the database's CPU per
                // purchase, `docs/benchmarks.md`); a connection that fails anyway fails its one
                // request, answered `503 database_unavailable`, and is replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: a database that is down, or a pool with nothing free, is a `PoolError`
        // in seconds (answered `503 database_unavailable`), not a request hanging to its timeout.
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let instance = loyalty_core::ids::hex(&loyalty_core::ids::random_bytes::<8>());
        let announcer = changes::announcer(pool.clone(), instance.clone());
        let storage = Self {
            pool,
            config,
            instance,
            announcer,
        };
        let mut client = storage.pool.get().await?;
        schema::migrate(&mut client).await?;
        Ok(storage)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(backend)
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, PgError> {
        let client = self.pool.get().await?;
        Ok(schema::version(&client).await?)
    }
}

impl PgStorage {
    /// Runs `read` in one REPEATABLE READ, read-only transaction: every query it makes sees the
    /// same snapshot, as one SQLite read transaction does.
    pub(super) async fn snapshot<T>(
        &self,
        read: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let out = read(&tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }
}
