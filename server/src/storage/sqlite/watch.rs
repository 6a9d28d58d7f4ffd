//! SQLite's [`WatchStore`]: the statements of [`crate::storage::watch`] in SQLite's spelling, the
//! three lists read in one transaction so they agree.

use async_trait::async_trait;
use loyalty_core::calendar::DAY_MS;
use rusqlite::{Connection, params};

use super::{SqliteStorage, backend};
use crate::storage::dialect::SQLITE;
use crate::storage::watch::{
    activity_statement, devices_statement, refusal_days, refusals_statement,
};
use crate::storage::{StorageError, WatchActivity, WatchQuery, WatchStore, WatchTotals};

fn activity(
    conn: &Connection,
    q: &WatchQuery,
    by_member: bool,
) -> rusqlite::Result<Vec<WatchActivity>> {
    let (first, last) = refusal_days(q);
    let mut statement = conn.prepare_cached(&activity_statement(&SQLITE, by_member, q.by))?;
    let rows = statement.query_map(params![q.from_ms, q.to_ms, first, last, q.limit], |r| {
        Ok(WatchActivity {
            id: r.get(0)?,
            card_number: r.get(1)?,
            purchases: r.get(2)?,
            redemptions: r.get(3)?,
            points_redeemed: r.get(4)?,
            refunds: r.get(5)?,
            refused_codes: r.get(6)?,
            offline_exceptions: r.get(7)?,
        })
    })?;
    rows.collect()
}

fn watch_list(conn: &mut Connection, q: &WatchQuery) -> rusqlite::Result<WatchTotals> {
    let tx = conn.transaction()?;
    let (first, last) = refusal_days(q);
    let many_devices = tx
        .prepare_cached(&devices_statement(&SQLITE))?
        .query_map(params![q.min_devices, q.limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let refusals = tx
        .prepare_cached(&refusals_statement(&SQLITE))?
        .query_map(params![first, last, q.from_ms, q.to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(WatchTotals {
        members: activity(&tx, q, true)?,
        tills: activity(&tx, q, false)?,
        many_devices,
        refusals,
    })
}

#[async_trait]
impl WatchStore for SqliteStorage {
    async fn record_refusal(
        &self,
        till_id: &str,
        member_id: Option<&str>,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), StorageError> {
        let (till_id, reason) = (till_id.to_string(), reason.to_string());
        let member_id = member_id.unwrap_or("").to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO code_refusals (day, till_id, member_id, reason, count)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (day, till_id, member_id, reason) DO UPDATE SET count = count + 1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    at_ms.div_euclid(DAY_MS),
                    till_id,
                    member_id,
                    reason
                ])
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn watch_list(&self, query: &WatchQuery) -> Result<WatchTotals, StorageError> {
        let query = query.clone();
        self.read(move |conn| watch_list(conn, &query).map_err(backend))
            .await
    }
}
