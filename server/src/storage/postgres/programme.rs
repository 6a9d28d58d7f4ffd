//! The programme's configuration on PostgreSQL: one row holding the operator's JSON, as on SQLite.

use async_trait::async_trait;
use loyalty_core::programme::Programme;

use super::Cached;
use super::{PgStorage, backend};
use crate::storage::{ProgrammeStore, StorageError};

#[async_trait]
impl ProgrammeStore for PgStorage {
    async fn programme(&self) -> Result<Option<Programme>, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt("SELECT config FROM programme WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get(0).map_err(backend)?;
        serde_json::from_str(&text).map(Some).map_err(backend)
    }

    async fn set_programme(&self, programme: &Programme, now_ms: i64) -> Result<(), StorageError> {
        let text = serde_json::to_string(programme).map_err(backend)?;
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO programme (id, config, updated_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE
                 SET config = excluded.config, updated_at = excluded.updated_at",
                &[&text, &now_ms],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }
}
