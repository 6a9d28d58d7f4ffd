//! The four Automerge documents every member has, who may write each of them, how each one starts,
//! and the typed field access the document modules share.
//!
//! Every document starts from a *genesis* change that is byte-for-byte the same wherever it is made
//! (a fixed actor and time zero). The server and every device therefore share the document's root
//! containers from the first moment, and a device can write to its member document before it has ever
//! synced without creating a rival `activations` map that would later hide the other device's work.
//!
//! Value types are part of the protocol (see `docs/protocol.md`): scalar strings for fields, signed
//! integers for points and money, Automerge timestamps (milliseconds since the epoch) for times.
//!
//! ```
//! use loyalty_core::document::{genesis, DocKind};
//! let mut a = genesis(DocKind::Member);
//! let mut b = genesis(DocKind::Member);
//! assert_eq!(a.get_heads(), b.get_heads());
//! ```

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

/// The version of the document schemas this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Which side of the system may change a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Server,
    Device,
}

/// One of a member's documents. The numeric code is what the sync wire format carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Card,
    Offers,
    Inbox,
    Member,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Card,
        DocKind::Offers,
        DocKind::Inbox,
        DocKind::Member,
    ];

    pub fn code(self) -> u8 {
        match self {
            DocKind::Card => 0,
            DocKind::Offers => 1,
            DocKind::Inbox => 2,
            DocKind::Member => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            DocKind::Card => "card",
            DocKind::Offers => "offers",
            DocKind::Inbox => "inbox",
            DocKind::Member => "member",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn writer(self) -> Writer {
        match self {
            DocKind::Member => Writer::Device,
            _ => Writer::Server,
        }
    }

    pub fn index(self) -> usize {
        usize::from(self.code())
    }

    /// The top-level maps of this document; created once, in the genesis change.
    fn containers(self) -> &'static [&'static str] {
        match self {
            DocKind::Card => &["ledger"],
            DocKind::Offers => &["offers"],
            DocKind::Inbox => &["messages"],
            DocKind::Member => &["activations", "read", "archived", "preferences", "consents"],
        }
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What can be wrong with a document's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("{doc} document: field `{field}` is missing")]
    Missing { doc: DocKind, field: String },
    #[error("{doc} document: field `{field}` should be {expected}")]
    WrongType {
        doc: DocKind,
        field: String,
        expected: &'static str,
    },
    #[error(
        "{doc} document: schema version {found} is newer than this build understands ({SCHEMA_VERSION})"
    )]
    UnsupportedSchema { doc: DocKind, found: i64 },
    #[error("{doc} document: unexpected field `{field}`")]
    Unexpected { doc: DocKind, field: String },
    #[error("{doc} document: {what} exceeds the limit of {limit}")]
    TooLarge {
        doc: DocKind,
        what: String,
        limit: usize,
    },
    #[error("{doc} document: {message}")]
    Invalid { doc: DocKind, message: String },
    #[error(
        "{doc} document: the `{field}` map was not made by the shared change that must make it (docs/protocol.md §3)"
    )]
    RivalMap { doc: DocKind, field: String },
    #[error("{doc} document could not be decoded: {message}")]
    Corrupt { doc: DocKind, message: String },
}

/// The genesis state of a document of this kind (see the module docs for why it is deterministic).
pub fn genesis(kind: DocKind) -> AutoCommit {
    let actor = ActorId::from(format!("loyalty-genesis-{}", kind.name()).as_bytes());
    let mut doc = AutoCommit::new().with_actor(actor);
    // Writes to a fresh document cannot fail: the root map always exists.
    let _ = doc.put(automerge::ROOT, "schema", SCHEMA_VERSION);
    let _ = doc.put(automerge::ROOT, "kind", kind.name());
    for name in kind.containers() {
        let _ = doc.put_object(automerge::ROOT, *name, ObjType::Map);
    }
    // Time zero keeps the change hash identical on every machine.
    doc.commit();
    // Nobody may write under the genesis actor again: its next sequence number would be claimed by
    // every replica at once.
    doc.set_actor(ActorId::random());
    doc
}

/// A short fingerprint of a document's heads: equal digests mean equal histories (up to a 2^-64
/// chance), which lets the sync protocol settle "nothing changed" in one small round trip.
pub fn heads_digest(heads: &[ChangeHash]) -> [u8; 8] {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for h in sorted {
        ctx.update(&h.0);
    }
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// Checks the root of a document: its kind and a schema version this build can read.
pub fn check_root(doc: &AutoCommit, kind: DocKind) -> Result<(), DocumentError> {
    let fields = Fields::new(doc, kind);
    let schema = fields.int(&automerge::ROOT, "schema")?;
    if schema > SCHEMA_VERSION {
        return Err(DocumentError::UnsupportedSchema {
            doc: kind,
            found: schema,
        });
    }
    let found = fields.str(&automerge::ROOT, "kind")?;
    if found != kind.name() {
        return Err(DocumentError::Invalid {
            doc: kind,
            message: format!("it says it is a `{found}` document"),
        });
    }
    Ok(())
}

/// Typed reads of one document, with errors that name the document and the field.
pub struct Fields<'a> {
    pub doc: &'a AutoCommit,
    pub kind: DocKind,
}

impl<'a> Fields<'a> {
    pub fn new(doc: &'a AutoCommit, kind: DocKind) -> Self {
        Self { doc, kind }
    }

    fn scalar(&self, obj: &ObjId, key: &str) -> Result<Option<ScalarValue>, DocumentError> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => Ok(Some(s.into_owned())),
            Ok(Some((Value::Object(_), _))) => Err(self.wrong(key, "a scalar")),
            Ok(None) => Ok(None),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    fn required(&self, obj: &ObjId, key: &str) -> Result<ScalarValue, DocumentError> {
        self.scalar(obj, key)?
            .ok_or_else(|| DocumentError::Missing {
                doc: self.kind,
                field: key.to_string(),
            })
    }

    pub fn str(&self, obj: &ObjId, key: &str) -> Result<String, DocumentError> {
        match self.required(obj, key)? {
            ScalarValue::Str(s) => Ok(s.to_string()),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    pub fn opt_str(&self, obj: &ObjId, key: &str) -> Result<Option<String>, DocumentError> {
        match self.scalar(obj, key)? {
            None => Ok(None),
            Some(ScalarValue::Str(s)) => Ok(Some(s.to_string())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    pub fn int(&self, obj: &ObjId, key: &str) -> Result<i64, DocumentError> {
        match self.required(obj, key)? {
            ScalarValue::Int(i) => Ok(i),
            _ => Err(self.wrong(key, "a signed integer")),
        }
    }

    pub fn timestamp(&self, obj: &ObjId, key: &str) -> Result<i64, DocumentError> {
        match self.required(obj, key)? {
            ScalarValue::Timestamp(t) => Ok(t),
            _ => Err(self.wrong(key, "a timestamp")),
        }
    }

    pub fn opt_timestamp(&self, obj: &ObjId, key: &str) -> Result<Option<i64>, DocumentError> {
        match self.scalar(obj, key)? {
            None => Ok(None),
            Some(ScalarValue::Timestamp(t)) => Ok(Some(t)),
            Some(_) => Err(self.wrong(key, "a timestamp")),
        }
    }

    pub fn bool(&self, obj: &ObjId, key: &str) -> Result<bool, DocumentError> {
        match self.required(obj, key)? {
            ScalarValue::Boolean(b) => Ok(b),
            _ => Err(self.wrong(key, "a boolean")),
        }
    }

    /// The map stored under `key`, which must exist.
    pub fn map(&self, obj: &ObjId, key: &str) -> Result<ObjId, DocumentError> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Ok(id),
            Ok(Some(_)) => Err(self.wrong(key, "a map")),
            Ok(None) => Err(DocumentError::Missing {
                doc: self.kind,
                field: key.to_string(),
            }),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    pub fn keys(&self, obj: &ObjId) -> Vec<String> {
        self.doc.keys(obj).collect()
    }

    fn wrong(&self, key: &str, expected: &'static str) -> DocumentError {
        DocumentError::WrongType {
            doc: self.kind,
            field: key.to_string(),
            expected,
        }
    }

    fn corrupt(&self, e: automerge::AutomergeError) -> DocumentError {
        DocumentError::Corrupt {
            doc: self.kind,
            message: e.to_string(),
        }
    }
}

/// Writes a map entry only when its value differs, so re-publishing an unchanged record adds no
/// operations to the document's history.
pub fn put_if_changed(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: ScalarValue,
) -> Result<(), automerge::AutomergeError> {
    let current = match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => Some(s.into_owned()),
        _ => None,
    };
    if current.as_ref() != Some(&value) {
        doc.put(obj, key, value)?;
    }
    Ok(())
}

/// A map's entries as read in one pass ([`ReadDoc::map_range`]): its scalars by key and its
/// nested objects' ids. A writer that checks many keys of one map checks them against this
/// instead of looking each up: in Automerge 0.12 one key's look-up seeks through the map's
/// operations, and costs about as much as reading a small map whole (`docs/benchmarks.md`, the
/// live update).
#[derive(Default)]
pub struct MapSnapshot {
    scalars: std::collections::HashMap<String, ScalarValue>,
    objects: std::collections::HashMap<String, (ObjType, ObjId)>,
}

impl MapSnapshot {
    /// The entries of map `obj` now.
    pub fn read(doc: &AutoCommit, obj: &ObjId) -> Self {
        let mut snapshot = Self::default();
        for item in doc.map_range(obj, ..) {
            let key = item.key.to_string();
            if let automerge::ValueRef::Object(kind) = item.value {
                snapshot.objects.insert(key, (kind, item.id()));
            } else if let Value::Scalar(value) = item.value.into_value() {
                snapshot.scalars.insert(key, value.into_owned());
            }
        }
        snapshot
    }

    /// The keys the map had.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.scalars
            .keys()
            .chain(self.objects.keys())
            .map(String::as_str)
    }

    /// [`put_if_changed`] of `obj[key]`, where `obj` is the map this snapshot was read from.
    pub fn put_if_changed(
        &self,
        doc: &mut AutoCommit,
        obj: &ObjId,
        key: &str,
        value: ScalarValue,
    ) -> Result<(), automerge::AutomergeError> {
        if self.scalars.get(key) != Some(&value) {
            doc.put(obj, key, value)?;
        }
        Ok(())
    }

    /// [`ensure_map`] of `parent[key]`, where `parent` is the map this snapshot was read from.
    pub fn ensure_map(
        &self,
        doc: &mut AutoCommit,
        parent: &ObjId,
        key: &str,
    ) -> Result<ObjId, automerge::AutomergeError> {
        match self.objects.get(key) {
            Some((ObjType::Map, id)) => Ok(id.clone()),
            _ => doc.put_object(parent, key, ObjType::Map),
        }
    }
}

/// The map under `parent[key]`, created when absent.
pub fn ensure_map(
    doc: &mut AutoCommit,
    parent: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    match doc.get(parent, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => doc.put_object(parent, key, ObjType::Map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_identical_everywhere_and_valid() {
        for kind in DocKind::ALL {
            let mut a = genesis(kind);
            let mut b = genesis(kind);
            assert_eq!(a.get_heads(), b.get_heads(), "{kind}");
            assert_eq!(a.save(), b.save());
            check_root(&a, kind).unwrap();
        }
        let mut card = genesis(DocKind::Card);
        let mut offers = genesis(DocKind::Offers);
        assert_ne!(card.get_heads(), offers.get_heads());
    }

    #[test]
    fn codes_and_names_round_trip() {
        for kind in DocKind::ALL {
            assert_eq!(DocKind::from_code(kind.code()), Some(kind));
            assert_eq!(DocKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(DocKind::from_code(9), None);
        assert_eq!(DocKind::from_name("wallet"), None);
    }

    #[test]
    fn digest_ignores_order_and_tells_histories_apart() {
        let mut a = genesis(DocKind::Member);
        let h1 = a.get_heads();
        a.put(automerge::ROOT, "x", 1).unwrap();
        a.commit();
        let h2 = a.get_heads();
        assert_ne!(heads_digest(&h1), heads_digest(&h2));
        let both = [h1[0], h2[0]];
        let reversed = [h2[0], h1[0]];
        assert_eq!(heads_digest(&both), heads_digest(&reversed));
    }

    #[test]
    fn root_check_refuses_newer_schema_and_wrong_kind() {
        let mut doc = genesis(DocKind::Card);
        doc.put(automerge::ROOT, "schema", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            check_root(&doc, DocKind::Card),
            Err(DocumentError::UnsupportedSchema { .. })
        ));
        let doc = genesis(DocKind::Inbox);
        assert!(matches!(
            check_root(&doc, DocKind::Card),
            Err(DocumentError::Invalid { .. })
        ));
    }

    #[test]
    fn typed_reads_name_the_field() {
        let mut doc = genesis(DocKind::Card);
        doc.put(automerge::ROOT, "balance", ScalarValue::Uint(5))
            .unwrap();
        let f = Fields::new(&doc, DocKind::Card);
        let err = f.int(&automerge::ROOT, "balance").unwrap_err();
        assert!(err.to_string().contains("balance"), "{err}");
        assert!(matches!(
            f.str(&automerge::ROOT, "nope"),
            Err(DocumentError::Missing { .. })
        ));
    }
}
