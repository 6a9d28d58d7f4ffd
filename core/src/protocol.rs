//! The sync wire format: how one HTTP request carries Automerge sync messages for all of a member's
//! documents, and how the answer comes back. `docs/protocol.md` is the prose version of this module;
//! keep the two in step.
//!
//! Every entry carries an 8-byte digest of the sender's document heads
//! ([`crate::document::heads_digest`]). When both digests agree and neither side has a message, the
//! document is settled without any Automerge message at all, which is what makes "nothing changed"
//! one round trip of about a hundred bytes for four documents.
//!
//! A document that has started afresh (a new *epoch*, see [`crate::epoch`]) carries its epoch in
//! every entry about it: the document-code byte gets [`EPOCH_FLAG`] and a uLEB epoch follows it.
//! Epoch 0 is written as nothing at all, so the steady state's bytes do not change.
//!
//! ```
//! use loyalty_core::protocol::{RequestEntry, SyncRequest};
//! use loyalty_core::DocKind;
//! let request = SyncRequest { entries: vec![RequestEntry { doc: DocKind::Card, epoch: 0, digest: [7; 8], message: None }] };
//! let bytes = request.encode();
//! assert_eq!(bytes.len(), 2 + 10);
//! assert_eq!(SyncRequest::decode(&bytes).unwrap(), request);
//! ```

use serde::{Deserialize, Serialize};

use crate::document::DocKind;

pub const VERSION: u8 = 1;
pub const CONTENT_TYPE: &str = "application/vnd.loyalty.sync.v1";
/// The path of the sync endpoint, under the member it syncs ([`crate::api::paths::member_sync`]).
pub fn sync_path(member_id: &str) -> String {
    crate::api::paths::member_sync(member_id)
}

/// Set on an entry's document-code byte when a uLEB epoch follows it.
pub const EPOCH_FLAG: u8 = 0x80;

/// Rejection codes a server puts on a document entry it refuses.
pub mod codes {
    pub const READ_ONLY_DOCUMENT: &str = "read_only_document";
    pub const INVALID_DOCUMENT: &str = "invalid_document";
    pub const MALFORMED_MESSAGE: &str = "malformed_message";
    /// The message carries more operations, changes, references or compressed bytes than one
    /// request may ([`crate::budget::limits`]); it was refused before anything was applied.
    pub const TOO_MANY_OPERATIONS: &str = "too_many_operations";
    /// Applying the message would make the member document's history longer than its limit.
    pub const HISTORY_TOO_LONG: &str = "history_too_long";
    /// A member-document change that made the `requests` map other than with the shared change.
    pub const RIVAL_MAP: &str = "rival_map";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("sync body ends early")]
    Truncated,
    #[error("sync body version {0} is not supported (expected {VERSION})")]
    BadVersion(u8),
    #[error("unknown document code {0}")]
    UnknownDocument(u8),
    #[error("document {0} appears twice")]
    DuplicateDocument(DocKind),
    #[error("unknown entry status {0}")]
    BadStatus(u8),
    #[error("a rejection entry does not hold a JSON error")]
    BadRejection,
    #[error("{0} bytes follow the last entry")]
    TrailingBytes(usize),
    #[error("length field is too large")]
    BadLength,
    #[error("not an Automerge sync message: {0}")]
    BadSyncMessage(String),
    #[error("an epoch flag must be followed by a non-zero epoch")]
    BadEpoch,
}

/// A document code with its epoch: the code alone for epoch 0, else flagged and followed by it.
fn put_doc(out: &mut Vec<u8>, doc: DocKind, epoch: u64) {
    if epoch == 0 {
        out.push(doc.code());
    } else {
        out.push(doc.code() | EPOCH_FLAG);
        put_uleb(out, epoch);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEntry {
    pub doc: DocKind,
    /// The epoch of the sender's copy (0 until the server first starts the document afresh).
    pub epoch: u64,
    pub digest: [u8; 8],
    /// An Automerge sync message, when the device has one to send this round.
    pub message: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub entries: Vec<RequestEntry>,
}

/// Why the server refused one document of a sync request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Both sides have the same heads; nothing more to do for this document.
    InSync,
    /// Keep syncing this document; here is the server's next message, if it has one.
    Continue(Option<Vec<u8>>),
    /// The device's data for this document was refused and not stored.
    Rejected(Rejection),
    /// The document started afresh: here is the whole new epoch (an Automerge save). The
    /// device's copy belongs to another epoch and must be replaced, never merged.
    NewEpoch(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseEntry {
    pub doc: DocKind,
    /// The epoch of the server's copy.
    pub epoch: u64,
    /// Digest of the server's heads after it processed the entry.
    pub digest: [u8; 8],
    pub reply: Reply,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The server's clock when it answered, so devices can correct their own.
    pub server_time_ms: i64,
    pub entries: Vec<ResponseEntry>,
}

fn put_uleb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uleb(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over a body being decoded; every read checks the remaining length.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        let (&b, rest) = self.buf.split_first().ok_or(ProtocolError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn uleb(&mut self) -> Result<u64, ProtocolError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(ProtocolError::BadLength)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = usize::try_from(self.uleb()?).map_err(|_| ProtocolError::BadLength)?;
        self.take(len)
    }

    fn digest(&mut self) -> Result<[u8; 8], ProtocolError> {
        let mut d = [0u8; 8];
        d.copy_from_slice(self.take(8)?);
        Ok(d)
    }

    /// A document code, and its epoch when the code carries [`EPOCH_FLAG`].
    fn doc(&mut self, seen: &mut Vec<DocKind>) -> Result<(DocKind, u64), ProtocolError> {
        let byte = self.u8()?;
        let code = byte & !EPOCH_FLAG;
        let doc = DocKind::from_code(code).ok_or(ProtocolError::UnknownDocument(code))?;
        if seen.contains(&doc) {
            return Err(ProtocolError::DuplicateDocument(doc));
        }
        seen.push(doc);
        let epoch = if byte & EPOCH_FLAG != 0 {
            match self.uleb()? {
                0 => return Err(ProtocolError::BadEpoch),
                e => e,
            }
        } else {
            0
        };
        Ok((doc, epoch))
    }

    fn version(&mut self) -> Result<(), ProtocolError> {
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(ProtocolError::BadVersion(v)),
        }
    }

    fn finish(self) -> Result<(), ProtocolError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(ProtocolError::TrailingBytes(n)),
        }
    }
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, self.entries.len() as u8];
        for e in &self.entries {
            put_doc(&mut out, e.doc, e.epoch);
            out.extend_from_slice(&e.digest);
            put_bytes(&mut out, e.message.as_deref().unwrap_or_default());
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader { buf: body };
        r.version()?;
        let count = r.u8()?;
        let mut seen = Vec::new();
        let mut entries = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (doc, epoch) = r.doc(&mut seen)?;
            let digest = r.digest()?;
            let message = r.bytes()?;
            entries.push(RequestEntry {
                doc,
                epoch,
                digest,
                message: (!message.is_empty()).then(|| message.to_vec()),
            });
        }
        r.finish()?;
        Ok(Self { entries })
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.server_time_ms.to_be_bytes());
        out.push(self.entries.len() as u8);
        for e in &self.entries {
            put_doc(&mut out, e.doc, e.epoch);
            let (status, payload): (u8, std::borrow::Cow<'_, [u8]>) = match &e.reply {
                Reply::InSync => (0, Default::default()),
                Reply::Continue(m) => (1, m.as_deref().unwrap_or_default().into()),
                Reply::Rejected(r) => (2, serde_json::to_vec(r).unwrap_or_default().into()),
                Reply::NewEpoch(save) => (3, save.as_slice().into()),
            };
            out.push(status);
            out.extend_from_slice(&e.digest);
            put_bytes(&mut out, &payload);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader { buf: body };
        r.version()?;
        let mut time = [0u8; 8];
        time.copy_from_slice(r.take(8)?);
        let count = r.u8()?;
        let mut seen = Vec::new();
        let mut entries = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (doc, epoch) = r.doc(&mut seen)?;
            let status = r.u8()?;
            let digest = r.digest()?;
            let payload = r.bytes()?;
            let reply = match status {
                0 => Reply::InSync,
                1 => Reply::Continue((!payload.is_empty()).then(|| payload.to_vec())),
                2 => Reply::Rejected(
                    serde_json::from_slice(payload).map_err(|_| ProtocolError::BadRejection)?,
                ),
                3 => Reply::NewEpoch(payload.to_vec()),
                s => return Err(ProtocolError::BadStatus(s)),
            };
            entries.push(ResponseEntry {
                doc,
                epoch,
                digest,
                reply,
            });
        }
        r.finish()?;
        Ok(Self {
            server_time_ms: i64::from_be_bytes(time),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn response() -> SyncResponse {
        SyncResponse {
            server_time_ms: 1_700_000_000_123,
            entries: vec![
                ResponseEntry {
                    doc: DocKind::Card,
                    epoch: 0,
                    digest: [1; 8],
                    reply: Reply::InSync,
                },
                ResponseEntry {
                    doc: DocKind::Inbox,
                    epoch: 300,
                    digest: [2; 8],
                    reply: Reply::Continue(Some(vec![0x43; 300])),
                },
                ResponseEntry {
                    doc: DocKind::Offers,
                    epoch: 2,
                    digest: [4; 8],
                    reply: Reply::NewEpoch(vec![0x85; 40]),
                },
                ResponseEntry {
                    doc: DocKind::Member,
                    epoch: 0,
                    digest: [3; 8],
                    reply: Reply::Rejected(Rejection {
                        code: codes::INVALID_DOCUMENT.into(),
                        message: "nope".into(),
                    }),
                },
            ],
        }
    }

    #[test]
    fn response_round_trips() {
        let r = response();
        assert_eq!(SyncResponse::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn nothing_changed_is_small() {
        let request = SyncRequest {
            entries: DocKind::ALL
                .iter()
                .map(|&doc| RequestEntry {
                    doc,
                    epoch: 0,
                    digest: [0; 8],
                    message: None,
                })
                .collect(),
        };
        let response = SyncResponse {
            server_time_ms: 0,
            entries: DocKind::ALL
                .iter()
                .map(|&doc| ResponseEntry {
                    doc,
                    epoch: 0,
                    digest: [0; 8],
                    reply: Reply::InSync,
                })
                .collect(),
        };
        assert_eq!(request.encode().len() + response.encode().len(), 42 + 54);
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert_eq!(SyncRequest::decode(&[]), Err(ProtocolError::Truncated));
        assert_eq!(
            SyncRequest::decode(&[9, 0]),
            Err(ProtocolError::BadVersion(9))
        );
        assert_eq!(
            SyncRequest::decode(&[1, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::UnknownDocument(7))
        );
        let dup = [
            1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            SyncRequest::decode(&dup),
            Err(ProtocolError::DuplicateDocument(DocKind::Card))
        );
        assert_eq!(
            SyncRequest::decode(&[1, 0, 5]),
            Err(ProtocolError::TrailingBytes(1))
        );
        let huge_len = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            SyncRequest::decode(&huge_len),
            Err(ProtocolError::Truncated)
        );
        let endless = [
            1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff,
        ];
        assert_eq!(SyncRequest::decode(&endless), Err(ProtocolError::BadLength));
        // An epoch flag must carry a real epoch, and the flag does not hide an unknown code.
        let zero_epoch = [1, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            SyncRequest::decode(&zero_epoch),
            Err(ProtocolError::BadEpoch)
        );
        assert_eq!(
            SyncRequest::decode(&[1, 1, 0x87, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::UnknownDocument(7))
        );
    }

    #[test]
    fn an_epoch_costs_bytes_only_when_there_is_one() {
        let entry = |epoch| RequestEntry {
            doc: DocKind::Member,
            epoch,
            digest: [9; 8],
            message: None,
        };
        let plain = SyncRequest {
            entries: vec![entry(0)],
        }
        .encode();
        assert_eq!(plain[2], 3);
        let flagged = SyncRequest {
            entries: vec![entry(200)],
        };
        let bytes = flagged.encode();
        assert_eq!(bytes.len(), plain.len() + 2);
        assert_eq!(&bytes[2..5], &[0x83, 0xc8, 0x01]);
        assert_eq!(SyncRequest::decode(&bytes).unwrap(), flagged);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
        }

        #[test]
        fn requests_round_trip(msgs in proptest::collection::vec((proptest::option::of(proptest::collection::vec(any::<u8>(), 1..300)), any::<u64>()), 0..4)) {
            let entries = msgs.into_iter().zip(DocKind::ALL).map(|((message, epoch), doc)| RequestEntry { doc, epoch, digest: [doc.code(); 8], message }).collect();
            let req = SyncRequest { entries };
            prop_assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
        }
    }
}
