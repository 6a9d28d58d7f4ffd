//! The offers projection: offers a member was targeted with, written into their offers document,
//! and withdrawn ones taken out of it.

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents;
use loyalty_core::DocKind;
pub use loyalty_core::earning::OfferCandidate as TillOffer;
use loyalty_core::offers::{self};

/// Writes the offers the member is owed into their offers document. Returns whether anything was
/// written. Takes the member lock itself (through `documents::update`), so callers must not hold it.
pub async fn project_pending(app: &App, member_id: &str) -> Result<bool, DomainError> {
    let store = &*app.storage;
    let pending = store.pending_offers(member_id, app.now_ms()).await?;
    if pending.is_empty() {
        return Ok(false);
    }
    documents::update(app, member_id, DocKind::Offers, |doc| {
        for p in &pending {
            let written = if p.withdrawn {
                offers::remove(doc, &p.offer.id).map(|_| ())
            } else {
                offers::put(doc, &p.offer)
            };
            written.map_err(|e| DomainError::internal("projecting an offer", e))?;
        }
        Ok(())
    })
    .await?;
    // After the document is stored: a crash in between projects again next time, and `put` only
    // writes what differs, so that costs nothing but the check.
    store.mark_offers_projected(member_id, &pending).await?;
    tracing::debug!(member = %member_id, offers = pending.len(), "offers projected");
    Ok(true)
}
