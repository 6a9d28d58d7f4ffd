//! The operators' reports as they travel (`GET /v1/admin/reports/…`): computed by the server from
//! the ledger's relational tables, never from documents. `docs/operations.md`, *Reports*, says
//! what each figure counts.

use serde::{Deserialize, Serialize};

/// Points and what they are worth at the programme's redemption value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsValue {
    pub points: i64,
    /// In minor units of the programme's currency, rounded down.
    pub value_minor: i64,
}

/// Points that expire within `days` unless they are redeemed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiringPoints {
    pub days: i64,
    #[serde(flatten)]
    pub amount: PointsValue,
}

/// The programme's outstanding points: what finance books as a liability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiabilityReport {
    pub as_of_ms: i64,
    /// `value_points` points are worth `value_minor` (the programme's `redemption`).
    pub value_points: i64,
    pub value_minor: i64,
    /// Points members may redeem now.
    pub available: PointsValue,
    /// Points earned but not yet matured: they become available unless refunded.
    pub pending: PointsValue,
    /// `available` + `pending`.
    pub total: PointsValue,
    /// Of the total, what expires within 30, 60 and 90 days (each includes the shorter ones).
    pub expiring: Vec<ExpiringPoints>,
    /// Members holding any points.
    pub members_with_points: i64,
}

impl LiabilityReport {
    /// The report as CSV (`measure,points,value_minor`), for a spreadsheet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("measure,points,value_minor\n");
        let mut row = |name: &str, v: PointsValue| {
            out.push_str(&format!("{name},{},{}\n", v.points, v.value_minor));
        };
        row("available", self.available);
        row("pending", self.pending);
        row("total", self.total);
        for e in &self.expiring {
            row(&format!("expiring_{}d", e.days), e.amount);
        }
        out.push_str(&format!(
            "members_with_points,{},\n",
            self.members_with_points
        ));
        out
    }
}

/// How many deliveries of one channel ended in one state (and, for refusals and failures, why).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryCount {
    /// `in_app`, `email`, `sms` or `push`.
    pub channel: String,
    /// `queued`, `sent`, `handed_over`, `logged`, `failed` or `refused`
    /// (`docs/communications.md`).
    pub status: String,
    /// Why it was refused or failed (`no_consent`, `rate_limited`, `no_address`, the provider's
    /// error kind); absent otherwise.
    #[serde(default)]
    pub reason: Option<String>,
    pub count: i64,
}

/// What became of messages: one send's (`message_id`) or every send created in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryReport {
    /// The one send reported on, if one was asked for.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The period of the sends reported on (created at or after `from_ms`, before `to_ms`).
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Sends counted.
    pub messages: i64,
    /// Deliveries counted: one per member and message.
    pub recipients: i64,
    /// Sorted by channel, status and reason.
    pub counts: Vec<DeliveryCount>,
}

impl DeliveryReport {
    /// The report as CSV (`channel,status,reason,count`), for a spreadsheet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("channel,status,reason,count\n");
        for c in &self.counts {
            let reason = c.reason.as_deref().unwrap_or("");
            out.push_str(&format!(
                "{},{},{reason},{}\n",
                c.channel, c.status, c.count
            ));
        }
        out
    }

    /// Deliveries refused for want of the member's consent: what marketing loses to opt-outs.
    pub fn consent_refusals(&self) -> i64 {
        self.counts
            .iter()
            .filter(|c| c.status == "refused" && c.reason.as_deref() == Some("no_consent"))
            .map(|c| c.count)
            .sum()
    }
}

/// Points moved in one period, by what moved them. Every figure is positive: `redeemed` is what
/// members spent (less redemptions refunded), `refunded` what refunds took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsMoved {
    /// Earned by purchases, offers, tier bonuses and events.
    pub earned: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub refunded: i64,
    /// Operators' adjustments, credits less debits (may be negative).
    pub adjusted: i64,
}

impl PointsMoved {
    pub fn add(&mut self, other: &PointsMoved) {
        self.earned += other.earned;
        self.redeemed += other.redeemed;
        self.expired += other.expired;
        self.refunded += other.refunded;
        self.adjusted += other.adjusted;
    }
}

/// One period's row of [`PointsActivity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodPoints {
    /// Midnight UTC at the period's start.
    pub start_ms: i64,
    #[serde(flatten)]
    pub points: PointsMoved,
}

/// Points issued, redeemed and expired per day, week or month, with the window's redemption and
/// breakage rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsActivity {
    pub period: crate::calendar::Period,
    /// Movements at or after `from_ms` and before `to_ms`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Periods with any movement, oldest first.
    pub rows: Vec<PeriodPoints>,
    pub totals: PointsMoved,
    /// Redeemed / earned over the window (0 when nothing was earned).
    pub redemption_rate: f64,
    /// Expired / earned over the window: the points members let lapse.
    pub breakage_rate: f64,
}

impl PointsActivity {
    /// The report as CSV (`period_start,earned,redeemed,expired,refunded,adjusted`, the start as a
    /// UTC date), for a spreadsheet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("period_start,earned,redeemed,expired,refunded,adjusted\n");
        for r in &self.rows {
            let p = r.points;
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                crate::calendar::format_date(r.start_ms),
                p.earned,
                p.redeemed,
                p.expired,
                p.refunded,
                p.adjusted
            ));
        }
        out
    }
}

/// Members of one tier, and its movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierCount {
    pub tier: String,
    pub members: i64,
    /// Members who reached this tier (up or down, or by joining on it) in the last 30 days.
    #[serde(default)]
    pub entered_30d: i64,
    /// Members a review found below this tier: they move down at their downgrade date.
    #[serde(default)]
    pub downgrading: i64,
}

/// Members who moved from one tier to another in a window: up at a purchase, down at a review,
/// or by an operator's hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierMove {
    pub from: String,
    pub to: String,
    pub moves: i64,
}

/// Who the members are and how many of them buy: the tier distribution, enrollments, activity and
/// the repeat purchase rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembersReport {
    pub as_of_ms: i64,
    pub members: i64,
    pub blocked: i64,
    /// Created in the last 30 days.
    pub enrolled_30d: i64,
    /// Members per tier, by tier id.
    pub tiers: Vec<TierCount>,
    /// Moves between tiers in the last 30 days, by the tiers' ids (a member who moved twice
    /// counts twice).
    #[serde(default)]
    pub tier_moves_30d: Vec<TierMove>,
    /// Members with a purchase in the last 30 and 90 days.
    pub active_30d: i64,
    pub active_90d: i64,
    /// Of the members who bought in the last 90 days, the share who bought at least twice.
    pub repeat_rate_90d: f64,
}

impl MembersReport {
    /// The report as CSV (`measure,value`), tiers as `tier:ID`, `tier_entered_30d:ID` and
    /// `tier_downgrading:ID` rows, moves between tiers as `tier_moves_30d:FROM>TO` rows.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("measure,value\n");
        let figures = [
            ("members", self.members),
            ("blocked", self.blocked),
            ("enrolled_30d", self.enrolled_30d),
            ("active_30d", self.active_30d),
            ("active_90d", self.active_90d),
        ];
        for (name, value) in figures {
            out.push_str(&format!("{name},{value}\n"));
        }
        out.push_str(&format!("repeat_rate_90d,{:.4}\n", self.repeat_rate_90d));
        for t in &self.tiers {
            out.push_str(&format!("tier:{},{}\n", t.tier, t.members));
            out.push_str(&format!("tier_entered_30d:{},{}\n", t.tier, t.entered_30d));
            out.push_str(&format!("tier_downgrading:{},{}\n", t.tier, t.downgrading));
        }
        for m in &self.tier_moves_30d {
            out.push_str(&format!("tier_moves_30d:{}>{},{}\n", m.from, m.to, m.moves));
        }
        out
    }
}

/// One recompute of a segment: its members then, and how many joined and departed since the
/// recompute before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentRun {
    pub computed_at_ms: i64,
    pub members: i64,
    pub joined: i64,
    pub departed: i64,
}

/// A segment's size now and over its latest recomputes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentSizes {
    pub segment_id: String,
    pub name: String,
    pub members: i64,
    /// When the batch job last computed it (absent: never, or edited since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_at_ms: Option<i64>,
    /// Newest first.
    pub runs: Vec<SegmentRun>,
}

/// Members per score (0 to 5) of one RFM dimension; 0 is no purchase in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreSizes {
    /// `members[s]` members score `s`.
    pub members: [i64; 6],
}

/// Members per (previous score → new score) of one RFM dimension between two recomputes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreMoves {
    /// `members[from][to]` members scored `from` at the recompute before and `to` at this one
    /// (0: no purchase in the window; `[0][0]` counts everyone else, enrolled since included).
    pub members: [[i64; 6]; 6],
}

/// How the members' RFM scores moved at the latest recompute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RfmMoves {
    pub computed_at_ms: i64,
    /// The recompute before it (absent: the first recorded, moves from the scores held then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_at_ms: Option<i64>,
    pub recency: ScoreMoves,
    pub frequency: ScoreMoves,
    pub monetary: ScoreMoves,
}

/// The segments' sizes and their migration between recomputes, and the RFM score distribution
/// of the latest recompute with how the scores moved since the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentsReport {
    pub as_of_ms: i64,
    pub segments: Vec<SegmentSizes>,
    /// Members with a purchase in the RFM window at the latest recompute.
    pub scored_members: i64,
    pub recency: ScoreSizes,
    pub frequency: ScoreSizes,
    pub monetary: ScoreSizes,
    /// Absent until the batch job has recorded a recompute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfm_moves: Option<RfmMoves>,
}

impl SegmentsReport {
    /// The report as CSV (`row,id,computed_at_ms,members,joined,departed`): a `segment` row per
    /// recompute (one without a time for a segment never computed), then `recency`, `frequency`
    /// and `monetary` rows with the score as the id.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("row,id,computed_at_ms,members,joined,departed\n");
        for s in &self.segments {
            if s.runs.is_empty() {
                out.push_str(&format!("segment,{},,{},,\n", s.segment_id, s.members));
            }
            for r in &s.runs {
                out.push_str(&format!(
                    "segment,{},{},{},{},{}\n",
                    s.segment_id, r.computed_at_ms, r.members, r.joined, r.departed
                ));
            }
        }
        for (name, sizes) in [
            ("recency", &self.recency),
            ("frequency", &self.frequency),
            ("monetary", &self.monetary),
        ] {
            for (score, n) in sizes.members.iter().enumerate() {
                out.push_str(&format!("{name},{score},,{n},,\n"));
            }
        }
        if let Some(moves) = &self.rfm_moves {
            moves.write_csv(&mut out);
        }
        out
    }
}

impl RfmMoves {
    /// The moves' CSV rows, in the segments report's columns: `rfm_run,latest` and
    /// `rfm_run,previous` (when there is one) with their times, then for each dimension all 36
    /// cells as `recency_move,FROM>TO,computed_at_ms,members,,`, from 0 to 5 then to 0 to 5.
    fn write_csv(&self, out: &mut String) {
        let at = self.computed_at_ms;
        out.push_str(&format!("rfm_run,latest,{at},,,\n"));
        if let Some(previous) = self.previous_at_ms {
            out.push_str(&format!("rfm_run,previous,{previous},,,\n"));
        }
        for (name, moves) in [
            ("recency", &self.recency),
            ("frequency", &self.frequency),
            ("monetary", &self.monetary),
        ] {
            for (from, row) in moves.members.iter().enumerate() {
                for (to, n) in row.iter().enumerate() {
                    out.push_str(&format!("{name}_move,{from}>{to},{at},{n},,\n"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_report_counts_consent_refusals_and_writes_csv() {
        let count = |channel: &str, status: &str, reason: Option<&str>, count| DeliveryCount {
            channel: channel.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            count,
        };
        let report = DeliveryReport {
            message_id: Some("m1".into()),
            from_ms: None,
            to_ms: None,
            messages: 1,
            recipients: 6,
            counts: vec![
                count("email", "handed_over", None, 3),
                count("email", "refused", Some("no_consent"), 2),
                count("email", "refused", Some("no_address"), 1),
            ],
        };
        assert_eq!(report.consent_refusals(), 2);
        assert_eq!(
            report.to_csv(),
            "channel,status,reason,count\nemail,handed_over,,3\n\
             email,refused,no_consent,2\nemail,refused,no_address,1\n"
        );
    }

    #[test]
    fn the_csv_has_one_row_per_measure() {
        let v = |points| PointsValue {
            points,
            value_minor: points / 2,
        };
        let report = LiabilityReport {
            as_of_ms: 0,
            value_points: 2,
            value_minor: 1,
            available: v(100),
            pending: v(20),
            total: v(120),
            expiring: vec![ExpiringPoints {
                days: 30,
                amount: v(10),
            }],
            members_with_points: 3,
        };
        assert_eq!(
            report.to_csv(),
            "measure,points,value_minor\navailable,100,50\npending,20,10\ntotal,120,60\n\
             expiring_30d,10,5\nmembers_with_points,3,\n"
        );
    }

    #[test]
    fn the_segments_csv_has_a_row_per_run_and_score() {
        let sizes = |n: i64| ScoreSizes {
            members: [n, 1, 0, 0, 0, 2],
        };
        let report = SegmentsReport {
            as_of_ms: 0,
            segments: vec![
                SegmentSizes {
                    segment_id: "a".into(),
                    name: "A".into(),
                    members: 3,
                    computed_at_ms: Some(20),
                    runs: vec![
                        SegmentRun {
                            computed_at_ms: 20,
                            members: 3,
                            joined: 1,
                            departed: 2,
                        },
                        SegmentRun {
                            computed_at_ms: 10,
                            members: 4,
                            joined: 4,
                            departed: 0,
                        },
                    ],
                },
                SegmentSizes {
                    segment_id: "b".into(),
                    name: "B".into(),
                    members: 0,
                    computed_at_ms: None,
                    runs: Vec::new(),
                },
            ],
            scored_members: 3,
            recency: sizes(7),
            frequency: sizes(7),
            monetary: sizes(7),
            rfm_moves: None,
        };
        let csv = report.to_csv();
        assert!(csv.starts_with(
            "row,id,computed_at_ms,members,joined,departed\n\
             segment,a,20,3,1,2\nsegment,a,10,4,4,0\nsegment,b,,0,,\nrecency,0,,7,,\n"
        ));
        assert!(csv.ends_with("monetary,5,,2,,\n"), "{csv}");
        assert_eq!(csv.lines().count(), 1 + 3 + 18);
    }

    #[test]
    fn the_segments_csv_adds_the_runs_and_every_move_cell() {
        let mut members = [[0; 6]; 6];
        members[0][0] = 5;
        members[3][0] = 1;
        members[0][2] = 2;
        let moves = ScoreMoves { members };
        let mut csv = String::new();
        RfmMoves {
            computed_at_ms: 20,
            previous_at_ms: Some(10),
            recency: moves.clone(),
            frequency: moves.clone(),
            monetary: moves,
        }
        .write_csv(&mut csv);
        assert!(
            csv.starts_with(
                "rfm_run,latest,20,,,\nrfm_run,previous,10,,,\nrecency_move,0>0,20,5,,\n\
                 recency_move,0>1,20,0,,\nrecency_move,0>2,20,2,,\n"
            ),
            "{csv}"
        );
        assert!(csv.contains("\nfrequency_move,3>0,20,1,,\n"), "{csv}");
        assert!(csv.ends_with("monetary_move,5>5,20,0,,\n"), "{csv}");
        assert_eq!(csv.lines().count(), 2 + 3 * 36);
    }
}
