//! The member's device's routes: enrollment, sync, a document's bytes and the long poll.

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::EnrollAttempt;
use crate::http::extract::{MemberDevice, SyncingDevice};
use crate::http::json::Json;
use crate::http::query::Query;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use loyalty_core::DocKind;
use loyalty_core::api::paths;
use loyalty_core::api::{EnrollRequest, EnrollResponse};
use loyalty_core::protocol::{self, SyncRequest};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::openapi::{
    Authentication, Binary, Conflict, Forbidden, Gone, NotFound, Refusals, Throttled,
};

/// Registers a device with a member's activation code; the answer carries the device's credentials,
/// shown this once.
#[utoipa::path(
    post,
    path = paths::ENROLL,
    tag = "device",
    request_body = EnrollRequest,
    responses(
        (status = 200, description = "The device is enrolled", body = EnrollResponse),
        Refusals, Throttled, NotFound, Conflict, Gone
    )
)]
pub async fn enroll(
    State(app): State<Arc<App>>,
    _: EnrollAttempt,
    body: Result<Json<EnrollRequest>, ApiError>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let Json(request) = body?;
    Ok(Json(
        crate::service::enrollment::enroll(&app, request).await?,
    ))
}

/// Syncs all of the member's documents: Automerge sync messages framed as in `docs/protocol.md` §2,
/// answered in the same framing. The body is at most the server's body limit (1 MiB by default,
/// `--max-body-bytes`), and each message within the limits of §2 *Limits*.
#[utoipa::path(
    post,
    path = paths::MEMBER_SYNC,
    tag = "device",
    params(("member_id" = String, Path, description = "The device's own member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body(
        description = "A sync request (`docs/protocol.md` §2, *Framing*); at most the body limit (1 MiB by default)",
        content(
            (inline(Binary) = "application/vnd.loyalty.sync.v1"),
            (inline(Binary) = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "The sync response: one entry per request entry, in order",
            body = inline(Binary), content_type = "application/vnd.loyalty.sync.v1"),
        Refusals, Authentication, Forbidden, NotFound, Conflict
    ),
    security(("device" = []))
)]
pub async fn sync(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    SyncingDevice { device, check }: SyncingDevice,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let request = SyncRequest::decode(&body).map_err(|e| match e {
        protocol::ProtocolError::UnknownDocument(_) => {
            ApiError::bad_request("unknown_document", e.to_string())
        }
        _ => ApiError::bad_request("malformed_body", format!("sync body: {e}")),
    })?;
    let response =
        crate::service::sync::sync(&app, &member_id, &device.device_id, check, request).await?;
    Ok(binary(response.encode()))
}

fn binary(bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol::CONTENT_TYPE),
    );
    response
}

/// The header that carries a document's epoch with its bytes.
pub const EPOCH_HEADER: &str = "x-loyalty-epoch";

/// A document's full bytes, for a client that wants to load it directly (a web page, a debugger),
/// with its epoch in [`EPOCH_HEADER`].
#[utoipa::path(
    get,
    path = paths::MEMBER_DOCUMENT,
    tag = "device",
    params(
        ("member_id" = String, Path, description = "The device's own member", pattern = r"^mbr_[0-9a-f]{24}$"),
        ("doc" = String, Path, description = "`card`, `offers`, `inbox` or `member`; another name is `404 unknown_document`"),
    ),
    responses(
        (status = 200, description = "The document's full Automerge bytes (a save, for the card possibly followed by change chunks)",
            body = inline(Binary), content_type = "application/octet-stream",
            headers(("x-loyalty-epoch" = u64, description = "The document's epoch"))),
        Refusals, Authentication, Forbidden, NotFound
    ),
    security(("device" = []))
)]
pub async fn document(
    State(app): State<Arc<App>>,
    Path((member_id, doc)): Path<(String, String)>,
    _: MemberDevice,
) -> Result<Response, ApiError> {
    let kind = DocKind::from_name(&doc).ok_or_else(|| {
        ApiError::not_found(
            "unknown_document",
            format!("there is no `{doc}` document; documents are card, offers, inbox, member"),
        )
    })?;
    match kind {
        DocKind::Offers => {
            crate::projection::offers::project_pending(&app, &member_id).await?;
        }
        DocKind::Card => {
            crate::projection::card::catch_up(&app, &member_id).await?;
        }
        _ => {}
    }
    let stored = app
        .storage
        .load_documents(&member_id, &[kind])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found("unknown_document", "the member has no such document")
        })?;
    let epoch = stored.epoch;
    let mut response = stored.bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert(EPOCH_HEADER, HeaderValue::from(epoch));
    Ok(response)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The `seq` of the previous answer; 0 at first.
    #[serde(default)]
    since: u64,
    /// Seconds to hold the request open; at most 60.
    #[serde(default = "default_wait")]
    wait_s: u64,
}

fn default_wait() -> u64 {
    25
}

/// Long poll: answers as soon as the member's server documents change after `since` (a purchase,
/// an offer, a message), or after `wait_s` seconds with `changed: false`. The device syncs when
/// `changed` is true and polls again from the returned `seq`. Offers, inbox entries and postings
/// recorded relationally but not yet in the member's documents (a fan-out, a segment send, a
/// purchase made through another server instance) count as a change: the sync that follows
/// projects them. A device holds at most `long_polls_per_device` polls open: a newer one ends the
/// oldest with `409 poll_superseded`. At shutdown every poll is answered at once.
#[utoipa::path(
    get,
    path = paths::MEMBER_CHANGES,
    tag = "device",
    params(("member_id" = String, Path, description = "The device's own member", pattern = r"^mbr_[0-9a-f]{24}$"), ChangesQuery),
    responses(
        (status = 200, description = "A change, or the wait ran out", body = loyalty_core::api::ChangesResponse),
        Refusals, Authentication, Forbidden, Conflict
    ),
    security(("device" = []))
)]
pub async fn changes(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    MemberDevice(device): MemberDevice,
    Query(q): Query<ChangesQuery>,
) -> Result<axum::Json<loyalty_core::api::ChangesResponse>, ApiError> {
    let wait = std::time::Duration::from_secs(q.wait_s);
    let changes =
        crate::service::changes::wait(&app, &member_id, &device.device_id, q.since, wait).await?;
    Ok(axum::Json(loyalty_core::api::ChangesResponse {
        seq: changes.seq,
        changed: changes.changed,
    }))
}

/// The member sets or changes their till PIN: with it, a session a till opens by their card number
/// may redeem points (`docs/programme.md`, "Cards without the app").
#[utoipa::path(
    put,
    path = paths::MEMBER_PIN,
    tag = "device",
    params(("member_id" = String, Path, description = "The device's own member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = loyalty_core::api::PinEntry,
    responses(
        (status = 204, description = "The PIN is set; wrong tries start over"),
        Refusals, Authentication, Forbidden
    ),
    security(("device" = []))
)]
pub async fn set_pin(
    State(app): State<Arc<App>>,
    MemberDevice(device): MemberDevice,
    body: Result<crate::http::json::Json<loyalty_core::api::PinEntry>, ApiError>,
) -> Result<axum::http::StatusCode, ApiError> {
    let crate::http::json::Json(entry) = body?;
    crate::service::cards::set_pin(&app, &device.member_id, &entry.pin).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The member links a plastic card from the app (`docs/programme.md`, "Cards without the app").
#[utoipa::path(
    post,
    path = paths::MEMBER_CARDS,
    tag = "device",
    params(("member_id" = String, Path, description = "The device's own member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = loyalty_core::api::LinkCard,
    responses(
        (status = 200, body = Vec<loyalty_core::api::LinkedCard>, description = "The member's linked cards"),
        Refusals, Authentication, Forbidden, Conflict, crate::http::openapi::Unprocessable
    ),
    security(("device" = []))
)]
pub async fn link_card(
    State(app): State<Arc<App>>,
    MemberDevice(device): MemberDevice,
    body: Result<crate::http::json::Json<loyalty_core::api::LinkCard>, ApiError>,
) -> Result<crate::http::json::Json<Vec<loyalty_core::api::LinkedCard>>, ApiError> {
    let crate::http::json::Json(request) = body?;
    let cards = crate::service::cards::link(&app, &device.member_id, &request.card_number).await?;
    Ok(crate::http::json::Json(cards))
}

/// The device's routes but the long poll (which [`super::router`] keeps outside the request limits).
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(sync))
        .routes(routes!(document))
        .routes(routes!(set_pin))
        .routes(routes!(link_card))
}
