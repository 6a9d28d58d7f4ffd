//! Targeted offers and segments on the embedded SQLite database: the tables (created by
//! `server/migrations/sqlite/006_offers_and_segments.sql`), [`OfferStore`] for [`SqliteStorage`],
//! and the functions the till calls inside its own transaction ([`till_offers_in`],
//! [`record_offer_uses`]). The batch job that recomputes RFM scores and every segment is
//! `segments.rs`.
//!
//! Everything that touches many members is `INSERT ... SELECT` in chunks of [`CHUNK`] members: a
//! fan-out to a million members is a few B-tree appends, not a million Automerge documents. The batch job computes into temporary
//! tables first (reads only, beside a running server thanks to WAL) and then holds the write lock
//! only for the short copy, so the server's own writes wait milliseconds, not the whole job.
//!
//! The tables:
//! - `offers`: the definition (JSON of [`Offer`]), its version, and its standing target (a tier or
//!   segment re-evaluated at each recompute while the offer is valid; `members` for none).
//! - `offer_members`: who is targeted, their uses, and what their offers document shows
//!   (`projected_version`, `projected_uses`); a row whose projection lags is pending.
//! - `segments`, `segment_members` (read by the message fan-out too), `member_rfm`.
//! - `programme_state.fanout_seq`: moves at every fan-out, so a server notices one made by a batch
//!   job in another process and wakes its waiting devices.

use std::collections::BTreeSet;

use async_trait::async_trait;
use loyalty_core::api::{OfferTarget, SegmentView};
use loyalty_core::offers::Offer;
use loyalty_core::segments::Segment;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStorage;
use super::backend;
#[cfg(test)]
use super::fanout::fan_out;
use super::fanout::{bump_fanout_seq, fan_out_params, fan_out_sql, one_chunk, segments_in};
use crate::storage::StorageError;
use crate::storage::offers::{
    OfferStore, PendingOffer, Progress, Publication, Published, RecomputeReport, SegmentCreation,
    SegmentDeletion, TillOffer,
};

pub(super) fn parse_offer(definition: &str) -> Result<Offer, StorageError> {
    serde_json::from_str(definition).map_err(|e| backend(format!("stored offer unreadable: {e}")))
}

/// Publishes on one connection, as tests do: stores the offer, then fans it out in chunks.
#[cfg(test)]
fn publish_now(
    conn: &mut Connection,
    offer: &Offer,
    target: &OfferTarget,
    now_ms: i64,
) -> Result<Published, StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    let Publication::Published(mut published) = publish_in(&tx, offer, target, now_ms)? else {
        panic!("the test's publication was refused");
    };
    tx.commit().map_err(backend)?;
    if let Some((kind, key)) = standing(target) {
        published.added_members += fan_out(conn, &offer.id, kind, key, now_ms)?;
        published.members = member_count(conn, &offer.id)?;
    }
    Ok(published)
}

fn member_count(conn: &Connection, offer_id: &str) -> Result<i64, StorageError> {
    conn.query_row(
        "SELECT member_count FROM offers WHERE offer_id = ?1",
        [offer_id],
        |r| r.get(0),
    )
    .map_err(backend)
}

/// The tier or segment a target names, as (kind, key); `None` for explicit members.
fn standing(target: &OfferTarget) -> Option<(&'static str, &str)> {
    match target {
        OfferTarget::Members { .. } => None,
        OfferTarget::Tier { tier } => Some(("tier", tier)),
        OfferTarget::Segment { segment_id } => Some(("segment", segment_id)),
    }
}

/// Stores an offer and adds explicit members, in the caller's transaction. A tier or segment
/// target is only checked here; its members are added afterwards in chunks ([`fan_out`]), so a
/// million-member fan-out never holds the write lock for seconds. Should the process stop midway,
/// the next recompute completes it: the target is standing.
pub(crate) fn publish_in(
    tx: &Connection,
    offer: &Offer,
    target: &OfferTarget,
    now_ms: i64,
) -> Result<Publication, StorageError> {
    let (kind, key) = match target {
        OfferTarget::Members { .. } => ("members", None),
        OfferTarget::Tier { tier } => ("tier", Some(tier.as_str())),
        OfferTarget::Segment { segment_id } => ("segment", Some(segment_id.as_str())),
    };
    if let OfferTarget::Segment { segment_id } = target {
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM segments WHERE segment_id = ?1)",
                [segment_id],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !known {
            return Ok(Publication::UnknownSegment(segment_id.clone()));
        }
    }
    let explicit: BTreeSet<&str> = match target {
        OfferTarget::Members { member_ids } => member_ids.iter().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    if !explicit.is_empty() {
        let mut exists = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM members WHERE member_id = ?1)")
            .map_err(backend)?;
        let mut unknown = Vec::new();
        for id in &explicit {
            if !exists
                .query_row([id], |r| r.get::<_, bool>(0))
                .map_err(backend)?
            {
                unknown.push(*id);
            }
        }
        if let Some(first) = unknown.first() {
            return Ok(Publication::UnknownMembers {
                count: unknown.len(),
                first: first.to_string(),
            });
        }
    }
    let stored = Offer {
        use_count: 0,
        ..offer.clone()
    };
    let definition = serde_json::to_string(&stored).map_err(backend)?;
    // A new version only when the terms changed, so re-posting the same offer does not re-project
    // it to every member. An explicit target adds members without replacing a standing target.
    tx.execute(
        "INSERT INTO offers (offer_id, version, definition, target_kind, target_key, valid_from,
                             valid_until, use_limit, created_at, updated_at)
         VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (offer_id) DO UPDATE SET
             version = version + (definition <> excluded.definition),
             definition = excluded.definition,
             target_kind = CASE excluded.target_kind WHEN 'members' THEN target_kind
                           ELSE excluded.target_kind END,
             target_key = CASE excluded.target_kind WHEN 'members' THEN target_key
                          ELSE excluded.target_key END,
             valid_from = excluded.valid_from,
             valid_until = excluded.valid_until,
             use_limit = excluded.use_limit,
             updated_at = excluded.updated_at",
        params![
            offer.id,
            definition,
            kind,
            key,
            offer.valid_from_ms,
            offer.valid_until_ms,
            offer.use_limit,
            now_ms
        ],
    )
    .map_err(backend)?;
    let added = match kind {
        "members" => {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO offer_members (offer_id, member_id, added_at)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(backend)?;
            let mut added = 0i64;
            for id in &explicit {
                added += insert
                    .execute(params![offer.id, id, now_ms])
                    .map_err(backend)? as i64;
            }
            tx.execute(
                "UPDATE offers SET member_count = member_count + ?2 WHERE offer_id = ?1",
                params![offer.id, added],
            )
            .map_err(backend)?;
            added
        }
        _ => 0,
    };
    let (version, members) = tx
        .query_row(
            "SELECT version, member_count FROM offers WHERE offer_id = ?1",
            [&offer.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(backend)?;
    bump_fanout_seq(tx)?;
    Ok(Publication::Published(Published {
        version,
        added_members: added,
        members,
    }))
}

/// The steady-state check behind every sync: the member's rows whose offer is still valid (or
/// expired within the last 30 days, so the app can show what just ran out and its final use
/// count) and whose projection lags. Served by the `offer_members` primary key (member first) and
/// the `offers` primary key.
pub(super) const PENDING_WHERE: &str =
    "FROM offer_members om JOIN offers o ON o.offer_id = om.offer_id
     WHERE om.member_id = ?1
       AND (o.valid_until > ?2 - 2592000000 OR o.withdrawn_at IS NOT NULL)
       AND (om.projected_version <> o.version OR om.projected_uses <> om.uses)";

fn pending_in(
    conn: &Connection,
    member_id: &str,
    now_ms: i64,
) -> Result<Vec<PendingOffer>, StorageError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT o.definition, o.version, om.uses, o.withdrawn_at IS NOT NULL {PENDING_WHERE}"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![member_id, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (definition, version, uses, withdrawn) = row.map_err(backend)?;
        let mut offer = parse_offer(&definition)?;
        offer.use_count = uses;
        out.push(PendingOffer {
            offer,
            version,
            withdrawn,
        });
    }
    Ok(out)
}

/// The offers `member_id` is targeted with and that are valid at `now_ms`, each with its uses
/// (`offer.use_count`) and the member's activation time, read on the caller's connection — the
/// till can call it inside the transaction that then records the uses.
pub(crate) fn till_offers_in(
    conn: &Connection,
    member_id: &str,
    now_ms: i64,
) -> Result<Vec<TillOffer>, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT o.definition, om.uses, a.at
             FROM offer_members om
             JOIN offers o ON o.offer_id = om.offer_id
             LEFT JOIN member_activations a
                 ON a.member_id = om.member_id AND a.offer_id = om.offer_id
             WHERE om.member_id = ?1 AND o.valid_from <= ?2 AND o.valid_until > ?2
             ORDER BY o.valid_until, o.offer_id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![member_id, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (definition, uses, activated_at_ms) = row.map_err(backend)?;
        let mut offer = parse_offer(&definition)?;
        offer.use_count = uses;
        out.push(TillOffer {
            offer,
            activated_at_ms,
        });
    }
    Ok(out)
}

/// Counts one use of each offer in `offer_ids` (an id listed twice counts twice) for the member,
/// inside the caller's transaction; the changed counts reach the member's offers document at their
/// next sync. Guarded by the offer's use limit: when a concurrent use already reached it, this is
/// false (roll back, read [`till_offers_in`] again, post without that offer). An offer the member
/// is not targeted with is a caller bug: [`StorageError::Backend`].
pub(crate) fn record_offer_uses(
    tx: &Connection,
    member_id: &str,
    offer_ids: &[String],
) -> Result<bool, StorageError> {
    let mut use_one = tx
        .prepare_cached(
            "UPDATE offer_members SET uses = uses + 1
             WHERE member_id = ?1 AND offer_id = ?2
               AND (SELECT use_limit = 0 OR offer_members.uses < use_limit
                    FROM offers WHERE offers.offer_id = ?2)",
        )
        .map_err(backend)?;
    for offer_id in offer_ids {
        if use_one
            .execute(params![member_id, offer_id])
            .map_err(backend)?
            == 1
        {
            continue;
        }
        let targeted: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM offer_members WHERE member_id = ?1 AND offer_id = ?2)",
                params![member_id, offer_id],
                |r| r.get(0),
            )
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

impl SqliteStorage {
    /// Counts one use of each offer for the member in a transaction of its own: what the till
    /// does inside a posting with [`record_offer_uses`], for tools and for tests that stand in
    /// for a till. False when an offer's use limit was reached: nothing is counted.
    pub async fn record_offer_uses_alone(
        &self,
        member_id: &str,
        offer_ids: &[String],
    ) -> Result<bool, StorageError> {
        let member_id = member_id.to_string();
        let offer_ids = offer_ids.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            // Dropping the transaction rolls back the uses counted before a refused one.
            if !record_offer_uses(&tx, &member_id, &offer_ids)? {
                return Ok(false);
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl OfferStore for SqliteStorage {
    async fn publish_offer(
        &self,
        offer: &Offer,
        target: &OfferTarget,
        now_ms: i64,
    ) -> Result<Publication, StorageError> {
        let stored = {
            let (offer, target) = (offer.clone(), target.clone());
            self.run(move |conn| {
                let tx = conn.transaction().map_err(backend)?;
                // Dropping the transaction on an error rolls it back: a refused target stores
                // nothing.
                let outcome = publish_in(&tx, &offer, &target, now_ms)?;
                if matches!(outcome, Publication::Published(_)) {
                    tx.commit().map_err(backend)?;
                }
                Ok(outcome)
            })
            .await?
        };
        let Publication::Published(stored) = stored else {
            return Ok(stored);
        };
        let Some((bound, apply)) = standing(target).and_then(|(kind, _)| fan_out_sql(kind)) else {
            return Ok(Publication::Published(stored));
        };
        let key = standing(target).map_or("", |(_, key)| key);
        // Each chunk is its own turn on the writer connection, so till postings queued behind the
        // fan-out get in between chunks.
        let extra = fan_out_params(&offer.id, key, now_ms);
        let mut after = String::new();
        let mut added = 0i64;
        loop {
            let (extra, offer_id, from) = (extra.clone(), offer.id.clone(), after.clone());
            let chunk = self
                .run(move |conn| one_chunk(conn, bound, apply, &extra, &from, Some(&offer_id)))
                .await?;
            let Some((upto, n)) = chunk else { break };
            added += n as i64;
            after = upto;
        }
        let offer_id = offer.id.clone();
        let members = self.read(move |conn| member_count(conn, &offer_id)).await?;
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
        let member_id = member_id.to_string();
        self.read(move |conn| pending_in(conn, &member_id, now_ms))
            .await
    }

    async fn has_pending_offers(&self, member_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT EXISTS (SELECT 1 {PENDING_WHERE})"))
                .and_then(|mut s| s.query_row(params![member_id, now_ms], |r| r.get(0)))
                .map_err(backend)
        })
        .await
    }

    async fn mark_offers_projected(
        &self,
        member_id: &str,
        projected: &[PendingOffer],
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        let rows: Vec<(String, i64, i64)> = projected
            .iter()
            .map(|p| (p.offer.id.clone(), p.version, p.offer.use_count))
            .collect();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut mark = tx
                    .prepare_cached(
                        "UPDATE offer_members SET projected_version = ?3, projected_uses = ?4
                         WHERE member_id = ?1 AND offer_id = ?2",
                    )
                    .map_err(backend)?;
                for (offer_id, version, uses) in &rows {
                    mark.execute(params![member_id, offer_id, version, uses])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn till_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<TillOffer>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| till_offers_in(conn, &member_id, now_ms))
            .await
    }

    async fn create_segment(
        &self,
        segment: &Segment,
        now_ms: i64,
    ) -> Result<SegmentCreation, StorageError> {
        let rules = serde_json::to_string(&segment.rules).map_err(backend)?;
        let (id, name) = (segment.id.clone(), segment.name.clone());
        self.run(move |conn| {
            let n = conn
                .execute(
                    "INSERT INTO segments (segment_id, name, rules, created_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![id, name, rules, now_ms],
                )
                .map_err(backend)?;
            Ok(if n == 0 {
                SegmentCreation::Exists
            } else {
                SegmentCreation::Created
            })
        })
        .await
    }

    async fn segments(&self) -> Result<Vec<SegmentView>, StorageError> {
        self.read(|conn| segments_in(conn)).await
    }

    async fn update_segment(&self, segment: &Segment) -> Result<bool, StorageError> {
        let rules = serde_json::to_string(&segment.rules).map_err(backend)?;
        let (id, name) = (segment.id.clone(), segment.name.clone());
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let n = tx
                .execute(
                    "UPDATE segments SET name = ?2, rules = ?3, computed_at = NULL, member_count = 0
                     WHERE segment_id = ?1",
                    params![id, name, rules],
                )
                .map_err(backend)?;
            for sql in [
                "DELETE FROM segment_members WHERE segment_id = ?1",
                "DELETE FROM segment_runs WHERE segment_id = ?1",
            ] {
                tx.execute(sql, [&id]).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_segment(
        &self,
        segment_id: &str,
        now_ms: i64,
    ) -> Result<SegmentDeletion, StorageError> {
        let id = segment_id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let using: Option<String> = tx
                .query_row(
                    "SELECT offer_id FROM offers
                     WHERE target_kind = 'segment' AND target_key = ?1 AND valid_until > ?2
                       AND withdrawn_at IS NULL
                     ORDER BY offer_id LIMIT 1",
                    params![id, now_ms],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(offer_id) = using {
                return Ok(SegmentDeletion::InUse { offer_id });
            }
            for sql in [
                "DELETE FROM segment_members WHERE segment_id = ?1",
                "DELETE FROM segment_runs WHERE segment_id = ?1",
            ] {
                tx.execute(sql, [&id]).map_err(backend)?;
            }
            let n = tx
                .execute("DELETE FROM segments WHERE segment_id = ?1", [&id])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(if n == 1 {
                SegmentDeletion::Deleted
            } else {
                SegmentDeletion::NotFound
            })
        })
        .await
    }

    async fn recompute_segments(
        &self,
        now_ms: i64,
        window_ms: i64,
        mut progress: Progress,
    ) -> Result<RecomputeReport, StorageError> {
        // A connection of its own, not the server's writer: the job reads for minutes and takes
        // the write lock only for its short chunks, between which the server's writes get in.
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = super::segments::open_for_batch(&path)?;
            super::segments::recompute(&mut conn, now_ms, window_ms, &mut *progress)
        })
        .await
        .map_err(backend)?
    }

    async fn fanout_seq(&self) -> Result<i64, StorageError> {
        let seq = self
            .read(|conn| {
                conn.query_row(
                    "SELECT fanout_seq FROM programme_state WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map(Option::unwrap_or_default)
                .map_err(backend)
            })
            .await?;
        // The sequence is how another process's fan-out becomes known here (the phones it wakes
        // must find it): later point reads begin a snapshot that shows it.
        super::readers::saw_foreign_commit();
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DEFAULT_RFM_WINDOW_MS;
    use crate::storage::sqlite::fanout::CHUNK;
    use crate::storage::sqlite::segments::*;
    use loyalty_core::offers::Reward;
    use loyalty_core::segments::ScoreRange;
    use loyalty_core::segments::SegmentRules;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_for_batch(&dir.path().join("s.db")).unwrap();
        (dir, conn)
    }

    fn member(conn: &Connection, id: &str, tier: &str, created_at: i64) {
        conn.execute(
            "INSERT INTO members (member_id, card_number, created_at, tier) VALUES (?1, ?1, ?2, ?3)",
            params![id, created_at, tier],
        )
        .unwrap();
    }

    fn posting(conn: &Connection, key: &str, member: &str, kind: &str, total: i64, at: i64) {
        conn.execute(
            "INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id,
                                   receipt_id, total_minor, earned, redeemed, at, response)
             VALUES (?1, x'', ?2, ?3, 't', 'r', ?4, 0, 0, ?5, x'')",
            params![key, member, kind, total, at],
        )
        .unwrap();
    }

    fn offer(id: &str, limit: i64) -> Offer {
        Offer {
            id: id.into(),
            title: "Double points".into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: NOW - DAY,
            valid_until_ms: NOW + DAY,
            needs_activation: false,
            reward: Reward::PointsMultiplier,
            value: 200,
            category: String::new(),
            min_spend_minor: 0,
            use_limit: limit,
            use_count: 0,
        }
    }

    fn segment(conn: &Connection, id: &str, rules: SegmentRules) {
        conn.execute(
            "INSERT INTO segments (segment_id, name, rules, created_at) VALUES (?1, ?1, ?2, 0)",
            params![id, serde_json::to_string(&rules).unwrap()],
        )
        .unwrap();
    }

    fn rfm(conn: &Connection, id: &str) -> Option<(i64, i64, i64, i64)> {
        conn.query_row(
            "SELECT recency, frequency, monetary, spend_minor FROM member_rfm WHERE member_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .unwrap()
    }

    fn members_of(conn: &Connection, segment: &str) -> Vec<String> {
        let mut s = conn
            .prepare(
                "SELECT member_id FROM segment_members WHERE segment_id = ?1 ORDER BY member_id",
            )
            .unwrap();
        s.query_map([segment], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn run(conn: &mut Connection) -> RecomputeReport {
        recompute(conn, NOW, DEFAULT_RFM_WINDOW_MS, &mut |_| {}).unwrap()
    }

    #[test]
    fn rfm_scores_rank_buyers_and_refunds_reduce_monetary_only() {
        let (_d, mut conn) = db();
        for id in ["a", "b", "c", "d", "e", "lapsed"] {
            member(&conn, id, "base", 0);
        }
        // a: old, rare, small. e: recent, frequent, big. d buys big but refunds most of it.
        posting(&conn, "a1", "a", "purchase", 1_000, NOW - 300 * DAY);
        for k in 0..2 {
            posting(
                &conn,
                &format!("b{k}"),
                "b",
                "purchase",
                2_000,
                NOW - 200 * DAY,
            );
        }
        for k in 0..3 {
            posting(
                &conn,
                &format!("c{k}"),
                "c",
                "purchase",
                3_000,
                NOW - 100 * DAY,
            );
        }
        for k in 0..4 {
            posting(
                &conn,
                &format!("d{k}"),
                "d",
                "purchase",
                50_000,
                NOW - 50 * DAY,
            );
        }
        posting(&conn, "d-back", "d", "refund", 199_000, NOW - 40 * DAY);
        for k in 0..5 {
            posting(&conn, &format!("e{k}"), "e", "purchase", 10_000, NOW - DAY);
        }
        posting(&conn, "old", "lapsed", "purchase", 99_000, NOW - 400 * DAY);
        let report = run(&mut conn);
        assert_eq!(report.scored_members, 5);
        assert_eq!(rfm(&conn, "a"), Some((1, 1, 1, 1_000)));
        assert_eq!(rfm(&conn, "b"), Some((2, 2, 3, 4_000)));
        assert_eq!(rfm(&conn, "e"), Some((5, 5, 5, 50_000)));
        // d: 200,000 bought, 199,000 refunded: still frequent and recent, but ties with the
        // smallest spender.
        assert_eq!(rfm(&conn, "d"), Some((4, 4, 1, 1_000)));
        assert_eq!(rfm(&conn, "lapsed"), None, "outside the window: score 0");
    }

    #[test]
    fn equal_values_share_a_score() {
        let (_d, mut conn) = db();
        for i in 0..10 {
            let id = format!("m{i}");
            member(&conn, &id, "base", 0);
            posting(&conn, &format!("p{i}"), &id, "purchase", 500, NOW - DAY);
        }
        run(&mut conn);
        for i in 0..10 {
            assert_eq!(rfm(&conn, &format!("m{i}")), Some((1, 1, 1, 500)));
        }
    }

    #[test]
    fn segments_and_all_conditions_and_lapsed_members() {
        let (_d, mut conn) = db();
        member(&conn, "gold-buyer", "gold", 10);
        member(&conn, "gold-idle", "gold", 10);
        member(&conn, "base-buyer", "base", 20);
        member(&conn, "late-gold", "gold", 500);
        for (k, m) in ["gold-buyer", "base-buyer", "late-gold"].iter().enumerate() {
            posting(&conn, &format!("p{k}"), m, "purchase", 1_000, NOW - DAY);
        }
        conn.execute(
            "INSERT INTO member_preferences VALUES ('gold-buyer', 'coffee', 'yes'), ('base-buyer', 'coffee', 'yes')",
            [],
        )
        .unwrap();
        segment(
            &conn,
            "gold-coffee",
            SegmentRules {
                recency: Some(ScoreRange { min: 1, max: 5 }),
                tiers: vec!["gold".into()],
                enrolled_until_ms: Some(100),
                preferences: [("coffee".into(), "yes".into())].into(),
                ..Default::default()
            },
        );
        segment(
            &conn,
            "lapsed",
            SegmentRules {
                frequency: Some(ScoreRange { min: 0, max: 0 }),
                ..Default::default()
            },
        );
        segment(&conn, "everyone", SegmentRules::default());
        let report = run(&mut conn);
        assert_eq!(members_of(&conn, "gold-coffee"), ["gold-buyer"]);
        assert_eq!(members_of(&conn, "lapsed"), ["gold-idle"]);
        assert_eq!(members_of(&conn, "everyone").len(), 4);
        assert_eq!(
            report.segments,
            [
                ("everyone".to_string(), 4),
                ("gold-coffee".to_string(), 1),
                ("lapsed".to_string(), 1)
            ]
        );
        // Membership follows the ledger: the idle member buys and leaves the lapsed segment.
        posting(&conn, "late", "gold-idle", "purchase", 1_000, NOW - DAY);
        run(&mut conn);
        assert!(members_of(&conn, "lapsed").is_empty());
    }

    #[test]
    fn publishing_fans_out_and_refuses_unknown_targets_changing_nothing() {
        let (_d, mut conn) = db();
        member(&conn, "g1", "gold", 0);
        member(&conn, "g2", "gold", 0);
        member(&conn, "b1", "base", 0);
        let p = publish_now(
            &mut conn,
            &offer("gold", 0),
            &OfferTarget::Tier {
                tier: "gold".into(),
            },
            NOW,
        )
        .unwrap();
        assert_eq!((p.version, p.added_members, p.members), (1, 2, 2));

        let err = publish_in(
            &conn,
            &offer("x", 0),
            &OfferTarget::Segment {
                segment_id: "nope".into(),
            },
            NOW,
        )
        .unwrap();
        assert!(matches!(err, Publication::UnknownSegment(_)));
        let tx = conn.transaction().unwrap();
        let err = publish_in(
            &tx,
            &offer("y", 0),
            &OfferTarget::Members {
                member_ids: vec!["b1".into(), "ghost".into()],
            },
            NOW,
        )
        .unwrap();
        assert!(matches!(err, Publication::UnknownMembers { count: 1, .. }));
        drop(tx);
        let offers: i64 = conn
            .query_row("SELECT count(*) FROM offers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(offers, 1, "the refused publications stored nothing");

        // Same terms again: no new version. New terms: version 2, pending for both members.
        let again = publish_now(
            &mut conn,
            &offer("gold", 0),
            &OfferTarget::Tier {
                tier: "gold".into(),
            },
            NOW,
        )
        .unwrap();
        assert_eq!((again.version, again.added_members), (1, 0));
        assert_eq!(pending_in(&conn, "g1", NOW).unwrap().len(), 1);
        conn.execute("UPDATE offer_members SET projected_version = 1", [])
            .unwrap();
        assert!(pending_in(&conn, "g1", NOW).unwrap().is_empty());
        let mut changed = offer("gold", 0);
        changed.value = 300;
        let Publication::Published(v2) = publish_in(
            &conn,
            &changed,
            &OfferTarget::Members {
                member_ids: vec!["b1".into()],
            },
            NOW,
        )
        .unwrap() else {
            panic!("refused")
        };
        assert_eq!((v2.version, v2.added_members, v2.members), (2, 1, 3));
        assert_eq!(pending_in(&conn, "g1", NOW).unwrap()[0].offer.value, 300);
        // An explicit target adds members but keeps the standing tier target.
        let kind: String = conn
            .query_row(
                "SELECT target_kind FROM offers WHERE offer_id = 'gold'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "tier");
        // An offer that expired within 30 days is still projected (the app lists what just ran
        // out); one that expired longer ago never is.
        assert!(!pending_in(&conn, "g1", NOW + 2 * DAY).unwrap().is_empty());
        assert!(pending_in(&conn, "g1", NOW + 32 * DAY).unwrap().is_empty());
    }

    #[test]
    fn uses_are_counted_up_to_the_limit_and_reprojected() {
        let (_d, conn) = db();
        member(&conn, "m", "base", 0);
        member(&conn, "other", "base", 0);
        assert!(matches!(
            publish_in(
                &conn,
                &offer("once", 1),
                &OfferTarget::Members {
                    member_ids: vec!["m".into()],
                },
                NOW,
            )
            .unwrap(),
            Publication::Published(_)
        ));
        conn.execute("UPDATE offer_members SET projected_version = 1", [])
            .unwrap();
        assert!(pending_in(&conn, "m", NOW).unwrap().is_empty());
        conn.execute(
            "INSERT INTO member_activations VALUES ('m', 'once', ?1)",
            [NOW - 5],
        )
        .unwrap();
        let till = till_offers_in(&conn, "m", NOW).unwrap();
        assert_eq!(till.len(), 1);
        assert_eq!(till[0].activated_at_ms, Some(NOW - 5));
        let basket = loyalty_core::earning::Basket::total(1_000);
        assert_eq!(
            loyalty_core::earning::offer_blocker(&till[0], &basket, NOW),
            None
        );

        assert!(record_offer_uses(&conn, "m", &["once".into()]).unwrap());
        let pending = pending_in(&conn, "m", NOW).unwrap();
        assert_eq!(
            pending[0].offer.use_count, 1,
            "the new count is owed to the phone"
        );
        let till = till_offers_in(&conn, "m", NOW).unwrap();
        assert_eq!(
            loyalty_core::earning::offer_blocker(&till[0], &basket, NOW),
            Some("use limit reached")
        );
        assert!(matches!(
            record_offer_uses(&conn, "m", &["once".into()]),
            Ok(false)
        ));
        assert!(matches!(
            record_offer_uses(&conn, "other", &["once".into()]),
            Err(StorageError::Backend(_))
        ));
        assert!(
            till_offers_in(&conn, "m", NOW + 2 * DAY)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn recompute_reaches_members_who_join_a_segment_later() {
        let (_d, mut conn) = db();
        member(&conn, "a", "base", 0);
        segment(
            &conn,
            "buyers",
            SegmentRules {
                frequency: Some(ScoreRange { min: 1, max: 5 }),
                ..Default::default()
            },
        );
        run(&mut conn);
        let p = publish_now(
            &mut conn,
            &offer("for-buyers", 0),
            &OfferTarget::Segment {
                segment_id: "buyers".into(),
            },
            NOW,
        )
        .unwrap();
        assert_eq!(p.members, 0);
        posting(&conn, "p", "a", "purchase", 100, NOW - DAY);
        let seq_before: i64 = conn
            .query_row("SELECT fanout_seq FROM programme_state", [], |r| r.get(0))
            .unwrap();
        let report = run(&mut conn);
        assert_eq!(report.offers, [("for-buyers".to_string(), 1)]);
        assert_eq!(pending_in(&conn, "a", NOW).unwrap().len(), 1);
        let seq_after: i64 = conn
            .query_row("SELECT fanout_seq FROM programme_state", [], |r| r.get(0))
            .unwrap();
        assert!(
            seq_after > seq_before,
            "a running server notices and wakes its devices"
        );
    }

    #[test]
    fn large_writes_go_in_chunks_and_miss_nobody() {
        let (_d, mut conn) = db();
        let n = 2 * CHUNK + 7;
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 - 1)
             INSERT INTO members (member_id, card_number, created_at, tier)
             SELECT printf('m%07d', i), printf('c%07d', i), 0, 'gold' FROM k",
            [n],
        )
        .unwrap();
        segment(&conn, "all", SegmentRules::default());
        let report = run(&mut conn);
        assert_eq!(report.segments, [("all".to_string(), n)]);
        let p = publish_now(
            &mut conn,
            &offer("wide", 0),
            &OfferTarget::Tier {
                tier: "gold".into(),
            },
            NOW,
        )
        .unwrap();
        assert_eq!((p.added_members, p.members), (n, n));
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM offer_members", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, n);
        // The segment shrinks to nobody: every member leaves, chunk by chunk.
        conn.execute("UPDATE segments SET rules = '{\"tiers\":[\"none\"]}'", [])
            .unwrap();
        assert_eq!(run(&mut conn).segments, [("all".to_string(), 0)]);
        assert!(members_of(&conn, "all").is_empty());
    }
}
