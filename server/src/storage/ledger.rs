//! The till's ledger as stored: members by card, checkout keys, checkout sessions (single-use
//! codes), postings under their idempotency keys (the group-committed write of points), the refund
//! book, the card document's source and store, the member's book, and the members the programme
//! must look at (due events, birthdays).

use async_trait::async_trait;
use loyalty_core::card::LedgerEntry;
use loyalty_core::lots::{Lot, LotBalance};
use loyalty_core::reasons::{ReasonCode, ReasonParams};
use loyalty_core::tiers::{Metric, TierState};

use crate::storage::StorageError;
use crate::storage::members::{Commit, DocWrite};

/// What [`LedgerStore::open_checkout`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CheckoutOpening {
    /// The code is recorded as used and the session is open.
    Opened,
    /// The code was used before (a screenshot, a second scan): nothing was stored.
    Replayed,
}

/// What [`LedgerStore::post`] did. Only `Posted` stored anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum PostOutcome {
    Posted,
    /// The member's points moved since the posting was computed (its revision, a refund of the
    /// same purchase, an offer's last use): read again and retry.
    Conflict,
    /// A posting under the same idempotency key was written meanwhile: answer as it did.
    KeyTaken,
    /// The refunds of the purchase together would exceed it.
    RefundExceedsPurchase,
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
    /// When it was revoked (the first revocation of the key or its device).
    pub revoked_at_ms: Option<i64>,
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
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LedgerMovement {
    pub tx_id: String,
    pub points: i64,
    pub reason: String,
    /// The programme rule behind it (`base:gold`, `redeem`, `expiry`, `offer:off_1`...).
    #[serde(default)]
    pub rule: String,
    /// The structured reason `reason` is the default English wording of (`loyalty_core::reasons`).
    #[serde(default)]
    pub reason_code: ReasonCode,
    #[serde(default)]
    pub reason_params: ReasonParams,
    /// When earned points become spendable, if later than the movement.
    #[serde(default)]
    pub available_at_ms: Option<i64>,
}

/// Completes a ledger row read back with its stored reason: its own code, or for a row written
/// before codes existed (`reason_code` NULL) the one its rule implies; its parameters from their
/// JSON text (empty for such rows). Both backends read rows through this.
pub(crate) fn stored_entry(
    mut entry: LedgerEntry,
    code: Option<&str>,
    params: &str,
) -> Result<LedgerEntry, StorageError> {
    entry.reason_code = ReasonCode::stored(code, &entry.rule);
    entry.reason_params =
        ReasonParams::from_stored(params).map_err(|e| StorageError::Backend(Box::new(e)))?;
    Ok(entry)
}

/// Everything one change of a member's points writes, in one transaction: the posting under its
/// idempotency key with the answer stored for retries, the ledger movements, the lots they touch,
/// and the member's balance, pending points and tier (raising their revision, which leaves the
/// card document behind until `crate::projection::card` catches it up).
/// Purchases and refunds are postings; so are expiries, event points, operator tier changes and
/// operator adjustments, each with its own kind, so every ledger movement belongs to exactly one posting.
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
    /// An operator's credit or debit of points (`crate::service::adjustments`).
    Adjust,
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
            Self::Adjust => "adjust",
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
            Self::Adjust,
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
    /// or the programme's own key (`event:…`, `settle:…`, `tier:…`), or an operator's
    /// adjustment key in the operators' namespace (`adjust:<key>`).
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
    /// The operator who made it (an adjustment); `None` for a till's or the programme's own.
    pub operator: Option<String>,
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

/// What the member's card document must show: their book, the ledger movements posted since the
/// revision the card shows (`book.card_revision`), newest first, and what each open lot holds
/// towards the balances. `book.lots` is left empty: the card's sums need only the balances, and
/// reading each lot's id and rule cost a catch-up more than the rest of the book.
#[derive(Debug, Clone)]
pub struct CardSource {
    pub book: MemberBook,
    pub unseen: Vec<LedgerEntry>,
    pub balances: Vec<LotBalance>,
}

/// See [`LedgerStore::purchase_context`].
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
    /// The operator who made it, for an operator's posting.
    pub operator: Option<String>,
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
pub trait LedgerStore: Send + Sync + 'static {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError>;
    async fn device_key(
        &self,
        member_id: &str,
        key_id: u32,
    ) -> Result<Option<DeviceKey>, StorageError>;
    /// Records the code as used and opens the session, atomically; a code used before opens
    /// nothing ([`CheckoutOpening::Replayed`]).
    async fn open_checkout(
        &self,
        code_id: [u8; 16],
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<CheckoutOpening, StorageError>;
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
    /// The member's book (as [`LedgerStore::member_book`], without offers) and the purchase a
    /// refund reverses, from one snapshot: the refunded total agrees with the member's revision,
    /// which every refund raises, so the revision guard catches any refund that came between.
    async fn refund_book(
        &self,
        member_id: &str,
        purchase: &str,
        metric: Metric,
        window_start_ms: i64,
    ) -> Result<Option<(MemberBook, Option<PurchaseRecord>)>, StorageError>;
    /// Writes a posting, durably, or nothing of it ([`PostOutcome`] says why). Postings that
    /// arrive together may be committed together, but each succeeds or fails alone.
    async fn post(&self, posting: Posting) -> Result<PostOutcome, StorageError>;
    /// Whether the member's card document shows an older revision of their points than the
    /// ledger has (false for an unknown member).
    async fn card_behind(&self, member_id: &str) -> Result<bool, StorageError>;
    /// The member's book (as [`LedgerStore::member_book`], without offers, its lots as their
    /// balances: see [`CardSource`]) with the `limit` most recent (by time, then transaction id)
    /// of the ledger movements the card has not shown: those posted at a revision above the
    /// card's, whenever they happened (an offline purchase is posted late with the time it was
    /// made). From one snapshot. A card that is up to date reads no movement at all, however long
    /// the member's history.
    async fn card_source(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Option<CardSource>, StorageError>;
    /// Stores the card document brought up to the member's `revision`, if it is still at the
    /// version it was read at ([`Commit::Conflict`] otherwise, storing nothing); `None` when the
    /// card already showed everything and only the revision it shows moves on.
    async fn store_card(
        &self,
        member_id: &str,
        card: Option<DocWrite>,
        revision: i64,
    ) -> Result<Commit, StorageError>;
    /// The member's points, lots and tier, with what they qualify with over `window_start_ms`..,
    /// and with `offers_at_ms` the offers the till may apply at that time, all from one snapshot.
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
}
