//! The member document: everything the member does on their devices — offer activations, read and
//! archived marks, preferences and consents. It is the one document devices write, so both sides run
//! the same [`validate`] on it: the device before it commits a change, the server before it stores one.
//!
//! Every record is a map entry keyed by what it is about (offer id, message id, preference name), so
//! two devices that act offline on different things merge without losing either, and two that act on
//! the same thing settle on one value.
//!
//! The member's requests (questions, complaints) came after the genesis change was fixed, so their
//! `requests` map is created by one more deterministic change ([`ensure_requests`]): identical on
//! every device, it merges into one map instead of two rival ones.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::document::{DocKind, DocumentError, Fields, check_root, ensure_map, put_if_changed};

/// Size limits of the member document. They keep a misbehaving or malicious client from growing
/// what the server stores and every other device downloads.
pub mod limits {
    /// Entries in any one map (activations, read marks, archived marks).
    pub const MAX_ENTRIES: usize = 10_000;
    pub const MAX_PREFERENCES: usize = 100;
    pub const MAX_KEY: usize = 64;
    pub const MAX_VALUE: usize = 1024;
    /// The whole document as saved, in bytes.
    pub const MAX_DOC_BYTES: usize = 512 * 1024;
    /// Requests a member can have opened, over the document's life.
    pub const MAX_REQUESTS: usize = 500;
    /// Follow-ups the member can add to one request.
    pub const MAX_FOLLOWUPS: usize = 50;
    pub const MAX_REQUEST_SUBJECT: usize = 200;
    /// The text of a request or a follow-up.
    pub const MAX_REQUEST_BODY: usize = 4096;
}

/// What a member can open a request about.
pub const REQUEST_KINDS: [&str; 2] = ["question", "complaint"];

/// Channels a member can consent to being contacted on for marketing.
pub const CONSENT_CHANNELS: [&str; 3] = ["push", "sms", "email"];

const ROOT_FIELDS: [&str; 8] = [
    "schema",
    "kind",
    "activations",
    "read",
    "archived",
    "preferences",
    "consents",
    "requests",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activation {
    pub at_ms: i64,
    /// The name of the device the member activated the offer on.
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub granted: bool,
    pub at_ms: i64,
}

/// A question or complaint the member opened from the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Request {
    /// `question` or `complaint`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub at_ms: i64,
    /// What the member added later, by follow-up id.
    #[serde(default)]
    pub followups: BTreeMap<String, FollowUp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FollowUp {
    pub body: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberState {
    pub activations: BTreeMap<String, Activation>,
    pub read: BTreeMap<String, i64>,
    pub archived: BTreeMap<String, i64>,
    pub preferences: BTreeMap<String, String>,
    pub consents: BTreeMap<String, Consent>,
    /// The member's requests, by request id.
    #[serde(default)]
    pub requests: BTreeMap<String, Request>,
}

fn invalid(message: impl Into<String>) -> DocumentError {
    DocumentError::Invalid {
        doc: DocKind::Member,
        message: message.into(),
    }
}

fn too_large(what: impl Into<String>, limit: usize) -> DocumentError {
    DocumentError::TooLarge {
        doc: DocKind::Member,
        what: what.into(),
        limit,
    }
}

fn check_key(key: &str) -> Result<(), DocumentError> {
    if key.is_empty() || key.len() > limits::MAX_KEY {
        return Err(invalid(format!(
            "key `{key}` must be 1 to {} bytes",
            limits::MAX_KEY
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize, limit: usize) -> Result<(), DocumentError> {
    if n > limit {
        return Err(too_large(format!("{what} ({n} entries)"), limit));
    }
    Ok(())
}

/// Reads the member document, checking every field's type and every limit but the byte size.
pub fn read(doc: &AutoCommit) -> Result<MemberState, DocumentError> {
    check_root(doc, DocKind::Member)?;
    let f = Fields::new(doc, DocKind::Member);
    let root = automerge::ROOT;
    if let Some(extra) = f
        .keys(&root)
        .into_iter()
        .find(|k| !ROOT_FIELDS.contains(&k.as_str()))
    {
        return Err(DocumentError::Unexpected {
            doc: DocKind::Member,
            field: extra,
        });
    }
    let mut state = MemberState::default();

    let activations = f.map(&root, "activations")?;
    for id in f.keys(&activations) {
        check_key(&id)?;
        let a = f.map(&activations, &id)?;
        let device = f.str(&a, "device")?;
        if device.len() > limits::MAX_VALUE {
            return Err(too_large("a device name", limits::MAX_VALUE));
        }
        let at_ms = f.timestamp(&a, "at")?;
        state.activations.insert(id, Activation { at_ms, device });
    }
    check_count("activations", state.activations.len(), limits::MAX_ENTRIES)?;

    for (name, target) in [("read", &mut state.read), ("archived", &mut state.archived)] {
        let marks = f.map(&root, name)?;
        for id in f.keys(&marks) {
            check_key(&id)?;
            let at = f.timestamp(&marks, &id)?;
            target.insert(id, at);
        }
        check_count(name, target.len(), limits::MAX_ENTRIES)?;
    }

    let prefs = f.map(&root, "preferences")?;
    for key in f.keys(&prefs) {
        check_key(&key)?;
        let value = f.str(&prefs, &key)?;
        if value.len() > limits::MAX_VALUE {
            return Err(too_large(format!("preference `{key}`"), limits::MAX_VALUE));
        }
        state.preferences.insert(key, value);
    }
    check_count(
        "preferences",
        state.preferences.len(),
        limits::MAX_PREFERENCES,
    )?;

    let consents = f.map(&root, "consents")?;
    for channel in f.keys(&consents) {
        if !CONSENT_CHANNELS.contains(&channel.as_str()) {
            return Err(invalid(format!("unknown consent channel `{channel}`")));
        }
        let c = f.map(&consents, &channel)?;
        let consent = Consent {
            granted: f.bool(&c, "granted")?,
            at_ms: f.timestamp(&c, "at")?,
        };
        state.consents.insert(channel, consent);
    }

    if f.keys(&root).iter().any(|k| k == "requests") {
        let requests = f.map(&root, "requests")?;
        check_requests_map(doc)?;
        for id in f.keys(&requests) {
            // Operators name requests by these ids in URLs.
            if !crate::ids::valid_record_id(&id) {
                return Err(invalid(format!(
                    "request id `{id}` must be 1-64 characters of letters, digits, `_`, `-`, `.`"
                )));
            }
            let r = f.map(&requests, &id)?;
            let request = read_request(&f, &r)?;
            state.requests.insert(id, request);
        }
        check_count("requests", state.requests.len(), limits::MAX_REQUESTS)?;
    }
    Ok(state)
}

fn read_request(f: &Fields<'_>, r: &automerge::ObjId) -> Result<Request, DocumentError> {
    let kind = f.str(r, "kind")?;
    if !REQUEST_KINDS.contains(&kind.as_str()) {
        return Err(invalid(format!(
            "request kind `{kind}` must be one of {}",
            REQUEST_KINDS.join(", ")
        )));
    }
    let subject = f.str(r, "subject")?;
    if subject.trim().is_empty() {
        return Err(invalid("a request needs a subject"));
    }
    if subject.len() > limits::MAX_REQUEST_SUBJECT {
        return Err(too_large("a request subject", limits::MAX_REQUEST_SUBJECT));
    }
    let body = f.str(r, "body")?;
    if body.len() > limits::MAX_REQUEST_BODY {
        return Err(too_large("a request body", limits::MAX_REQUEST_BODY));
    }
    let at_ms = f.timestamp(r, "at")?;
    let list = f.map(r, "followups")?;
    let mut followups = BTreeMap::new();
    for id in f.keys(&list) {
        check_key(&id)?;
        let fu = f.map(&list, &id)?;
        let body = f.str(&fu, "body")?;
        if body.trim().is_empty() {
            return Err(invalid("a follow-up needs a text"));
        }
        if body.len() > limits::MAX_REQUEST_BODY {
            return Err(too_large("a follow-up", limits::MAX_REQUEST_BODY));
        }
        let at_ms = f.timestamp(&fu, "at")?;
        followups.insert(id, FollowUp { body, at_ms });
    }
    check_count("follow-ups", followups.len(), limits::MAX_FOLLOWUPS)?;
    Ok(Request {
        kind,
        subject,
        body,
        at_ms,
        followups,
    })
}

/// The full check the server runs before it stores a device's change: schema, types, counts, and
/// the saved size (`saved_len`, which the caller has at hand because it is about to store the bytes).
pub fn validate(doc: &AutoCommit, saved_len: usize) -> Result<MemberState, DocumentError> {
    if saved_len > limits::MAX_DOC_BYTES {
        return Err(too_large(
            format!("the document ({saved_len} bytes)"),
            limits::MAX_DOC_BYTES,
        ));
    }
    read(doc)
}

fn root_map(
    doc: &mut AutoCommit,
    name: &str,
) -> Result<automerge::ObjId, automerge::AutomergeError> {
    ensure_map(doc, &automerge::ROOT, name)
}

pub fn activate(
    doc: &mut AutoCommit,
    offer_id: &str,
    device: &str,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let activations = root_map(doc, "activations")?;
    let a = ensure_map(doc, &activations, offer_id)?;
    put_if_changed(doc, &a, "at", ScalarValue::Timestamp(now_ms))?;
    put_if_changed(doc, &a, "device", ScalarValue::Str(device.into()))
}

/// Marks a message read or archived; `list` is `"read"` or `"archived"`.
pub fn mark(
    doc: &mut AutoCommit,
    list: &str,
    message_id: &str,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let marks = root_map(doc, list)?;
    put_if_changed(doc, &marks, message_id, ScalarValue::Timestamp(now_ms))
}

pub fn set_preference(
    doc: &mut AutoCommit,
    key: &str,
    value: &str,
) -> Result<(), automerge::AutomergeError> {
    let prefs = root_map(doc, "preferences")?;
    put_if_changed(doc, &prefs, key, ScalarValue::Str(value.into()))
}

pub fn set_consent(
    doc: &mut AutoCommit,
    channel: &str,
    granted: bool,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let consents = root_map(doc, "consents")?;
    let c = ensure_map(doc, &consents, channel)?;
    put_if_changed(doc, &c, "granted", ScalarValue::Boolean(granted))?;
    put_if_changed(doc, &c, "at", ScalarValue::Timestamp(now_ms))
}

/// The actor of the change that creates the `requests` map. Nobody writes under it but that one
/// change, so its first (and only) sequence number means the same change everywhere.
const REQUESTS_ACTOR: &[u8] = b"loyalty-member-requests-map";

/// The operation that makes the `requests` map: the member genesis change has 7 operations, so the
/// change on top of it starts at 8, and the map's object id is `8@<REQUESTS_ACTOR>`.
const REQUESTS_START_OP: u64 = 8;

/// The hash of [`requests_change`], as `docs/protocol.md` §3 gives it with the change's bytes.
pub const REQUESTS_CHANGE_HASH: automerge::ChangeHash = automerge::ChangeHash([
    0x3c, 0x40, 0x75, 0xc1, 0x31, 0x45, 0x53, 0x09, 0xd4, 0x21, 0xf7, 0x25, 0x31, 0x8c, 0x7f, 0x53,
    0xd2, 0x9d, 0xf6, 0xd0, 0x32, 0x02, 0xee, 0xc4, 0xa4, 0xd5, 0x16, 0xb6, 0x40, 0xf7, 0xcb, 0x28,
]);

/// Checks that the document's `requests` map is the one the shared change makes: one value at the
/// root, the map made by operation `8@loyalty-member-requests-map`, and that change (by hash) in
/// the history. A map made any other way would be a rival: devices that made the shared one
/// would never see what is in it, and one with the shared actor but another hash would make
/// every later sync of theirs fail.
fn check_requests_map(doc: &AutoCommit) -> Result<(), DocumentError> {
    let rival = || DocumentError::RivalMap {
        doc: DocKind::Member,
        field: "requests".into(),
    };
    let values = doc
        .get_all(automerge::ROOT, "requests")
        .map_err(|e| DocumentError::Corrupt {
            doc: DocKind::Member,
            message: e.to_string(),
        })?;
    let [(automerge::Value::Object(automerge::ObjType::Map), id)] = values.as_slice() else {
        return Err(rival());
    };
    let made_by_shared_change = matches!(
        id,
        automerge::ObjId::Id(REQUESTS_START_OP, actor, _) if actor.to_bytes() == REQUESTS_ACTOR
    );
    if !made_by_shared_change || ReadDoc::get_change_by_hash(doc, &REQUESTS_CHANGE_HASH).is_none() {
        return Err(rival());
    }
    Ok(())
}

/// The one change that adds the `requests` map to a member document: made on top of genesis by a
/// fixed actor at time zero, so it is byte-for-byte the same wherever it is made, like genesis.
fn requests_change() -> Result<automerge::Change, automerge::AutomergeError> {
    let mut doc = crate::document::genesis(DocKind::Member);
    doc.set_actor(automerge::ActorId::from(REQUESTS_ACTOR));
    doc.put_object(automerge::ROOT, "requests", automerge::ObjType::Map)?;
    doc.commit();
    doc.get_last_local_change()
        .ok_or(automerge::AutomergeError::Fail)
}

/// The document's `requests` map, first adding it with the shared change when it is missing. Two
/// devices that do this offline add the same change, so they end up with one map, not two rival
/// ones of which only one would show.
pub fn ensure_requests(
    doc: &mut AutoCommit,
) -> Result<automerge::ObjId, automerge::AutomergeError> {
    if let Some((automerge::Value::Object(automerge::ObjType::Map), id)) =
        doc.get(automerge::ROOT, "requests")?
    {
        return Ok(id);
    }
    doc.apply_changes([requests_change()?])?;
    match doc.get(automerge::ROOT, "requests")? {
        Some((automerge::Value::Object(automerge::ObjType::Map), id)) => Ok(id),
        _ => Err(automerge::AutomergeError::Fail),
    }
}

/// Records a new request (device side). `id` must be fresh: the caller draws it at random.
pub fn open_request(
    doc: &mut AutoCommit,
    id: &str,
    kind: &str,
    subject: &str,
    body: &str,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let requests = ensure_requests(doc)?;
    let r = ensure_map(doc, &requests, id)?;
    put_if_changed(doc, &r, "kind", ScalarValue::Str(kind.into()))?;
    put_if_changed(doc, &r, "subject", ScalarValue::Str(subject.into()))?;
    put_if_changed(doc, &r, "body", ScalarValue::Str(body.into()))?;
    put_if_changed(doc, &r, "at", ScalarValue::Timestamp(now_ms))?;
    // Made with the request, by the one device that opens it, so no rival map can appear.
    ensure_map(doc, &r, "followups")?;
    Ok(())
}

/// Adds the member's follow-up to a request they opened (device side).
pub fn add_followup(
    doc: &mut AutoCommit,
    request_id: &str,
    followup_id: &str,
    body: &str,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let requests = ensure_requests(doc)?;
    let r = ensure_map(doc, &requests, request_id)?;
    let list = ensure_map(doc, &r, "followups")?;
    let fu = ensure_map(doc, &list, followup_id)?;
    put_if_changed(doc, &fu, "body", ScalarValue::Str(body.into()))?;
    put_if_changed(doc, &fu, "at", ScalarValue::Timestamp(now_ms))
}

/// Writes into `doc` every record of `mine` that `base` does not hold as it is — what the member
/// did since `base` — with the same writers the member's actions use, so what is written is
/// exactly what those actions would have written. With an empty `base` it writes the whole
/// state: that is how a new epoch of the member document is made, and how a device carries its
/// own unacknowledged actions over into one (`crate::epoch`).
pub fn replay(
    doc: &mut AutoCommit,
    base: &MemberState,
    mine: &MemberState,
) -> Result<(), automerge::AutomergeError> {
    if !mine.requests.is_empty() {
        // First, while no other operation is pending: it applies a fixed change of its own.
        ensure_requests(doc)?;
    }
    for (id, a) in &mine.activations {
        if base.activations.get(id) != Some(a) {
            activate(doc, id, &a.device, a.at_ms)?;
        }
    }
    for (list, marks, base_marks) in [
        ("read", &mine.read, &base.read),
        ("archived", &mine.archived, &base.archived),
    ] {
        for (id, at) in marks {
            if base_marks.get(id) != Some(at) {
                mark(doc, list, id, *at)?;
            }
        }
    }
    for (key, value) in &mine.preferences {
        if base.preferences.get(key) != Some(value) {
            set_preference(doc, key, value)?;
        }
    }
    for (channel, c) in &mine.consents {
        if base.consents.get(channel) != Some(c) {
            set_consent(doc, channel, c.granted, c.at_ms)?;
        }
    }
    for (id, r) in &mine.requests {
        let before = base.requests.get(id);
        if before != Some(r) {
            open_request(doc, id, &r.kind, &r.subject, &r.body, r.at_ms)?;
        }
        for (fid, f) in &r.followups {
            if before.and_then(|b| b.followups.get(fid)) != Some(f) {
                add_followup(doc, id, fid, &f.body, f.at_ms)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::genesis;

    #[test]
    fn requests_opened_offline_on_two_devices_share_one_map() {
        let mut a = genesis(DocKind::Member);
        let mut b = genesis(DocKind::Member);
        open_request(&mut a, "req_a", "question", "Opening hours?", "", 1).unwrap();
        a.commit();
        open_request(
            &mut b,
            "req_b",
            "complaint",
            "Wrong points",
            "Receipt 1001",
            2,
        )
        .unwrap();
        add_followup(&mut b, "req_b", "f1", "Photo attached later", 3).unwrap();
        b.commit();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let state = read(&a).unwrap();
        assert_eq!(state.requests.len(), 2, "{:?}", state.requests);
        assert_eq!(
            state.requests["req_b"].followups["f1"].body,
            "Photo attached later"
        );
        assert_eq!(read(&b).unwrap(), state);
        // One map: no conflicting values at the root.
        assert_eq!(a.get_all(automerge::ROOT, "requests").unwrap().len(), 1);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `docs/protocol.md` §3 gives this change byte for byte; a client in another language applies
    /// these bytes (or makes the same change) rather than a map of its own.
    #[test]
    fn the_shared_requests_change_is_the_documented_one() {
        let change = requests_change().unwrap();
        assert_eq!(
            hex(change.raw_bytes()),
            "856f4a833c4075c1015e013e5ae8c0c08e7c15c8a4f2e5e1547b508bf33df3399f73ed73b65fea5fc2dadc\
             1b6c6f79616c74792d6d656d6265722d72657175657374732d6d6170010800000005150a34014202560270\
             027f087265717565737473017f007f007f00"
        );
        assert_eq!(change.hash(), REQUESTS_CHANGE_HASH);
        assert_eq!(
            change.hash().to_string(),
            "3c4075c131455309d421f725318c7f53d29df6d03202eec4a4d516b640f7cb28"
        );
        assert_eq!(change.actor_id().to_bytes(), REQUESTS_ACTOR);
        assert_eq!(
            (change.seq(), change.start_op().get(), change.timestamp()),
            (1, REQUESTS_START_OP, 0)
        );
        assert_eq!(change.message(), None);
        assert_eq!(
            change.deps(),
            genesis(DocKind::Member).get_heads().as_slice()
        );
    }

    /// Maps made any other way than with the shared change are refused; the shared one is not.
    #[test]
    fn a_rival_requests_map_is_refused() {
        let mut shared = genesis(DocKind::Member);
        open_request(&mut shared, "req_1", "question", "Hi", "", 1).unwrap();
        assert!(read(&shared).is_ok());

        // Another actor: what a client that simply sets `requests = {}` makes.
        let mut other_actor = genesis(DocKind::Member);
        other_actor
            .put_object(automerge::ROOT, "requests", automerge::ObjType::Map)
            .unwrap();
        // The shared actor, but another time: another hash, the same object id.
        let mut other_time = genesis(DocKind::Member);
        other_time.set_actor(automerge::ActorId::from(REQUESTS_ACTOR));
        other_time
            .put_object(automerge::ROOT, "requests", automerge::ObjType::Map)
            .unwrap();
        other_time.commit_with(automerge::transaction::CommitOptions::default().with_time(1));
        // Both maps, made concurrently: two values under one key.
        let mut both = genesis(DocKind::Member);
        ensure_requests(&mut both).unwrap();
        both.merge(&mut other_actor.clone()).unwrap();
        // The shared map, overwritten later by another.
        let mut overwritten = genesis(DocKind::Member);
        ensure_requests(&mut overwritten).unwrap();
        overwritten
            .put_object(automerge::ROOT, "requests", automerge::ObjType::Map)
            .unwrap();
        for (name, doc) in [
            ("another actor", &other_actor),
            ("another time", &other_time),
            ("both", &both),
            ("overwritten", &overwritten),
        ] {
            assert!(
                matches!(read(doc), Err(DocumentError::RivalMap { .. })),
                "{name}: {:?}",
                read(doc)
            );
        }
    }

    #[test]
    fn documents_from_before_requests_read_as_having_none() {
        let doc = genesis(DocKind::Member);
        assert!(read(&doc).unwrap().requests.is_empty());
    }

    #[test]
    fn validation_refuses_requests_that_break_the_rules() {
        let too_long = "x".repeat(limits::MAX_REQUEST_BODY + 1);
        let long_subject = "s".repeat(limits::MAX_REQUEST_SUBJECT + 1);
        let cases: [(&str, &str, &str, &str); 5] = [
            ("req_1", "praise", "Hi", ""),
            ("req_1", "question", " ", ""),
            ("req_1", "question", &long_subject, ""),
            ("req_1", "question", "Hi", &too_long),
            ("req 1/x", "question", "Hi", ""),
        ];
        for (id, kind, subject, body) in cases {
            let mut doc = genesis(DocKind::Member);
            open_request(&mut doc, id, kind, subject, body, 1).unwrap();
            assert!(read(&doc).is_err(), "{id} {kind} {subject}");
        }
        let mut doc = genesis(DocKind::Member);
        open_request(&mut doc, "req_1", "question", "Hi", "", 1).unwrap();
        add_followup(&mut doc, "req_1", "f1", "", 2).unwrap();
        assert!(read(&doc).is_err());

        let mut doc = genesis(DocKind::Member);
        open_request(&mut doc, "req_1", "question", "Hi", "", 1).unwrap();
        for i in 0..=limits::MAX_FOLLOWUPS {
            add_followup(&mut doc, "req_1", &format!("f{i}"), "more", 2).unwrap();
        }
        assert!(matches!(read(&doc), Err(DocumentError::TooLarge { .. })));

        let mut doc = genesis(DocKind::Member);
        let requests = ensure_requests(&mut doc).unwrap();
        doc.put(&requests, "req_1", "not a map").unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::WrongType { .. })));
    }

    #[test]
    fn validation_refuses_too_many_requests() {
        let mut doc = genesis(DocKind::Member);
        for i in 0..=limits::MAX_REQUESTS {
            open_request(&mut doc, &format!("r{i}"), "question", "Hi", "", 1).unwrap();
        }
        assert!(matches!(read(&doc), Err(DocumentError::TooLarge { .. })));
    }

    fn len(doc: &mut AutoCommit) -> usize {
        doc.save().len()
    }

    #[test]
    fn writes_read_back() {
        let mut doc = genesis(DocKind::Member);
        activate(&mut doc, "off_1", "phone", 10).unwrap();
        mark(&mut doc, "read", "msg_1", 11).unwrap();
        mark(&mut doc, "archived", "msg_2", 12).unwrap();
        set_preference(&mut doc, "store", "Berlin Mitte").unwrap();
        set_consent(&mut doc, "email", true, 13).unwrap();
        let n = len(&mut doc);
        let state = validate(&doc, n).unwrap();
        assert_eq!(state.activations["off_1"].device, "phone");
        assert_eq!(state.read["msg_1"], 11);
        assert_eq!(state.archived["msg_2"], 12);
        assert_eq!(state.preferences["store"], "Berlin Mitte");
        assert!(state.consents["email"].granted);
    }

    #[test]
    fn concurrent_edits_on_two_devices_both_survive() {
        let mut a = genesis(DocKind::Member);
        let mut b = genesis(DocKind::Member);
        activate(&mut a, "off_1", "a", 1).unwrap();
        activate(&mut b, "off_2", "b", 2).unwrap();
        mark(&mut b, "read", "msg_1", 3).unwrap();
        a.merge(&mut b).unwrap();
        let state = read(&a).unwrap();
        assert_eq!(state.activations.len(), 2);
        assert_eq!(state.read.len(), 1);
    }

    #[test]
    fn validation_refuses_schema_breaks() {
        let mut doc = genesis(DocKind::Member);
        doc.put(automerge::ROOT, "balance", 1_000_000).unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::Unexpected { .. })));

        let mut doc = genesis(DocKind::Member);
        let read_marks = root_map(&mut doc, "read").unwrap();
        doc.put(&read_marks, "msg_1", "yesterday").unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::WrongType { .. })));

        let mut doc = genesis(DocKind::Member);
        set_consent(&mut doc, "carrier-pigeon", true, 1).unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::Invalid { .. })));

        let mut doc = genesis(DocKind::Member);
        set_preference(&mut doc, &"k".repeat(limits::MAX_KEY + 1), "v").unwrap();
        assert!(read(&doc).is_err());

        let mut doc = genesis(DocKind::Member);
        set_preference(&mut doc, "k", &"v".repeat(limits::MAX_VALUE + 1)).unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::TooLarge { .. })));
    }

    #[test]
    fn validation_refuses_too_many_entries_and_bytes() {
        let mut doc = genesis(DocKind::Member);
        for i in 0..=limits::MAX_PREFERENCES {
            set_preference(&mut doc, &format!("p{i}"), "v").unwrap();
        }
        assert!(matches!(read(&doc), Err(DocumentError::TooLarge { .. })));
        let doc = genesis(DocKind::Member);
        assert!(matches!(
            validate(&doc, limits::MAX_DOC_BYTES + 1),
            Err(DocumentError::TooLarge { .. })
        ));
    }
}
