//! A member's history for the operator's one window: the whole ledger a page at a time (the card
//! document keeps only the newest movements) and the member's devices with when each was last
//! seen. Both read the relational tables; nothing here loads a document.

use async_trait::async_trait;
use loyalty_core::api::history::{DeviceView, LedgerCursor, MemberLedgerEntry};

use crate::storage::StorageError;

#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// The member's ledger movements older than `before` (all when `None`), newest first by
    /// (time, transaction id), at most `limit`.
    async fn ledger_page(
        &self,
        member_id: &str,
        before: Option<&LedgerCursor>,
        limit: u32,
    ) -> Result<Vec<MemberLedgerEntry>, StorageError>;

    /// Every device the member enrolled, revoked ones too, oldest first.
    async fn member_devices(&self, member_id: &str) -> Result<Vec<DeviceView>, StorageError>;
}
