//! The inbox document: messages the programme sent to the member, on any channel, written by the
//! server. Read and archived marks are the member's and live in the member document; [`MessageView`]
//! joins the two for display.

use automerge::{AutoCommit, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::document::{DocKind, DocumentError, Fields, check_root, ensure_map, put_if_changed};
use crate::member::MemberState;

/// The channels a message can go out on; the in-app inbox records every one of them.
pub const CHANNELS: [&str; 4] = ["inapp", "push", "sms", "email"];

pub const MAX_SUBJECT: usize = 512;
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub sent_at_ms: i64,
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
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    )
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
        }
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
