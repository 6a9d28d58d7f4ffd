//! PostgreSQL's [`ReportStore`]: each report one aggregate statement, as on SQLite.

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::{Cached, PgStorage, backend};
use crate::storage::reports::day_movements;
use crate::storage::{
    DayMovement, DeliveryScope, DeliveryTotals, LiabilityTotals, MemberTotals, ReportStore,
    SegmentTotals, StorageError, TierTotals,
};

const LIABILITY: &str = "
    SELECT coalesce(sum(remaining) FILTER (WHERE available_at <= $1), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE available_at > $1), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $2), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $3), 0)::bigint,
           coalesce(sum(remaining) FILTER (WHERE expires_at <= $4), 0)::bigint,
           count(DISTINCT member_id)
    FROM lots WHERE remaining > 0";

/// One send's deliveries, through the primary key (message first).
const SEND_COUNTS: &str = "
    SELECT channel, status, reason, count(*) FROM deliveries WHERE message_id = $1
    GROUP BY channel, status, reason";
const SEND_MESSAGES: &str = "SELECT count(*) FROM messages WHERE message_id = $1";
/// A period's sends: the deliveries of the messages created in it.
const PERIOD_COUNTS: &str = "
    SELECT d.channel, d.status, d.reason, count(*)
    FROM messages m JOIN deliveries d ON d.message_id = m.message_id
    WHERE m.created_at >= $1 AND m.created_at < $2
    GROUP BY d.channel, d.status, d.reason";
const PERIOD_MESSAGES: &str =
    "SELECT count(*) FROM messages WHERE created_at >= $1 AND created_at < $2";

/// The ledger by UTC day and reason; the rule only for rows written before reason codes.
const POINTS_BY_DAY: &str = "
    SELECT at / 86400000, reason_code, CASE WHEN reason_code IS NULL THEN rule END,
           sum(points)::bigint
    FROM ledger WHERE at >= $1 AND at < $2
    GROUP BY 1, 2, 3";

/// Members by tier.
const TIERS: &str = "
    SELECT tier, count(*), count(*) FILTER (WHERE status = 'blocked'),
           count(*) FILTER (WHERE created_at >= $1),
           count(*) FILTER (WHERE coalesce(tier_since, created_at) >= $1),
           count(*) FILTER (WHERE tier_downgrade_at IS NOT NULL)
    FROM members GROUP BY tier ORDER BY tier COLLATE \"C\"";
/// Moves between tiers since $1 (`tier_moves`, written by a trigger on `members.tier`).
const TIER_MOVES: &str = "
    SELECT from_tier, to_tier, count(*) FROM tier_moves WHERE at >= $1
    GROUP BY from_tier, to_tier ORDER BY from_tier COLLATE \"C\", to_tier COLLATE \"C\"";
/// Buyers in the longer window ($2), those of the shorter ($1), and repeat buyers.
const BUYERS: &str = "
    WITH buyers AS (
        SELECT member_id, count(*) AS n, max(at) AS last FROM postings
        WHERE kind = 'purchase' AND at >= $2 GROUP BY member_id)
    SELECT count(*) FILTER (WHERE last >= $1), count(*), count(*) FILTER (WHERE n >= 2)
    FROM buyers";

/// The segments with their sizes.
const SEGMENTS: &str = "
    SELECT segment_id, name, member_count, computed_at FROM segments ORDER BY segment_id COLLATE \"C\"";
/// Each segment's latest `?1` runs, newest first.
const RUNS: &str = "
    SELECT segment_id, computed_at, members, joined, departed FROM (
        SELECT r.*, row_number() OVER (PARTITION BY segment_id ORDER BY computed_at DESC) AS n
        FROM segment_runs r) runs
    WHERE n <= $1 ORDER BY segment_id COLLATE \"C\", computed_at DESC";
const SCORES: &str = "
    SELECT recency, frequency, monetary, count(*)::bigint FROM member_rfm GROUP BY 1, 2, 3";

/// A row of [`TIERS`].
fn tier_row(r: &Row) -> Result<TierTotals, StorageError> {
    let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
    Ok(TierTotals {
        tier: r.try_get(0).map_err(backend)?,
        members: get(1)?,
        blocked: get(2)?,
        enrolled: get(3)?,
        entered: get(4)?,
        downgrading: get(5)?,
    })
}

/// A row of [`TIER_MOVES`].
fn tier_move(r: &Row) -> Result<(String, String, i64), StorageError> {
    Ok((
        r.try_get(0).map_err(backend)?,
        r.try_get(1).map_err(backend)?,
        r.try_get(2).map_err(backend)?,
    ))
}

/// A grouped row of four columns, as the tier, day and delivery reports and the RFM moves read
/// them.
pub(super) fn four<A, B, C, D>(r: &Row) -> Result<(A, B, C, D), StorageError>
where
    A: for<'a> FromSql<'a>,
    B: for<'a> FromSql<'a>,
    C: for<'a> FromSql<'a>,
    D: for<'a> FromSql<'a>,
{
    Ok((
        r.try_get(0).map_err(backend)?,
        r.try_get(1).map_err(backend)?,
        r.try_get(2).map_err(backend)?,
        r.try_get(3).map_err(backend)?,
    ))
}

#[async_trait]
impl ReportStore for PgStorage {
    async fn member_totals(
        &self,
        enrolled_since: i64,
        active_since: [i64; 2],
    ) -> Result<MemberTotals, StorageError> {
        self.snapshot(async |tx| {
            let tiers = tx.fetch_all(TIERS, &[&enrolled_since]).await;
            let tiers = tiers.map_err(backend)?;
            let tiers = tiers.iter().map(tier_row).collect::<Result<_, _>>()?;
            let moves = tx.fetch_all(TIER_MOVES, &[&enrolled_since]).await;
            let moves = moves.map_err(backend)?;
            let moves = moves.iter().map(tier_move).collect::<Result<_, _>>()?;
            let r = tx
                .fetch_one(BUYERS, &[&active_since[0], &active_since[1]])
                .await
                .map_err(backend)?;
            Ok(MemberTotals {
                tiers,
                active: [
                    r.try_get(0).map_err(backend)?,
                    r.try_get(1).map_err(backend)?,
                ],
                repeat: r.try_get(2).map_err(backend)?,
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
            .client()
            .await?
            .fetch_all(POINTS_BY_DAY, &[&from_ms, &to_ms])
            .await
            .map_err(backend)?;
        let rows = rows.iter().map(four).collect::<Result<Vec<_>, _>>()?;
        Ok(day_movements(rows))
    }

    async fn delivery_counts(&self, scope: &DeliveryScope) -> Result<DeliveryTotals, StorageError> {
        self.snapshot(async |tx| {
            let (counts, messages) = match scope {
                DeliveryScope::Message(id) => (
                    tx.fetch_all(SEND_COUNTS, &[id]).await,
                    tx.fetch_one(SEND_MESSAGES, &[id]).await,
                ),
                DeliveryScope::Period { from_ms, to_ms } => (
                    tx.fetch_all(PERIOD_COUNTS, &[from_ms, to_ms]).await,
                    tx.fetch_one(PERIOD_MESSAGES, &[from_ms, to_ms]).await,
                ),
            };
            let messages: i64 = messages.and_then(|r| r.try_get(0)).map_err(backend)?;
            let rows = counts.map_err(backend)?;
            Ok(DeliveryTotals {
                messages,
                counts: rows.iter().map(four).collect::<Result<_, _>>()?,
            })
        })
        .await
    }

    async fn liability(&self, now_ms: i64, h: [i64; 3]) -> Result<LiabilityTotals, StorageError> {
        let r = self
            .client()
            .await?
            .fetch_one(LIABILITY, &[&now_ms, &h[0], &h[1], &h[2]])
            .await
            .map_err(backend)?;
        let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
        Ok(LiabilityTotals {
            available: get(0)?,
            pending: get(1)?,
            expiring: vec![get(2)?, get(3)?, get(4)?],
            members_with_points: get(5)?,
        })
    }

    async fn segment_totals(&self, runs: u32) -> Result<SegmentTotals, StorageError> {
        let runs = i64::from(runs);
        self.snapshot(async |tx| {
            let segments = tx.fetch_all(SEGMENTS, &[]).await.map_err(backend)?;
            let history = tx.fetch_all(RUNS, &[&runs]).await.map_err(backend)?;
            let scores = tx.fetch_all(SCORES, &[]).await.map_err(backend)?;
            let members = tx
                .fetch_one("SELECT count(*) FROM members", &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(backend)?;
            let run = |r: &Row| -> Result<_, StorageError> {
                let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
                Ok((
                    r.try_get(0).map_err(backend)?,
                    get(1)?,
                    get(2)?,
                    get(3)?,
                    get(4)?,
                ))
            };
            Ok(SegmentTotals {
                segments: segments.iter().map(four).collect::<Result<_, _>>()?,
                runs: history.iter().map(run).collect::<Result<_, _>>()?,
                scores: scores.iter().map(four).collect::<Result<_, _>>()?,
                members,
                rfm_moves: super::rfm_moves::latest(tx).await?,
            })
        })
        .await
    }
}
