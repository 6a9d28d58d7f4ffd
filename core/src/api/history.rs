//! A member's history as the operator's one window reads it (`GET /v1/admin/members/{id}/ledger`
//! and `…/devices`): the whole ledger a page at a time, each movement with the posting it belongs
//! to, and the member's devices with when each was last seen. Read from the relational tables,
//! never from the member's documents (the card document keeps only the newest entries).
//!
//! Pages run newest first. A page's `next` is an opaque cursor: give it back as `before` for the
//! page after; `None` means this was the last page.
//!
//! ```
//! use loyalty_core::api::history::LedgerCursor;
//!
//! let cursor = LedgerCursor { at_ms: 1_700_000_000_000, tx_id: "tx_1:2".into() };
//! let text = cursor.to_string();
//! assert_eq!(text.parse::<LedgerCursor>(), Ok(cursor));
//! assert!("not a cursor".parse::<LedgerCursor>().is_err());
//! ```

use serde::{Deserialize, Serialize};

use crate::card::LedgerEntry;

/// The most ledger movements one page holds.
pub const MAX_LEDGER_PAGE: u32 = 500;

/// One movement of the member's points, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberLedgerEntry {
    #[serde(flatten)]
    pub entry: LedgerEntry,
    /// The posting's idempotency key (a purchase, refund, adjustment or the programme's job).
    pub posting: String,
    /// The till that posted it (`programme`, `operator:…` for postings of the server itself).
    pub till_id: String,
    pub receipt_id: String,
}

/// One page of a member's ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerPage {
    pub member_id: String,
    pub entries: Vec<MemberLedgerEntry>,
    /// Give this back as `before` for the next page; absent after the last.
    #[serde(default)]
    pub next: Option<String>,
}

/// One of a member's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceView {
    pub device_id: String,
    /// The name the device enrolled with.
    pub name: String,
    pub enrolled_at_ms: i64,
    /// When an operator revoked it; absent while it works.
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
    /// Its last authenticated request, to within five minutes; absent if never seen since the
    /// server began recording it.
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
}

/// Where a ledger page ends: the last movement's time and transaction id (movements are ordered
/// by both, newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCursor {
    pub at_ms: i64,
    pub tx_id: String,
}

impl LedgerCursor {
    /// The cursor just past `entry`.
    pub fn after(entry: &LedgerEntry) -> Self {
        LedgerCursor {
            at_ms: entry.at_ms,
            tx_id: entry.tx_id.clone(),
        }
    }
}

impl std::fmt::Display for LedgerCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.at_ms, self.tx_id)
    }
}

/// A `before` value that is not a cursor this server gave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a ledger cursor (give back a page's `next`)")]
pub struct BadCursor;

impl std::str::FromStr for LedgerCursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let (at, tx_id) = s.split_once(':').ok_or(BadCursor)?;
        let at_ms = at.parse().map_err(|_| BadCursor)?;
        if tx_id.is_empty() || tx_id.len() > 200 {
            return Err(BadCursor);
        }
        Ok(LedgerCursor {
            at_ms,
            tx_id: tx_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_garbage_is_refused() {
        let c = LedgerCursor {
            at_ms: -5,
            tx_id: "a:b".into(),
        };
        assert_eq!(c.to_string().parse::<LedgerCursor>(), Ok(c));
        for bad in ["", "12", "x:tx", "12:", &format!("1:{}", "t".repeat(201))] {
            assert_eq!(bad.parse::<LedgerCursor>(), Err(BadCursor), "{bad}");
        }
    }

    #[test]
    fn an_entry_travels_flat_with_its_posting() {
        let e = MemberLedgerEntry {
            entry: LedgerEntry {
                tx_id: "tx1".into(),
                points: 5,
                reason: "Earned".into(),
                at_ms: 9,
                ..LedgerEntry::default()
            },
            posting: "k1".into(),
            till_id: "t1".into(),
            receipt_id: "r1".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (json["tx_id"].as_str(), json["posting"].as_str()),
            (Some("tx1"), Some("k1"))
        );
        assert_eq!(
            serde_json::from_value::<MemberLedgerEntry>(json).unwrap(),
            e
        );
    }
}
