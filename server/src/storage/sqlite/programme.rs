//! The programme's configuration on SQLite: one row holding the operator's JSON.

use async_trait::async_trait;
use loyalty_core::programme::Programme;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStorage, backend};
use crate::storage::{ProgrammeStore, StorageError};

#[async_trait]
impl ProgrammeStore for SqliteStorage {
    async fn programme(&self) -> Result<Option<Programme>, StorageError> {
        let text: Option<String> = self
            .read(|conn| {
                conn.query_row("SELECT config FROM programme WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)
            })
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(backend))
            .transpose()
    }

    async fn set_programme(&self, programme: &Programme, now_ms: i64) -> Result<(), StorageError> {
        let text = serde_json::to_string(programme).map_err(backend)?;
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO programme (id, config, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                params![text, now_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
