//! The inbox document: messages the programme sent to the member, on any channel, and the
//! programme's side of the member's requests (replies and status), all written by the server. Read
//! and archived marks and the requests themselves are the member's and live in the member document;
//! [`MessageView`] and [`crate::requests::RequestView`] join the two for display.
//!
//! Fields added after version 1 of the schema (`kind` and `delivery` on a message, the `requests`
//! map at the root) are optional: a reader built before them ignores them, and this reader takes
//! their absence as "not known", so old and new documents read alike.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::document::{DocKind, DocumentError, Fields, check_root, ensure_map, put_if_changed};
use crate::member::MemberState;

/// The channels a message can go out on; the in-app inbox records every one of them.
pub const CHANNELS: [&str; 4] = ["inapp", "push", "sms", "email"];

/// What a message is for. Marketing needs the member's consent on an external channel and counts
/// against the daily limit; service messages (account, points, answers) do neither.
pub const KINDS: [&str; 2] = ["marketing", "service"];

pub const MAX_SUBJECT: usize = 512;
pub const MAX_BODY: usize = 16 * 1024;
/// The name an operator signs a reply with.
pub const MAX_AUTHOR: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub sent_at_ms: i64,
    /// `marketing` or `service`; empty for messages recorded before kinds existed.
    #[serde(default)]
    pub kind: String,
    /// How the message fared on its external channel (push, SMS, e-mail); `None` for in-app
    /// messages, which the inbox itself delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// The state of a message on its external channel, as the member's app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `queued`, `handed_over` (a provider accepted it), `delivered` (the provider's receipt says
    /// it arrived), `logged` (no provider is configured: nothing was delivered), `failed` or
    /// `refused`.
    pub status: String,
    /// Why it was not sent: `no_consent`, `no_address`, `rate_limited`, or the provider's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at_ms: i64,
}

impl Message {
    pub fn validate(&self) -> Result<(), String> {
        if !crate::ids::valid_record_id(&self.id) {
            return Err(
                "message id must be 1-64 characters of letters, digits, `_`, `-`, `.`".into(),
            );
        }
        if !CHANNELS.contains(&self.channel.as_str()) {
            return Err(format!("channel must be one of {}", CHANNELS.join(", ")));
        }
        if self.subject.trim().is_empty() || self.subject.len() > MAX_SUBJECT {
            return Err(format!("subject must be 1 to {MAX_SUBJECT} bytes"));
        }
        if self.body.len() > MAX_BODY {
            return Err(format!("body is longer than {MAX_BODY} bytes"));
        }
        if !self.kind.is_empty() && !KINDS.contains(&self.kind.as_str()) {
            return Err(format!("kind must be one of {}", KINDS.join(", ")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    #[serde(flatten)]
    pub message: Message,
    pub read_at_ms: Option<i64>,
    pub archived_at_ms: Option<i64>,
}

impl MessageView {
    pub fn new(message: Message, member: &MemberState) -> Self {
        Self {
            read_at_ms: member.read.get(&message.id).copied(),
            archived_at_ms: member.archived.get(&message.id).copied(),
            message,
        }
    }
}

/// All messages, newest first.
pub fn read_all(doc: &AutoCommit) -> Result<Vec<Message>, DocumentError> {
    check_root(doc, DocKind::Inbox)?;
    let f = Fields::new(doc, DocKind::Inbox);
    let list = f.map(&automerge::ROOT, "messages")?;
    let mut messages = Vec::new();
    for id in f.keys(&list) {
        let m = f.map(&list, &id)?;
        messages.push(Message {
            channel: f.str(&m, "channel")?,
            subject: f.str(&m, "subject")?,
            body: f.str(&m, "body")?,
            sent_at_ms: f.timestamp(&m, "sent_at")?,
            kind: f.opt_str(&m, "kind")?.unwrap_or_default(),
            delivery: read_delivery(&f, &m)?,
            id,
        });
    }
    messages.sort_by(|a, b| {
        b.sent_at_ms
            .cmp(&a.sent_at_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(messages)
}

fn read_delivery(f: &Fields<'_>, m: &automerge::ObjId) -> Result<Option<Delivery>, DocumentError> {
    if !f.keys(m).iter().any(|k| k == "delivery") {
        return Ok(None);
    }
    let d = f.map(m, "delivery")?;
    Ok(Some(Delivery {
        status: f.str(&d, "status")?,
        reason: f.opt_str(&d, "reason")?,
        at_ms: f.timestamp(&d, "at")?,
    }))
}

/// Whether the inbox holds a message with this id, without reading the messages.
pub fn contains(doc: &AutoCommit, id: &str) -> Result<bool, DocumentError> {
    check_root(doc, DocKind::Inbox)?;
    let f = Fields::new(doc, DocKind::Inbox);
    let list = f.map(&automerge::ROOT, "messages")?;
    Ok(f.keys(&list).iter().any(|k| k == id))
}

/// Records a message in the inbox (server side).
pub fn put(doc: &mut AutoCommit, message: &Message) -> Result<(), automerge::AutomergeError> {
    let list = ensure_map(doc, &automerge::ROOT, "messages")?;
    let m = ensure_map(doc, &list, &message.id)?;
    put_if_changed(
        doc,
        &m,
        "channel",
        ScalarValue::Str(message.channel.as_str().into()),
    )?;
    put_if_changed(
        doc,
        &m,
        "subject",
        ScalarValue::Str(message.subject.as_str().into()),
    )?;
    put_if_changed(
        doc,
        &m,
        "body",
        ScalarValue::Str(message.body.as_str().into()),
    )?;
    put_if_changed(
        doc,
        &m,
        "sent_at",
        ScalarValue::Timestamp(message.sent_at_ms),
    )?;
    if !message.kind.is_empty() {
        put_if_changed(
            doc,
            &m,
            "kind",
            ScalarValue::Str(message.kind.as_str().into()),
        )?;
    }
    if let Some(d) = &message.delivery {
        let dm = ensure_map(doc, &m, "delivery")?;
        put_if_changed(
            doc,
            &dm,
            "status",
            ScalarValue::Str(d.status.as_str().into()),
        )?;
        match &d.reason {
            Some(r) => put_if_changed(doc, &dm, "reason", ScalarValue::Str(r.as_str().into()))?,
            None => {
                if doc.get(&dm, "reason")?.is_some() {
                    doc.delete(&dm, "reason")?;
                }
            }
        }
        put_if_changed(doc, &dm, "at", ScalarValue::Timestamp(d.at_ms))?;
    }
    Ok(())
}

/// The status of a member's request as the programme sees it.
pub const REQUEST_STATUSES: [&str; 3] = ["open", "answered", "closed"];

/// An operator's answer to one of the member's requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reply {
    pub id: String,
    /// The name the operator signs with ("Customer care"), shown to the member.
    pub author: String,
    pub body: String,
    pub at_ms: i64,
}

/// The programme's side of one request: its status and the operators' replies, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thread {
    pub request_id: String,
    /// `open`, `answered` or `closed`.
    pub status: String,
    pub updated_at_ms: i64,
    pub replies: Vec<Reply>,
}

/// The programme's side of every request it has acted on, by request id. An inbox from before
/// requests existed has none.
pub fn read_threads(doc: &AutoCommit) -> Result<BTreeMap<String, Thread>, DocumentError> {
    check_root(doc, DocKind::Inbox)?;
    let f = Fields::new(doc, DocKind::Inbox);
    let mut out = BTreeMap::new();
    if !f.keys(&automerge::ROOT).iter().any(|k| k == "requests") {
        return Ok(out);
    }
    let list = f.map(&automerge::ROOT, "requests")?;
    for request_id in f.keys(&list) {
        let t = f.map(&list, &request_id)?;
        let replies_map = f.map(&t, "replies")?;
        let mut replies = Vec::new();
        for id in f.keys(&replies_map) {
            let r = f.map(&replies_map, &id)?;
            replies.push(Reply {
                author: f.str(&r, "author")?,
                body: f.str(&r, "body")?,
                at_ms: f.timestamp(&r, "at")?,
                id,
            });
        }
        replies.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
        out.insert(
            request_id.clone(),
            Thread {
                status: f.str(&t, "status")?,
                updated_at_ms: f.timestamp(&t, "updated_at")?,
                replies,
                request_id,
            },
        );
    }
    Ok(out)
}

/// Records the programme's side of a request (server side): its status and every reply given.
/// Writing the same thread again adds nothing, so a projection that is repeated is harmless.
pub fn put_thread(doc: &mut AutoCommit, thread: &Thread) -> Result<(), automerge::AutomergeError> {
    // The server is this document's only writer and every write starts from the stored copy, so
    // creating the map here cannot race with another replica creating a rival one.
    let list = ensure_map(doc, &automerge::ROOT, "requests")?;
    let t = ensure_map(doc, &list, &thread.request_id)?;
    put_if_changed(
        doc,
        &t,
        "status",
        ScalarValue::Str(thread.status.as_str().into()),
    )?;
    put_if_changed(
        doc,
        &t,
        "updated_at",
        ScalarValue::Timestamp(thread.updated_at_ms),
    )?;
    let replies = ensure_map(doc, &t, "replies")?;
    for reply in &thread.replies {
        let r = ensure_map(doc, &replies, &reply.id)?;
        put_if_changed(
            doc,
            &r,
            "author",
            ScalarValue::Str(reply.author.as_str().into()),
        )?;
        put_if_changed(
            doc,
            &r,
            "body",
            ScalarValue::Str(reply.body.as_str().into()),
        )?;
        put_if_changed(doc, &r, "at", ScalarValue::Timestamp(reply.at_ms))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::genesis;

    fn sample(id: &str, at: i64) -> Message {
        Message {
            id: id.into(),
            channel: "inapp".into(),
            subject: "Hello".into(),
            body: "Welcome to the programme".into(),
            sent_at_ms: at,
            ..Message::default()
        }
    }

    #[test]
    fn kind_and_delivery_round_trip_and_old_messages_read_without_them() {
        let mut doc = genesis(DocKind::Inbox);
        put(&mut doc, &sample("old", 1)).unwrap();
        let mut m = sample("new", 2);
        m.channel = "email".into();
        m.kind = "marketing".into();
        m.delivery = Some(Delivery {
            status: "refused".into(),
            reason: Some("no_consent".into()),
            at_ms: 2,
        });
        put(&mut doc, &m).unwrap();
        let all = read_all(&doc).unwrap();
        assert_eq!(all[0], m);
        assert_eq!((all[1].kind.as_str(), &all[1].delivery), ("", &None));

        // A later status replaces the earlier one, and a reason that no longer applies goes.
        m.delivery = Some(Delivery {
            status: "sent".into(),
            reason: None,
            at_ms: 3,
        });
        put(&mut doc, &m).unwrap();
        assert_eq!(read_all(&doc).unwrap()[0].delivery, m.delivery);
    }

    #[test]
    fn threads_round_trip_and_repeating_a_projection_adds_nothing() {
        let mut doc = genesis(DocKind::Inbox);
        assert!(read_threads(&doc).unwrap().is_empty());
        let thread = Thread {
            request_id: "req_1".into(),
            status: "answered".into(),
            updated_at_ms: 5,
            replies: vec![Reply {
                id: "rep_1".into(),
                author: "Customer care".into(),
                body: "We are on it".into(),
                at_ms: 5,
            }],
        };
        put_thread(&mut doc, &thread).unwrap();
        doc.commit();
        let heads = doc.get_heads();
        put_thread(&mut doc, &thread).unwrap();
        doc.commit();
        assert_eq!(doc.get_heads(), heads);
        assert_eq!(read_threads(&doc).unwrap()["req_1"], thread);
        // Old readers see only the messages.
        assert!(read_all(&doc).unwrap().is_empty());
    }

    #[test]
    fn messages_round_trip_newest_first() {
        let mut doc = genesis(DocKind::Inbox);
        put(&mut doc, &sample("a", 1)).unwrap();
        put(&mut doc, &sample("b", 2)).unwrap();
        let ids: Vec<_> = read_all(&doc).unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[test]
    fn contains_finds_ids() {
        let mut doc = genesis(DocKind::Inbox);
        put(&mut doc, &sample("a", 1)).unwrap();
        assert!(contains(&doc, "a").unwrap());
        assert!(!contains(&doc, "b").unwrap());
    }

    #[test]
    fn validation_refuses_unknown_channel_and_empty_subject() {
        assert!(sample("a", 1).validate().is_ok());
        let mut m = sample("a", 1);
        m.channel = "pigeon".into();
        assert!(m.validate().is_err());
        m = sample("a", 1);
        m.subject = String::new();
        assert!(m.validate().is_err());
    }

    #[test]
    fn view_joins_member_marks() {
        let mut member = MemberState::default();
        member.read.insert("a".into(), 5);
        let v = MessageView::new(sample("a", 1), &member);
        assert_eq!((v.read_at_ms, v.archived_at_ms), (Some(5), None));
    }
}
