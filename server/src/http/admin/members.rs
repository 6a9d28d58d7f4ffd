//! The operator API for members: find and create them, new activation codes, what the server holds
//! for a member, block and unblock, revoke a device, the card's QR code, start documents afresh
//! (`crate::service::members`, `crate::service::member_view`). Every route needs an operator.

use crate::service::members::set_blocked;
use loyalty_core::api::{EpochsStarted, MemberMatch, StartEpochs};

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loyalty_core::api::{
    ActivationCodeResponse, CreateMemberRequest, CreateMemberResponse, MemberView,
};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Binary, NotFound, Refusals};
use crate::http::query::Query;
use loyalty_core::api::paths;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    /// Their own card number or a linked plastic card's (lost ones too), spaces allowed.
    #[serde(default)]
    card_number: Option<String>,
    /// As the member's preferences hold it (also matched in lower case).
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// The retailer's own reference, given when the member was created.
    #[serde(default)]
    external_ref: Option<String>,
    /// Listing (no search value): members in this tier.
    #[serde(default)]
    tier: Option<String>,
    /// Listing: `active` or `blocked` members.
    #[serde(default)]
    #[param(pattern = "^(active|blocked)$")]
    status: Option<String>,
    /// Listing: members of this segment (as last computed).
    #[serde(default)]
    segment: Option<String>,
    /// Listing: created at or after (ms since the epoch).
    #[serde(default)]
    enrolled_from_ms: Option<i64>,
    /// Listing: created before (ms since the epoch).
    #[serde(default)]
    enrolled_to_ms: Option<i64>,
    /// Listing: the page after this member id (the last of the previous page).
    #[serde(default)]
    after: Option<String>,
    /// Listing: at most this many (1 to 500; 50 when absent).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Finds members by one of card number, e-mail, phone or the retailer's reference (at most 50, in
/// member id order; none found is an empty list) or, without one, lists them a page at a time,
/// filtered by tier, status, segment and enrollment time.
#[utoipa::path(
    get,
    path = paths::ADMIN_MEMBERS,
    tag = "admin",
    params(FindQuery),
    responses((status = 200, body = Vec<MemberMatch>), Refusals, Authentication),
    security(("operator" = []))
)]
pub async fn find_members(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<FindQuery>,
) -> Result<Json<Vec<MemberMatch>>, ApiError> {
    let blocked = match q.status.as_deref() {
        None => None,
        Some("active") => Some(false),
        Some("blocked") => Some(true),
        Some(_) => {
            return Err(ApiError::bad_request(
                "malformed_query",
                "status must be active or blocked",
            ));
        }
    };
    if q.limit == Some(0) {
        return Err(ApiError::bad_request(
            "malformed_query",
            "limit must be 1-500",
        ));
    }
    let search = crate::service::members::Search {
        card_number: q.card_number,
        email: q.email,
        phone: q.phone,
        external_ref: q.external_ref,
        list: crate::storage::MemberFilter {
            tier: q.tier,
            blocked,
            segment: q.segment,
            enrolled_from_ms: q.enrolled_from_ms,
            enrolled_to_ms: q.enrolled_to_ms,
            after: q.after,
            limit: q.limit.unwrap_or(0),
        },
    };
    Ok(Json(crate::service::members::find(&app, search).await?))
}

/// Creates a member, with their card number and a first activation code.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBERS,
    tag = "admin",
    request_body(content = Option<CreateMemberRequest>, description = "Optional: no body (or only whitespace) is `{}`"),
    responses(
        (status = 201, description = "The member, with an activation code for their first device", body = CreateMemberResponse),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
pub async fn create_member(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreateMemberResponse>), ApiError> {
    // The body is optional, and read only once the operator is known.
    let body = body?;
    let request: CreateMemberRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateMemberRequest::default()
    } else {
        crate::http::json::parse(&body)?
    };
    let created = crate::service::members::create(&app, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A new activation code, for another device of the member.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_ACTIVATION_CODES,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    responses(
        (status = 201, body = ActivationCodeResponse),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn new_activation_code(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
) -> Result<(StatusCode, Json<ActivationCodeResponse>), ApiError> {
    let code = crate::service::members::new_activation_code(&app, &member_id).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// What the server holds for a member: their documents as the phone will see them.
#[utoipa::path(
    get,
    path = paths::ADMIN_MEMBER,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    responses(
        (status = 200, body = MemberView),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn show_member(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
) -> Result<Json<MemberView>, ApiError> {
    Ok(Json(
        crate::service::member_view::view(&app, &member_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_BLOCK,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    responses(
        (status = 204, description = "Blocked"),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
/// Blocks the member's card: the till refuses its codes from now on.
pub async fn block(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
) -> Result<StatusCode, ApiError> {
    set_blocked(&app, &member_id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unblocks the member's card.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_UNBLOCK,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    responses(
        (status = 204, description = "Unblocked"),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn unblock(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
) -> Result<StatusCode, ApiError> {
    set_blocked(&app, &member_id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = paths::ADMIN_DEVICE_REVOKE,
    tag = "admin",
    params(("device_id" = String, Path, description = "The device")),
    responses(
        (status = 204, description = "Revoked"),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
/// Revokes a device: its credentials and its checkout key stop working at once.
pub async fn revoke_device(
    State(app): State<Arc<App>>,
    Path(device_id): Path<String>,
    _: Operator,
) -> Result<StatusCode, ApiError> {
    crate::service::members::revoke_device(&app, &device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `svg` (the default) or `png`; another is `400 invalid_format`.
    #[serde(default)]
    #[param(pattern = "^(svg|png)$")]
    format: Option<String>,
}

/// The member's card number as a QR code, for printed cards and e-mail: `?format=svg` (default)
/// or `?format=png`.
#[utoipa::path(
    get,
    path = paths::ADMIN_MEMBER_CARD_QR,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$"), QrQuery),
    responses(
        (status = 200, description = "The QR code", content((inline(Binary) = "image/svg+xml"), (inline(Binary) = "image/png"))),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn card_qr(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    Query(q): Query<QrQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (content_type, body) =
        crate::service::member_view::card_qr(&app, &member_id, q.format.as_deref()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Starts the member's documents afresh from their current state (new epochs), all four or those
/// of the optional [`StartEpochs`] body.
#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_EPOCHS,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body(content = Option<StartEpochs>, description = "Optional: no body (or only whitespace) or an empty list means all four documents"),
    responses(
        (status = 200, body = EpochsStarted),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
pub async fn start_epochs(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<EpochsStarted>, ApiError> {
    let body = body?;
    let request: StartEpochs = if body.iter().all(u8::is_ascii_whitespace) {
        StartEpochs::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_body", format!("epochs: {e}")))?
    };
    let started = crate::service::member_view::start_epochs(&app, &member_id, request).await?;
    Ok(axum::Json(started))
}
