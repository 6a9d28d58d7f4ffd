//! Members and their devices as stored: members, activation codes, devices and their revocation,
//! blocking, the Automerge documents with their per-device sync states, and the one atomic
//! [`MemberStore::commit`] that stores documents, sync states and the member document's relational
//! mirror together.
//!
//! Documents are written with optimistic concurrency: each stored document has a version, and
//! [`MemberStore::commit`] refuses when another writer got there first. The caller then reloads
//! and merges again — Automerge makes the retry a merge, not a loss — so several stateless server
//! instances can share one database without sticky sessions.

use async_trait::async_trait;
use loyalty_core::DocKind;

use crate::storage::StorageError;

/// What [`MemberStore::create_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum MemberCreation {
    Created,
    /// The member id or the card number is taken: nothing was stored (draw others and retry).
    Taken,
}

/// What [`MemberStore::redeem_activation_code`] did. Only `Redeemed` stored anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Redemption {
    /// The code is used now, and the device registered for this member.
    Redeemed(MemberRecord),
    Unknown,
    /// Used before (or by a redemption that won a race with this one).
    Used,
    Expired,
    /// Another key of the member has the same 32-bit key id (one in four billion): the code
    /// stays usable for a retry with a new key.
    KeyIdTaken,
}

/// What a guarded document write did ([`MemberStore::commit`], `LedgerStore::store_card`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Commit {
    /// Everything was stored.
    Committed,
    /// A document was no longer at its expected version — another writer got there first — and
    /// nothing was stored: load again, merge, and retry.
    Conflict,
}

pub struct NewMember {
    pub member_id: String,
    pub card_number: String,
    pub external_ref: Option<String>,
    pub created_at_ms: i64,
    pub documents: Vec<(DocKind, Vec<u8>)>,
    pub code_hash: [u8; 32],
    pub code_expires_at_ms: i64,
}

pub struct NewDevice {
    pub device_id: String,
    pub secret_hash: [u8; 32],
    /// The Ed25519 key the device signs checkout codes with.
    pub public_key: [u8; 32],
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub device_id: String,
    pub member_id: String,
    pub secret_hash: [u8; 32],
    pub revoked: bool,
    /// When the device was last recorded as seen (`MemberStore::device_seen`).
    pub last_seen_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub card_number: String,
}

#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub kind: DocKind,
    pub version: i64,
    /// The document's epoch (`loyalty_core::epoch`): 0 until it first starts afresh.
    pub epoch: u64,
    pub bytes: Vec<u8>,
    /// What a sync compares without loading the bytes, when it is known.
    pub summary: Option<DocSummary>,
}

/// What a sync needs of a stored document to answer "nothing changed" without loading it: the
/// digest of its heads (`loyalty_core::document::heads_digest`) and the size of its history (for
/// the epoch policy). Written with the bytes it describes, or unknown (`None`): a write that does
/// not give one clears the stored one, so a summary never describes other bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocSummary {
    pub digest: [u8; 8],
    pub ops: u64,
    pub changes: u64,
}

/// A member's document as the no-op check of a sync sees it: no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocHeader {
    pub kind: DocKind,
    pub version: i64,
    pub epoch: u64,
    pub summary: Option<DocSummary>,
}

/// Everything a sync must know to answer "nothing changed" without loading a document, read in
/// one statement: the member's document headers and whether any projection has work waiting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncCheck {
    pub documents: Vec<DocHeader>,
    /// Postings the card does not show yet (`LedgerStore::card_behind`).
    pub card_behind: bool,
    /// Offers waiting to be projected (`OfferStore::has_pending_offers`).
    pub offers_pending: bool,
    /// Messages or request threads waiting to be projected (`MessageStore::has_pending_inbox`).
    pub inbox_pending: bool,
}

/// Columns of one document's header among [`MEMBER_HEADER_COLUMNS`].
pub(crate) const HEADER_FIELDS: usize = 5;

/// The copies of the four document headers in the member's row (`m`), as both backends name them
/// (migration 032 of each, kept by triggers on `documents`): `<kind>_doc_<field>`, in the order
/// of [`DocKind::ALL`], [`HEADER_FIELDS`] columns each — version (NULL: no such document), epoch,
/// and the summary's digest, operations and changes.
pub(crate) static MEMBER_HEADER_COLUMNS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        DocKind::ALL
            .map(|k| {
                format!(
                    "m.{0}_doc_version, m.{0}_doc_epoch, m.{0}_doc_digest, m.{0}_doc_ops, \
                     m.{0}_doc_changes",
                    k.name()
                )
            })
            .join(", ")
    });

/// A document to store, if it is still at `expected_version`.
pub struct DocWrite {
    pub kind: DocKind,
    pub expected_version: i64,
    pub bytes: Vec<u8>,
    /// `bytes` are Automerge change chunks to add after the stored bytes rather than a whole save
    /// replacing them. Automerge loads a save followed by change chunks as one document, so the
    /// stored bytes stay loadable; the card uses this to store a posting's change without
    /// re-encoding the whole history (see `crate::projection::card_cache`).
    pub append: bool,
    /// `bytes` start this new epoch of the document: the stored epoch becomes it, and every
    /// device's sync state for the document is forgotten (it described the old history).
    pub new_epoch: Option<u64>,
    /// The summary of the document as it is after this write (with `append`, of the whole), or
    /// `None` to leave it unknown.
    pub summary: Option<DocSummary>,
    /// For the card: the member's points revision (`members.revision`) the written card shows.
    /// The member's card revision moves up to it (never back) in the same transaction, so a sync
    /// stores a catch-up of the card with what it tells the device in one commit.
    pub shows_revision: Option<i64>,
}

#[async_trait]
pub trait MemberStore: Send + Sync + 'static {
    /// Creates a member with their documents and first activation code, atomically; a clash of
    /// member id or card number stores nothing.
    async fn create_member(&self, member: NewMember) -> Result<MemberCreation, StorageError>;

    async fn member(&self, member_id: &str) -> Result<Option<MemberRecord>, StorageError>;

    async fn add_activation_code(
        &self,
        member_id: &str,
        code_hash: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<(), StorageError>;

    /// Uses an activation code (once) and registers the device it enrolls, atomically.
    async fn redeem_activation_code(
        &self,
        code_hash: [u8; 32],
        now_ms: i64,
        device: NewDevice,
    ) -> Result<Redemption, StorageError>;

    async fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StorageError>;

    async fn load_documents(
        &self,
        member_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<StoredDoc>, StorageError>;

    /// The member's document headers and pending projection work, as one snapshot; an unknown
    /// member has no documents. What a sync reads first, so that "nothing changed" loads nothing.
    async fn sync_check(&self, member_id: &str, now_ms: i64) -> Result<SyncCheck, StorageError>;

    /// The device and, when it belongs to `member_id`, that member's [`SyncCheck`] (else an empty
    /// one), in one read: what a sync reads with the request's credentials, so that "nothing
    /// changed" costs one indexed read in all.
    async fn device_and_sync_check(
        &self,
        device_id: &str,
        member_id: &str,
        now_ms: i64,
    ) -> Result<(Option<DeviceRecord>, SyncCheck), StorageError>;

    /// Records the summaries of documents still at the given versions whose summary is unknown
    /// (written before summaries were kept, or by a writer that gave none); others are left as
    /// they are. Never changes a document's version.
    async fn remember_summaries(
        &self,
        member_id: &str,
        summaries: Vec<(DocKind, i64, DocSummary)>,
    ) -> Result<(), StorageError>;

    /// The stored per-(device, document) sync states; absent ones are simply missing.
    async fn load_peer_states(
        &self,
        device_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<(DocKind, Vec<u8>)>, StorageError>;

    /// Stores documents and sync states in one transaction, durably, or nothing at all: when any
    /// document is no longer at its expected version the answer is [`Commit::Conflict`]. `mirror`,
    /// when the member document changed, replaces the relational copy of what it says. A commit
    /// of sync states alone ([`only_sync_states`]) need not wait for the disk: losing one in a
    /// power failure costs the device's next sync a round trip, never a change.
    async fn commit(
        &self,
        member_id: &str,
        device_id: Option<&str>,
        documents: Vec<DocWrite>,
        peer_states: Vec<(DocKind, Vec<u8>)>,
        mirror: Option<loyalty_core::member::MemberState>,
    ) -> Result<Commit, StorageError>;

    /// Records that the device was seen at `at_ms` (never moving the time back).
    async fn device_seen(&self, device_id: &str, at_ms: i64) -> Result<(), StorageError>;

    /// Marks the device revoked (at its first revocation's time); false for an unknown device.
    async fn revoke_device(&self, device_id: &str, now_ms: i64) -> Result<bool, StorageError>;
    async fn set_blocked(&self, member_id: &str, blocked: bool) -> Result<bool, StorageError>;
}

/// Whether a commit holds sync states alone: no document, no member state. What such a commit
/// stores only says what the server told a device, which the sync protocol can learn again.
pub(crate) fn only_sync_states(
    documents: &[DocWrite],
    mirror: &Option<loyalty_core::member::MemberState>,
) -> bool {
    documents.is_empty() && mirror.is_none()
}
