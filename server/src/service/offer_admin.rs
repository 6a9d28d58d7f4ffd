//! Offers as operators manage them: the list with figures (reach, activations, uses), one offer,
//! and ending one early or withdrawing it. Both are a new version of the offer: tills stop applying
//! it at once; members' phones follow at their next sync (an ended offer shows as ended, a
//! withdrawn one disappears). No document is loaded here; `docs/offers-and-segments.md` has the
//! decisions.

use loyalty_core::api::offer_admin::{OfferEnd, OfferRecord, OfferStatus, OfferUptake};

use crate::app::App;
use crate::error::DomainError;
use crate::storage::OfferFilter;

/// The most offers one page lists.
pub const MAX_OFFER_PAGE: u32 = 200;
/// A page's size when the operator names none.
pub const DEFAULT_OFFER_PAGE: u32 = 50;

/// One page of offers in id order after `after`, optionally only those with `status` now.
pub async fn list(
    app: &App,
    status: Option<&str>,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<Vec<OfferRecord>, DomainError> {
    let status = status
        .map(|name| {
            OfferStatus::parse(name).ok_or_else(|| {
                DomainError::bad_request(
                    "malformed_query",
                    "status must be upcoming, active, ended or withdrawn",
                )
            })
        })
        .transpose()?;
    let limit = limit.unwrap_or(DEFAULT_OFFER_PAGE);
    if !(1..=MAX_OFFER_PAGE).contains(&limit) {
        return Err(DomainError::bad_request(
            "malformed_query",
            format!("limit must be 1-{MAX_OFFER_PAGE}"),
        ));
    }
    let filter = OfferFilter {
        status,
        now_ms: app.now_ms(),
        after,
        limit,
    };
    Ok(app.storage.list_offers(&filter).await?)
}

/// One offer with its figures.
pub async fn show(app: &App, offer_id: &str) -> Result<OfferRecord, DomainError> {
    app.storage
        .offer_record(offer_id, app.now_ms())
        .await?
        .ok_or_else(not_found)
}

/// The offer's uptake by segment, with its own figures.
pub async fn uptake(app: &App, offer_id: &str) -> Result<OfferUptake, DomainError> {
    let record = show(app, offer_id).await?;
    let segments = app
        .storage
        .offer_uptake(offer_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(OfferUptake {
        offer_id: offer_id.to_string(),
        figures: record.figures,
        segments,
    })
}

/// Ends the offer now, or withdraws it; doing it again changes nothing.
pub async fn end(app: &App, offer_id: &str, how: OfferEnd) -> Result<OfferRecord, DomainError> {
    let record = app
        .storage
        .end_offer(offer_id, how, app.now_ms())
        .await?
        .ok_or_else(not_found)?;
    tracing::info!(offer = %offer_id, how = ?how, version = record.version, "an operator ended an offer");
    Ok(record)
}

fn not_found() -> DomainError {
    DomainError::not_found("offer_not_found", "no such offer")
}
