//! SQLite's [`OfferAdminStore`]: offers with their figures, counted through the partial index of
//! used rows (`offer_members_used`) and the activations by offer, and ending or withdrawing one in
//! a transaction on the writer connection.

use async_trait::async_trait;
use loyalty_core::api::offer_admin::{
    OfferEnd, OfferFigures, OfferRecord, OfferStatus, SegmentUptake,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::offers::parse_offer;
use super::{SqliteStorage, backend};
use crate::storage::{OfferAdminStore, OfferFilter, StorageError};

/// An offer and its figures; `WHERE` clauses follow.
const RECORD: &str = "
    SELECT o.definition, o.version, o.target_kind, o.target_key, o.created_at, o.updated_at,
           o.withdrawn_at, o.member_count,
           (SELECT count(*) FROM member_activations a WHERE a.offer_id = o.offer_id),
           (SELECT count(*) FROM offer_members u WHERE u.offer_id = o.offer_id AND u.uses > 0),
           (SELECT coalesce(sum(u.uses), 0) FROM offer_members u
            WHERE u.offer_id = o.offer_id AND u.uses > 0)
    FROM offers o";
/// ?1 the status (NULL for all), ?2 now, ?3 the offer id to page after, ?4 the limit.
const FILTER: &str = "
    WHERE (?1 IS NULL
           OR (?1 = 'withdrawn' AND o.withdrawn_at IS NOT NULL)
           OR (o.withdrawn_at IS NULL
               AND ((?1 = 'upcoming' AND o.valid_from > ?2 AND o.valid_until > ?2)
                    OR (?1 = 'active' AND o.valid_from <= ?2 AND o.valid_until > ?2)
                    OR (?1 = 'ended' AND o.valid_until <= ?2))))
      AND (?3 IS NULL OR o.offer_id > ?3)
    ORDER BY o.offer_id LIMIT ?4";

/// A row of [`RECORD`], its status judged at `now_ms`.
fn record(
    r: &rusqlite::Row<'_>,
    now_ms: i64,
) -> rusqlite::Result<Result<OfferRecord, StorageError>> {
    let definition: String = r.get(0)?;
    let withdrawn_at_ms: Option<i64> = r.get(6)?;
    let figures = OfferFigures {
        reach: r.get(7)?,
        activated: r.get(8)?,
        used_by: r.get(9)?,
        uses: r.get(10)?,
    };
    let (version, target_kind, target_key, created_at_ms, updated_at_ms) =
        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
    Ok(parse_offer(&definition).map(|offer| OfferRecord {
        status: OfferStatus::at(
            offer.valid_from_ms,
            offer.valid_until_ms,
            withdrawn_at_ms,
            now_ms,
        ),
        offer,
        version,
        target_kind,
        target_key,
        created_at_ms,
        updated_at_ms,
        withdrawn_at_ms,
        figures,
    }))
}

fn one(
    conn: &Connection,
    offer_id: &str,
    now_ms: i64,
) -> Result<Option<OfferRecord>, StorageError> {
    conn.prepare_cached(&format!("{RECORD} WHERE o.offer_id = ?1"))
        .and_then(|mut s| s.query_row([offer_id], |r| record(r, now_ms)).optional())
        .map_err(backend)?
        .transpose()
}

/// Ends or withdraws the offer inside the caller's transaction.
fn end_in(
    conn: &Connection,
    offer_id: &str,
    how: OfferEnd,
    now_ms: i64,
) -> Result<bool, StorageError> {
    let stored: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT definition, withdrawn_at FROM offers WHERE offer_id = ?1",
            [offer_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    let Some((definition, withdrawn_at)) = stored else {
        return Ok(false);
    };
    let (offer, withdrawn, changed) = how.apply(parse_offer(&definition)?, withdrawn_at, now_ms);
    if changed {
        let definition = serde_json::to_string(&offer).map_err(backend)?;
        conn.execute(
            "UPDATE offers SET definition = ?2, valid_until = ?3, withdrawn_at = ?4,
                 version = version + 1, updated_at = ?5
             WHERE offer_id = ?1",
            params![
                offer_id,
                definition,
                offer.valid_until_ms,
                withdrawn,
                now_ms
            ],
        )
        .map_err(backend)?;
    }
    Ok(true)
}

#[async_trait]
impl OfferAdminStore for SqliteStorage {
    async fn list_offers(&self, f: &OfferFilter) -> Result<Vec<OfferRecord>, StorageError> {
        let f = f.clone();
        self.read(move |conn| {
            let status = f.status.map(OfferStatus::as_str);
            conn.prepare_cached(&format!("{RECORD} {FILTER}"))
                .and_then(|mut s| {
                    s.query_map(params![status, f.now_ms, f.after, f.limit], |r| {
                        record(r, f.now_ms)
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(backend)?
                .into_iter()
                .collect()
        })
        .await
    }

    async fn offer_record(
        &self,
        offer_id: &str,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError> {
        let offer_id = offer_id.to_string();
        self.read(move |conn| one(conn, &offer_id, now_ms)).await
    }

    async fn offer_uptake(
        &self,
        offer_id: &str,
    ) -> Result<Option<Vec<SegmentUptake>>, StorageError> {
        let offer_id = offer_id.to_string();
        self.read(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let known: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM offers WHERE offer_id = ?1",
                    [&offer_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if known.is_none() {
                return Ok(None);
            }
            let rows = tx
                .prepare_cached(&crate::storage::offer_admin::uptake_statement(
                    &crate::storage::dialect::SQLITE,
                ))
                .and_then(|mut s| {
                    s.query_map([&offer_id], |r| {
                        Ok(SegmentUptake {
                            segment_id: r.get(0)?,
                            name: r.get(1)?,
                            members: r.get(2)?,
                            reached: r.get(3)?,
                            activated: r.get(4)?,
                            used_by: r.get(5)?,
                            uses: r.get(6)?,
                        })
                    })?
                    .collect()
                })
                .map_err(backend)?;
            Ok(Some(rows))
        })
        .await
    }

    async fn end_offer(
        &self,
        offer_id: &str,
        how: OfferEnd,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError> {
        let offer_id = offer_id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            if !end_in(&tx, &offer_id, how, now_ms)? {
                return Ok(None);
            }
            let record = one(&tx, &offer_id, now_ms)?;
            tx.commit().map_err(backend)?;
            Ok(record)
        })
        .await
    }
}
