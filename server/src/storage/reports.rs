//! The operators' reports as the database computes them: single aggregate statements over the
//! relational tables (lots, postings, members, deliveries), never a document, so a report over a million
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
}
