//! The operators' reports: figures from [`crate::storage::ReportStore`] valued with the
//! programme's redemption value. No document is loaded for any report.

use loyalty_core::api::reports::{
    DeliveryCount, DeliveryReport, ExpiringPoints, LiabilityReport, MembersReport, PeriodPoints,
    PointsActivity, PointsMoved, PointsValue, RfmMoves, ScoreMoves, ScoreSizes, SegmentRun,
    SegmentSizes, SegmentsReport, TierCount, TierMove,
};
use loyalty_core::calendar::Period;
use loyalty_core::reasons::ReasonCode;

use crate::app::App;
use crate::error::DomainError;
use crate::storage::{DeliveryScope, RfmMoveTotals, TierTotals};

/// The horizons of the expiring points, in days.
pub const EXPIRY_HORIZONS_DAYS: [i64; 3] = [30, 60, 90];

const DAY_MS: i64 = 86_400_000;

/// The programme's outstanding points now, in points and money.
pub async fn liability(app: &App) -> Result<LiabilityReport, DomainError> {
    let now = app.now_ms();
    let horizons = EXPIRY_HORIZONS_DAYS.map(|d| now.saturating_add(d * DAY_MS));
    let totals = app.storage.liability(now, horizons).await?;
    let redemption = app.programme().await?.redemption.clone();
    let value = |points: i64| PointsValue {
        points,
        value_minor: redemption.worth(points),
    };
    Ok(LiabilityReport {
        as_of_ms: now,
        value_points: redemption.value_points,
        value_minor: redemption.value_minor,
        available: value(totals.available),
        pending: value(totals.pending),
        total: value(totals.available.saturating_add(totals.pending)),
        expiring: EXPIRY_HORIZONS_DAYS
            .iter()
            .zip(totals.expiring)
            .map(|(days, points)| ExpiringPoints {
                days: *days,
                amount: value(points),
            })
            .collect(),
        members_with_points: totals.members_with_points,
    })
}

/// The default period of a delivery report: the sends of the last 30 days.
pub const DEFAULT_DELIVERY_DAYS: i64 = 30;

/// What became of one send (`message_id`), or of every send created in `[from_ms, to_ms)`
/// (default: the last [`DEFAULT_DELIVERY_DAYS`] days up to now, inclusive).
pub async fn deliveries(
    app: &App,
    message_id: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<DeliveryReport, DomainError> {
    let scope = match (&message_id, from_ms, to_ms) {
        (Some(id), None, None) => DeliveryScope::Message(id.clone()),
        (Some(_), ..) => {
            return Err(DomainError::bad_request(
                "malformed_query",
                "give a message_id or a period, not both",
            ));
        }
        (None, from, to) => {
            // By default up to now inclusive: a send made this millisecond counts.
            let to_ms = to.unwrap_or_else(|| app.now_ms().saturating_add(1));
            let from_ms =
                from.unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_DELIVERY_DAYS * DAY_MS));
            if from_ms >= to_ms {
                return Err(DomainError::bad_request(
                    "malformed_query",
                    "from_ms must be before to_ms",
                ));
            }
            DeliveryScope::Period { from_ms, to_ms }
        }
    };
    let totals = app.storage.delivery_counts(&scope).await?;
    if message_id.is_some() && totals.messages == 0 {
        return Err(DomainError::not_found(
            "message_not_found",
            "no such message",
        ));
    }
    let mut counts: Vec<DeliveryCount> = totals
        .counts
        .into_iter()
        .map(|(channel, status, reason, count)| DeliveryCount {
            channel,
            status,
            reason,
            count,
        })
        .collect();
    counts.sort();
    let (from_ms, to_ms) = match scope {
        DeliveryScope::Period { from_ms, to_ms } => (Some(from_ms), Some(to_ms)),
        DeliveryScope::Message(_) => (None, None),
    };
    Ok(DeliveryReport {
        message_id,
        from_ms,
        to_ms,
        messages: totals.messages,
        recipients: counts.iter().map(|c| c.count).sum(),
        counts,
    })
}

/// The default window of the points activity report: the last 365 days.
pub const DEFAULT_ACTIVITY_DAYS: i64 = 365;
/// The longest window one points activity report covers: ten years.
pub const MAX_ACTIVITY_DAYS: i64 = 3660;

/// Points earned, redeemed, expired, refunded and adjusted per `period` (default month) over
/// `[from_ms, to_ms)` (default: the last [`DEFAULT_ACTIVITY_DAYS`] days up to now, inclusive),
/// with the redemption and breakage rates over the window.
pub async fn points_activity(
    app: &App,
    period: Option<&str>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<PointsActivity, DomainError> {
    let bad = |m: &str| DomainError::bad_request("malformed_query", m.to_string());
    let period = match period {
        None => Period::Month,
        Some(name) => {
            Period::parse(name).ok_or_else(|| bad("period must be day, week or month"))?
        }
    };
    let to_ms = to_ms.unwrap_or_else(|| app.now_ms().saturating_add(1));
    let from_ms = from_ms.unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_ACTIVITY_DAYS * DAY_MS));
    if from_ms >= to_ms {
        return Err(bad("from_ms must be before to_ms"));
    }
    if to_ms.saturating_sub(from_ms) > MAX_ACTIVITY_DAYS * DAY_MS {
        return Err(bad("the window is at most 3660 days"));
    }
    let days = app.storage.points_by_day(from_ms, to_ms).await?;
    let mut rows: std::collections::BTreeMap<i64, PointsMoved> = std::collections::BTreeMap::new();
    for d in days {
        let row = rows.entry(period.start_of(d.day_ms)).or_default();
        row.add(&moved(d.code, d.points));
    }
    let mut totals = PointsMoved::default();
    rows.values().for_each(|r| totals.add(r));
    let rate = |part: i64| {
        if totals.earned > 0 {
            part as f64 / totals.earned as f64
        } else {
            0.0
        }
    };
    Ok(PointsActivity {
        period,
        from_ms,
        to_ms,
        redemption_rate: rate(totals.redeemed),
        breakage_rate: rate(totals.expired),
        rows: rows
            .into_iter()
            .map(|(start_ms, points)| PeriodPoints { start_ms, points })
            .collect(),
        totals,
    })
}

/// Where a reason's points go in the report, as positive figures for what was taken.
fn moved(code: ReasonCode, points: i64) -> PointsMoved {
    let mut m = PointsMoved::default();
    match code {
        ReasonCode::Purchase
        | ReasonCode::PurchaseOffer
        | ReasonCode::TierBonus
        | ReasonCode::Event => m.earned = points,
        // A refunded redemption gives spent points back: it lowers what was redeemed.
        ReasonCode::Redeem | ReasonCode::RefundRedeem => m.redeemed = -points,
        ReasonCode::Expiry => m.expired = -points,
        ReasonCode::Refund => m.refunded = -points,
        ReasonCode::Adjust | ReasonCode::Other => m.adjusted = points,
    }
    m
}

/// The members now: by tier, blocked, enrolled in the last 30 days, buying in the last 30 and 90
/// days, and the share of the last 90 days' buyers who bought at least twice.
pub async fn members(app: &App) -> Result<MembersReport, DomainError> {
    let now = app.now_ms();
    let days = |n: i64| now.saturating_sub(n * DAY_MS);
    let totals = app
        .storage
        .member_totals(days(30), [days(30), days(90)])
        .await?;
    let sum = |pick: fn(&TierTotals) -> i64| totals.tiers.iter().map(pick).sum();
    let [active_30d, active_90d] = totals.active;
    Ok(MembersReport {
        as_of_ms: now,
        members: sum(|t| t.members),
        blocked: sum(|t| t.blocked),
        enrolled_30d: sum(|t| t.enrolled),
        tiers: totals
            .tiers
            .iter()
            .map(|t| TierCount {
                tier: t.tier.clone(),
                members: t.members,
                entered_30d: t.entered,
                downgrading: t.downgrading,
            })
            .collect(),
        tier_moves_30d: totals
            .moves
            .iter()
            .map(|(from, to, moves)| TierMove {
                from: from.clone(),
                to: to.clone(),
                moves: *moves,
            })
            .collect(),
        active_30d,
        active_90d,
        repeat_rate_90d: if active_90d > 0 {
            totals.repeat as f64 / active_90d as f64
        } else {
            0.0
        },
    })
}

/// Recomputes shown per segment by default, and at most.
pub const DEFAULT_SEGMENT_RUNS: u32 = 10;
pub const MAX_SEGMENT_RUNS: u32 = 100;

/// Every segment's size now and over its latest `runs` recomputes (default
/// [`DEFAULT_SEGMENT_RUNS`]) with who joined and departed at each, and the members per RFM score.
pub async fn segments(app: &App, runs: Option<u32>) -> Result<SegmentsReport, DomainError> {
    let runs = runs.unwrap_or(DEFAULT_SEGMENT_RUNS);
    if runs == 0 || runs > MAX_SEGMENT_RUNS {
        return Err(DomainError::bad_request(
            "malformed_query",
            "runs must be 1 to 100",
        ));
    }
    let totals = app.storage.segment_totals(runs).await?;
    let (scored, [recency, frequency, monetary]) = score_sizes(&totals.scores, totals.members);
    let rfm_moves = totals
        .rfm_moves
        .map(|moves| rfm_moves(moves, totals.members));
    let segments = totals
        .segments
        .into_iter()
        .map(|(segment_id, name, members, computed_at_ms)| SegmentSizes {
            runs: totals
                .runs
                .iter()
                .filter(|r| r.0 == segment_id)
                .map(|r| SegmentRun {
                    computed_at_ms: r.1,
                    members: r.2,
                    joined: r.3,
                    departed: r.4,
                })
                .collect(),
            segment_id,
            name,
            members,
            computed_at_ms,
        })
        .collect();
    Ok(SegmentsReport {
        as_of_ms: app.now_ms(),
        segments,
        scored_members: scored,
        recency,
        frequency,
        monetary,
        rfm_moves,
    })
}

/// The stored moves with 0 → 0 filled in: every member not scored at either recompute, counted
/// against all members now (as the score distribution's 0), so members enrolled since count there
/// and each matrix's columns add up to the distribution of the latest scores.
fn rfm_moves(totals: RfmMoveTotals, members: i64) -> RfmMoves {
    let [recency, frequency, monetary] = totals.moves.map(|mut cells| {
        let moved: i64 = cells.iter().flatten().sum();
        cells[0][0] = members.saturating_sub(moved).max(0);
        ScoreMoves { members: cells }
    });
    RfmMoves {
        computed_at_ms: totals.computed_at,
        previous_at_ms: totals.previous_at,
        recency,
        frequency,
        monetary,
    }
}

/// Members per score of each RFM dimension from the counts per (recency, frequency, monetary)
/// combination, and how many were scored. Members without a score bought nothing in the window:
/// score 0 in every dimension.
fn score_sizes(scores: &[(i64, i64, i64, i64)], members: i64) -> (i64, [ScoreSizes; 3]) {
    let mut dims = [[0i64; 6]; 3];
    let mut scored = 0;
    for &(r, f, m, n) in scores {
        scored += n;
        for (dim, score) in dims.iter_mut().zip([r, f, m]) {
            let cell = usize::try_from(score).unwrap_or(0).min(5);
            dim[cell] += n;
        }
    }
    let unscored = members.saturating_sub(scored).max(0);
    dims.iter_mut().for_each(|d| d[0] += unscored);
    (scored, dims.map(|members| ScoreSizes { members }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_lands_in_its_column_as_a_positive_figure() {
        assert_eq!(moved(ReasonCode::Purchase, 10).earned, 10);
        assert_eq!(moved(ReasonCode::Redeem, -30).redeemed, 30);
        assert_eq!(moved(ReasonCode::RefundRedeem, 5).redeemed, -5);
        assert_eq!(moved(ReasonCode::Expiry, -7).expired, 7);
        assert_eq!(moved(ReasonCode::Refund, -4).refunded, 4);
        assert_eq!(moved(ReasonCode::Adjust, -2).adjusted, -2);
    }

    #[test]
    fn scores_fold_into_each_dimension_and_the_unscored_score_zero() {
        let (scored, [r, f, m]) = score_sizes(&[(5, 1, 3, 2), (5, 2, 3, 1)], 10);
        assert_eq!(scored, 3);
        assert_eq!(r.members, [7, 0, 0, 0, 0, 3]);
        assert_eq!(f.members, [7, 2, 1, 0, 0, 0]);
        assert_eq!(m.members, [7, 0, 0, 3, 0, 0]);
    }

    #[test]
    fn moves_fill_in_the_members_never_scored() {
        let mut moves = [[[0; 6]; 6]; 3];
        moves[0][2][0] = 1;
        moves[0][0][4] = 2;
        moves[0][3][3] = 4;
        moves[1][1][1] = 7;
        let report = rfm_moves(
            RfmMoveTotals {
                computed_at: 20,
                previous_at: Some(10),
                moves,
            },
            10,
        );
        assert_eq!(report.recency.members[0][0], 3);
        assert_eq!(report.recency.members[0][4], 2);
        assert_eq!(report.recency.members[2][0], 1);
        assert_eq!(report.frequency.members[0][0], 3);
        assert_eq!(report.monetary.members[0][0], 10);
        assert_eq!(report.previous_at_ms, Some(10));
    }
}
