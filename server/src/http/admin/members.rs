//! The operator API: create members and their activation codes, publish offers into a member's
//! documents, and look at what the server holds for a member (messages are `crate::http::admin::messages`).
//! Every route needs the operator token.

use crate::projection::epochs::renew;
use crate::service::members::CARD_NUMBER_ATTEMPTS;

use crate::service::members::{ensure_member, set_blocked};
use loyalty_core::api::{EpochsStarted, MemberMatch, StartEpochs};

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loyalty_core::api::{
    ActivationCodeResponse, CreateMemberRequest, CreateMemberResponse, MemberView,
};
use loyalty_core::ids::{self, activation_code, card_number};
use loyalty_core::inbox;
use loyalty_core::offers::{self};
use loyalty_core::{DocKind, card, member};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Binary, NotFound, Refusals};
use crate::http::query::Query;
use crate::projection::documents::{self, load};
use crate::storage::{MemberCreation, NewMember};
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
    let now = app.now_ms();
    for _ in 0..CARD_NUMBER_ATTEMPTS {
        let member_id = ids::new_member_id();
        let card = card_number::generate();
        let (code, code_hash) = activation_code::issue();
        let expires = now + app.config.activation_ttl_ms;
        let member = NewMember {
            documents: documents::new_member_documents(&app, &member_id, &card)?,
            member_id: member_id.clone(),
            card_number: card.clone(),
            external_ref: request.external_ref.clone(),
            created_at_ms: now,
            code_hash,
            code_expires_at_ms: expires,
        };
        match app.storage.create_member(member).await {
            Ok(MemberCreation::Created) => {
                tracing::info!(member = %member_id, "member created");
                return Ok((
                    StatusCode::CREATED,
                    Json(CreateMemberResponse {
                        member_id,
                        card_number: card,
                        activation_code: code,
                        activation_expires_at_ms: expires,
                    }),
                ));
            }
            // A card number clash: draw another.
            Ok(MemberCreation::Taken) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(
        "create member",
        "no free card number found",
    ))
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
    ensure_member(&app, &member_id).await?;
    let (code, code_hash) = activation_code::issue();
    let expires = app.now_ms() + app.config.activation_ttl_ms;
    app.storage
        .add_activation_code(&member_id, code_hash, expires)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ActivationCodeResponse {
            member_id,
            activation_code: code,
            activation_expires_at_ms: expires,
        }),
    ))
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
    ensure_member(&app, &member_id).await?;
    // Show what the member's phone will see: the offers owed to them and the card, projected.
    crate::projection::offers::project_pending(&app, &member_id).await?;
    crate::projection::card::catch_up(&app, &member_id).await?;
    let stored = app
        .storage
        .load_documents(&member_id, &DocKind::ALL)
        .await?;
    let doc = |kind: DocKind| -> Result<automerge::AutoCommit, ApiError> {
        let s = stored
            .iter()
            .find(|d| d.kind == kind)
            .ok_or_else(|| ApiError::internal("show member", format!("no {kind} document")))?;
        Ok(load(kind, &s.bytes)?)
    };
    let broken = |e: loyalty_core::document::DocumentError| ApiError::internal("show member", e);
    Ok(Json(MemberView {
        card: card::read(&doc(DocKind::Card)?).map_err(broken)?,
        offers: offers::read_all(&doc(DocKind::Offers)?).map_err(broken)?,
        messages: inbox::read_all(&doc(DocKind::Inbox)?).map_err(broken)?,
        member: member::read(&doc(DocKind::Member)?).map_err(broken)?,
        cards: app.storage.linked_cards(&member_id).await?,
        member_id,
    }))
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
    if !app.storage.revoke_device(&device_id, app.now_ms()).await? {
        return Err(ApiError::not_found("device_not_found", "no such device"));
    }
    tracing::info!(device = %device_id, "device revoked");
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
    let member = app
        .storage
        .member(&member_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member_not_found", "no such member"))?;
    let matrix = loyalty_core::qr::QrMatrix::encode(&member.card_number)
        .map_err(|e| ApiError::internal("rendering a QR code", e))?;
    let (content_type, body) = match q.format.as_deref().unwrap_or("svg") {
        "svg" => ("image/svg+xml", matrix.to_svg(8).into_bytes()),
        "png" => (
            "image/png",
            matrix
                .to_png(8)
                .map_err(|e| ApiError::internal("rendering a QR code", e))?,
        ),
        other => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format `{other}`: use svg or png"),
            ));
        }
    };
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
    if app.storage.member(&member_id).await?.is_none() {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    let mut kinds = if request.docs.is_empty() {
        DocKind::ALL.to_vec()
    } else {
        request.docs
    };
    kinds.sort();
    kinds.dedup();
    if kinds.contains(&DocKind::Card) {
        // The new epoch starts from the card as the ledger has it now.
        crate::projection::card::catch_up(&app, &member_id).await?;
    }
    let documents = {
        let _guard = app.lock_member(&member_id).await;
        renew(&app, &member_id, &kinds).await?
    };
    tracing::info!(member = %member_id, docs = ?kinds, "an operator started documents afresh");
    Ok(axum::Json(EpochsStarted {
        member_id,
        documents,
    }))
}
