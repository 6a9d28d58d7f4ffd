//! The operator's messaging routes: send to members or a segment, deliveries, members' requests.

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Conflict, NotFound, Refusals};
use crate::http::query::Query;
use crate::service::messaging::*;
use crate::storage::{DeliveryFilter, DeliveryStatus, RequestStatus};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loyalty_core::api::paths;
use loyalty_core::api::{
    DeliveryRecord, PostMessage, PostReply, RequestRecord, SendMessage, SendSummary,
};
use loyalty_core::ids;
use loyalty_core::inbox::{self, Delivery, Message, Reply};
use std::sync::Arc;

#[utoipa::path(
    post,
    path = paths::ADMIN_MESSAGES,
    tag = "admin",
    request_body = SendMessage,
    responses(
        (status = 201, description = "What became of the message so far", body = SendSummary),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
/// One message to explicit members or to a segment.
pub async fn send(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<SendMessage>, ApiError>,
) -> Result<(StatusCode, Json<SendSummary>), ApiError> {
    let Json(p) = body?;
    let target = check_target(&p.members, p.segment.as_deref())?;
    let out = Outgoing {
        id: p.id.unwrap_or_else(|| ids::new_record_id("msg")),
        kind: p.kind,
        channel: p.channel,
        subject: p.subject,
        body: p.body,
    };
    let summary = dispatch(&app, out, target).await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_MEMBER_MESSAGES,
    tag = "admin",
    params(("member_id" = String, Path, description = "The member", pattern = r"^mbr_[0-9a-f]{24}$")),
    request_body = PostMessage,
    responses(
        (status = 201, description = "The message with its delivery", body = Message),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
/// One message to one member, through the same path as
/// any send; the answer is the message with its delivery. `kind` is required, as for campaigns:
/// it once defaulted to `service`, and a "BIG SALE" e-mail went out without a consent check.
pub async fn post_member_message(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Json<PostMessage>, ApiError>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Json(p) = body?;
    let out = Outgoing {
        id: p.id.unwrap_or_else(|| ids::new_record_id("msg")),
        kind: p.kind.ok_or_else(missing_kind)?,
        channel: p.channel,
        subject: p.subject,
        body: p.body,
    };
    let (subject, text) = (out.subject.clone(), out.body.clone());
    let target = check_target(std::slice::from_ref(&member_id), None)?;
    let summary = dispatch(&app, out, target).await?;
    let record = app
        .storage
        .deliveries(DeliveryFilter {
            message_id: Some(summary.message_id.clone()),
            member_id: Some(member_id),
            status: None,
            limit: 1,
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("post message", "the delivery was not recorded"))?;
    Ok((
        StatusCode::CREATED,
        Json(Message {
            id: summary.message_id,
            channel: summary.channel,
            subject,
            body: text,
            sent_at_ms: record.created_at_ms,
            kind: summary.kind,
            delivery: Some(Delivery {
                status: record.status,
                reason: record.reason,
                at_ms: record.updated_at_ms,
            }),
        }),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// The message's recipients.
    #[serde(default)]
    message_id: Option<String>,
    /// The member's messages.
    #[serde(default)]
    member_id: Option<String>,
    /// `queued`, `sent`, `failed` or `refused`; another is `400 malformed_query`.
    #[serde(default)]
    status: Option<String>,
    /// At most this many (1 to 1000; 100 when absent).
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = paths::ADMIN_DELIVERIES,
    tag = "admin",
    params(DeliveriesQuery),
    responses(
        (status = 200, body = Vec<DeliveryRecord>),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
/// What became of each recipient (status and reason), newest first. Needs `message_id` or
/// `member_id`.
pub async fn deliveries(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|name| {
            DeliveryStatus::from_name(name).ok_or_else(|| {
                let names = DeliveryStatus::ALL.map(DeliveryStatus::as_str);
                let message = format!("status must be one of {}", names.join(", "));
                ApiError::bad_request("malformed_query", message)
            })
        })
        .transpose()?;
    let filter = DeliveryFilter {
        message_id: q.message_id,
        member_id: q.member_id,
        status,
        limit: 0,
    };
    Ok(Json(
        crate::service::messaging::deliveries(&app, filter, q.limit).await?,
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// `open`, `answered` or `closed`; another is `400 malformed_query`.
    #[serde(default)]
    status: Option<String>,
    /// One member's requests.
    #[serde(default)]
    member_id: Option<String>,
    /// At most this many (1 to 500; 100 when absent).
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = paths::ADMIN_REQUESTS,
    tag = "admin",
    params(RequestsQuery),
    responses(
        (status = 200, body = Vec<RequestRecord>),
        Refusals, Authentication
    ),
    security(("operator" = []))
)]
/// Members' requests with their threads, the most recently active first.
pub async fn list_requests(
    State(app): State<Arc<App>>,
    _: Operator,
    Query(q): Query<RequestsQuery>,
) -> Result<Json<Vec<RequestRecord>>, ApiError> {
    let status = match q.status.as_deref().map(RequestStatus::from_name) {
        None => None,
        Some(Some(status)) => Some(status),
        Some(None) => {
            return Err(ApiError::bad_request(
                "malformed_query",
                format!(
                    "status must be one of {}",
                    inbox::REQUEST_STATUSES.join(", ")
                ),
            ));
        }
    };
    Ok(Json(
        crate::service::messaging::requests(&app, status, q.member_id, q.limit).await?,
    ))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_REQUEST_REPLIES,
    tag = "admin",
    params(("id" = String, Path, description = "The request, as `<member_id>.<request_id>`", pattern = r"^mbr_[0-9a-f]{24}\.[A-Za-z0-9_\-]{1,64}$")),
    request_body = PostReply,
    responses(
        (status = 201, description = "The request with the reply", body = RequestRecord),
        Refusals, Authentication, NotFound, Conflict
    ),
    security(("operator" = []))
)]
/// Answers a request (and closes it with `close: true`).
pub async fn reply(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    _: Operator,
    body: Result<Json<PostReply>, ApiError>,
) -> Result<(StatusCode, Json<RequestRecord>), ApiError> {
    let Json(p) = body?;
    let invalid = |m: String| ApiError::bad_request("invalid_reply", m);
    if p.body.trim().is_empty() || p.body.len() > inbox::MAX_BODY {
        return Err(invalid(format!(
            "the reply must be 1 to {} bytes",
            inbox::MAX_BODY
        )));
    }
    let author = p.author.unwrap_or_else(|| DEFAULT_AUTHOR.into());
    if author.trim().is_empty() || author.len() > inbox::MAX_AUTHOR {
        return Err(invalid(format!(
            "the author must be 1 to {} bytes",
            inbox::MAX_AUTHOR
        )));
    }
    let reply_id = p.id.unwrap_or_else(|| ids::new_record_id("rep"));
    if !ids::valid_record_id(&reply_id) {
        return Err(invalid(
            "reply id must be 1-64 characters of letters, digits, `_`, `-`, `.`".into(),
        ));
    }
    let reply = Reply {
        id: reply_id,
        author,
        body: p.body,
        at_ms: app.now_ms(),
    };
    let status = if p.close {
        RequestStatus::Closed
    } else {
        RequestStatus::Answered
    };
    let record = act_on_request(&app, &id, Some(reply), status).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

#[utoipa::path(
    post,
    path = paths::ADMIN_REQUEST_CLOSE,
    tag = "admin",
    params(("id" = String, Path, description = "The request, as `<member_id>.<request_id>`", pattern = r"^mbr_[0-9a-f]{24}\.[A-Za-z0-9_\-]{1,64}$")),
    responses(
        (status = 200, description = "The request, closed", body = RequestRecord),
        Refusals, Authentication, NotFound
    ),
    security(("operator" = []))
)]
/// Closes a request without a reply; closing it again changes nothing.
pub async fn close(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    _: Operator,
) -> Result<Json<RequestRecord>, ApiError> {
    Ok(Json(
        act_on_request(&app, &id, None, RequestStatus::Closed).await?,
    ))
}
