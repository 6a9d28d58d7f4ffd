//! PostgreSQL's [`HistoryStore`]: a member's ledger paged through `ledger_by_member` (member,
//! time), transaction ids compared in byte order as on SQLite, and their devices.

use async_trait::async_trait;
use loyalty_core::api::history::{DeviceView, LedgerCursor, MemberLedgerEntry};
use tokio_postgres::Row;

use super::ledger::entry_row;
use super::{Cached, PgStorage, backend};
use crate::storage::{HistoryStore, StorageError};

/// Newest first by (time, transaction id); with a cursor, only what sorts after it.
const LEDGER_PAGE: &str = "
    SELECT tx_id, points, reason, at, rule, reason_code, reason_params, available_at, posting,
           till_id, receipt_id
    FROM ledger
    WHERE member_id = $1
      AND ($2::bigint IS NULL OR at < $2 OR (at = $2 AND tx_id COLLATE \"C\" < $3::text))
    ORDER BY at DESC, tx_id COLLATE \"C\" DESC LIMIT $4";
const DEVICES: &str = "
    SELECT device_id, name, created_at, revoked_at, last_seen_at
    FROM devices WHERE member_id = $1 ORDER BY created_at, device_id COLLATE \"C\"";

/// A page's row: the movement (see [`entry_row`]) and the posting, till and receipt behind it.
fn ledger_entry(r: &Row) -> Result<MemberLedgerEntry, StorageError> {
    Ok(MemberLedgerEntry {
        entry: entry_row(r)?,
        posting: r.try_get(8).map_err(backend)?,
        till_id: r.try_get(9).map_err(backend)?,
        receipt_id: r.try_get(10).map_err(backend)?,
    })
}

#[async_trait]
impl HistoryStore for PgStorage {
    async fn ledger_page(
        &self,
        member_id: &str,
        before: Option<&LedgerCursor>,
        limit: u32,
    ) -> Result<Vec<MemberLedgerEntry>, StorageError> {
        let (at, tx) = (before.map(|c| c.at_ms), before.map(|c| c.tx_id.as_str()));
        let limit = i64::from(limit);
        let rows = self
            .client()
            .await?
            .fetch_all(LEDGER_PAGE, &[&member_id, &at, &tx, &limit])
            .await
            .map_err(backend)?;
        rows.iter().map(ledger_entry).collect()
    }

    async fn member_devices(&self, member_id: &str) -> Result<Vec<DeviceView>, StorageError> {
        let rows = self
            .client()
            .await?
            .fetch_all(DEVICES, &[&member_id])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(DeviceView {
                    device_id: r.try_get(0).map_err(backend)?,
                    name: r.try_get(1).map_err(backend)?,
                    enrolled_at_ms: r.try_get(2).map_err(backend)?,
                    revoked_at_ms: r.try_get(3).map_err(backend)?,
                    last_seen_ms: r.try_get(4).map_err(backend)?,
                })
            })
            .collect()
    }
}
