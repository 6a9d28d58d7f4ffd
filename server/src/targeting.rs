//! Targeted offers: who an offer is for is decided in the relational store, and an offer reaches a
//! member's offers document only when it matters — when one of their devices syncs or reads the
//! document, or right away for a small explicit target. Writing a million Automerge documents at
//! publish time would take minutes; `INSERT ... SELECT` into `offer_members`, in chunks, takes a
//! second.
//!
//! The pieces: [`ProgrammeStorage`] (the narrow storage trait, implemented for SQLite in
//! `sqlite_offers.rs`), [`publish`] (store, fan out, wake waiting devices), [`project_pending`]
//! (write what a member is owed into their offers document), and the till's view of a member's
//! offers ([`TillOffer`]).
//! Decisions are written down in `docs/offers-and-segments.md`.

use async_trait::async_trait;
use loyalty_core::DocKind;
use loyalty_core::api::{MAX_TARGET_MEMBERS, OfferTarget, PublishedOffer, SegmentView};
use loyalty_core::ids::valid_record_id;
use loyalty_core::offers::{self, Offer};
use loyalty_core::segments::{Segment, valid_tier};

use crate::app::App;
use crate::documents;
use crate::error::ApiError;
use crate::storage::StorageError;

/// Explicit targets up to this many members are projected into their documents at once, so a
/// member who is online (or an operator looking) sees the offer without waiting for a sync.
/// Larger publications are only projected lazily.
pub const EAGER_PROJECTION_MAX: usize = 100;

/// An offer as the till needs it for one member: the terms with `use_count` = the member's uses so
/// far, and when the member activated it (from the mirror of their member document). The till
/// decides with [`loyalty_core::earning::offer_blocker`] whether it applies.
pub use loyalty_core::earning::OfferCandidate as TillOffer;

/// An offer the member's document does not yet show as it stands: new, at an older version, or
/// with an older use count. `offer.use_count` is the current count of uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffer {
    pub offer: Offer,
    pub version: i64,
}

/// What publishing stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: i64,
    pub added_members: i64,
    pub members: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgrammeError {
    #[error("no segment `{0}`")]
    UnknownSegment(String),
    #[error("{count} of the target's members do not exist (first: {first})")]
    UnknownMembers { count: usize, first: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<ProgrammeError> for ApiError {
    fn from(e: ProgrammeError) -> Self {
        match e {
            ProgrammeError::UnknownSegment(_) => {
                ApiError::not_found("segment_not_found", e.to_string())
            }
            ProgrammeError::UnknownMembers { .. } => {
                ApiError::not_found("member_not_found", e.to_string())
            }
            ProgrammeError::Storage(s) => s.into(),
        }
    }
}

/// The storage the programme needs beside [`crate::storage::Storage`]. Kept apart so the core
/// storage trait stays small; a backend offers it through `Storage::targeting`.
#[async_trait]
pub trait ProgrammeStorage: Send + Sync + 'static {
    /// Stores the offer (a new version when its id exists and its terms changed) and adds the
    /// target's members to it: the offer and an explicit target in one transaction (an unknown
    /// segment or member changes nothing), a tier's or segment's members in chunks after it.
    async fn publish_offer(
        &self,
        offer: &Offer,
        target: &OfferTarget,
        now_ms: i64,
    ) -> Result<Published, ProgrammeError>;

    /// Offers still valid at `now_ms` that the member's offers document does not show as they
    /// stand. One indexed query; empty in the steady state.
    async fn pending_offers(
        &self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<Vec<PendingOffer>, StorageError>;

    /// Whether [`Self::pending_offers`] would return anything, without reading the terms.
    async fn has_pending_offers(&self, member_id: &str, now_ms: i64) -> Result<bool, StorageError>;

    /// Records that these offers were written into the member's document at this version and
    /// use count. A use recorded meanwhile leaves the row pending, so it is projected next time.
    async fn mark_projected(
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

    /// [`StorageError::Duplicate`] when the id exists.
    async fn create_segment(&self, segment: &Segment, now_ms: i64) -> Result<(), StorageError>;

    async fn segments(&self) -> Result<Vec<SegmentView>, StorageError>;

    /// A number that moves whenever a fan-out added members to offers, in this process or in a
    /// batch job on the same database; the server watches it to wake waiting devices.
    async fn fanout_seq(&self) -> Result<i64, StorageError>;
}

fn targeting(app: &App) -> Result<&dyn ProgrammeStorage, ApiError> {
    app.targeting.as_deref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "this server's storage does not support targeted offers",
        )
    })
}

/// Checks a target's shape before anything is looked up.
pub fn validate_target(target: &OfferTarget) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request("invalid_target", m));
    match target {
        OfferTarget::Members { member_ids } => {
            if member_ids.is_empty() || member_ids.len() > MAX_TARGET_MEMBERS {
                return bad(format!(
                    "an explicit target lists 1 to {MAX_TARGET_MEMBERS} members"
                ));
            }
            if let Some(id) = member_ids.iter().find(|id| !valid_record_id(id)) {
                return bad(format!("`{id}` is not a member id"));
            }
        }
        OfferTarget::Tier { tier } => {
            if !valid_tier(tier) {
                return bad(
                    "tier must be 1-64 characters of letters, digits, `_`, `-`, `.`".into(),
                );
            }
        }
        OfferTarget::Segment { segment_id } => {
            if !valid_record_id(segment_id) {
                return bad(format!("`{segment_id}` is not a segment id"));
            }
        }
    }
    Ok(())
}

/// Publishes an offer to a target: stores it, fans it out in SQL, then either projects it at once
/// (a small explicit target) or wakes the waiting devices so they re-check.
pub async fn publish(
    app: &App,
    offer: Offer,
    target: OfferTarget,
) -> Result<PublishedOffer, ApiError> {
    offer
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_offer", m))?;
    validate_target(&target)?;
    let store = targeting(app)?;
    let published = store.publish_offer(&offer, &target, app.now_ms()).await?;
    tracing::info!(
        offer = %offer.id,
        version = published.version,
        added = published.added_members,
        "offer published"
    );
    match &target {
        OfferTarget::Members { member_ids } if member_ids.len() <= EAGER_PROJECTION_MAX => {
            for member_id in member_ids {
                // The publication is stored; a failed projection is caught up at the next sync,
                // so it must not turn the operator's answer into an error.
                if let Err(e) = project_pending(app, member_id).await {
                    tracing::warn!(member = %member_id, code = e.code, "eager offer projection failed");
                }
            }
        }
        _ => app.wake_all(),
    }
    Ok(PublishedOffer {
        offer,
        version: published.version,
        added_members: published.added_members,
        members: published.members,
    })
}

/// Writes the offers the member is owed into their offers document. Returns whether anything was
/// written. Takes the member lock itself (through `documents::update`), so callers must not hold it.
pub async fn project_pending(app: &App, member_id: &str) -> Result<bool, ApiError> {
    let Some(store) = app.targeting.as_deref() else {
        return Ok(false);
    };
    let pending = store.pending_offers(member_id, app.now_ms()).await?;
    if pending.is_empty() {
        return Ok(false);
    }
    documents::update(app, member_id, DocKind::Offers, |doc| {
        for p in &pending {
            offers::put(doc, &p.offer).map_err(|e| ApiError::internal("projecting an offer", e))?;
        }
        Ok(())
    })
    .await?;
    // After the document is stored: a crash in between projects again next time, and `put` only
    // writes what differs, so that costs nothing but the check.
    store.mark_projected(member_id, &pending).await?;
    tracing::debug!(member = %member_id, offers = pending.len(), "offers projected");
    Ok(true)
}

/// Whether the member has offers waiting to be projected (one indexed query).
pub async fn has_pending(app: &App, member_id: &str) -> Result<bool, ApiError> {
    match app.targeting.as_deref() {
        Some(store) => Ok(store.has_pending_offers(member_id, app.now_ms()).await?),
        None => Ok(false),
    }
}

/// Creates a segment. Its membership is empty until the next recompute (a batch job), because
/// evaluating rules over a million members does not belong in a request.
pub async fn create_segment(app: &App, segment: &Segment) -> Result<SegmentView, ApiError> {
    segment
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_segment", m))?;
    let now = app.now_ms();
    targeting(app)?.create_segment(segment, now).await?;
    tracing::info!(segment = %segment.id, "segment created");
    Ok(SegmentView {
        segment: segment.clone(),
        created_at_ms: now,
        computed_at_ms: None,
        members: 0,
    })
}

pub async fn segments(app: &App) -> Result<Vec<SegmentView>, ApiError> {
    Ok(targeting(app)?.segments().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_for_shape() {
        let ok = [
            OfferTarget::Members {
                member_ids: vec!["mbr_1".into()],
            },
            OfferTarget::Tier {
                tier: "gold".into(),
            },
            OfferTarget::Segment {
                segment_id: "s-1".into(),
            },
        ];
        for t in ok {
            assert!(validate_target(&t).is_ok());
        }
        let bad = [
            OfferTarget::Members { member_ids: vec![] },
            OfferTarget::Members {
                member_ids: vec!["a b".into()],
            },
            OfferTarget::Members {
                member_ids: vec!["m".into(); MAX_TARGET_MEMBERS + 1],
            },
            OfferTarget::Tier { tier: "".into() },
            OfferTarget::Segment {
                segment_id: "x/y".into(),
            },
        ];
        for t in bad {
            assert_eq!(validate_target(&t).unwrap_err().code, "invalid_target");
        }
    }
}
