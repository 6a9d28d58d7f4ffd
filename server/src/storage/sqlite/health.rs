//! [`HealthStore`] on SQLite: the schema version is `PRAGMA user_version`, which the migration
//! runner (rusqlite_migration) keeps, read on a read connection so it never waits for the writer.
//! Its "pool" is the read connections beside the one writer.

use async_trait::async_trait;

use super::{MIGRATIONS, SqliteStorage, backend};
use crate::storage::{HealthStore, PoolStatus, SchemaCheck, StorageError};

#[async_trait]
impl HealthStore for SqliteStorage {
    async fn schema_check(&self) -> Result<SchemaCheck, StorageError> {
        let found: i64 = self
            .read(|conn| {
                conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await?;
        Ok(SchemaCheck {
            found,
            expected: MIGRATIONS.len() as i64,
        })
    }

    /// The read connections (the writer is one, always there): how many are free now.
    fn pool_status(&self) -> Option<PoolStatus> {
        let available = self.readers.iter().filter(|r| r.try_lock().is_ok()).count();
        Some(PoolStatus {
            size: self.readers.len(),
            available,
        })
    }
}
