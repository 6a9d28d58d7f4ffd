//! Communications as stored: messages and their per-member deliveries, the outbound queue, and the
//! programme's side of members' requests.

use async_trait::async_trait;

use crate::storage::StorageError;

/// What [`MessageStore::send_message`] did. Only `Sent` stored anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum SendOutcome {
    /// Recorded (or, for a retry with the same id and text, recorded before): what became of
    /// each recipient.
    Sent(loyalty_core::api::SendSummary),
    /// Another message was sent under this id.
    IdReused,
    /// Members of the target do not exist.
    UnknownMembers,
    /// The segment has no members (or does not exist).
    EmptySegment,
}

/// What [`MessageStore::answer_request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Answer {
    /// Recorded (a retry of the same reply, or closing a closed request, changes nothing).
    Answered,
    UnknownRequest,
    /// The request is closed: a reply would reopen it. Nothing was stored.
    Closed,
    /// Another reply was recorded under the reply id. Nothing was stored.
    ReplyIdReused,
}

/// A member's request's status as the programme sees it: what a list filters on and what an
/// operator's action sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// As the member opened it, nobody having answered yet.
    Open,
    Answered,
    /// Final: the member opens a new request.
    Closed,
}

impl RequestStatus {
    const ALL: [Self; 3] = [Self::Open, Self::Answered, Self::Closed];

    /// The status as stored and shown (`loyalty_core::inbox::REQUEST_STATUSES`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Answered => "answered",
            Self::Closed => "closed",
        }
    }

    /// The status a name names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What a message is, which decides the policy its recipients are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Counts against the daily marketing limit and needs the member's consent off the app.
    Marketing,
    /// About the member's own account: neither limit nor consent applies.
    Service,
}

impl MessageKind {
    const ALL: [Self; 2] = [Self::Marketing, Self::Service];

    /// The kind as stored and shown (`loyalty_core::inbox::KINDS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Service => "service",
        }
    }

    /// The kind a name names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
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
    pub kind: MessageKind,
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
    pub kind: MessageKind,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
    /// The member's consent for the channel now (it may have changed since the send).
    pub consent: bool,
    /// The channel's address from the member's preferences, if they gave one.
    pub address: Option<String>,
}

/// Where a delivery stands: what an operator's list filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for the outbound worker (or for a retry).
    Queued,
    /// In the member's in-app inbox: the inbox document is the delivery.
    Sent,
    /// A provider (SMTP server, gateway) accepted it; whether it arrived is the provider's to tell.
    HandedOver,
    /// The provider told us it arrived (a delivery receipt).
    Delivered,
    /// No provider is configured for the channel: it only reached the server's log.
    Logged,
    /// The provider or the address failed; the reason and the provider's words say why.
    Failed,
    /// Not sent on purpose (no consent, the daily limit).
    Refused,
}

impl DeliveryStatus {
    /// Every status, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Sent,
        Self::HandedOver,
        Self::Delivered,
        Self::Logged,
        Self::Failed,
        Self::Refused,
    ];

    /// The status as stored and reported (`docs/protocol.md`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::HandedOver => "handed_over",
            Self::Delivered => "delivered",
            Self::Logged => "logged",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    /// The status a name names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A receipt applied to a handed-over delivery (`?1` status, `?2` reason, `?3` detail, `?4` now,
/// `?5` message, `?6` member), written once for both backends ([`crate::storage::dialect`]): the
/// provider's reference kept unless the receipt brings words of its own, and the inbox entry
/// pending again.
pub(crate) const RECEIPT_UPDATE: &str = "
    UPDATE deliveries
    SET status = ?1, reason = ?2, detail = coalesce(?3, detail), updated_at = ?4,
        projected = CASE WHEN in_inbox = 1 THEN 0 ELSE 1 END, version = version + 1
    WHERE message_id = ?5 AND member_id = ?6 AND status = 'handed_over'";
/// The delivery's status, when [`RECEIPT_UPDATE`] changed nothing.
pub(crate) const RECEIPT_STATUS: &str =
    "SELECT status FROM deliveries WHERE message_id = ?1 AND member_id = ?2";

/// A receipt's outcome when its conditional update changed no row: from the delivery's status
/// (`None`: no such delivery). One rule for every backend.
pub(crate) fn receipt_outcome(current: Option<&str>, receipt: ReceiptStatus) -> ReceiptOutcome {
    match current.map(|name| DeliveryStatus::from_name(name).unwrap_or(DeliveryStatus::Failed)) {
        None => ReceiptOutcome::NotFound,
        Some(status) if status == DeliveryStatus::from(receipt) => ReceiptOutcome::Unchanged,
        Some(status) => ReceiptOutcome::NotHandedOver(status),
    }
}

/// What a provider's delivery receipt says became of a delivery it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// It reached the address.
    Delivered,
    /// It did not (a bounce, an unreachable phone): `reason` says why.
    Failed,
}

impl From<ReceiptStatus> for DeliveryStatus {
    fn from(status: ReceiptStatus) -> Self {
        match status {
            ReceiptStatus::Delivered => Self::Delivered,
            ReceiptStatus::Failed => Self::Failed,
        }
    }
}

/// A provider's delivery receipt for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub status: ReceiptStatus,
    /// The provider's reason for a failure (`bad_address`, `bounced`, …).
    pub reason: Option<String>,
    /// The provider's words, clipped to [`MAX_DETAIL_CHARS`].
    pub detail: Option<String>,
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// The delivery was handed over and now says what the receipt says.
    Recorded,
    /// The delivery already said so: a provider's retry of the same receipt.
    Unchanged,
    /// No such delivery.
    NotFound,
    /// The delivery is not waiting for a receipt (queued, in-app, logged, refused, or already
    /// decided otherwise): its status now.
    NotHandedOver(DeliveryStatus),
}

/// How an external delivery ended for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    /// A provider accepted it.
    HandedOver,
    /// Only logged: no provider is configured.
    Logged,
    /// The provider or the address failed.
    Failed,
    /// Not sent on purpose (consent withdrawn).
    Refused,
}

impl FinalStatus {
    /// The delivery's status as stored and reported (`docs/protocol.md`).
    pub fn as_str(self) -> &'static str {
        DeliveryStatus::from(self).as_str()
    }
}

impl From<FinalStatus> for DeliveryStatus {
    fn from(status: FinalStatus) -> Self {
        match status {
            FinalStatus::HandedOver => Self::HandedOver,
            FinalStatus::Logged => Self::Logged,
            FinalStatus::Failed => Self::Failed,
            FinalStatus::Refused => Self::Refused,
        }
    }
}

/// How an outbound delivery ended, or when to try it again. `detail` is the provider's words (its
/// reply, its id for the message, its error), kept for operators.
#[derive(Debug, Clone)]
pub enum OutboundOutcome {
    /// Handed over, logged, failed or refused, with the reason when it was not delivered.
    Final {
        status: FinalStatus,
        reason: Option<String>,
        detail: Option<String>,
    },
    Retry {
        reason: String,
        detail: Option<String>,
        at_ms: i64,
    },
}

/// The most of a provider's words kept with a delivery, in characters.
pub const MAX_DETAIL_CHARS: usize = 300;

/// A provider's words cut to what a delivery keeps.
pub fn clip_detail(detail: Option<&str>) -> Option<String> {
    detail.map(|d| d.chars().take(MAX_DETAIL_CHARS).collect())
}

/// Which deliveries an operator asks for.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub message_id: Option<String>,
    pub member_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: i64,
}

/// Communications: messages and their per-member deliveries, the outbound queue, and the
/// programme's side of members' requests. Decisions over many members (consent, the daily
/// marketing limit, segment fan-out) are single statements here, so a send to a million members
/// writes rows, not a million documents.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Records a message and one delivery per recipient, deciding each recipient's status (rate
    /// limit, consent) in the same transaction. A retry with the same id and hash returns the first
    /// answer; another message under the same id, an unknown member or an empty segment store
    /// nothing ([`SendOutcome`]).
    async fn send_message(&self, send: NewSend) -> Result<SendOutcome, StorageError>;

    /// What the member's inbox document still lacks (at most a few hundred entries per call).
    async fn pending_inbox(&self, member_id: &str) -> Result<PendingInbox, StorageError>;

    /// Whether [`MessageStore::pending_inbox`] has anything, cheaply.
    async fn has_pending_inbox(&self, member_id: &str) -> Result<bool, StorageError>;

    /// Marks entries projected, if they are still at the versions given (a newer change stays
    /// pending).
    async fn mark_inbox_projected(
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

    /// A provider's receipt for a delivery it accepted: only a `handed_over` delivery changes
    /// (to `delivered` or `failed`, its inbox entry pending again so the member's app learns it);
    /// the same receipt again changes nothing.
    async fn record_receipt(
        &self,
        message_id: &str,
        member_id: &str,
        receipt: Receipt,
        now_ms: i64,
    ) -> Result<ReceiptOutcome, StorageError>;

    async fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<loyalty_core::api::DeliveryRecord>, StorageError>;

    /// Members' requests, the most recently active first, optionally of one status or member.
    async fn requests(
        &self,
        status: Option<RequestStatus>,
        member_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<loyalty_core::api::RequestRecord>, StorageError>;

    /// Records an operator's reply (if any) and the request's new status; the thread becomes
    /// pending for the member's inbox. An unknown or closed request, or a reply id used before
    /// with another text, store nothing ([`Answer`]).
    async fn answer_request(
        &self,
        member_id: &str,
        request_id: &str,
        reply: Option<loyalty_core::inbox::Reply>,
        status: RequestStatus,
        now_ms: i64,
    ) -> Result<Answer, StorageError>;
}
