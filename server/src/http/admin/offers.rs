//! The operator API of the programme: publish an offer to a target (members, a tier or a segment)
//! and define, edit and delete segments. Every route needs the operator token, checked before the body is read.
//! Recomputing segments is not here: it is a batch job (`loyalty admin segments recompute`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use loyalty_core::api::{
    PostOffer, PostSegment, PostTargetedOffer, PublishedOffer, SegmentView, UpdateSegment,
};
use loyalty_core::ids;
use loyalty_core::offers::Offer;
use loyalty_core::segments::Segment;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Conflict, NotFound, Refusals};
use crate::service::members::ensure_member;
use crate::service::offers as targeting;
use loyalty_core::api::paths;

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

#[utoipa::path(
    post,
    path = paths::ADMIN_OFFERS,
    tag = "admin",
    request_body = PostTargetedOffer,
    responses(
        (status = 201, description = "Published", body = PublishedOffer),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
/// Publishes an offer to members, a tier or a segment; an existing id publishes a new version.
pub async fn post_offer(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<PostTargetedOffer>, ApiError>,
) -> Result<(StatusCode, Json<PublishedOffer>), ApiError> {
    let Json(p) = body?;
    let published = targeting::publish(&app, offer_from_post(p.offer), p.target).await?;
    Ok((StatusCode::CREATED, Json(published)))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_SEGMENTS,
    tag = "admin",
    request_body = PostSegment,
    responses(
        (status = 201, description = "Defined; no members until the next recompute", body = SegmentView),
        Refusals, Authentication, Conflict
    ),
    security(("operator" = []))
)]
/// Defines a segment; it has no members until the next recompute.
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

#[utoipa::path(
    get,
    path = paths::ADMIN_SEGMENTS,
    tag = "admin",
    responses(
        (status = 200, body = Vec<SegmentView>),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
/// The segments, with their members at the last recompute.
pub async fn segments(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<Vec<SegmentView>>, ApiError> {
    Ok(Json(targeting::segments(&app).await?))
}

/// Replaces a segment's name and rules. Its membership is empty until the next recompute fills
/// it by the new rules; offers its members were given stay theirs.
#[utoipa::path(
    put,
    path = paths::ADMIN_SEGMENT,
    tag = "admin",
    params(("segment_id" = String, Path, description = "The segment")),
    request_body = UpdateSegment,
    responses(
        (status = 200, description = "Edited; no members until the next recompute", body = SegmentView),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn update_segment(
    State(app): State<Arc<App>>,
    Path(segment_id): Path<String>,
    _: Operator,
    body: Result<Json<UpdateSegment>, ApiError>,
) -> Result<Json<SegmentView>, ApiError> {
    let Json(u) = body?;
    let segment = Segment {
        id: segment_id,
        name: u.name,
        rules: u.rules,
    };
    Ok(Json(targeting::update_segment(&app, &segment).await?))
}

/// Deletes a segment and its membership; `409 segment_in_use` while a running offer targets it.
#[utoipa::path(
    delete,
    path = paths::ADMIN_SEGMENT,
    tag = "admin",
    params(("segment_id" = String, Path, description = "The segment")),
    responses(
        (status = 204, description = "Deleted"),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
pub async fn delete_segment(
    State(app): State<Arc<App>>,
    Path(segment_id): Path<String>,
    _: Operator,
) -> Result<StatusCode, ApiError> {
    targeting::delete_segment(&app, &segment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_OFFERS,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = PostOffer,
    responses(
        (status = 201, description = "The stored offer", body = Offer),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
/// Publishes an offer to one member: an explicit one-member target, through the same path as
/// `POST /v1/admin/offers`, so the offer is in the relational store the till reads.
pub async fn post_member_offer(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Json<PostOffer>, ApiError>,
) -> Result<(StatusCode, Json<Offer>), ApiError> {
    let Json(p) = body?;
    let offer = super::offers::offer_from_post(p);
    // Checked here too, so a bad offer is a 400 whatever the member id looks like.
    offer
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_offer", m))?;
    ensure_member(&app, &member_id).await?;
    let published = crate::service::offers::publish(
        &app,
        offer,
        loyalty_core::api::OfferTarget::Members {
            member_ids: vec![member_id],
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(published.offer)))
}
