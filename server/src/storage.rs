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
    #[error("this checkout code was used before")]
    CodeReplayed,
    #[error("the balance does not cover the redemption")]
    InsufficientPoints,
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
    /// The Ed25519 key the device signs checkout codes with.
    pub public_key: [u8; 32],
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
pub trait Storage: TillStorage + Send + Sync + 'static {
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

    /// Stores documents and sync states in one transaction, durably, or nothing at all. `mirror`,
    /// when the member document changed, replaces the relational copy of what it says.
    async fn commit(
        &self,
        member_id: &str,
        device_id: Option<&str>,
        documents: Vec<DocWrite>,
        peer_states: Vec<(DocKind, Vec<u8>)>,
        mirror: Option<loyalty_core::member::MemberState>,
    ) -> Result<(), StorageError>;

    /// Targeted offers and segments, where the backend supports them (`crate::targeting`).
    fn programme(&self) -> Option<std::sync::Arc<dyn crate::targeting::ProgrammeStorage>> {
        None
    }
}

/// A member as the till sees them.
#[derive(Debug, Clone)]
pub struct TillMember {
    pub member_id: String,
    pub card_number: String,
    pub blocked: bool,
    pub balance: i64,
}

/// A registered checkout key.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    pub device_id: String,
    pub public_key: Vec<u8>,
    pub revoked: bool,
}

/// A checkout session opened by a successful scan.
#[derive(Debug, Clone)]
pub struct CheckoutSession {
    pub session_id: String,
    pub member_id: String,
    pub till_id: String,
    pub expires_at_ms: i64,
}

/// One movement of points, as the relational ledger records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LedgerMovement {
    pub tx_id: String,
    pub points: i64,
    pub reason: String,
}

/// Everything one purchase or refund writes, in one transaction: the idempotency record with its
/// answer, the ledger movements, the new balance (guarded against overdraft and against a
/// concurrent change), and the card document that projects it.
pub struct Posting {
    pub idempotency_key: String,
    pub request_hash: [u8; 32],
    pub member_id: String,
    pub till_id: String,
    pub receipt_id: String,
    /// `purchase` or `refund`.
    pub kind: &'static str,
    /// For a refund: the purchase's idempotency key.
    pub refers_to: Option<String>,
    pub total_minor: i64,
    pub earned: i64,
    pub redeemed: i64,
    pub movements: Vec<LedgerMovement>,
    pub expected_balance: i64,
    pub new_balance: i64,
    pub card: DocWrite,
    pub at_ms: i64,
    /// The JSON answer stored for retries.
    pub response: Vec<u8>,
}

/// A posting already made under an idempotency key.
#[derive(Debug, Clone)]
pub struct PriorPosting {
    pub request_hash: [u8; 32],
    pub response: Vec<u8>,
}

/// A purchase as a refund needs it.
#[derive(Debug, Clone)]
pub struct PurchaseRecord {
    pub member_id: String,
    pub total_minor: i64,
    pub earned: i64,
    pub redeemed: i64,
    /// Minor units refunded so far.
    pub refunded_minor: i64,
}

#[async_trait]
pub trait TillStorage: Send + Sync + 'static {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError>;
    async fn till_member(&self, member_id: &str) -> Result<Option<TillMember>, StorageError>;
    async fn device_key(
        &self,
        member_id: &str,
        key_id: u32,
    ) -> Result<Option<DeviceKey>, StorageError>;
    /// Records the code as used and opens the session, atomically; a code used before is
    /// [`StorageError::CodeReplayed`].
    async fn open_checkout(
        &self,
        code_id: [u8; 16],
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    async fn checkout_session(
        &self,
        session_id: &str,
    ) -> Result<Option<CheckoutSession>, StorageError>;
    async fn prior_posting(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<PriorPosting>, StorageError>;
    async fn purchase(&self, idempotency_key: &str)
    -> Result<Option<PurchaseRecord>, StorageError>;
    /// Writes a posting; [`StorageError::Conflict`] when the balance or the card moved meanwhile,
    /// [`StorageError::InsufficientPoints`] when the balance would go below zero through a
    /// redemption, [`StorageError::Duplicate`] when the idempotency key was used meanwhile.
    async fn post(&self, posting: Posting) -> Result<(), StorageError>;
    async fn revoke_device(&self, device_id: &str, now_ms: i64) -> Result<bool, StorageError>;
    async fn set_blocked(&self, member_id: &str, blocked: bool) -> Result<bool, StorageError>;
}
