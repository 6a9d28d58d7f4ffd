//! The member document: everything the member does on their devices — offer activations, read and
//! archived marks, preferences and consents. It is the one document devices write, so both sides run
//! the same [`validate`] on it: the device before it commits a change, the server before it stores one.
//!
//! Every record is a map entry keyed by what it is about (offer id, message id, preference name), so
//! two devices that act offline on different things merge without losing either, and two that act on
//! the same thing settle on one value.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ScalarValue};
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
}

/// Channels a member can consent to being contacted on for marketing.
pub const CONSENT_CHANNELS: [&str; 3] = ["push", "sms", "email"];

const ROOT_FIELDS: [&str; 7] = [
    "schema",
    "kind",
    "activations",
    "read",
    "archived",
    "preferences",
    "consents",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub at_ms: i64,
    /// The name of the device the member activated the offer on.
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub granted: bool,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub activations: BTreeMap<String, Activation>,
    pub read: BTreeMap<String, i64>,
    pub archived: BTreeMap<String, i64>,
    pub preferences: BTreeMap<String, String>,
    pub consents: BTreeMap<String, Consent>,
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
    Ok(state)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::genesis;
    use automerge::transaction::Transactable;

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
