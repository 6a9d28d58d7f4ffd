//! What the server needs from a database, as a trait, so the request handlers never see SQL. The
//! embedded default is [`crate::storage::sqlite::SqliteStorage`]; a PostgreSQL implementation plugs in here.
//!
//! Documents are written with optimistic concurrency: each stored document has a version, and
//! [`Storage::commit`] refuses with [`StorageError::Conflict`] when another writer got there first.
//! The caller then reloads and merges again — Automerge makes the retry a merge, not a loss — so
//! several stateless server instances can share one database without sticky sessions.

pub mod offers;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use loyalty_core::DocKind;
use loyalty_core::lots::Lot;
use loyalty_core::programme::Programme;
use loyalty_core::tiers::{Metric, TierState};

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
    #[error("the refunds would exceed the purchase")]
    RefundExceedsPurchase,
    #[error("the request is closed")]
    RequestClosed,
    /// A named record does not exist: `member`, `segment`, `request`.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// An id the caller chose names something else already.
    #[error("{0} was used before for something else")]
    IdReused(String),
    /// The backend failed (I/O, a constraint it did not expect, a stored value it cannot read, its
    /// writer gone). The cause is kept as the error's source, for the log; the client is told only
    /// that the server failed.
    #[error("the database failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    /// The document's epoch (`loyalty_core::epoch`): 0 until it first starts afresh.
    pub epoch: u64,
    pub bytes: Vec<u8>,
}

/// A document to store, if it is still at `expected_version`.
pub struct DocWrite {
    pub kind: DocKind,
    pub expected_version: i64,
    pub bytes: Vec<u8>,
    /// `bytes` are Automerge change chunks to add after the stored bytes rather than a whole save
    /// replacing them. Automerge loads a save followed by change chunks as one document, so the
    /// stored bytes stay loadable; the card uses this to store a posting's change without
    /// re-encoding the whole history (see `crate::card_cache`).
    pub append: bool,
    /// `bytes` start this new epoch of the document: the stored epoch becomes it, and every
    /// device's sync state for the document is forgotten (it described the old history).
    pub new_epoch: Option<u64>,
}

#[async_trait]
pub trait Storage: TillStorage + MessagingStorage + Send + Sync + 'static {
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

    /// Targeted offers and segments (`crate::storage::offers`). Every backend has them: the till
    /// applies offers at every purchase.
    fn targeting(&self) -> std::sync::Arc<dyn crate::storage::offers::ProgrammeStorage>;
}

/// A member as the till sees them.
#[derive(Debug, Clone)]
pub struct TillMember {
    pub member_id: String,
    pub card_number: String,
    pub blocked: bool,
    pub balance: i64,
    pub tier: String,
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
    /// The programme rule behind it (`base:gold`, `redeem`, `expiry`, `offer:off_1`...).
    #[serde(default)]
    pub rule: String,
}

/// Everything one change of a member's points writes, in one transaction: the posting under its
/// idempotency key with the answer stored for retries, the ledger movements, the lots they touch,
/// and the member's balance, pending points and tier (raising their revision, which leaves the
/// card document behind until `crate::projection::card` catches it up).
/// Purchases and refunds are postings; so are expiries, event points and operator tier changes,
/// each with its own kind, so every ledger movement belongs to exactly one posting.
/// What a posting is: a till's purchase or refund, or one of the programme's own postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingKind {
    Purchase,
    Refund,
    /// Event points (enrollment, a completed profile, a birthday).
    Event,
    /// The settle job's maturing and expiry of points.
    Settle,
    /// An operator's tier change.
    Tier,
}

impl PostingKind {
    /// The name stored with the posting.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::Event => "event",
            Self::Settle => "settle",
            Self::Tier => "tier",
        }
    }

    /// The kind a stored name names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Purchase,
            Self::Refund,
            Self::Event,
            Self::Settle,
            Self::Tier,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for PostingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub struct Posting {
    /// The posting's id: a till's idempotency key in its till's namespace (`till:<till>:<key>`),
    /// or the programme's own key (`event:…`, `settle:…`, `tier:…`).
    pub idempotency_key: String,
    pub request_hash: [u8; 32],
    pub member_id: String,
    /// The till, or `programme` for what the programme does by itself.
    pub till_id: String,
    pub receipt_id: String,
    pub kind: PostingKind,
    /// For a refund: the purchase's posting id.
    pub refers_to: Option<String>,
    /// For a refund: the purchase's refunded total its shares were computed from. Another refund
    /// of the purchase written in between (by any instance) makes the write a conflict to retry.
    pub refunded_before: Option<i64>,
    pub total_minor: i64,
    pub earned: i64,
    pub redeemed: i64,
    pub movements: Vec<LedgerMovement>,
    /// The member's revision this posting was computed from: a concurrent change is a conflict.
    pub expected_revision: i64,
    pub state: MemberProgramme,
    /// Lots created or changed, each with the posting that created it.
    pub lots: Vec<Lot>,
    /// Offers applied at the till, whose use counts go up by one.
    pub offer_uses: Vec<String>,
    pub at_ms: i64,
    /// The JSON answer stored for retries.
    pub response: Vec<u8>,
}

/// The member's programme state as the members table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProgramme {
    /// Spendable points: what the available lots hold.
    pub balance: i64,
    pub pending: i64,
    pub tier: TierState,
    /// When the programme must look at the member again by itself (maturity, expiry, review).
    pub next_event_at_ms: Option<i64>,
}

/// A member's points and tier, loaded to compute a posting.
#[derive(Debug, Clone)]
pub struct MemberBook {
    pub member_id: String,
    pub card_number: String,
    pub blocked: bool,
    pub revision: i64,
    /// The stored version of the member's card document, read in the same snapshot, so the card's
    /// projection can tell whether its cached copy is current without reading the document.
    pub card_version: Option<i64>,
    /// The member's revision the card document shows (`crate::projection::card`).
    pub card_revision: i64,
    pub state: MemberProgramme,
    /// The lots with points left.
    pub lots: Vec<Lot>,
    /// Spend (minor units) or points earned on purchases less refunds, since the window's start.
    pub qualifying: i64,
    /// The member's offers valid at the time asked for (empty when none was asked).
    pub offers: Vec<crate::storage::offers::TillOffer>,
}

/// What the member's card document must show: their book and their most recent ledger movements
/// (newest first).
#[derive(Debug, Clone)]
pub struct CardSource {
    pub book: MemberBook,
    pub recent: Vec<loyalty_core::card::LedgerEntry>,
}

/// See [`TillStorage::purchase_context`].
#[derive(Debug, Clone, Default)]
pub struct PurchaseContext {
    pub prior: Option<PriorPosting>,
    pub session: Option<CheckoutSession>,
    pub book: Option<MemberBook>,
}

/// A posting already made under an idempotency key: whose it is, and its answer.
#[derive(Debug, Clone)]
pub struct PriorPosting {
    pub member_id: String,
    pub till_id: String,
    pub kind: PostingKind,
    pub request_hash: [u8; 32],
    pub response: Vec<u8>,
}

/// A purchase as a refund needs it.
#[derive(Debug, Clone)]
pub struct PurchaseRecord {
    /// Its posting id.
    pub posting: String,
    pub member_id: String,
    pub total_minor: i64,
    pub earned: i64,
    pub redeemed: i64,
    /// Minor units refunded so far.
    pub refunded_minor: i64,
    /// The lots the purchase earned, spent and expired ones included.
    pub lots: Vec<Lot>,
}

#[async_trait]
pub trait TillStorage: Send + Sync + 'static {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError>;
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
    /// The posting stored under a posting id, if any.
    async fn prior_posting(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<PriorPosting>, StorageError>;
    /// What a purchase reads before it takes the member's lock, in one round trip where the
    /// backend can: the session named and the posting stored under the purchase's posting id (a
    /// retry); when there is none, the book of the session's member with their offers at `now_ms`.
    /// The book may be stale by the time the lock is held: the posting's revision guard catches
    /// that, and the ledger reads it again.
    async fn purchase_context(
        &self,
        idempotency_key: &str,
        session_id: &str,
        metric: Metric,
        window_start_ms: i64,
        now_ms: i64,
    ) -> Result<PurchaseContext, StorageError> {
        let prior = self.prior_posting(idempotency_key).await?;
        let session = self.checkout_session(session_id).await?;
        if prior.is_some() {
            return Ok(PurchaseContext {
                prior,
                session,
                book: None,
            });
        }
        let book = match &session {
            Some(s) => {
                self.member_book(&s.member_id, metric, window_start_ms, Some(now_ms))
                    .await?
            }
            None => None,
        };
        Ok(PurchaseContext {
            prior: None,
            session,
            book,
        })
    }
    /// The purchase posted under a posting id (`None` when there is none, or it is no purchase).
    async fn purchase(&self, posting: &str) -> Result<Option<PurchaseRecord>, StorageError>;
    /// The member's book (as [`TillStorage::member_book`], without offers) and the purchase a
    /// refund reverses, from one snapshot: the refunded total agrees with the member's revision,
    /// which every refund raises, so the revision guard catches any refund that came between.
    async fn refund_book(
        &self,
        member_id: &str,
        purchase: &str,
        metric: Metric,
        window_start_ms: i64,
    ) -> Result<Option<(MemberBook, Option<PurchaseRecord>)>, StorageError>;
    /// Writes a posting; [`StorageError::Conflict`] when the member's points moved meanwhile,
    /// [`StorageError::Duplicate`] when the idempotency key was used meanwhile,
    /// [`StorageError::RefundExceedsPurchase`] when refunds together would exceed their purchase.
    async fn post(&self, posting: Posting) -> Result<(), StorageError>;
    /// Whether the member's card document shows an older revision of their points than the
    /// ledger has (false for an unknown member).
    async fn card_behind(&self, member_id: &str) -> Result<bool, StorageError>;
    /// The member's book (as [`TillStorage::member_book`], without offers) with their `limit`
    /// most recent ledger movements, from one snapshot.
    async fn card_source(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Option<CardSource>, StorageError>;
    /// Stores the card document brought up to the member's `revision`, if it is still at the
    /// version it was read at ([`StorageError::Conflict`] otherwise); `None` when the card already
    /// showed everything and only the revision it shows moves on.
    async fn store_card(
        &self,
        member_id: &str,
        card: Option<DocWrite>,
        revision: i64,
    ) -> Result<(), StorageError>;
    /// The member's points, lots and tier, with what they qualify with over `window_start_ms`..,
    /// and with `offers_at_ms` the offers the till may apply at that time (none from a backend
    /// without targeting), all from one snapshot.
    async fn member_book(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        offers_at_ms: Option<i64>,
    ) -> Result<Option<MemberBook>, StorageError>;
    /// Members the programme must look at by `now_ms` (maturity, expiry, warnings, reviews), with
    /// their next event, in (next event, member id) order after `after`.
    async fn members_due(
        &self,
        now_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StorageError>;
    /// Members whose `birthday` preference falls on (`month`, `day`).
    async fn birthdays(&self, month: u8, day: u8) -> Result<Vec<String>, StorageError>;
    /// The programme configuration, `None` before an operator set one.
    async fn programme(&self) -> Result<Option<Programme>, StorageError>;
    async fn set_programme(&self, programme: &Programme, now_ms: i64) -> Result<(), StorageError>;
    async fn revoke_device(&self, device_id: &str, now_ms: i64) -> Result<bool, StorageError>;
    async fn set_blocked(&self, member_id: &str, blocked: bool) -> Result<bool, StorageError>;
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// These members (no duplicates); all must exist.
    Members(Vec<String>),
    /// Every member of the segment (`segment_members`); it must have at least one.
    Segment(String),
}

/// A message to record, with the policy its recipients are checked against.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub message_id: String,
    /// `marketing` or `service`.
    pub kind: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    /// Tells a retry (same id, same hash) from a clash (same id, another message).
    pub request_hash: [u8; 32],
    pub target: SendTarget,
    pub now_ms: i64,
    /// The day the marketing limit counts in (days since the epoch, UTC).
    pub day: i64,
    /// Marketing messages a member may get per day.
    pub marketing_per_day: i64,
}

/// What a member's inbox document lacks: messages and request threads recorded relationally but
/// not yet projected into it, each with the version it was read at.
#[derive(Debug, Clone, Default)]
pub struct PendingInbox {
    pub messages: Vec<(loyalty_core::inbox::Message, i64)>,
    pub threads: Vec<(loyalty_core::inbox::Thread, i64)>,
}

impl PendingInbox {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.threads.is_empty()
    }
}

/// One external delivery the outbound worker has claimed.
#[derive(Debug, Clone)]
pub struct OutboundJob {
    pub message_id: String,
    pub member_id: String,
    pub channel: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
    /// The member's consent for the channel now (it may have changed since the send).
    pub consent: bool,
    /// The channel's address from the member's preferences, if they gave one.
    pub address: Option<String>,
}

/// How an outbound delivery ended for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    Sent,
    /// The provider or the address failed.
    Failed,
    /// Not sent on purpose (consent withdrawn).
    Refused,
}

impl FinalStatus {
    /// The delivery's status as stored and reported (`docs/protocol.md`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }
}

/// How an outbound delivery ended, or when to try it again.
#[derive(Debug, Clone)]
pub enum OutboundOutcome {
    /// Sent, failed or refused, with the reason when it was not sent.
    Final {
        status: FinalStatus,
        reason: Option<String>,
    },
    Retry {
        reason: String,
        at_ms: i64,
    },
}

/// Which deliveries an operator asks for.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub message_id: Option<String>,
    pub member_id: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
}

/// Communications: messages and their per-member deliveries, the outbound queue, and the
/// programme's side of members' requests. Decisions over many members (consent, the daily
/// marketing limit, segment fan-out) are single statements here, so a send to a million members
/// writes rows, not a million documents.
#[async_trait]
pub trait MessagingStorage: Send + Sync + 'static {
    /// Records a message and one delivery per recipient, deciding each recipient's status (rate
    /// limit, consent) in the same transaction. A retry with the same id and hash returns the first
    /// answer; another message under the same id is [`StorageError::IdReused`]; an unknown member
    /// or an empty segment is [`StorageError::NotFound`], and nothing is stored.
    async fn send_message(
        &self,
        send: NewSend,
    ) -> Result<loyalty_core::api::SendSummary, StorageError>;

    /// What the member's inbox document still lacks (at most a few hundred entries per call).
    async fn pending_inbox(&self, member_id: &str) -> Result<PendingInbox, StorageError>;

    /// Whether [`MessagingStorage::pending_inbox`] has anything, cheaply.
    async fn has_pending_inbox(&self, member_id: &str) -> Result<bool, StorageError>;

    /// Marks entries projected, if they are still at the versions given (a newer change stays
    /// pending).
    async fn mark_projected(
        &self,
        member_id: &str,
        messages: Vec<(String, i64)>,
        threads: Vec<(String, i64)>,
    ) -> Result<(), StorageError>;

    /// Claims up to `limit` queued external deliveries that are due, for `lease_ms`: another worker
    /// (this or another instance) does not take them meanwhile.
    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboundJob>, StorageError>;

    async fn finish_outbound(
        &self,
        message_id: &str,
        member_id: &str,
        outcome: OutboundOutcome,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    async fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<loyalty_core::api::DeliveryRecord>, StorageError>;

    /// Members' requests, the most recently active first, optionally of one status or member.
    async fn requests(
        &self,
        status: Option<String>,
        member_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<loyalty_core::api::RequestRecord>, StorageError>;

    /// Records an operator's reply (if any) and the request's new status; the thread becomes
    /// pending for the member's inbox. A reply id used before with another text is
    /// [`StorageError::IdReused`]; an unknown request is [`StorageError::NotFound`].
    async fn answer_request(
        &self,
        member_id: &str,
        request_id: &str,
        reply: Option<loyalty_core::inbox::Reply>,
        status: &'static str,
        now_ms: i64,
    ) -> Result<(), StorageError>;
}
