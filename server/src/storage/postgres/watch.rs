//! PostgreSQL's [`WatchStore`]: the statements of [`crate::storage::watch`] in PostgreSQL's
//! spelling, the three lists read in one snapshot so they agree.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use loyalty_core::calendar::DAY_MS;

use super::{Cached, PgStorage, backend};
use crate::storage::dialect::POSTGRES;
use crate::storage::watch::{
    activity_statement, devices_statement, refusal_days, refusals_statement,
};
use crate::storage::{StorageError, WatchActivity, WatchQuery, WatchStore, WatchTotals};

async fn activity(
    tx: &Transaction<'_>,
    q: &WatchQuery,
    by_member: bool,
) -> Result<Vec<WatchActivity>, StorageError> {
    let (first, last) = refusal_days(q);
    let limit = i64::from(q.limit);
    let sql = activity_statement(&POSTGRES, by_member, q.by);
    let rows = tx
        .fetch_all(&sql, &[&q.from_ms, &q.to_ms, &first, &last, &limit])
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|r| {
            let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
            Ok(WatchActivity {
                id: r.try_get(0).map_err(backend)?,
                card_number: r.try_get(1).map_err(backend)?,
                purchases: get(2)?,
                redemptions: get(3)?,
                points_redeemed: get(4)?,
                refunds: get(5)?,
                refused_codes: get(6)?,
                offline_exceptions: get(7)?,
            })
        })
        .collect()
}

/// A row of three columns: two texts and a count.
fn triple(r: &tokio_postgres::Row) -> Result<(String, String, i64), StorageError> {
    Ok((
        r.try_get(0).map_err(backend)?,
        r.try_get(1).map_err(backend)?,
        r.try_get(2).map_err(backend)?,
    ))
}

#[async_trait]
impl WatchStore for PgStorage {
    async fn record_refusal(
        &self,
        till_id: &str,
        member_id: Option<&str>,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), StorageError> {
        let day = at_ms.div_euclid(DAY_MS);
        self.client()
            .await?
            .exec(
                "INSERT INTO code_refusals (day, till_id, member_id, reason, count)
                 VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (day, till_id, member_id, reason)
                 DO UPDATE SET count = code_refusals.count + 1",
                &[&day, &till_id, &member_id.unwrap_or(""), &reason],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn watch_list(&self, q: &WatchQuery) -> Result<WatchTotals, StorageError> {
        self.snapshot(async |tx| {
            let (first, last) = refusal_days(q);
            let limit = i64::from(q.limit);
            let devices = tx
                .fetch_all(&devices_statement(&POSTGRES), &[&q.min_devices, &limit])
                .await
                .map_err(backend)?;
            let refusals = tx
                .fetch_all(
                    &refusals_statement(&POSTGRES),
                    &[&first, &last, &q.from_ms, &q.to_ms],
                )
                .await
                .map_err(backend)?;
            Ok(WatchTotals {
                members: activity(tx, q, true).await?,
                tills: activity(tx, q, false).await?,
                many_devices: devices.iter().map(triple).collect::<Result<_, _>>()?,
                refusals: refusals.iter().map(triple).collect::<Result<_, _>>()?,
            })
        })
        .await
    }
}
