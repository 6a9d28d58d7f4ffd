//! Targeted offers on PostgreSQL: [`OfferStore`] for [`PgStorage`] (publication with its
//! chunked fan-out from `fanout.rs`, the pending projections, the till's offers, segments; the
//! batch recompute is `segments.rs`), and what a posting's own transaction reads and writes
//! ([`till_offers_in`], [`record_offer_uses`]; a purchase reads its offers within the book's one
//! statement, `ledger.rs`). Same tables and outcomes as SQLite's `offers.rs`; explicit members
//! are checked and added with one `unnest` statement each.

use std::collections::BTreeSet;

use super::Cached;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use loyalty_core::api::{OfferTarget, SegmentView};
use loyalty_core::offers::Offer;
use loyalty_core::segments::Segment;

use super::fanout::{bump_fanout_seq, fan_out, segments_in};
use super::segments::recompute;
use super::{PgStorage, backend};
use crate::storage::StorageError;
use crate::storage::offers::{
    OfferStore, PendingOffer, Progress, Publication, Published, RecomputeReport, SegmentCreation,
    SegmentDeletion, TillOffer,
};

/// The advisory lock a segment recompute holds for its whole run (an arbitrary constant,
/// "LOYALRFM"): one recompute at a time per database, whichever instance or command starts it.
const RECOMPUTE_LOCK: i64 = 0x4c4f_5941_4c52_464d;

pub(super) fn parse_offer(definition: &str) -> Result<Offer, StorageError> {
    serde_json::from_str(definition).map_err(|e| backend(format!("stored offer unreadable: {e}")))
}

/// The stored offer of a row (its definition in column 0) with the member's uses from `uses`.
fn offer_with_uses(r: &tokio_postgres::Row, uses: usize) -> Result<Offer, StorageError> {
    let mut offer = parse_offer(r.try_get(0).map_err(backend)?)?;
    offer.use_count = r.try_get(uses).map_err(backend)?;
    Ok(offer)
}

/// The offers `member_id` is targeted with and that are valid at `now_ms`, each with its uses
/// (`offer.use_count`) and the member's activation time, read on the caller's connection or
/// transaction.
pub(super) async fn till_offers_in(
    conn: &impl GenericClient,
    member_id: &str,
    now_ms: i64,
) -> Result<Vec<TillOffer>, StorageError> {
    let rows = conn
        .fetch_all(
            "SELECT o.definition, om.uses, a.at
             FROM offer_members om
             JOIN offers o ON o.offer_id = om.offer_id
             LEFT JOIN member_activations a
                 ON a.member_id = om.member_id AND a.offer_id = om.offer_id
             WHERE om.member_id = $1 AND o.valid_from <= $2 AND o.valid_until > $2
             ORDER BY o.valid_until, o.offer_id COLLATE \"C\"",
            &[&member_id, &now_ms],
        )
        .await
        .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(TillOffer {
            offer: offer_with_uses(&r, 1)?,
            activated_at_ms: r.try_get(2).map_err(backend)?,
        });
    }
    Ok(out)
}

/// Counts one use of each offer in `offer_ids` (an id listed twice counts twice) for the member,
/// inside the caller's transaction. Guarded by the offer's use limit: a concurrent use blocked on
/// the same row re-checks the limit once the first commits; when it is reached this is false
/// (roll back, read again, post without that offer). An offer the member is not targeted with is
/// a caller bug: [`StorageError::Backend`].
pub(super) async fn record_offer_uses(
    tx: &impl GenericClient,
    member_id: &str,
    offer_ids: &[String],
) -> Result<bool, StorageError> {
    // Rows are locked in one order, so two postings using the same offers wait rather than
    // deadlock; the uses are counted in one transaction, so the order changes nothing else.
    let mut offer_ids = offer_ids.to_vec();
    offer_ids.sort();
    let use_one = tx
        .prepare_cached(
            "UPDATE offer_members SET uses = uses + 1
             WHERE member_id = $1 AND offer_id = $2
               AND (SELECT use_limit = 0 OR offer_members.uses < use_limit
                    FROM offers WHERE offers.offer_id = $2)",
        )
        .await
        .map_err(backend)?;
    for offer_id in &offer_ids {
        if tx
            .execute(&use_one, &[&member_id, offer_id])
            .await
            .map_err(backend)?
            == 1
        {
            continue;
        }
        let targeted: bool = tx
            .fetch_one(
                "SELECT EXISTS (SELECT 1 FROM offer_members WHERE member_id = $1 AND offer_id = $2)",
                &[&member_id, offer_id],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)?;
        return if targeted {
            Ok(false)
        } else {
            Err(backend(format!(
                "offer {offer_id} is not targeted at the member"
            )))
        };
    }
    Ok(true)
}

/// The tier or segment a target names, as (kind, key); `None` for explicit members.
fn standing(target: &OfferTarget) -> Option<(&'static str, &str)> {
    match target {
        OfferTarget::Members { .. } => None,
        OfferTarget::Tier { tier } => Some(("tier", tier)),
        OfferTarget::Segment { segment_id } => Some(("segment", segment_id)),
    }
}

/// Explicit members of a target that do not exist, in id order.
async fn unknown_members(
    tx: &impl GenericClient,
    explicit: &[&str],
) -> Result<Vec<String>, StorageError> {
    let rows = tx
        .fetch_all(
            "SELECT id FROM unnest($1::text[]) AS t(id)
             WHERE NOT EXISTS (SELECT 1 FROM members WHERE member_id = t.id)
             ORDER BY id COLLATE \"C\"",
            &[&explicit],
        )
        .await
        .map_err(backend)?;
    rows.iter().map(|r| r.try_get(0).map_err(backend)).collect()
}

/// Stores an offer and adds explicit members, in the caller's transaction; a tier or segment is
/// only checked here and fanned out in chunks afterwards ([`fan_out`]), as on SQLite. Should the
/// process stop midway, the next recompute completes it: the target is standing.
async fn publish_in(
    tx: &impl GenericClient,
    offer: &Offer,
    target: &OfferTarget,
    now_ms: i64,
) -> Result<Publication, StorageError> {
    let (kind, key) = standing(target).map_or(("members", None), |(k, v)| (k, Some(v)));
    if let OfferTarget::Segment { segment_id } = target {
        let known: bool = tx
            .fetch_one(
                "SELECT EXISTS (SELECT 1 FROM segments WHERE segment_id = $1)",
                &[segment_id],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)?;
        if !known {
            return Ok(Publication::UnknownSegment(segment_id.clone()));
        }
    }
    let explicit: Vec<&str> = match target {
        OfferTarget::Members { member_ids } => {
            let set: BTreeSet<&str> = member_ids.iter().map(String::as_str).collect();
            set.into_iter().collect()
        }
        _ => Vec::new(),
    };
    let unknown = unknown_members(tx, &explicit).await?;
    if let Some(first) = unknown.first() {
        return Ok(Publication::UnknownMembers {
            count: unknown.len(),
            first: first.clone(),
        });
    }
    let stored = Offer {
        use_count: 0,
        ..offer.clone()
    };
    let definition = serde_json::to_string(&stored).map_err(backend)?;
    // A new version only when the terms changed, so re-posting the same offer does not re-project
    // it to every member. An explicit target adds members without replacing a standing target.
    tx.exec(
        "INSERT INTO offers (offer_id, version, definition, target_kind, target_key, valid_from,
                             valid_until, use_limit, created_at, updated_at)
         VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (offer_id) DO UPDATE SET
             version = offers.version
                 + CASE WHEN offers.definition <> excluded.definition THEN 1 ELSE 0 END,
             definition = excluded.definition,
             target_kind = CASE excluded.target_kind WHEN 'members' THEN offers.target_kind
                           ELSE excluded.target_kind END,
             target_key = CASE excluded.target_kind WHEN 'members' THEN offers.target_key
                          ELSE excluded.target_key END,
             valid_from = excluded.valid_from,
             valid_until = excluded.valid_until,
             use_limit = excluded.use_limit,
             updated_at = excluded.updated_at",
        &[
            &offer.id,
            &definition,
            &kind,
            &key,
            &offer.valid_from_ms,
            &offer.valid_until_ms,
            &offer.use_limit,
            &now_ms,
        ],
    )
    .await
    .map_err(backend)?;
    let added = tx
        .exec(
            "INSERT INTO offer_members (offer_id, member_id, added_at)
             SELECT $1, id, $3 FROM unnest($2::text[]) AS t(id) ON CONFLICT DO NOTHING",
            &[&offer.id, &explicit, &now_ms],
        )
        .await
        .map_err(backend)? as i64;
    let row = tx
        .fetch_one(
            "UPDATE offers SET member_count = member_count + $2 WHERE offer_id = $1
             RETURNING version, member_count",
            &[&offer.id, &added],
        )
        .await
        .map_err(backend)?;
    bump_fanout_seq(tx).await?;
    Ok(Publication::Published(Published {
        version: row.try_get(0).map_err(backend)?,
        added_members: added,
        members: row.try_get(1).map_err(backend)?,
    }))
}

/// The member's rows whose offer is valid (or expired within the last 30 days, so the app shows
/// what just ran out) and whose projection lags; the `offer_members` primary key serves it.
pub(super) const PENDING_WHERE: &str =
    "FROM offer_members om JOIN offers o ON o.offer_id = om.offer_id
     WHERE om.member_id = $1
       AND (o.valid_until > $2 - 2592000000 OR o.withdrawn_at IS NOT NULL)
       AND (om.projected_version <> o.version OR om.projected_uses <> om.uses)";

impl PgStorage {
    /// Counts one use of each offer for the member in a transaction of its own: what the till
    /// does inside a posting with [`record_offer_uses`], for tools and for tests that stand in
    /// for a till. False when an offer's use limit was reached: nothing is counted.
    pub async fn record_offer_uses_alone(
        &self,
        member_id: &str,
        offer_ids: &[String],
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Dropping the transaction rolls back the uses counted before a refused one.
        if !record_offer_uses(&tx, member_id, offer_ids).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }
}

#[async_trait]
impl OfferStore for PgStorage {
    async fn publish_offer(
        &self,
        offer: &Offer,
        target: &OfferTarget,
        now_ms: i64,
    ) -> Result<Publication, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Dropping the transaction rolls it back: a refused target stores nothing.
        let outcome = publish_in(&tx, offer, target, now_ms).await?;
        let Publication::Published(stored) = outcome else {
            return Ok(outcome);
        };
        tx.commit().await.map_err(backend)?;
        let Some((kind, key)) = standing(target) else {
            return Ok(Publication::Published(stored));
        };
        let added = fan_out(&mut client, &offer.id, kind, key, now_ms).await?;
        let members: i64 = client
            .fetch_one(
                "SELECT member_count FROM offers WHERE offer_id = $1",
                &[&offer.id],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)?;
        Ok(Publication::Published(Published {
            added_members: stored.added_members + added,
            members,
            ..stored
        }))
    }

    async fn pending_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<PendingOffer>, StorageError> {
        let rows = self
            .client()
            .await?
            .fetch_all(
                &format!(
                    "SELECT o.definition, o.version, om.uses, o.withdrawn_at IS NOT NULL {PENDING_WHERE}
                     ORDER BY o.offer_id COLLATE \"C\""
                ),
                &[&member_id, &now_ms],
            )
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(PendingOffer {
                offer: offer_with_uses(&r, 2)?,
                version: r.try_get(1).map_err(backend)?,
                withdrawn: r.try_get(3).map_err(backend)?,
            });
        }
        Ok(out)
    }

    async fn has_pending_offers(&self, member_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        self.client()
            .await?
            .fetch_one(
                &format!("SELECT EXISTS (SELECT 1 {PENDING_WHERE})"),
                &[&member_id, &now_ms],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)
    }

    async fn mark_offers_projected(
        &self,
        member_id: &str,
        projected: &[PendingOffer],
    ) -> Result<(), StorageError> {
        let ids: Vec<&str> = projected.iter().map(|p| p.offer.id.as_str()).collect();
        let versions: Vec<i64> = projected.iter().map(|p| p.version).collect();
        let uses: Vec<i64> = projected.iter().map(|p| p.offer.use_count).collect();
        // One statement for every row: a use recorded meanwhile leaves `uses` ahead of what is
        // written here, so the row stays pending.
        self.client()
            .await?
            .exec(
                "UPDATE offer_members om SET projected_version = p.version, projected_uses = p.uses
                 FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS p(offer_id, version, uses)
                 WHERE om.member_id = $1 AND om.offer_id = p.offer_id",
                &[&member_id, &ids, &versions, &uses],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn till_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<TillOffer>, StorageError> {
        till_offers_in(&self.client().await?, member_id, now_ms).await
    }

    async fn create_segment(
        &self,
        segment: &Segment,
        now_ms: i64,
    ) -> Result<SegmentCreation, StorageError> {
        let rules = serde_json::to_string(&segment.rules).map_err(backend)?;
        let n = self
            .client()
            .await?
            .exec(
                "INSERT INTO segments (segment_id, name, rules, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&segment.id, &segment.name, &rules, &now_ms],
            )
            .await
            .map_err(backend)?;
        Ok(if n == 0 {
            SegmentCreation::Exists
        } else {
            SegmentCreation::Created
        })
    }

    async fn segments(&self) -> Result<Vec<SegmentView>, StorageError> {
        segments_in(&self.client().await?).await
    }

    async fn update_segment(&self, segment: &Segment) -> Result<bool, StorageError> {
        let rules = serde_json::to_string(&segment.rules).map_err(backend)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let n = tx
            .exec(
                "UPDATE segments SET name = $2, rules = $3, computed_at = NULL, member_count = 0
                 WHERE segment_id = $1",
                &[&segment.id, &segment.name, &rules],
            )
            .await
            .map_err(backend)?;
        tx.exec(
            "DELETE FROM segment_members WHERE segment_id = $1",
            &[&segment.id],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(n == 1)
    }

    async fn delete_segment(
        &self,
        segment_id: &str,
        now_ms: i64,
    ) -> Result<SegmentDeletion, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The segment's row locked first: an offer published to it meanwhile waits, then finds
        // it gone.
        let exists = tx
            .fetch_opt(
                "SELECT 1 FROM segments WHERE segment_id = $1 FOR UPDATE",
                &[&segment_id],
            )
            .await
            .map_err(backend)?;
        if exists.is_none() {
            return Ok(SegmentDeletion::NotFound);
        }
        let using = tx
            .fetch_opt(
                "SELECT offer_id FROM offers
                 WHERE target_kind = 'segment' AND target_key = $1 AND valid_until > $2
                   AND withdrawn_at IS NULL
                 ORDER BY offer_id COLLATE \"C\" LIMIT 1",
                &[&segment_id, &now_ms],
            )
            .await
            .map_err(backend)?;
        if let Some(row) = using {
            let offer_id = row.try_get(0).map_err(backend)?;
            return Ok(SegmentDeletion::InUse { offer_id });
        }
        for sql in [
            "DELETE FROM segment_members WHERE segment_id = $1",
            "DELETE FROM segment_runs WHERE segment_id = $1",
            "DELETE FROM segments WHERE segment_id = $1",
        ] {
            tx.exec(sql, &[&segment_id]).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(SegmentDeletion::Deleted)
    }

    async fn fanout_seq(&self) -> Result<i64, StorageError> {
        let row = self
            .client()
            .await?
            .fetch_opt("SELECT fanout_seq FROM programme_state WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        row.map_or(Ok(0), |r| r.try_get(0).map_err(backend))
    }

    async fn recompute_segments(
        &self,
        now_ms: i64,
        window_ms: i64,
        mut progress: Progress,
    ) -> Result<RecomputeReport, StorageError> {
        let mut client = self.client().await?;
        // Held by the connection, so a job killed midway lets go with its connection.
        let locked: bool = client
            .fetch_one("SELECT pg_try_advisory_lock($1)", &[&RECOMPUTE_LOCK])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)?;
        if !locked {
            progress("another recompute is running on this database: nothing done");
            return Ok(RecomputeReport {
                already_running: true,
                ..RecomputeReport::default()
            });
        }
        let report = recompute(&mut client, now_ms, window_ms, &mut *progress).await;
        // The connection goes back to the pool: the lock must not go with it.
        let unlocked = client
            .exec("SELECT pg_advisory_unlock($1)", &[&RECOMPUTE_LOCK])
            .await;
        if let Err(e) = unlocked {
            // The lock stays with a connection that may be broken; drop it rather than reuse it.
            drop(deadpool_postgres::Object::take(client));
            return Err(backend(e));
        }
        report
    }
}
