//! PostgreSQL's [`OfferAdminStore`]: offers with their figures, counted through the partial index
//! of used rows (`offer_members_used`) and the activations by offer, and ending or withdrawing one
//! in a transaction that locks the offer's row (two operators at once end it once).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use loyalty_core::api::offer_admin::{
    OfferEnd, OfferFigures, OfferRecord, OfferStatus, SegmentUptake,
};
use tokio_postgres::Row;

use super::offers::parse_offer;
use super::{Cached, PgStorage, backend};
use crate::storage::{OfferAdminStore, OfferFilter, StorageError};

/// An offer and its figures; `WHERE` clauses follow.
const RECORD: &str = "
    SELECT o.definition, o.version, o.target_kind, o.target_key, o.created_at, o.updated_at,
           o.withdrawn_at, o.member_count,
           (SELECT count(*) FROM member_activations a WHERE a.offer_id = o.offer_id),
           (SELECT count(*) FROM offer_members u WHERE u.offer_id = o.offer_id AND u.uses > 0),
           (SELECT coalesce(sum(u.uses), 0)::bigint FROM offer_members u
            WHERE u.offer_id = o.offer_id AND u.uses > 0)
    FROM offers o";
/// $1 the status (NULL for all), $2 now, $3 the offer id to page after (byte order, as on
/// SQLite), $4 the limit.
const FILTER: &str = "
    WHERE ($1::text IS NULL
           OR ($1 = 'withdrawn' AND o.withdrawn_at IS NOT NULL)
           OR (o.withdrawn_at IS NULL
               AND (($1 = 'upcoming' AND o.valid_from > $2 AND o.valid_until > $2)
                    OR ($1 = 'active' AND o.valid_from <= $2 AND o.valid_until > $2)
                    OR ($1 = 'ended' AND o.valid_until <= $2))))
      AND ($3::text IS NULL OR o.offer_id COLLATE \"C\" > $3)
    ORDER BY o.offer_id COLLATE \"C\" LIMIT $4";

/// A row of [`RECORD`], its status judged at `now_ms`.
fn record(r: &Row, now_ms: i64) -> Result<OfferRecord, StorageError> {
    let offer = parse_offer(r.try_get(0).map_err(backend)?)?;
    let withdrawn_at_ms: Option<i64> = r.try_get(6).map_err(backend)?;
    Ok(OfferRecord {
        status: OfferStatus::at(
            offer.valid_from_ms,
            offer.valid_until_ms,
            withdrawn_at_ms,
            now_ms,
        ),
        offer,
        version: r.try_get(1).map_err(backend)?,
        target_kind: r.try_get(2).map_err(backend)?,
        target_key: r.try_get(3).map_err(backend)?,
        created_at_ms: r.try_get(4).map_err(backend)?,
        updated_at_ms: r.try_get(5).map_err(backend)?,
        withdrawn_at_ms,
        figures: OfferFigures {
            reach: r.try_get(7).map_err(backend)?,
            activated: r.try_get(8).map_err(backend)?,
            used_by: r.try_get(9).map_err(backend)?,
            uses: r.try_get(10).map_err(backend)?,
        },
    })
}

async fn one(
    conn: &impl GenericClient,
    offer_id: &str,
    now_ms: i64,
) -> Result<Option<OfferRecord>, StorageError> {
    conn.fetch_opt(&format!("{RECORD} WHERE o.offer_id = $1"), &[&offer_id])
        .await
        .map_err(backend)?
        .map(|r| record(&r, now_ms))
        .transpose()
}

#[async_trait]
impl OfferAdminStore for PgStorage {
    async fn list_offers(&self, f: &OfferFilter) -> Result<Vec<OfferRecord>, StorageError> {
        let status = f.status.map(OfferStatus::as_str);
        let limit = i64::from(f.limit);
        self.client()
            .await?
            .fetch_all(
                &format!("{RECORD} {FILTER}"),
                &[&status, &f.now_ms, &f.after, &limit],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| record(r, f.now_ms))
            .collect()
    }

    async fn offer_record(
        &self,
        offer_id: &str,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError> {
        one(&self.client().await?, offer_id, now_ms).await
    }

    async fn offer_uptake(
        &self,
        offer_id: &str,
    ) -> Result<Option<Vec<SegmentUptake>>, StorageError> {
        self.snapshot(async |tx| {
            let known = tx
                .fetch_opt("SELECT 1 FROM offers WHERE offer_id = $1", &[&offer_id])
                .await
                .map_err(backend)?;
            if known.is_none() {
                return Ok(None);
            }
            let sql =
                crate::storage::offer_admin::uptake_statement(&crate::storage::dialect::POSTGRES);
            let rows = tx.fetch_all(&sql, &[&offer_id]).await.map_err(backend)?;
            let uptake = rows.iter().map(|r| {
                let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
                Ok(SegmentUptake {
                    segment_id: r.try_get(0).map_err(backend)?,
                    name: r.try_get(1).map_err(backend)?,
                    members: get(2)?,
                    reached: get(3)?,
                    activated: get(4)?,
                    used_by: get(5)?,
                    uses: get(6)?,
                })
            });
            Ok(Some(uptake.collect::<Result<_, StorageError>>()?))
        })
        .await
    }

    async fn end_offer(
        &self,
        offer_id: &str,
        how: OfferEnd,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let Some(row) = tx
            .fetch_opt(
                "SELECT definition, withdrawn_at FROM offers WHERE offer_id = $1 FOR UPDATE",
                &[&offer_id],
            )
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let stored = parse_offer(row.try_get(0).map_err(backend)?)?;
        let withdrawn_at: Option<i64> = row.try_get(1).map_err(backend)?;
        let (offer, withdrawn, changed) = how.apply(stored, withdrawn_at, now_ms);
        if changed {
            let definition = serde_json::to_string(&offer).map_err(backend)?;
            tx.exec(
                "UPDATE offers SET definition = $2, valid_until = $3, withdrawn_at = $4,
                     version = version + 1, updated_at = $5
                 WHERE offer_id = $1",
                &[
                    &offer_id,
                    &definition,
                    &offer.valid_until_ms,
                    &withdrawn,
                    &now_ms,
                ],
            )
            .await
            .map_err(backend)?;
        }
        let record = one(&tx, offer_id, now_ms).await?;
        tx.commit().await.map_err(backend)?;
        Ok(record)
    }
}
