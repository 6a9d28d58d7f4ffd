//! SQLite's [`ReportStore`]: each report one aggregate statement.

use async_trait::async_trait;
use rusqlite::params;
use rusqlite::types::FromSql;

use super::{SqliteStorage, backend};
use crate::storage::reports::day_movements;
use crate::storage::{
    DayMovement, DeliveryScope, DeliveryTotals, LiabilityTotals, MemberTotals, ReportStore,
    SegmentTotals, StorageError, TierTotals,
};

/// Open lots only (`remaining > 0`): the partial covering index `lots_open_by_member` holds them.
const LIABILITY: &str = "
    SELECT coalesce(sum(CASE WHEN available_at <= ?1 THEN remaining END), 0),
           coalesce(sum(CASE WHEN available_at > ?1 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?2 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?3 THEN remaining END), 0),
           coalesce(sum(CASE WHEN expires_at <= ?4 THEN remaining END), 0),
           count(DISTINCT member_id)
    FROM lots WHERE remaining > 0";

/// One send's deliveries, through the primary key (message first).
const SEND_COUNTS: &str = "
    SELECT channel, status, reason, count(*) FROM deliveries WHERE message_id = ?1
    GROUP BY channel, status, reason";
const SEND_MESSAGES: &str = "SELECT count(*) FROM messages WHERE message_id = ?1";
/// A period's sends: the deliveries of the messages created in it.
const PERIOD_COUNTS: &str = "
    SELECT d.channel, d.status, d.reason, count(*)
    FROM messages m JOIN deliveries d ON d.message_id = m.message_id
    WHERE m.created_at >= ?1 AND m.created_at < ?2
    GROUP BY d.channel, d.status, d.reason";
const PERIOD_MESSAGES: &str =
    "SELECT count(*) FROM messages WHERE created_at >= ?1 AND created_at < ?2";

/// The ledger by UTC day and reason; the rule only for rows written before reason codes.
const POINTS_BY_DAY: &str = "
    SELECT at / 86400000, reason_code, CASE WHEN reason_code IS NULL THEN rule END, sum(points)
    FROM ledger WHERE at >= ?1 AND at < ?2
    GROUP BY 1, 2, 3";

/// Members by tier.
const TIERS: &str = "
    SELECT tier, count(*), sum(status = 'blocked'), sum(created_at >= ?1),
           sum(coalesce(tier_since, created_at) >= ?1), sum(tier_downgrade_at IS NOT NULL)
    FROM members GROUP BY tier ORDER BY tier";
/// Moves between tiers since ?1 (`tier_moves`, written by a trigger on `members.tier`).
const TIER_MOVES: &str = "
    SELECT from_tier, to_tier, count(*) FROM tier_moves WHERE at >= ?1
    GROUP BY from_tier, to_tier ORDER BY from_tier, to_tier";
/// Buyers in the longer window (?2), those of the shorter (?1), and repeat buyers.
const BUYERS: &str = "
    WITH buyers AS (
        SELECT member_id, count(*) AS n, max(at) AS last FROM postings
        WHERE kind = 'purchase' AND at >= ?2 GROUP BY member_id)
    SELECT count(*) FILTER (WHERE last >= ?1), count(*), count(*) FILTER (WHERE n >= 2)
    FROM buyers";

/// The segments with their sizes.
const SEGMENTS: &str = "
    SELECT segment_id, name, member_count, computed_at FROM segments ORDER BY segment_id";
/// Each segment's latest `?1` runs, newest first.
const RUNS: &str = "
    SELECT segment_id, computed_at, members, joined, departed FROM (
        SELECT r.*, row_number() OVER (PARTITION BY segment_id ORDER BY computed_at DESC) AS n
        FROM segment_runs r)
    WHERE n <= ?1 ORDER BY segment_id, computed_at DESC";
const SCORES: &str = "
    SELECT recency, frequency, monetary, count(*) FROM member_rfm GROUP BY 1, 2, 3";

/// A row of [`TIERS`].
fn tier_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TierTotals> {
    Ok(TierTotals {
        tier: r.get(0)?,
        members: r.get(1)?,
        blocked: r.get(2)?,
        enrolled: r.get(3)?,
        entered: r.get(4)?,
        downgrading: r.get(5)?,
    })
}

/// A grouped row of four columns, as the tier, day and delivery reports read them.
fn four<A, B, C, D>(r: &rusqlite::Row<'_>) -> rusqlite::Result<(A, B, C, D)>
where
    A: FromSql,
    B: FromSql,
    C: FromSql,
    D: FromSql,
{
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

#[async_trait]
impl ReportStore for SqliteStorage {
    async fn member_totals(
        &self,
        enrolled_since: i64,
        active_since: [i64; 2],
    ) -> Result<MemberTotals, StorageError> {
        self.read(move |conn| {
            // One read transaction: both statements see the same snapshot.
            let tx = conn.transaction().map_err(backend)?;
            let tiers = tx
                .prepare_cached(TIERS)
                .and_then(|mut s| s.query_map([enrolled_since], tier_row)?.collect())
                .map_err(backend)?;
            let moves = tx
                .prepare_cached(TIER_MOVES)
                .and_then(|mut s| {
                    s.query_map([enrolled_since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(backend)?;
            let (short, long, repeat) = tx
                .query_row(BUYERS, params![active_since[0], active_since[1]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(backend)?;
            Ok(MemberTotals {
                tiers,
                active: [short, long],
                repeat,
                moves,
            })
        })
        .await
    }

    async fn points_by_day(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayMovement>, StorageError> {
        let rows = self
            .read(move |conn| {
                conn.prepare_cached(POINTS_BY_DAY)
                    .and_then(|mut s| s.query_map(params![from_ms, to_ms], four)?.collect())
                    .map_err(backend)
            })
            .await?;
        Ok(day_movements(rows))
    }

    async fn delivery_counts(&self, scope: &DeliveryScope) -> Result<DeliveryTotals, StorageError> {
        let scope = scope.clone();
        self.read(move |conn| {
            let (counts, messages, args): (&str, &str, Vec<rusqlite::types::Value>) = match scope {
                DeliveryScope::Message(id) => (SEND_COUNTS, SEND_MESSAGES, vec![id.into()]),
                DeliveryScope::Period { from_ms, to_ms } => (
                    PERIOD_COUNTS,
                    PERIOD_MESSAGES,
                    vec![from_ms.into(), to_ms.into()],
                ),
            };
            let args = rusqlite::params_from_iter(args);
            // One read transaction: both statements see the same snapshot.
            let tx = conn.transaction().map_err(backend)?;
            let messages: i64 = tx
                .query_row(messages, args.clone(), |r| r.get(0))
                .map_err(backend)?;
            let counts = tx
                .prepare_cached(counts)
                .and_then(|mut s| s.query_map(args, four)?.collect())
                .map_err(backend)?;
            Ok(DeliveryTotals { messages, counts })
        })
        .await
    }

    async fn liability(&self, now_ms: i64, h: [i64; 3]) -> Result<LiabilityTotals, StorageError> {
        self.read(move |conn| {
            conn.query_row(LIABILITY, params![now_ms, h[0], h[1], h[2]], |r| {
                Ok(LiabilityTotals {
                    available: r.get(0)?,
                    pending: r.get(1)?,
                    expiring: vec![r.get(2)?, r.get(3)?, r.get(4)?],
                    members_with_points: r.get(5)?,
                })
            })
            .map_err(backend)
        })
        .await
    }

    async fn segment_totals(&self, runs: u32) -> Result<SegmentTotals, StorageError> {
        self.read(move |conn| {
            // One read transaction: sizes, runs and scores from the same recompute.
            let tx = conn.transaction().map_err(backend)?;
            let segments = tx
                .prepare_cached(SEGMENTS)
                .and_then(|mut s| s.query_map([], four)?.collect())
                .map_err(backend)?;
            let runs = tx
                .prepare_cached(RUNS)
                .and_then(|mut s| {
                    s.query_map([runs], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect()
                })
                .map_err(backend)?;
            let scores = tx
                .prepare_cached(SCORES)
                .and_then(|mut s| s.query_map([], four)?.collect())
                .map_err(backend)?;
            let members = tx
                .query_row("SELECT count(*) FROM members", [], |r| r.get(0))
                .map_err(backend)?;
            let rfm_moves = super::rfm_moves::latest(&tx)?;
            Ok(SegmentTotals {
                segments,
                runs,
                scores,
                members,
                rfm_moves,
            })
        })
        .await
    }
}
