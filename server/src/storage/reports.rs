//! The operators' reports as the database computes them: single aggregate statements over the
//! relational tables (lots, postings, members), never a document, so a report over a million
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

#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Outstanding points at `now_ms`: available (matured) and pending, and how many of them
    /// expire by each of `horizons_ms` (at most three).
    async fn liability(
        &self,
        now_ms: i64,
        horizons_ms: [i64; 3],
    ) -> Result<LiabilityTotals, StorageError>;
}
