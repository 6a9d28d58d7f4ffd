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

use loyalty_core::api::{RequestRecord, SendSummary};
use loyalty_core::ids;
use loyalty_core::inbox::{self, Message, Reply};

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::storage::{
    Answer, DeliveryFilter, DeliveryStatus, MessageKind, NewSend, RequestStatus, SendOutcome,
    SendTarget,
};

/// Explicit recipients of one send at most; larger audiences are segments.
pub const MAX_RECIPIENTS: usize = 1000;
/// What a direct reply is signed with when the operator gives no name.
pub(crate) const DEFAULT_AUTHOR: &str = "Customer service";

/// A message as an operator (or the programme) asks for it, before it is checked.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) channel: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

impl Outgoing {
    /// Checks the message; its kind, when it passes.
    fn check(&self) -> Result<MessageKind, DomainError> {
        let invalid = |m: String| DomainError::bad_request("invalid_message", m);
        let Some(kind) = MessageKind::from_name(&self.kind) else {
            return Err(invalid(format!(
                "kind must be one of {}",
                inbox::KINDS.join(", ")
            )));
        };
        Message {
            id: self.id.clone(),
            channel: self.channel.clone(),
            subject: self.subject.clone(),
            body: self.body.clone(),
            kind: self.kind.clone(),
            ..Message::default()
        }
        .validate()
        .map_err(invalid)?;
        Ok(kind)
    }
}

pub(crate) fn check_target(
    members: &[String],
    segment: Option<&str>,
) -> Result<SendTarget, DomainError> {
    let invalid = |m: &str| DomainError::bad_request("invalid_message", m);
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
pub(crate) async fn dispatch(
    app: &App,
    out: Outgoing,
    target: SendTarget,
) -> Result<SendSummary, DomainError> {
    let kind = out.check()?;
    // What the id names: the text, not its recipients (the same message may go to more later).
    let request_hash = {
        let text = serde_json::json!([out.kind, out.channel, out.subject, out.body]);
        ids::sha256(text.to_string().as_bytes())
    };
    let now = app.now_ms();
    let id = out.id.clone();
    let outcome = app
        .storage
        .send_message(NewSend {
            message_id: out.id,
            kind,
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
    let summary = match outcome {
        SendOutcome::Sent(summary) => summary,
        SendOutcome::IdReused => return Err(DomainError::id_reused(&format!("message id `{id}`"))),
        SendOutcome::UnknownMembers => {
            return Err(DomainError::not_found("member_not_found", "no such member"));
        }
        SendOutcome::EmptySegment => {
            return Err(DomainError::not_found(
                "segment_not_found",
                "no such segment",
            ));
        }
    };
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
        SendTarget::Members(members)
            if members.len() <= crate::projection::EAGER_PROJECTION_MAX =>
        {
            for member in members {
                // Recorded is what counts: a projection that fails here happens at the next sync.
                let _ = crate::projection::inbox::project_inbox(app, member).await;
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
pub(crate) async fn log_refusals(app: &App, message_id: &str) {
    let filter = DeliveryFilter {
        message_id: Some(message_id.to_string()),
        member_id: None,
        status: Some(DeliveryStatus::Refused),
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

pub(crate) fn missing_kind() -> DomainError {
    DomainError::bad_request(
        "missing_message_kind",
        "say the message's kind: `marketing` (offers, campaigns: needs the member's consent on \
         push, SMS and e-mail) or `service` (the member's account, points, receipts, answers)",
    )
}

/// Deliveries shown per answer by default, and at most.
const DEFAULT_DELIVERIES: i64 = 100;
const MAX_DELIVERIES: i64 = 1000;
/// Requests shown per answer by default, and at most.
const DEFAULT_REQUESTS: i64 = 100;
const MAX_REQUESTS: i64 = 500;

/// What became of each recipient, newest first: of one message or one member (one of them is
/// needed); at most `limit` (default 100, held to 1..=1000; the filter's own limit is replaced).
pub async fn deliveries(
    app: &App,
    mut filter: DeliveryFilter,
    limit: Option<i64>,
) -> Result<Vec<loyalty_core::api::DeliveryRecord>, DomainError> {
    if filter.message_id.is_none() && filter.member_id.is_none() {
        return Err(DomainError::bad_request(
            "malformed_query",
            "give message_id or member_id",
        ));
    }
    filter.limit = limit.unwrap_or(DEFAULT_DELIVERIES).clamp(1, MAX_DELIVERIES);
    Ok(app.storage.deliveries(filter).await?)
}

/// Members' requests with their threads, the most recently active first, optionally of one status
/// or member; at most `limit` (default 100, held to 1..=500).
pub async fn requests(
    app: &App,
    status: Option<RequestStatus>,
    member_id: Option<String>,
    limit: Option<i64>,
) -> Result<Vec<RequestRecord>, DomainError> {
    let limit = limit.unwrap_or(DEFAULT_REQUESTS).clamp(1, MAX_REQUESTS);
    Ok(app.storage.requests(status, member_id, limit).await?)
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
) -> Result<(), DomainError> {
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

/// Splits an operator's request handle `<member_id>.<request_id>`.
pub(crate) fn request_handle(id: &str) -> Result<(String, String), DomainError> {
    id.split_once('.')
        .filter(|(m, r)| !m.is_empty() && ids::valid_record_id(r))
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .ok_or_else(|| {
            DomainError::bad_request(
                "invalid_request_id",
                "a request is named `<member_id>.<request_id>`, as the request list gives it",
            )
        })
}

/// Records the operators' action on a request, projects the thread into the member's inbox, and
/// answers with the request as it stands.
pub(crate) async fn act_on_request(
    app: &App,
    id: &str,
    reply: Option<Reply>,
    status: RequestStatus,
) -> Result<RequestRecord, DomainError> {
    let (member_id, request_id) = request_handle(id)?;
    let reply_id = reply.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    match app
        .storage
        .answer_request(&member_id, &request_id, reply, status, app.now_ms())
        .await?
    {
        Answer::Answered => {}
        Answer::UnknownRequest => {
            return Err(DomainError::not_found(
                "request_not_found",
                "no such request",
            ));
        }
        Answer::Closed => {
            return Err(DomainError::new(
                ErrorKind::Conflict,
                "request_closed",
                "the request is closed: the member opens a new one",
            ));
        }
        Answer::ReplyIdReused => {
            return Err(DomainError::id_reused(&format!("reply id `{reply_id}`")));
        }
    }
    let status = status.as_str();
    tracing::info!(member = %member_id, request = %request_id, status, "request answered");
    // One member: worth doing now, so their waiting devices get it within a round trip. When it
    // fails, the next sync does it.
    let _ = crate::projection::inbox::project_inbox(app, &member_id).await;
    app.storage
        .requests(None, Some(member_id), 500)
        .await?
        .into_iter()
        .find(|r| r.request_id == request_id)
        .ok_or_else(|| DomainError::not_found("request_not_found", "no such request"))
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
