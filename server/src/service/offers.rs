//! Targeted offers: who an offer is for is decided in the relational store, and an offer reaches a
//! member's offers document only when it matters — when one of their devices syncs or reads the
//! document, or right away for a small explicit target. Writing a million Automerge documents at
//! publish time would take minutes; `INSERT ... SELECT` into `offer_members`, in chunks, takes a
//! second.
//!
//! The pieces: [`publish`] (store, fan out, wake waiting devices) and segments here;
//! `OfferStore` (the storage trait, implemented for SQLite in
//! `crate::storage::sqlite::offers`) and the till's view of a member's offers (`TillOffer`) in
//! `crate::storage::offers`; `crate::projection::offers::project_pending` (write what a member is
//! owed into their offers document).
//! Decisions are written down in `docs/offers-and-segments.md`.

use crate::storage::{Publication, Published, SegmentCreation, SegmentDeletion};

use loyalty_core::api::{MAX_TARGET_MEMBERS, OfferTarget, PublishedOffer, SegmentView};
use loyalty_core::ids::valid_record_id;
use loyalty_core::offers::Offer;
use loyalty_core::segments::{Segment, valid_tier};

use crate::app::App;
use crate::error::DomainError;

/// An offer as the till needs it for one member: the terms with `use_count` = the member's uses so
/// far, and when the member activated it (from the mirror of their member document). The till
/// decides with [`loyalty_core::earning::offer_blocker`] whether it applies.
pub use crate::storage::offers::TillOffer;

/// What was published, or why the target was refused (nothing was stored then).
fn published(publication: Publication) -> Result<Published, DomainError> {
    match publication {
        Publication::Published(p) => Ok(p),
        Publication::UnknownSegment(segment) => Err(DomainError::not_found(
            "segment_not_found",
            format!("no segment `{segment}`"),
        )),
        Publication::UnknownMembers { count, first } => Err(DomainError::not_found(
            "member_not_found",
            format!("{count} of the target's members do not exist (first: {first})"),
        )),
    }
}

/// Checks a target's shape before anything is looked up.
pub fn validate_target(target: &OfferTarget) -> Result<(), DomainError> {
    let bad = |m: String| Err(DomainError::bad_request("invalid_target", m));
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
) -> Result<PublishedOffer, DomainError> {
    offer
        .validate()
        .map_err(|m| DomainError::bad_request("invalid_offer", m))?;
    validate_target(&target)?;
    let store = &*app.storage;
    let published = published(store.publish_offer(&offer, &target, app.now_ms()).await?)?;
    tracing::info!(
        offer = %offer.id,
        version = published.version,
        added = published.added_members,
        "offer published"
    );
    match &target {
        OfferTarget::Members { member_ids }
            if member_ids.len() <= crate::projection::EAGER_PROJECTION_MAX =>
        {
            for member_id in member_ids {
                // The publication is stored; a failed projection is caught up at the next sync,
                // so it must not turn the operator's answer into an error.
                if let Err(e) = crate::projection::offers::project_pending(app, member_id).await {
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

/// Creates a segment. Its membership is empty until the next recompute (a batch job), because
/// evaluating rules over a million members does not belong in a request.
pub async fn create_segment(app: &App, segment: &Segment) -> Result<SegmentView, DomainError> {
    segment
        .validate()
        .map_err(|m| DomainError::bad_request("invalid_segment", m))?;
    let now = app.now_ms();
    if app.storage.create_segment(segment, now).await? == SegmentCreation::Exists {
        return Err(DomainError::duplicate(&format!("segment `{}`", segment.id)));
    }
    tracing::info!(segment = %segment.id, "segment created");
    Ok(SegmentView {
        segment: segment.clone(),
        created_at_ms: now,
        computed_at_ms: None,
        members: 0,
    })
}

pub async fn segments(app: &App) -> Result<Vec<SegmentView>, DomainError> {
    Ok(app.storage.segments().await?)
}

/// Replaces a segment's name and rules. Its membership is emptied and filled by the new rules at
/// the next recompute; offers already given to its members stay theirs (targeting is additive).
pub async fn update_segment(app: &App, segment: &Segment) -> Result<SegmentView, DomainError> {
    segment
        .validate()
        .map_err(|m| DomainError::bad_request("invalid_segment", m))?;
    if !app.storage.update_segment(segment).await? {
        return Err(segment_not_found(&segment.id));
    }
    tracing::info!(segment = %segment.id, "segment edited");
    app.storage
        .segments()
        .await?
        .into_iter()
        .find(|v| v.segment.id == segment.id)
        .ok_or_else(|| segment_not_found(&segment.id))
}

/// Deletes a segment and its membership, refused while an offer that is still running targets it
/// (end or withdraw the offer first).
pub async fn delete_segment(app: &App, segment_id: &str) -> Result<(), DomainError> {
    match app.storage.delete_segment(segment_id, app.now_ms()).await? {
        SegmentDeletion::Deleted => {
            tracing::info!(segment = %segment_id, "segment deleted");
            Ok(())
        }
        SegmentDeletion::NotFound => Err(segment_not_found(segment_id)),
        SegmentDeletion::InUse { offer_id } => Err(DomainError::new(
            crate::error::ErrorKind::Conflict,
            "segment_in_use",
            format!("offer `{offer_id}` still targets the segment: end or withdraw it first"),
        )),
    }
}

fn segment_not_found(segment_id: &str) -> DomainError {
    DomainError::not_found("segment_not_found", format!("no segment `{segment_id}`"))
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
