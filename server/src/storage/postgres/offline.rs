//! PostgreSQL's [`OfflineStore`]: the key feed read from the numbers the triggers of migration 016
//! keep on device keys and members (one counter row, so numbers become visible in order across
//! instances), offline code claims, and till exceptions.

use async_trait::async_trait;
use loyalty_core::api::offline::{TillException, TillExceptionKind};
use tokio_postgres::Row;

use super::{Cached, PgStorage, backend};
use crate::storage::{CodeClaim, FeedChange, FeedEntry, OfflineStore, StorageError};

/// Keys and cards changed after a number, oldest change first; one statement, one snapshot.
const FEED: &str = "
    SELECT k.feed_seq, m.card_number, k.key_id, k.public_key,
           k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL
    FROM device_keys k JOIN members m USING (member_id) JOIN devices d USING (device_id)
    WHERE k.feed_seq > $1
    UNION ALL
    SELECT feed_seq, card_number, NULL, NULL, status <> 'active'
    FROM members WHERE feed_seq > $1
    ORDER BY 1 LIMIT $2";

fn feed_change(r: &Row) -> Result<FeedChange, StorageError> {
    let seq: i64 = r.try_get(0).map_err(backend)?;
    let card_number: String = r.try_get(1).map_err(backend)?;
    let key_id: Option<i64> = r.try_get(2).map_err(backend)?;
    let flag: bool = r.try_get(4).map_err(backend)?;
    let entry = match key_id {
        Some(key_id) => FeedEntry::Key {
            card_number,
            key_id: u32::try_from(key_id).map_err(backend)?,
            public_key: r.try_get(3).map_err(backend)?,
            revoked: flag,
        },
        None => FeedEntry::Card {
            card_number,
            blocked: flag,
        },
    };
    Ok(FeedChange {
        seq: u64::try_from(seq).map_err(backend)?,
        entry,
    })
}

fn exception(r: &Row) -> Result<TillException, StorageError> {
    let kind: String = r.try_get(1).map_err(backend)?;
    Ok(TillException {
        posting: r.try_get(0).map_err(backend)?,
        kind: TillExceptionKind::parse(&kind)
            .ok_or_else(|| backend(format!("unknown till exception kind `{kind}`")))?,
        member_id: r.try_get(2).map_err(backend)?,
        till_id: r.try_get(3).map_err(backend)?,
        points: r.try_get(4).map_err(backend)?,
        detail: r.try_get(5).map_err(backend)?,
        at_ms: r.try_get(6).map_err(backend)?,
    })
}

#[async_trait]
impl OfflineStore for PgStorage {
    async fn key_feed(&self, since: u64, limit: u32) -> Result<Vec<FeedChange>, StorageError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .fetch_all(FEED, &[&since, &i64::from(limit)])
            .await
            .map_err(backend)?;
        rows.iter().map(feed_change).collect()
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
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The insert decides between racing claims: the second waits for the first's commit and
        // then inserts nothing.
        let claimed = tx
            .exec(
                "INSERT INTO offline_codes (code_id, posting, till_id, code_time)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&code_id.as_slice(), &posting, &till_id, &code_time_ms],
            )
            .await
            .map_err(backend)?;
        if claimed != 1 {
            let row = tx
                .fetch_one(
                    "SELECT posting, till_id FROM offline_codes WHERE code_id = $1",
                    &[&code_id.as_slice()],
                )
                .await
                .map_err(backend)?;
            let by: String = row.try_get(0).map_err(backend)?;
            return Ok(if by == posting {
                CodeClaim::Mine
            } else {
                CodeClaim::Taken {
                    by_till: Some(row.try_get(1).map_err(backend)?),
                }
            });
        }
        let fresh = tx
            .exec(
                "INSERT INTO used_codes (code_id, used_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&code_id.as_slice(), &now_ms],
            )
            .await
            .map_err(backend)?;
        if fresh != 1 {
            // Used online: the claim rolls back with the transaction.
            return Ok(CodeClaim::Taken { by_till: None });
        }
        tx.exec(
            "DELETE FROM offline_codes WHERE code_time < $1",
            &[&forget_before_ms],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(CodeClaim::Claimed)
    }

    async fn record_till_exception(&self, e: &TillException) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO till_exceptions (posting, kind, member_id, till_id, points, detail, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &e.posting,
                    &e.kind.as_str(),
                    &e.member_id,
                    &e.till_id,
                    &e.points,
                    &e.detail,
                    &e.at_ms,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn till_exceptions(&self, limit: u32) -> Result<Vec<TillException>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .fetch_all(
                "SELECT posting, kind, member_id, till_id, points, detail, at
                 FROM till_exceptions ORDER BY at DESC, posting DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(exception).collect()
    }
}
