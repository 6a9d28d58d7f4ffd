//! What the server needs from a database, as a trait, so the request handlers never see SQL. The
//! embedded default is [`crate::sqlite::SqliteStorage`]; a PostgreSQL implementation plugs in here.
//!
//! Documents are written with optimistic concurrency: each stored document has a version, and
//! [`Storage::commit`] refuses with [`StorageError::Conflict`] when another writer got there first.
//! The caller then reloads and merges again — Automerge makes the retry a merge, not a loss — so
//! several stateless server instances can share one database without sticky sessions.

use async_trait::async_trait;
use loyalty_core::DocKind;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("another writer changed the document first")]
    Conflict,
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("activation code is not known")]
    CodeUnknown,
    #[error("activation code was already used")]
    CodeUsed,
    #[error("activation code has expired")]
    CodeExpired,
    #[error("the database failed: {0}")]
    Backend(String),
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
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub device_id: String,
    pub member_id: String,
    pub secret_hash: [u8; 32],
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub member_id: String,
    pub card_number: String,
}

#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub kind: DocKind,
    pub version: i64,
    pub bytes: Vec<u8>,
}

/// A document to store, if it is still at `expected_version`.
pub struct DocWrite {
    pub kind: DocKind,
    pub expected_version: i64,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Creates a member with their documents and first activation code, atomically. A clash of
    /// member id or card number is [`StorageError::Duplicate`].
    async fn create_member(&self, member: NewMember) -> Result<(), StorageError>;

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
    ) -> Result<MemberRecord, StorageError>;

    async fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StorageError>;

    async fn load_documents(
        &self,
        member_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<StoredDoc>, StorageError>;

    /// The stored per-(device, document) sync states; absent ones are simply missing.
    async fn load_peer_states(
        &self,
        device_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<(DocKind, Vec<u8>)>, StorageError>;

    /// Stores documents and sync states in one transaction, durably, or nothing at all.
    async fn commit(
        &self,
        member_id: &str,
        device_id: Option<&str>,
        documents: Vec<DocWrite>,
        peer_states: Vec<(DocKind, Vec<u8>)>,
    ) -> Result<(), StorageError>;
}
