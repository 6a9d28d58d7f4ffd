//! SQLite's [`ReportStore`]: each report one aggregate statement.

use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStorage, backend};
use crate::storage::{LiabilityTotals, ReportStore, StorageError};

/// Open lots only (`remaining > 0`): the partial covering index `lots_open_by_member` holds them.
const LIABILITY: &str = "
    SELECT coalesce(sum(CASE WHEN available_at <= ?1 THEN remaining END), 0),
           coalesce(sum(CASE WHEN available_at > ?1 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?2 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?3 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?4 THEN remaining END), 0),
           count(DISTINCT member_id)
    FROM lots WHERE remaining > 0";

#[async_trait]
impl ReportStore for SqliteStorage {
    async fn liability(&self, now_ms: i64, h: [i64; 3]) -> Result<LiabilityTotals, StorageError> {
        self.read(move |conn| {
            conn.query_row(LIABILITY, params![now_ms, h[0], h[1], h[2]], |r| {
                Ok(LiabilityTotals {
                    available: r.get(0)?,
                    pending: r.get(1)?,
                    expiring: vec![r.get(2)?, r.get(3)?, r.get(4)?],
                    members_with_points: r.get(5)?,
                })
            })
            .map_err(backend)
        })
        .await
    }
}
