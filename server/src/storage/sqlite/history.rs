//! SQLite's [`HistoryStore`]: a member's ledger paged through `ledger_by_member` (member, time),
//! and their devices through `devices_by_member`.

use async_trait::async_trait;
use loyalty_core::api::history::{DeviceView, LedgerCursor, MemberLedgerEntry};
use rusqlite::params;

use super::ledger::entry_row;
use super::{SqliteStorage, backend};
use crate::storage::{HistoryStore, StorageError};

/// Newest first by (time, transaction id); with a cursor, only what sorts after it.
const LEDGER_PAGE: &str = "
    SELECT tx_id, points, reason, at, rule, reason_code, reason_params, available_at, posting,
           till_id, receipt_id
    FROM ledger
    WHERE member_id = ?1 AND (?2 IS NULL OR at < ?2 OR (at = ?2 AND tx_id < ?3))
    ORDER BY at DESC, tx_id DESC LIMIT ?4";
const DEVICES: &str = "
    SELECT device_id, name, created_at, revoked_at, last_seen_at
    FROM devices WHERE member_id = ?1 ORDER BY created_at, device_id";

/// A page's row: the movement (see [`entry_row`]) and the posting, till and receipt behind it.
fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<MemberLedgerEntry, StorageError>> {
    let entry = entry_row(r)?;
    let (posting, till_id, receipt_id) = (r.get(8)?, r.get(9)?, r.get(10)?);
    Ok(entry.map(|entry| MemberLedgerEntry {
        entry,
        posting,
        till_id,
        receipt_id,
    }))
}

#[async_trait]
impl HistoryStore for SqliteStorage {
    async fn ledger_page(
        &self,
        member_id: &str,
        before: Option<&LedgerCursor>,
        limit: u32,
    ) -> Result<Vec<MemberLedgerEntry>, StorageError> {
        let member_id = member_id.to_string();
        let (at, tx) = (before.map(|c| c.at_ms), before.map(|c| c.tx_id.clone()));
        let rows = self
            .read(move |conn| {
                conn.prepare_cached(LEDGER_PAGE)
                    .and_then(|mut s| {
                        s.query_map(params![member_id, at, tx, limit], ledger_row)?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(backend)
            })
            .await?;
        rows.into_iter().collect()
    }

    async fn member_devices(&self, member_id: &str) -> Result<Vec<DeviceView>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(DEVICES)
                .and_then(|mut s| {
                    s.query_map([member_id], |r| {
                        Ok(DeviceView {
                            device_id: r.get(0)?,
                            name: r.get(1)?,
                            enrolled_at_ms: r.get(2)?,
                            revoked_at_ms: r.get(3)?,
                            last_seen_ms: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(backend)
        })
        .await
    }
}
