//! Offers and segments as stored: publishing an offer and fanning it out to its target, the
//! pending projections of members' offers documents, the till's view of a member's offers,
//! segments, and the batch job that recomputes RFM scores and segments.

use crate::storage::StorageError;
use async_trait::async_trait;
use loyalty_core::api::{OfferTarget, SegmentView};
pub use loyalty_core::earning::OfferCandidate as TillOffer;
use loyalty_core::offers::Offer;
use loyalty_core::segments::Segment;

/// An offer the member's document does not yet show as it stands: new, at an older version, or
/// with an older use count. `offer.use_count` is the current count of uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffer {
    pub offer: Offer,
    pub version: i64,
    /// An operator withdrew it: the projection takes it out of the document.
    pub withdrawn: bool,
}

/// The default RFM window: purchases in the last 365 days.
pub const DEFAULT_RFM_WINDOW_MS: i64 = 365 * 86_400_000;

/// What a recompute did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecomputeReport {
    /// Members with at least one purchase in the window (the rest score 0).
    pub scored_members: i64,
    /// Each segment and its members now.
    pub segments: Vec<(String, i64)>,
    /// Each standing offer and the members it gained.
    pub offers: Vec<(String, i64)>,
    /// Another recompute (another instance's, or a command's) was running on the database, so this
    /// one did nothing: the job runs on every instance and the work is done once.
    pub already_running: bool,
}

/// Where a batch job reports its progress, a line per step as it ends.
pub type Progress = Box<dyn FnMut(&str) + Send>;

/// What publishing stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: i64,
    pub added_members: i64,
    pub members: i64,
}

/// What [`OfferStore::publish_offer`] did. A refused target stores nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Publication {
    Published(Published),
    /// The target names a segment that does not exist.
    UnknownSegment(String),
    /// Members of an explicit target do not exist.
    UnknownMembers {
        count: usize,
        first: String,
    },
}

/// What [`OfferStore::create_segment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SegmentCreation {
    Created,
    /// A segment with the id exists: nothing was changed.
    Exists,
}

/// What [`OfferStore::delete_segment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum SegmentDeletion {
    Deleted,
    NotFound,
    /// An offer that has not ended and is not withdrawn targets the segment: nothing was deleted.
    InUse {
        offer_id: String,
    },
}

#[async_trait]
pub trait OfferStore: Send + Sync + 'static {
    /// Stores the offer (a new version when its id exists and its terms changed) and adds the
    /// target's members to it: the offer and an explicit target in one transaction (an unknown
    /// segment or member changes nothing), a tier's or segment's members in chunks after it.
    async fn publish_offer(
        &self,
        offer: &Offer,
        target: &OfferTarget,
        now_ms: i64,
    ) -> Result<Publication, StorageError>;

    /// Offers still valid at `now_ms` (or ended within 30 days, or withdrawn) that the member's
    /// offers document does not show as they stand. One indexed query; empty in the steady state.
    async fn pending_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<PendingOffer>, StorageError>;

    /// Whether [`Self::pending_offers`] would return anything, without reading the terms.
    async fn has_pending_offers(&self, member_id: &str, now_ms: i64) -> Result<bool, StorageError>;

    /// Records that these offers were written into the member's document at this version and
    /// use count. A use recorded meanwhile leaves the row pending, so it is projected next time.
    async fn mark_offers_projected(
        &self,
        member_id: &str,
        projected: &[PendingOffer],
    ) -> Result<(), StorageError>;

    /// The offers the member is targeted with and that are valid at `now_ms`, with their uses and
    /// the member's activation. For the till.
    async fn till_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<TillOffer>, StorageError>;

    async fn create_segment(
        &self,
        segment: &Segment,
        now_ms: i64,
    ) -> Result<SegmentCreation, StorageError>;

    async fn segments(&self) -> Result<Vec<SegmentView>, StorageError>;

    /// Replaces the segment's name and rules and empties its membership, which the next
    /// recompute fills by the new rules; false for an unknown segment.
    async fn update_segment(&self, segment: &Segment) -> Result<bool, StorageError>;

    /// Deletes the segment and its membership, unless an offer still running at `now_ms` (not
    /// ended, not withdrawn) targets it.
    async fn delete_segment(
        &self,
        segment_id: &str,
        now_ms: i64,
    ) -> Result<SegmentDeletion, StorageError>;

    /// A number that moves whenever a fan-out added members to offers, in this process or in a
    /// batch job on the same database; the server watches it to wake waiting devices.
    async fn fanout_seq(&self) -> Result<i64, StorageError>;

    /// The batch job: recomputes every member's RFM scores from their purchases and refunds in
    /// the `window_ms` before `now_ms`, then every segment's membership, then fans every valid
    /// offer with a tier or segment target out to members who newly qualify (moving
    /// [`Self::fanout_seq`]). Minutes on a million members; it runs beside a live server, whose
    /// own writes must not wait on it for long.
    async fn recompute_segments(
        &self,
        now_ms: i64,
        window_ms: i64,
        progress: Progress,
    ) -> Result<RecomputeReport, StorageError>;
}
