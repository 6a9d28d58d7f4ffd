//! The PostgreSQL backend, selected by a `postgres://` database URL: a pool of connections
//! (deadpool-postgres over tokio-postgres) and the schema ([`schema`]). tokio-postgres was chosen
//! over sqlx because it takes a multi-host connection string with
//! `target_session_attrs=read-write`, which is how instances find the new primary after a
//! failover, and it has no compile-time query checking that would need a database at build time.
//!
//! The storage traits are implemented here next (issue 12); today the backend connects, migrates
//! and reports its schema version, and the test suite runs it against a real PostgreSQL server.

pub mod schema;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

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

/// Connections to one PostgreSQL database, its schema migrated.
#[derive(Clone)]
pub struct PgStorage {
    pool: Pool,
}

impl PgStorage {
    /// Connects to `url` (libpq's URL or key=value form, several hosts allowed), migrates the
    /// schema, and keeps up to `max_connections` connections.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, PgError> {
        let config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                // A connection back in the pool is checked before reuse, so one the server closed
                // (a failover, a restart) is replaced rather than handed out.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let storage = Self { pool };
        let mut client = storage.pool.get().await?;
        schema::migrate(&mut client).await?;
        Ok(storage)
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, PgError> {
        let client = self.pool.get().await?;
        Ok(schema::version(&client).await?)
    }
}
