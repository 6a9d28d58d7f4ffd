//! The operators' reports as the database computes them: single aggregate statements over the
//! relational tables (lots, ledger, members, deliveries), never a document, so a report over a million
//! members is one scan.

use async_trait::async_trait;

use crate::storage::StorageError;

/// Outstanding points, before they are valued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiabilityTotals {
    pub available: i64,
    pub pending: i64,
    /// Points whose lots expire at or before each horizon given, in the order given.
    pub expiring: Vec<i64>,
    pub members_with_points: i64,
}

/// Which sends a delivery report counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryScope {
    /// One send.
    Message(String),
    /// Every send created at or after `from_ms` and before `to_ms`.
    Period { from_ms: i64, to_ms: i64 },
}

/// Deliveries counted by channel, status and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryTotals {
    /// Sends in the scope (0 for an unknown message).
    pub messages: i64,
    /// (channel, status, reason, count), in any order.
    pub counts: Vec<(String, String, Option<String>, i64)>,
}

/// Points the ledger moved on one UTC day for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayMovement {
    /// Midnight UTC at the day's start.
    pub day_ms: i64,
    pub code: loyalty_core::reasons::ReasonCode,
    /// The sum of the movements (negative for what was taken).
    pub points: i64,
}

/// A row of the grouped ledger as the backends read it: (day number since the epoch, the stored
/// code, the rule when no code was stored, the sum). Rows written before codes existed are
/// grouped by rule and read with the code their rule implies; the same day and code merge.
pub(crate) fn day_movements(
    rows: Vec<(i64, Option<String>, Option<String>, i64)>,
) -> Vec<DayMovement> {
    let mut merged: std::collections::BTreeMap<(i64, &'static str), DayMovement> =
        std::collections::BTreeMap::new();
    for (day, code, rule, points) in rows {
        let code = loyalty_core::reasons::ReasonCode::stored(
            code.as_deref(),
            rule.as_deref().unwrap_or(""),
        );
        let day_ms = day.saturating_mul(loyalty_core::calendar::DAY_MS);
        merged
            .entry((day_ms, code.as_str()))
            .and_modify(|m| m.points += points)
            .or_insert(DayMovement {
                day_ms,
                code,
                points,
            });
    }
    merged.into_values().collect()
}

/// One tier's members counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierTotals {
    pub tier: String,
    pub members: i64,
    pub blocked: i64,
    /// Created since `enrolled_since`.
    pub enrolled: i64,
    /// In this tier since `enrolled_since` (reached it, up or down, or joined on it).
    pub entered: i64,
    /// Found below this tier by a review: they move down at their downgrade date.
    pub downgrading: i64,
}

/// Members counted, before the service shapes the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberTotals {
    /// By tier.
    pub tiers: Vec<TierTotals>,
    /// Members with a purchase since `active_since[0]` and since `active_since[1]`.
    pub active: [i64; 2],
    /// Members with two purchases or more since `active_since[1]`.
    pub repeat: i64,
    /// (from tier, to tier, moves) since `enrolled_since`, by tier ids: every change of a
    /// member's tier, up, down or by an operator.
    pub moves: Vec<(String, String, i64)>,
}

/// Segments and RFM scores counted, before the service shapes the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentTotals {
    /// (segment id, name, members, computed at), by segment id.
    pub segments: Vec<(String, String, i64, Option<i64>)>,
    /// (segment id, computed at, members, joined, departed): each segment's latest recomputes,
    /// newest first.
    pub runs: Vec<(String, i64, i64, i64, i64)>,
    /// (recency, frequency, monetary, members) for every score combination held.
    pub scores: Vec<(i64, i64, i64, i64)>,
    /// All members (those without a score bought nothing in the window).
    pub members: i64,
    /// How the scores moved at the latest recompute recorded (none before the first).
    pub rfm_moves: Option<RfmMoveTotals>,
}

/// The RFM dimensions in the order of [`RfmMoveTotals::moves`], named as `rfm_moves` stores them.
pub const RFM_DIMENSIONS: [&str; 3] = ["recency", "frequency", "monetary"];

/// Recomputes whose RFM moves the job keeps (the report reads the latest; 105 cells at most each).
pub const KEPT_RFM_RUNS: i64 = 100;

/// How members' RFM scores moved at one recompute, before the service shapes the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RfmMoveTotals {
    pub computed_at: i64,
    /// The recompute before it (none: the first recorded).
    pub previous_at: Option<i64>,
    /// `moves[d][from][to]`: members of dimension `d` ([`RFM_DIMENSIONS`]) who scored `from`
    /// then `to` (0: no purchase in the window). `[0][0]` is never stored: always 0 here.
    pub moves: [[[i64; 6]; 6]; 3],
}

/// The stored cells (dimension, from score, to score, members) of a run as matrices. A cell the
/// table's checks would refuse (an unknown dimension, a score out of 0–5) is left out.
pub(crate) fn fold_moves(
    cells: impl IntoIterator<Item = (String, i64, i64, i64)>,
) -> [[[i64; 6]; 6]; 3] {
    let mut moves = [[[0; 6]; 6]; 3];
    for (dimension, from, to, members) in cells {
        let d = RFM_DIMENSIONS.iter().position(|n| *n == dimension);
        let (from, to) = (usize::try_from(from).ok(), usize::try_from(to).ok());
        if let (Some(d), Some(from @ 0..6), Some(to @ 0..6)) = (d, from, to) {
            moves[d][from][to] += members;
        }
    }
    moves
}

#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Outstanding points at `now_ms`: available (matured) and pending, and how many of them
    /// expire by each of `horizons_ms` (at most three).
    async fn liability(
        &self,
        now_ms: i64,
        horizons_ms: [i64; 3],
    ) -> Result<LiabilityTotals, StorageError>;

    /// The scope's deliveries counted by channel, status and reason: one send's through the
    /// deliveries' primary key, a period's in one scan of the deliveries.
    async fn delivery_counts(&self, scope: &DeliveryScope) -> Result<DeliveryTotals, StorageError>;

    /// The ledger's movements at or after `from_ms` and before `to_ms`, summed by UTC day and
    /// reason, oldest day first: one scan of the ledger in the window.
    async fn points_by_day(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayMovement>, StorageError>;

    /// Members by tier (with how many are blocked, were created since `enrolled_since`, entered
    /// their tier since then, and are due to move down), the moves between tiers since then, and
    /// buyers since each of `active_since` (the longer window second), with how many of the
    /// second bought at least twice: one scan of members, one of the window's tier moves and one
    /// of its postings, in one snapshot.
    async fn member_totals(
        &self,
        enrolled_since: i64,
        active_since: [i64; 2],
    ) -> Result<MemberTotals, StorageError>;

    /// Every segment with its size, its `runs` latest recomputes (members, joined, departed),
    /// the members per RFM score combination, all members and how the scores moved at the latest
    /// recompute: one scan of the scores, the rest small tables.
    async fn segment_totals(&self, runs: u32) -> Result<SegmentTotals, StorageError>;
}
