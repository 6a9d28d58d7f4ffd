//! A member's history for the operator's one window: the whole ledger a page at a time and the
//! member's devices, from [`crate::storage::HistoryStore`] (no document is loaded); and recording
//! when a device was last seen.
//!
//! "Last seen" is written at most once per [`SEEN_STEP_MS`] per device, judged from the device
//! row every authenticated device request reads anyway: the sync path stays read-only nearly
//! always, and every server instance on the database agrees without a cache of its own.

use loyalty_core::api::history::{
    DeviceView, LedgerCursor, LedgerPage, MAX_LEDGER_PAGE, MemberLedgerEntry,
};

use crate::app::App;
use crate::error::DomainError;
use crate::service::members::ensure_member;
use crate::storage::DeviceRecord;

/// How stale a device's "last seen" may get before a request of it writes it again.
pub const SEEN_STEP_MS: i64 = 5 * 60 * 1000;

/// A ledger page's size when the operator names none.
pub const DEFAULT_LEDGER_PAGE: u32 = 50;

/// The member's ledger movements older than the cursor `before` (a previous page's `next`),
/// newest first, `limit` (1 to [`MAX_LEDGER_PAGE`], default [`DEFAULT_LEDGER_PAGE`]) at a time.
pub async fn ledger(
    app: &App,
    member_id: &str,
    before: Option<&str>,
    limit: Option<u32>,
) -> Result<LedgerPage, DomainError> {
    let limit = limit.unwrap_or(DEFAULT_LEDGER_PAGE);
    if !(1..=MAX_LEDGER_PAGE).contains(&limit) {
        return Err(DomainError::bad_request(
            "malformed_query",
            format!("limit must be 1-{MAX_LEDGER_PAGE}"),
        ));
    }
    let before = before
        .map(str::parse::<LedgerCursor>)
        .transpose()
        .map_err(|e| DomainError::bad_request("malformed_query", format!("before: {e}")))?;
    ensure_member(app, member_id).await?;
    let entries = app
        .storage
        .ledger_page(member_id, before.as_ref(), limit)
        .await?;
    Ok(LedgerPage {
        member_id: member_id.to_string(),
        next: next_cursor(&entries, limit),
        entries,
    })
}

/// The cursor past a full page; none after a short one, which was the last.
fn next_cursor(entries: &[MemberLedgerEntry], limit: u32) -> Option<String> {
    let last = entries.last()?;
    (entries.len() == limit as usize).then(|| LedgerCursor::after(&last.entry).to_string())
}

/// Every device the member enrolled, revoked ones too, oldest first.
pub async fn devices(app: &App, member_id: &str) -> Result<Vec<DeviceView>, DomainError> {
    ensure_member(app, member_id).await?;
    Ok(app.storage.member_devices(member_id).await?)
}

/// Records that an authenticated device made a request now, when its record is older than
/// [`SEEN_STEP_MS`]. A failure only costs the time's accuracy, so it is logged, not returned.
pub async fn seen(app: &App, device: &DeviceRecord) {
    let now = app.now_ms();
    if device
        .last_seen_ms
        .is_some_and(|at| now.saturating_sub(at) < SEEN_STEP_MS)
    {
        return;
    }
    if let Err(e) = app.storage.device_seen(&device.device_id, now).await {
        tracing::warn!(error = %e, "could not record a device as seen");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::card::LedgerEntry;

    fn entry(at_ms: i64, tx: &str) -> MemberLedgerEntry {
        MemberLedgerEntry {
            entry: LedgerEntry {
                tx_id: tx.into(),
                at_ms,
                ..LedgerEntry::default()
            },
            posting: String::new(),
            till_id: String::new(),
            receipt_id: String::new(),
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_one() {
        let page = [entry(9, "b"), entry(7, "a")];
        assert_eq!(next_cursor(&page, 2).as_deref(), Some("7:a"));
        assert_eq!(next_cursor(&page, 3), None);
        assert_eq!(next_cursor(&[], 3), None);
    }
}
