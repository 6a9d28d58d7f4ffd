//! The fraud watch list (issue 14 §3): members and tills ranked by one measure over a window,
//! members with many live devices, refused codes and offline exceptions by reason; and the
//! counting of refused codes at the till, which feeds it.

use loyalty_core::api::watch_list::{
    DeviceCount, RefusalCount, WatchList, WatchOrder, WatchedActivity,
};
use loyalty_core::calendar::DAY_MS;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::storage::{WatchActivity, WatchQuery};

/// The default window: the last 7 days.
pub const DEFAULT_WATCH_DAYS: i64 = 7;
/// The longest window one watch list covers: a quarter. Velocity is a matter of days; a longer
/// window would read most of the postings ever made (see docs/benchmarks.md).
pub const MAX_WATCH_DAYS: i64 = 92;
/// Members and tills listed by default, and at most.
pub const DEFAULT_WATCH_LIMIT: u32 = 20;
pub const MAX_WATCH_LIMIT: u32 = 200;
/// Live devices from which a member is listed, by default.
pub const DEFAULT_MIN_DEVICES: i64 = 3;

/// What an operator asks of the watch list; every field has a default.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    pub by: Option<WatchOrder>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: Option<u32>,
    pub min_devices: Option<i64>,
}

/// The watch list over `[from_ms, to_ms)` (default: the last [`DEFAULT_WATCH_DAYS`] days up to
/// now, inclusive).
pub async fn watch_list(app: &App, request: WatchRequest) -> Result<WatchList, DomainError> {
    let query = query(app.now_ms(), request)?;
    let totals = app.storage.watch_list(&query).await?;
    let mut refusals: Vec<RefusalCount> = totals
        .refusals
        .into_iter()
        .map(|(source, reason, count)| RefusalCount {
            source,
            reason,
            count,
        })
        .collect();
    refusals.sort();
    Ok(WatchList {
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        by: query.by,
        members: totals.members.into_iter().map(watched).collect(),
        tills: totals.tills.into_iter().map(watched).collect(),
        min_devices: query.min_devices,
        many_devices: totals
            .many_devices
            .into_iter()
            .map(|(member_id, card_number, devices)| DeviceCount {
                member_id,
                card_number,
                devices,
            })
            .collect(),
        refusals,
    })
}

fn query(now: i64, r: WatchRequest) -> Result<WatchQuery, DomainError> {
    let bad = |m: &str| DomainError::bad_request("malformed_query", m.to_string());
    let to_ms = r.to_ms.unwrap_or_else(|| now.saturating_add(1));
    let from_ms = r
        .from_ms
        .unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_WATCH_DAYS * DAY_MS));
    if from_ms >= to_ms {
        return Err(bad("from_ms must be before to_ms"));
    }
    if to_ms.saturating_sub(from_ms) > MAX_WATCH_DAYS * DAY_MS {
        return Err(bad("the window is at most 92 days"));
    }
    let limit = r.limit.unwrap_or(DEFAULT_WATCH_LIMIT);
    if limit == 0 || limit > MAX_WATCH_LIMIT {
        return Err(bad("limit must be 1 to 200"));
    }
    let min_devices = r.min_devices.unwrap_or(DEFAULT_MIN_DEVICES);
    if !(2..=1000).contains(&min_devices) {
        return Err(bad("min_devices must be 2 to 1000"));
    }
    Ok(WatchQuery {
        from_ms,
        to_ms,
        by: r.by.unwrap_or_default(),
        limit,
        min_devices,
    })
}

fn watched(a: WatchActivity) -> WatchedActivity {
    WatchedActivity {
        refund_rate: WatchedActivity::rate(a.refunds, a.purchases),
        id: a.id,
        card_number: a.card_number,
        purchases: a.purchases,
        redemptions: a.redemptions,
        points_redeemed: a.points_redeemed,
        refunds: a.refunds,
        refused_codes: a.refused_codes,
        offline_exceptions: a.offline_exceptions,
    }
}

/// Counts a scan's refusal for the watch list, when `outcome` is one. Counting never changes the
/// till's answer: a database that cannot count it is logged, and the refusal answered as it is.
pub async fn count_refusal<T>(
    app: &App,
    till_id: &str,
    member_id: Option<&str>,
    outcome: &Result<T, DomainError>,
) {
    let Err(e) = outcome else { return };
    if e.kind != ErrorKind::Refused {
        return;
    }
    let counted = app
        .storage
        .record_refusal(till_id, member_id, e.code, app.now_ms())
        .await;
    if let Err(failure) = counted {
        tracing::warn!(error = %failure, code = e.code, "could not count a refused code");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_query_has_defaults_and_bounds() {
        let q = query(10 * DAY_MS, WatchRequest::default()).unwrap();
        assert_eq!((q.from_ms, q.to_ms), (3 * DAY_MS + 1, 10 * DAY_MS + 1));
        assert_eq!((q.limit, q.min_devices), (20, 3));
        assert_eq!(q.by, WatchOrder::Purchases);
        let refused = |r: WatchRequest| query(10 * DAY_MS, r).unwrap_err().code;
        for r in [
            WatchRequest {
                from_ms: Some(5),
                to_ms: Some(5),
                ..WatchRequest::default()
            },
            WatchRequest {
                from_ms: Some(0),
                to_ms: Some(93 * DAY_MS),
                ..WatchRequest::default()
            },
            WatchRequest {
                limit: Some(0),
                ..WatchRequest::default()
            },
            WatchRequest {
                limit: Some(201),
                ..WatchRequest::default()
            },
            WatchRequest {
                min_devices: Some(1),
                ..WatchRequest::default()
            },
        ] {
            assert_eq!(refused(r), "malformed_query");
        }
    }
}
