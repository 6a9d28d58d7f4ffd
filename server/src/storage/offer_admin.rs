//! Offers as operators manage them: listed with their figures (reach, activations, uses), one at
//! a time, and ended early or withdrawn. An end or a withdrawal is a new version of the offer, so
//! members' offers documents follow at their next sync through the offers projection; tills stop
//! applying it at once. Nothing here loads a document, and the figures count only what happened
//! (indexes by offer over uses and activations), never every member reached.

use async_trait::async_trait;
use loyalty_core::api::offer_admin::{OfferEnd, OfferRecord, OfferStatus, SegmentUptake};

use crate::storage::StorageError;
use crate::storage::dialect::Dialect;

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

    /// The offer's uptake in every segment, by segment id: one range of each segment's members
    /// with two key look-ups each (the offer's row, the activation). `None` for an unknown id.
    async fn offer_uptake(
        &self,
        offer_id: &str,
    ) -> Result<Option<Vec<SegmentUptake>>, StorageError>;

    /// Ends the offer at `now_ms` (its end moves no later than that) or withdraws it, as a new
    /// version; an offer already ended (or withdrawn) is left as it is. `None` for an unknown id.
    async fn end_offer(
        &self,
        offer_id: &str,
        how: OfferEnd,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError>;
}

/// The uptake statement: every segment (empty ones too), its members, and of them those the
/// offer (parameter 1) reached, who activated it, who used it, and the uses.
pub(crate) fn uptake_statement(d: &Dialect) -> String {
    let (int, c) = (d.int, d.collate);
    d.params(&format!(
        "SELECT s.segment_id, s.name, count(sm.member_id), count(om.member_id),
                count(a.member_id), count(CASE WHEN om.uses > 0 THEN 1 END),
                coalesce(sum(om.uses), 0){int}
         FROM segments s
         LEFT JOIN segment_members sm ON sm.segment_id = s.segment_id
         LEFT JOIN offer_members om ON om.member_id = sm.member_id AND om.offer_id = ?1
         LEFT JOIN member_activations a ON a.member_id = sm.member_id AND a.offer_id = ?1
         GROUP BY s.segment_id, s.name
         ORDER BY s.segment_id{c}"
    ))
}
