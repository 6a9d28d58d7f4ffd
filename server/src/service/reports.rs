//! The operators' reports: figures from [`crate::storage::ReportStore`] valued with the
//! programme's redemption value. No document is loaded for any report.

use loyalty_core::api::reports::{
    DeliveryCount, DeliveryReport, ExpiringPoints, LiabilityReport, PointsValue,
};

use crate::app::App;
use crate::error::DomainError;
use crate::storage::DeliveryScope;

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
