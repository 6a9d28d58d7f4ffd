//! The operators' reports: figures from [`crate::storage::ReportStore`] valued with the
//! programme's redemption value. No document is loaded for any report.

use loyalty_core::api::reports::{ExpiringPoints, LiabilityReport, PointsValue};

use crate::app::App;
use crate::error::DomainError;

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
