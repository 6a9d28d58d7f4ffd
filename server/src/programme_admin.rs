//! The operator API of the programme: publish an offer to a target (members, a tier or a segment)
//! and define segments. Every route needs the operator token, checked before the body is read.
//! Recomputing segments is not here: it is a batch job (`loyalty admin segments recompute`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use loyalty_core::api::{PostOffer, PostSegment, PostTargetedOffer, PublishedOffer, SegmentView};
use loyalty_core::ids;
use loyalty_core::offers::Offer;
use loyalty_core::segments::Segment;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::Operator;
use crate::json::Json;
use crate::targeting;

/// The offer an operator posted, with its id filled in.
pub fn offer_from_post(p: PostOffer) -> Offer {
    Offer {
        id: p.id.unwrap_or_else(|| ids::new_record_id("off")),
        title: p.title,
        description: p.description,
        terms: p.terms,
        valid_from_ms: p.valid_from_ms,
        valid_until_ms: p.valid_until_ms,
        needs_activation: p.needs_activation,
        reward: p.reward,
        value: p.value,
        category: p.category,
        min_spend_minor: p.min_spend_minor,
        use_limit: p.use_limit,
        use_count: 0,
    }
}

/// `POST /v1/admin/offers`.
pub async fn post_offer(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<PostTargetedOffer>, ApiError>,
) -> Result<(StatusCode, Json<PublishedOffer>), ApiError> {
    let Json(p) = body?;
    let published = targeting::publish(&app, offer_from_post(p.offer), p.target).await?;
    Ok((StatusCode::CREATED, Json(published)))
}

/// `POST /v1/admin/segments`.
pub async fn create_segment(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<PostSegment>, ApiError>,
) -> Result<(StatusCode, Json<SegmentView>), ApiError> {
    let Json(p) = body?;
    let segment = Segment {
        id: p.id.unwrap_or_else(|| ids::new_record_id("seg")),
        name: p.name,
        rules: p.rules,
    };
    let view = targeting::create_segment(&app, &segment).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/admin/segments`.
pub async fn segments(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<Vec<SegmentView>>, ApiError> {
    Ok(Json(targeting::segments(&app).await?))
}
