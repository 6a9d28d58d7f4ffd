//! What the offline till needs stored: the key feed tills cache (every change of a device key or a
//! card's status, numbered so a till's cursor never skips one), the codes offline purchases used
//! (kept as long as a till may flush, so a code flushed by two tills is caught), and the
//! exceptions flushes record for operators.

use async_trait::async_trait;
use loyalty_core::api::offline::TillException;

use crate::storage::StorageError;

/// One change in the key feed, with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    pub seq: u64,
    pub entry: FeedEntry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEntry {
    /// A device key's current state.
    Key {
        card_number: String,
        key_id: u32,
        public_key: Vec<u8>,
        revoked: bool,
    },
    /// A card whose status changed, as it is now.
    Card { card_number: String, blocked: bool },
}

/// What [`OfflineStore::claim_offline_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum CodeClaim {
    /// The code was unused and now belongs to this posting.
    Claimed,
    /// This posting claimed it before (a retried flush).
    Mine,
    /// Used before: by another offline posting (`Some(till)`), or at a till online (`None`).
    Taken { by_till: Option<String> },
}

#[async_trait]
pub trait OfflineStore: Send + Sync + 'static {
    /// Up to `limit` changes numbered above `since`, in order, read in one snapshot.
    async fn key_feed(&self, since: u64, limit: u32) -> Result<Vec<FeedChange>, StorageError>;

    /// Claims a code for an offline posting, atomically: unused (neither by an offline posting
    /// nor at a till online, as far as used codes are kept) → claimed for `posting`, and marked
    /// used so no till accepts it online afterwards. Forgets offline claims of codes made before
    /// `forget_before_ms`.
    async fn claim_offline_code(
        &self,
        code_id: [u8; 16],
        posting: &str,
        till_id: &str,
        code_time_ms: i64,
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<CodeClaim, StorageError>;

    /// Records an exception once per posting and kind; a second record of the same changes nothing.
    async fn record_till_exception(&self, exception: &TillException) -> Result<(), StorageError>;

    /// The newest exceptions first, up to `limit`.
    async fn till_exceptions(&self, limit: u32) -> Result<Vec<TillException>, StorageError>;
}
