//! PostgreSQL's [`ReportStore`]: each report one aggregate statement, as on SQLite.

use async_trait::async_trait;

use super::{Cached, PgStorage, backend};
use crate::storage::{LiabilityTotals, ReportStore, StorageError};

const LIABILITY: &str = "
    SELECT coalesce(sum(remaining) FILTER (WHERE available_at <= $1), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE available_at > $1), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $2), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $3), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $4), 0)::bigint,
           count(DISTINCT member_id)
    FROM lots WHERE remaining > 0";

#[async_trait]
impl ReportStore for PgStorage {
    async fn liability(&self, now_ms: i64, h: [i64; 3]) -> Result<LiabilityTotals, StorageError> {
        let r = self
            .client()
            .await?
            .fetch_one(LIABILITY, &[&now_ms, &h[0], &h[1], &h[2]])
            .await
            .map_err(backend)?;
        let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
        Ok(LiabilityTotals {
            available: get(0)?,
            pending: get(1)?,
            expiring: vec![get(2)?, get(3)?, get(4)?],
            members_with_points: get(5)?,
        })
    }
}
