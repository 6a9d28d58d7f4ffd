//! SQLite's [`OfflineStore`]: the key feed read from the numbers the triggers of migration 015 keep
//! on device keys and members, offline code claims, and till exceptions.

use async_trait::async_trait;
use loyalty_core::api::offline::{TillException, TillExceptionKind};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStorage, backend};
use crate::storage::{CodeClaim, FeedChange, FeedEntry, OfflineStore, StorageError};

/// Keys and cards changed after a number, oldest change first. Both sides are read by their
/// `feed_seq` index; one statement, so one snapshot.
const FEED: &str = "
    SELECT k.feed_seq, m.card_number, k.key_id, k.public_key,
           k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL
    FROM device_keys k JOIN members m USING (member_id) JOIN devices d USING (device_id)
    WHERE k.feed_seq > ?1
    UNION ALL
    SELECT feed_seq, card_number, NULL, NULL, status <> 'active'
    FROM members WHERE feed_seq > ?1
    ORDER BY 1 LIMIT ?2";

fn feed_change(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedChange> {
    let seq: i64 = r.get(0)?;
    let card_number: String = r.get(1)?;
    let key_id: Option<i64> = r.get(2)?;
    let flag: bool = r.get(4)?;
    let entry = match key_id {
        Some(key_id) => FeedEntry::Key {
            card_number,
            key_id: u32::try_from(key_id).unwrap_or_default(),
            public_key: r.get(3)?,
            revoked: flag,
        },
        None => FeedEntry::Card {
            card_number,
            blocked: flag,
        },
    };
    Ok(FeedChange {
        seq: u64::try_from(seq).unwrap_or_default(),
        entry,
    })
}

fn kind_from(name: &str) -> Result<TillExceptionKind, StorageError> {
    TillExceptionKind::parse(name)
        .ok_or_else(|| backend(format!("unknown till exception kind `{name}`")))
}

#[async_trait]
impl OfflineStore for SqliteStorage {
    async fn key_feed(&self, since: u64, limit: u32) -> Result<Vec<FeedChange>, StorageError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(FEED).map_err(backend)?;
            let rows = statement
                .query_map(params![since, limit], feed_change)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn claim_offline_code(
        &self,
        code_id: [u8; 16],
        posting: &str,
        till_id: &str,
        code_time_ms: i64,
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<CodeClaim, StorageError> {
        let (posting, till_id) = (posting.to_string(), till_id.to_string());
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let claimed: Option<(String, String)> = tx
                .query_row(
                    "SELECT posting, till_id FROM offline_codes WHERE code_id = ?1",
                    [code_id.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            if let Some((by, till)) = claimed {
                return Ok(if by == posting {
                    CodeClaim::Mine
                } else {
                    CodeClaim::Taken {
                        by_till: Some(till),
                    }
                });
            }
            let fresh = tx
                .execute(
                    "INSERT INTO used_codes (code_id, used_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![code_id.as_slice(), now_ms],
                )
                .map_err(backend)?;
            if fresh != 1 {
                return Ok(CodeClaim::Taken { by_till: None });
            }
            tx.execute(
                "INSERT INTO offline_codes (code_id, posting, till_id, code_time) VALUES (?1, ?2, ?3, ?4)",
                params![code_id.as_slice(), posting, till_id, code_time_ms],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM offline_codes WHERE code_time < ?1",
                [forget_before_ms],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(CodeClaim::Claimed)
        })
        .await
    }

    async fn record_till_exception(&self, e: &TillException) -> Result<(), StorageError> {
        let e = e.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO till_exceptions (posting, kind, member_id, till_id, points, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    e.posting,
                    e.kind.as_str(),
                    e.member_id,
                    e.till_id,
                    e.points,
                    e.detail,
                    e.at_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn till_exceptions(&self, limit: u32) -> Result<Vec<TillException>, StorageError> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT posting, kind, member_id, till_id, points, detail, at
                     FROM till_exceptions ORDER BY at DESC, posting DESC LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (posting, kind, member_id, till_id, points, detail, at_ms) =
                    row.map_err(backend)?;
                out.push(TillException {
                    posting,
                    kind: kind_from(&kind)?,
                    member_id,
                    till_id,
                    points,
                    detail,
                    at_ms,
                });
            }
            Ok(out)
        })
        .await
    }
}
