//! [`HealthStore`] on PostgreSQL: the version `schema_migrations` records (one query on a pooled
//! connection), and deadpool's count of connections, which costs no round trip.

use async_trait::async_trait;

use super::{PgStorage, backend, schema};
use crate::storage::{HealthStore, PoolStatus, SchemaCheck, StorageError};

#[async_trait]
impl HealthStore for PgStorage {
    async fn schema_check(&self) -> Result<SchemaCheck, StorageError> {
        let client = self.client().await?;
        let found = schema::version(&client).await.map_err(backend)?;
        Ok(SchemaCheck {
            found,
            expected: schema::MIGRATIONS.len() as i64,
        })
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            size: status.size,
            available: status.available,
        })
    }
}
