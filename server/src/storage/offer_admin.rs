//! Offers as operators manage them: listed with their figures (reach, activations, uses), one at
//! a time, and ended early or withdrawn. An end or a withdrawal is a new version of the offer, so
//! members' offers documents follow at their next sync through the offers projection; tills stop
//! applying it at once. Nothing here loads a document, and the figures count only what happened
//! (indexes by offer over uses and activations), never every member reached.

use async_trait::async_trait;
use loyalty_core::api::offer_admin::{OfferEnd, OfferRecord, OfferStatus};

use crate::storage::StorageError;

/// Which offers to list, a page at a time in offer id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferFilter {
    pub status: Option<OfferStatus>,
    /// The time the status is judged at.
    pub now_ms: i64,
    /// The page after this offer id.
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait OfferAdminStore: Send + Sync + 'static {
    /// One page of the offers the filter admits, with their figures.
    async fn list_offers(&self, filter: &OfferFilter) -> Result<Vec<OfferRecord>, StorageError>;

    /// One offer with its figures, its status judged at `now_ms`; `None` for an unknown id.
    async fn offer_record(
        &self,
        offer_id: &str,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError>;

    /// Ends the offer at `now_ms` (its end moves no later than that) or withdraws it, as a new
    /// version; an offer already ended (or withdrawn) is left as it is. `None` for an unknown id.
    async fn end_offer(
        &self,
        offer_id: &str,
        how: OfferEnd,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError>;
}
