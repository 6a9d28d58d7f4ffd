//! The member's requests (questions and complaints) as threads: the request and the member's
//! follow-ups come from the member document, the programme's replies and status from the inbox
//! document. [`RequestView`] joins the two, as `OfferView` and `MessageView` do, so a device shows
//! the whole conversation offline and never writes a server document.
//!
//! The status rule is shared with the server's operator listing: a request nobody has acted on is
//! `open`; an `answered` request the member followed up on afterwards is `open` again (it needs an
//! operator); `closed` stays closed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inbox::Thread;
use crate::member::{MemberState, Request};

/// One message of a request's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThreadEntry {
    /// The follow-up's or the reply's id.
    pub id: String,
    /// `member` or `operator`.
    pub from: String,
    /// Who wrote it: empty for the member, the operator's signature for a reply.
    pub author: String,
    pub body: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub id: String,
    /// `question` or `complaint`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub opened_at_ms: i64,
    /// `open`, `answered` or `closed` (see the module docs).
    pub status: String,
    /// The time of the latest entry, or of the opening.
    pub last_activity_ms: i64,
    /// Follow-ups and replies after the opening text, oldest first.
    pub entries: Vec<ThreadEntry>,
}

/// The status of a request given the programme's side of it (see the module docs).
pub fn effective_status(request: &Request, thread: Option<&Thread>) -> String {
    let Some(thread) = thread else {
        return "open".into();
    };
    let followed_up = request
        .followups
        .values()
        .any(|f| f.at_ms > thread.updated_at_ms);
    if thread.status == "answered" && followed_up {
        "open".into()
    } else {
        thread.status.clone()
    }
}

impl RequestView {
    pub fn new(id: &str, request: &Request, thread: Option<&Thread>) -> Self {
        let mut entries: Vec<ThreadEntry> = request
            .followups
            .iter()
            .map(|(fid, f)| ThreadEntry {
                id: fid.clone(),
                from: "member".into(),
                author: String::new(),
                body: f.body.clone(),
                at_ms: f.at_ms,
            })
            .collect();
        if let Some(t) = thread {
            entries.extend(t.replies.iter().map(|r| ThreadEntry {
                id: r.id.clone(),
                from: "operator".into(),
                author: r.author.clone(),
                body: r.body.clone(),
                at_ms: r.at_ms,
            }));
        }
        entries.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
        Self {
            id: id.to_string(),
            kind: request.kind.clone(),
            subject: request.subject.clone(),
            body: request.body.clone(),
            opened_at_ms: request.at_ms,
            status: effective_status(request, thread),
            last_activity_ms: entries.last().map_or(request.at_ms, |e| e.at_ms),
            entries,
        }
    }
}

/// Every request of the member as a thread, the most recently active first.
pub fn views(member: &MemberState, threads: &BTreeMap<String, Thread>) -> Vec<RequestView> {
    let mut out: Vec<RequestView> = member
        .requests
        .iter()
        .map(|(id, r)| RequestView::new(id, r, threads.get(id)))
        .collect();
    out.sort_by(|a, b| {
        b.last_activity_ms
            .cmp(&a.last_activity_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::Reply;
    use crate::member::FollowUp;

    fn request() -> Request {
        Request {
            kind: "question".into(),
            subject: "Opening hours".into(),
            body: "Are you open on Sunday?".into(),
            at_ms: 10,
            followups: BTreeMap::new(),
        }
    }

    fn thread(status: &str, at: i64) -> Thread {
        Thread {
            request_id: "r".into(),
            status: status.into(),
            updated_at_ms: at,
            replies: vec![Reply {
                id: "rep".into(),
                author: "Care".into(),
                body: "Yes, 10 to 16".into(),
                at_ms: at,
            }],
        }
    }

    #[test]
    fn status_follows_the_rule() {
        let mut r = request();
        assert_eq!(effective_status(&r, None), "open");
        assert_eq!(
            effective_status(&r, Some(&thread("answered", 20))),
            "answered"
        );
        r.followups.insert(
            "f".into(),
            FollowUp {
                body: "And on holidays?".into(),
                at_ms: 30,
            },
        );
        assert_eq!(effective_status(&r, Some(&thread("answered", 20))), "open");
        assert_eq!(effective_status(&r, Some(&thread("closed", 20))), "closed");
    }

    #[test]
    fn view_interleaves_follow_ups_and_replies() {
        let mut r = request();
        r.followups.insert(
            "f".into(),
            FollowUp {
                body: "And on holidays?".into(),
                at_ms: 30,
            },
        );
        let t = thread("answered", 20);
        let v = RequestView::new("r", &r, Some(&t));
        let from: Vec<&str> = v.entries.iter().map(|e| e.from.as_str()).collect();
        assert_eq!(from, ["operator", "member"]);
        assert_eq!(v.last_activity_ms, 30);
    }
}
