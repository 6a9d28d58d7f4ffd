//! Communications: operators send messages to members or to a segment, on a channel, as marketing
//! or service; members' requests (questions, complaints) are listed, answered and closed.
//!
//! A send is recorded relationally first — the message once, one delivery row per recipient with
//! its status and reason — and every policy is decided there, in one transaction: the daily
//! marketing limit (`rate_limited`, nothing sent), and consent per channel for marketing on push,
//! SMS and e-mail (`no_consent`: not sent on that channel, but shown in the in-app inbox, which is
//! always on). Nothing else happens in the request for a segment: the member's inbox document gets
//! the message when it matters ([`project_inbox`]) — at the member's next sync, or at once when one
//! of their devices is waiting on the long poll — and push, SMS and e-mail go out from a background
//! worker ([`run_outbound_worker`]) through the configured [`crate::outbound::Outbound`] adapter.
//! A send to a few explicit members projects into their inboxes in the request, as the original
//! one-member endpoint always did.
//!
//! Logs name messages, members and channels by id; never an address, a subject or a body.

use loyalty_core::calendar::DAY_MS;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use loyalty_core::DocKind;
use loyalty_core::api::{
    DeliveryRecord, PostMessage, PostReply, RequestRecord, SendMessage, SendSummary,
};
use loyalty_core::ids;
use loyalty_core::inbox::{self, Delivery, Message, Reply};

use crate::app::App;
use crate::documents;
use crate::error::ApiError;
use crate::extract::Operator;
use crate::json::Json;
use crate::outbound::{OutboundChannel, OutboundMessage};
use crate::storage::{DeliveryFilter, NewSend, OutboundJob, OutboundOutcome, SendTarget};

/// Explicit recipients of one send at most; larger audiences are segments.
pub const MAX_RECIPIENTS: usize = 1000;
/// Sends to at most this many explicit members write their inboxes in the request; larger ones
/// are projected lazily like a segment's.
const EAGER_PROJECTION_MAX: usize = 16;
/// What a direct reply is signed with when the operator gives no name.
const DEFAULT_AUTHOR: &str = "Customer service";

/// How long one provider call may take before it counts as unavailable.
const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);
/// External deliveries the worker claims at once, and for how long: the lease outlasts the
/// batch sent one by one at the slowest a provider may be, so another instance never reclaims
/// (and sends again) what this one is still sending.
const OUTBOUND_BATCH: i64 = 8;
const OUTBOUND_LEASE_MS: i64 = OUTBOUND_BATCH * OUTBOUND_TIMEOUT.as_millis() as i64 + 60_000;
/// Attempts at a delivery whose provider is unavailable, before it is recorded as failed.
const OUTBOUND_ATTEMPTS: i64 = 5;
/// The first pause before a retry; it doubles with each attempt.
const OUTBOUND_BACKOFF_MS: i64 = 30_000;
/// How often an idle worker looks for due retries and for rows other instances queued.
const OUTBOUND_IDLE: Duration = Duration::from_secs(5);

/// A message as an operator (or the programme) asks for it, before it is checked.
#[derive(Clone)]
struct Outgoing {
    id: String,
    kind: String,
    channel: String,
    subject: String,
    body: String,
}

impl Outgoing {
    fn check(&self) -> Result<(), ApiError> {
        let invalid = |m: String| ApiError::bad_request("invalid_message", m);
        if !inbox::KINDS.contains(&self.kind.as_str()) {
            return Err(invalid(format!(
                "kind must be one of {}",
                inbox::KINDS.join(", ")
            )));
        }
        Message {
            id: self.id.clone(),
            channel: self.channel.clone(),
            subject: self.subject.clone(),
            body: self.body.clone(),
            kind: self.kind.clone(),
            ..Message::default()
        }
        .validate()
        .map_err(invalid)
    }
}

fn check_target(members: &[String], segment: Option<&str>) -> Result<SendTarget, ApiError> {
    let invalid = |m: &str| ApiError::bad_request("invalid_message", m);
    match (members.is_empty(), segment) {
        (false, None) => {
            if members.len() > MAX_RECIPIENTS {
                return Err(invalid(
                    "at most 1000 members per send; use a segment for more",
                ));
            }
            if members.iter().any(|m| m.is_empty() || m.len() > 64) {
                return Err(invalid("a member id is empty or longer than 64 bytes"));
            }
            let mut ids = members.to_vec();
            ids.sort();
            ids.dedup();
            Ok(SendTarget::Members(ids))
        }
        (true, Some(s)) => {
            if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
                return Err(invalid("the segment id must be 1 to 128 printable bytes"));
            }
            Ok(SendTarget::Segment(s.to_string()))
        }
        _ => Err(invalid("give either `members` or `segment`")),
    }
}

/// Records a message for its recipients and starts what follows (inbox projection, outbound).
async fn dispatch(app: &App, out: Outgoing, target: SendTarget) -> Result<SendSummary, ApiError> {
    out.check()?;
    // What the id names: the text, not its recipients (the same message may go to more later).
    let request_hash = {
        let text = serde_json::json!([out.kind, out.channel, out.subject, out.body]);
        ids::sha256(text.to_string().as_bytes())
    };
    let now = app.now_ms();
    let summary = app
        .storage
        .send_message(NewSend {
            message_id: out.id,
            kind: out.kind,
            channel: out.channel,
            subject: out.subject,
            body: out.body,
            request_hash,
            target: target.clone(),
            now_ms: now,
            day: now.div_euclid(DAY_MS),
            marketing_per_day: app.config.marketing_per_day,
        })
        .await?;
    tracing::info!(
        message_id = %summary.message_id,
        kind = %summary.kind,
        channel = %summary.channel,
        recipients = summary.recipients,
        queued = summary.queued,
        refused_no_consent = summary.refused_no_consent,
        refused_rate_limited = summary.refused_rate_limited,
        "message recorded"
    );
    if matches!(target, SendTarget::Members(_))
        && summary.refused_no_consent + summary.refused_rate_limited > 0
    {
        log_refusals(app, &summary.message_id).await;
    }
    match &target {
        SendTarget::Members(members) if members.len() <= EAGER_PROJECTION_MAX => {
            for member in members {
                // Recorded is what counts: a projection that fails here happens at the next sync.
                let _ = project_inbox(app, member).await;
            }
        }
        _ => app.wake_all(),
    }
    if summary.queued > 0 {
        app.outbound_wake.notify_one();
    }
    Ok(summary)
}

/// Logs each refused recipient of a send to explicit members, with the reason. (A segment send
/// logs its counts only — a line per member of a million-member segment helps nobody; the
/// deliveries table has every reason.)
async fn log_refusals(app: &App, message_id: &str) {
    let filter = DeliveryFilter {
        message_id: Some(message_id.to_string()),
        member_id: None,
        status: Some("refused".into()),
        limit: MAX_RECIPIENTS as i64,
    };
    match app.storage.deliveries(filter).await {
        Ok(refused) => {
            for d in refused {
                tracing::info!(
                    message_id = %d.message_id,
                    member = %d.member_id,
                    channel = %d.channel,
                    reason = d.reason.as_deref().unwrap_or(""),
                    "not sent"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "refusals could not be read back for the log"),
    }
}

/// `POST /v1/admin/messages`: one message to explicit members or to a segment.
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

/// `POST /v1/admin/members/{id}/messages`: one message to one member, through the same path as
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

fn missing_kind() -> ApiError {
    ApiError::bad_request(
        "missing_message_kind",
        "say the message's kind: `marketing` (offers, campaigns: needs the member's consent on \
         push, SMS and e-mail) or `service` (the member's account, points, receipts, answers)",
    )
}

/// An in-app service message to one member, for other parts of the programme (points-expiry
/// notices, tier changes). Not rate-limited and needs no consent. Idempotent by `id`: calling
/// again with the same id and text changes nothing. An id names one text across all members: the
/// same id with another subject or body is `409 id_reused`, so give texts that differ per member
/// (amounts, dates) their own ids, e.g. with the member id in them (`exp-2026-05-mbr_…`; at most
/// 64 characters of letters, digits, `_`, `-`, `.`).
pub async fn send_service(
    app: &App,
    member_id: &str,
    subject: &str,
    body: &str,
    id: &str,
) -> Result<(), ApiError> {
    let out = Outgoing {
        id: id.to_string(),
        kind: "service".into(),
        channel: "inapp".into(),
        subject: subject.to_string(),
        body: body.to_string(),
    };
    dispatch(app, out, SendTarget::Members(vec![member_id.to_string()]))
        .await
        .map(|_| ())
}

/// Writes what the member's inbox document lacks (recorded messages, delivery states, request
/// threads) into it, and marks it projected. Returns whether anything was written. Takes the
/// member's lock through [`documents::update`], so callers must not hold it. Idempotent: writing
/// an entry again adds nothing, so a crash between the write and the mark costs nothing.
pub async fn project_inbox(app: &App, member_id: &str) -> Result<bool, ApiError> {
    let mut wrote = false;
    // A few batches per call bound the work one sync does; the rest follows at the next one.
    for _ in 0..4 {
        let pending = app.storage.pending_inbox(member_id).await?;
        if pending.is_empty() {
            break;
        }
        documents::update(app, member_id, DocKind::Inbox, |doc| {
            for (m, _) in &pending.messages {
                inbox::put(doc, m).map_err(|e| ApiError::internal("projecting a message", e))?;
            }
            for (t, _) in &pending.threads {
                inbox::put_thread(doc, t)
                    .map_err(|e| ApiError::internal("projecting a request thread", e))?;
            }
            Ok(())
        })
        .await?;
        let messages = pending
            .messages
            .iter()
            .map(|(m, v)| (m.id.clone(), *v))
            .collect();
        let threads = pending
            .threads
            .iter()
            .map(|(t, v)| (t.request_id.clone(), *v))
            .collect();
        app.storage
            .mark_projected(member_id, messages, threads)
            .await?;
        wrote = true;
    }
    Ok(wrote)
}

/// Sends queued push, SMS and e-mail deliveries through the app's adapter until the task is
/// dropped. [`crate::serve`] runs it; it wakes when a send queues work and every few seconds for
/// retries and for rows other server instances queued.
pub async fn run_outbound_worker(app: Arc<App>) {
    loop {
        // Created before looking, so a send that queues work meanwhile is not missed.
        let woken = app.outbound_wake.notified();
        match app
            .storage
            .claim_outbound(app.now_ms(), OUTBOUND_LEASE_MS, OUTBOUND_BATCH)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                // The new delivery states reach the phones at their next sync; waking every
                // waiting device after each batch of a campaign would cost more than it shows.
                for job in jobs {
                    deliver(&app, job).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the outbound queue could not be read"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(OUTBOUND_IDLE) => {}
        }
    }
}

/// Carries out one delivery and records how it ended.
async fn deliver(app: &App, job: OutboundJob) {
    let channel = OutboundChannel::parse(&job.channel);
    let outcome = match (channel, &job.address) {
        // Consent can be withdrawn between the send and now: it is checked again at the last moment.
        _ if job.kind == "marketing" && !job.consent => OutboundOutcome::Final {
            status: "refused",
            reason: Some("no_consent".into()),
        },
        (None, _) => OutboundOutcome::Final {
            status: "failed",
            reason: Some("channel_unsupported".into()),
        },
        (_, None) => OutboundOutcome::Final {
            status: "failed",
            reason: Some("no_address".into()),
        },
        (Some(channel), Some(address)) => {
            let message = OutboundMessage {
                channel,
                member_id: job.member_id.clone(),
                message_id: job.message_id.clone(),
                kind: job.kind.clone(),
                subject: job.subject.clone(),
                body: job.body.clone(),
                address: address.clone(),
            };
            let result = tokio::time::timeout(OUTBOUND_TIMEOUT, app.outbound.send(&message))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::outbound::OutboundError::Unavailable(
                        "timed out".into(),
                    ))
                });
            match result {
                Ok(()) => OutboundOutcome::Final {
                    status: "sent",
                    reason: None,
                },
                Err(e) if e.is_transient() && job.attempts + 1 < OUTBOUND_ATTEMPTS => {
                    OutboundOutcome::Retry {
                        reason: e.reason().into(),
                        at_ms: app.now_ms()
                            + OUTBOUND_BACKOFF_MS.saturating_mul(1 << job.attempts.clamp(0, 16)),
                    }
                }
                Err(e) => OutboundOutcome::Final {
                    status: "failed",
                    reason: Some(e.reason().into()),
                },
            }
        }
    };
    let (status, reason) = match &outcome {
        OutboundOutcome::Final { status, reason } => (*status, reason.as_deref()),
        OutboundOutcome::Retry { reason, .. } => ("queued", Some(reason.as_str())),
    };
    if status == "sent" {
        tracing::info!(message_id = %job.message_id, member = %job.member_id, channel = %job.channel, "delivered");
    } else {
        tracing::warn!(
            message_id = %job.message_id,
            member = %job.member_id,
            channel = %job.channel,
            status,
            reason = reason.unwrap_or(""),
            "not delivered"
        );
    }
    if let Err(e) = app
        .storage
        .finish_outbound(&job.message_id, &job.member_id, outcome, app.now_ms())
        .await
    {
        // The lease runs out and the delivery is tried again: sent twice rather than lost.
        tracing::warn!(error = %e, message_id = %job.message_id, "a delivery's outcome was not recorded");
    }
}

#[derive(serde::Deserialize)]
pub struct DeliveriesQuery {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /v1/admin/deliveries?message_id=…&member_id=…&status=…&limit=100`: what became of each
/// recipient (status and reason), newest first. Needs a message or a member.
pub async fn deliveries(
    State(app): State<Arc<App>>,
    _: Operator,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
    if q.message_id.is_none() && q.member_id.is_none() {
        return Err(ApiError::bad_request(
            "malformed_query",
            "give message_id or member_id",
        ));
    }
    let filter = DeliveryFilter {
        message_id: q.message_id,
        member_id: q.member_id,
        status: q.status,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(app.storage.deliveries(filter).await?))
}

#[derive(serde::Deserialize)]
pub struct RequestsQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /v1/admin/requests?status=open&member_id=…&limit=100`: members' requests with their
/// threads, the most recently active first.
pub async fn list_requests(
    State(app): State<Arc<App>>,
    _: Operator,
    query: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RequestRecord>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
    if let Some(s) = &q.status
        && !inbox::REQUEST_STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "malformed_query",
            format!(
                "status must be one of {}",
                inbox::REQUEST_STATUSES.join(", ")
            ),
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    Ok(Json(
        app.storage.requests(q.status, q.member_id, limit).await?,
    ))
}

/// Splits an operator's request handle `<member_id>.<request_id>`.
fn request_handle(id: &str) -> Result<(String, String), ApiError> {
    id.split_once('.')
        .filter(|(m, r)| !m.is_empty() && ids::valid_record_id(r))
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request_id",
                "a request is named `<member_id>.<request_id>`, as the request list gives it",
            )
        })
}

/// Records the operators' action on a request, projects the thread into the member's inbox, and
/// answers with the request as it stands.
async fn act_on_request(
    app: &App,
    id: &str,
    reply: Option<Reply>,
    status: &'static str,
) -> Result<RequestRecord, ApiError> {
    let (member_id, request_id) = request_handle(id)?;
    app.storage
        .answer_request(&member_id, &request_id, reply, status, app.now_ms())
        .await?;
    tracing::info!(member = %member_id, request = %request_id, status, "request answered");
    // One member: worth doing now, so their waiting devices get it within a round trip. When it
    // fails, the next sync does it.
    let _ = project_inbox(app, &member_id).await;
    app.storage
        .requests(None, Some(member_id), 500)
        .await?
        .into_iter()
        .find(|r| r.request_id == request_id)
        .ok_or_else(|| ApiError::not_found("request_not_found", "no such request"))
}

/// `POST /v1/admin/requests/{id}/replies`: answers a request (and closes it with `close: true`).
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
    let status = if p.close { "closed" } else { "answered" };
    let record = act_on_request(&app, &id, Some(reply), status).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// `POST /v1/admin/requests/{id}/close`: closes a request without a reply.
pub async fn close(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    _: Operator,
) -> Result<Json<RequestRecord>, ApiError> {
    Ok(Json(act_on_request(&app, &id, None, "closed").await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_one_of_members_or_segment() {
        assert!(check_target(&[], None).is_err());
        assert!(check_target(&["m".into()], Some("s")).is_err());
        assert!(check_target(&[String::new()], None).is_err());
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("m{i}")).collect();
        assert!(check_target(&many, None).is_err());
        assert_eq!(
            check_target(&["b".into(), "a".into(), "b".into()], None).unwrap(),
            SendTarget::Members(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            check_target(&[], Some("vip")).unwrap(),
            SendTarget::Segment("vip".into())
        );
    }

    #[test]
    fn request_handles_split_at_the_first_dot() {
        assert_eq!(
            request_handle("mbr_1.req_a.b").unwrap(),
            ("mbr_1".into(), "req_a.b".into())
        );
        assert!(request_handle("nodot").is_err());
        assert!(request_handle(".req").is_err());
        assert!(request_handle("mbr_1.bad id").is_err());
    }

    #[test]
    fn outgoing_messages_are_checked() {
        let ok = Outgoing {
            id: "m1".into(),
            kind: "marketing".into(),
            channel: "email".into(),
            subject: "Hi".into(),
            body: String::new(),
        };
        assert!(ok.check().is_ok());
        for (kind, channel, subject) in [
            ("spam", "email", "Hi"),
            ("service", "fax", "Hi"),
            ("service", "email", ""),
        ] {
            let m = Outgoing {
                kind: kind.into(),
                channel: channel.into(),
                subject: subject.into(),
                ..ok.clone()
            };
            assert!(m.check().is_err(), "{kind} {channel} {subject:?}");
        }
    }
}
