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

#[cfg(test)]
mod tests {
    use super::*;

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
}
