//! The records and enums the apps see, and their conversions from the core's types. Nothing here
//! decides anything: the filters only select by the state the core computed.

use loyalty_core::card::{self, CardStatus as CoreCardStatus};
use loyalty_core::checkout_code::CheckoutCode as CoreCheckoutCode;
use loyalty_core::inbox::MessageView;
use loyalty_core::offers::{OfferState as CoreOfferState, OfferView};
use loyalty_core::qr::QrMatrix;
use loyalty_core::requests::RequestView;
use loyalty_core::store::Credentials;
use loyalty_core::{DocKind, SyncReport as CoreSyncReport};

use crate::LoyaltyError;
use crate::reasons::{ReasonCode, ReasonParams};

/// One of the member's documents; a [`crate::ChangeListener`] is told which ones changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Document {
    Card,
    Offers,
    Inbox,
    Member,
}

impl From<DocKind> for Document {
    fn from(k: DocKind) -> Self {
        match k {
            DocKind::Card => Document::Card,
            DocKind::Offers => Document::Offers,
            DocKind::Inbox => Document::Inbox,
            DocKind::Member => Document::Member,
        }
    }
}

/// Who this device is enrolled as. The device's secret is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Enrollment {
    pub member_id: String,
    pub card_number: String,
    pub device_id: String,
    pub device_name: String,
    pub server_url: String,
}

impl From<Credentials> for Enrollment {
    fn from(c: Credentials) -> Self {
        Self {
            member_id: c.member_id,
            card_number: c.card_number,
            device_id: c.device_id,
            device_name: c.device_name,
            server_url: c.server_url,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    pub round_trips: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Documents whose content changed on this device.
    pub changed: Vec<Document>,
    /// Documents the server refused this device's data for (a bug to report; the member's own
    /// data is kept).
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Rejection {
    pub document: Document,
    pub code: String,
    pub detail: String,
}

impl From<CoreSyncReport> for SyncReport {
    fn from(r: CoreSyncReport) -> Self {
        Self {
            round_trips: u32::try_from(r.round_trips).unwrap_or(u32::MAX),
            bytes_sent: r.bytes_sent as u64,
            bytes_received: r.bytes_received as u64,
            changed: r.changed.into_iter().map(Document::from).collect(),
            rejected: r
                .rejected
                .into_iter()
                .map(|(doc, rej)| Rejection {
                    document: doc.into(),
                    code: rej.code,
                    detail: rej.message,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CardStatus {
    Active,
    Blocked,
}

/// The member's card: a projection of the server's ledger, never edited on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Card {
    pub card_number: String,
    pub member_id: String,
    pub status: CardStatus,
    pub tier: String,
    /// Points.
    pub balance: i64,
    /// Recent entries, newest first.
    pub ledger: Vec<LedgerEntry>,
    /// The tier, its benefits and progress, pending points and the next expiries; `None` until the
    /// programme has projected them.
    pub standing: Option<Standing>,
}

/// Points earned (positive) or spent or expired (negative) by one transaction.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LedgerEntry {
    pub transaction_id: String,
    pub points: i64,
    pub reason: String,
    pub at_ms: i64,
    /// The programme rule behind it: `base:gold`, `multiplier:coffee`, `offer:ID`, `redeem`,
    /// `refund`, `expiry`, `event:birthday`...
    pub rule: String,
    /// Why, for the app to word in the member's language; `reason` is the default English.
    pub reason_code: ReasonCode,
    pub reason_params: ReasonParams,
    /// When the points become spendable, if later than the entry: pending until then
    /// ([`crate::ledger_entry_is_pending`]).
    pub available_at_ms: Option<i64>,
}

/// What the programme says about the member beyond the balance.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Standing {
    pub tier_name: String,
    /// Set by the programme's staff rather than earned.
    pub tier_manual: bool,
    pub tier_benefits: Vec<String>,
    /// `spend` (minor units) or `points`: what `qualifying` and `needed` count.
    pub metric: String,
    pub qualifying: i64,
    /// The next tier up; `None` at the top.
    pub next_tier_name: Option<String>,
    /// What is still missing to reach it.
    pub needed: i64,
    pub review_at_ms: i64,
    /// When the tier drops unless the member requalifies first.
    pub downgrade_at_ms: Option<i64>,
    /// Earned points that cannot be spent yet.
    pub pending: i64,
    /// The next expiries, soonest first.
    pub expiries: Vec<PointsExpiry>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PointsExpiry {
    pub at_ms: i64,
    pub points: i64,
}

impl From<card::Standing> for Standing {
    fn from(s: card::Standing) -> Self {
        Self {
            tier_name: s.tier_name,
            tier_manual: s.tier_manual,
            tier_benefits: s.tier_benefits,
            metric: s.metric,
            qualifying: s.qualifying,
            next_tier_name: s.next_tier_name,
            needed: s.needed,
            review_at_ms: s.review_at_ms,
            downgrade_at_ms: s.downgrade_at_ms,
            pending: s.pending,
            expiries: s
                .expiries
                .into_iter()
                .map(|e| PointsExpiry {
                    at_ms: e.at_ms,
                    points: e.points,
                })
                .collect(),
        }
    }
}

impl From<card::Card> for Card {
    fn from(c: card::Card) -> Self {
        Self {
            card_number: c.card_number,
            member_id: c.member_id,
            status: match c.status {
                CoreCardStatus::Active => CardStatus::Active,
                CoreCardStatus::Blocked => CardStatus::Blocked,
            },
            tier: c.tier,
            balance: c.balance,
            ledger: c
                .ledger
                .into_iter()
                .map(|e| LedgerEntry {
                    transaction_id: e.tx_id,
                    points: e.points,
                    reason: e.reason,
                    at_ms: e.at_ms,
                    rule: e.rule,
                    reason_code: e.reason_code.into(),
                    reason_params: e.reason_params.into(),
                    available_at_ms: e.available_at_ms,
                })
                .collect(),
            standing: c.standing.map(Standing::from),
        }
    }
}

/// Where an offer stands for the member now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OfferState {
    /// Not valid yet.
    Upcoming,
    /// Valid and usable: activated, or needing no activation.
    Active,
    /// Valid, waiting for the member to activate it.
    Available,
    /// Valid, but used as often as `use_limit` allows: the till no longer applies it.
    UsedUp,
    Expired,
}

/// A personal offer with the member's activation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Offer {
    pub id: String,
    pub title: String,
    pub description: String,
    pub terms: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub needs_activation: bool,
    /// `percent_off`, `fixed_points` or `points_multiplier`.
    pub reward: String,
    /// Percent off, bonus points, or the multiplier in percent (200 = double points).
    pub value: i64,
    /// The product category it applies to; empty for the whole basket.
    pub category: String,
    pub min_spend_minor: i64,
    /// Uses per member; 0 for no limit.
    pub use_limit: i64,
    pub use_count: i64,
    pub state: OfferState,
    /// When the member activated it; `None` if not.
    pub activated_at_ms: Option<i64>,
}

impl From<OfferView> for Offer {
    fn from(v: OfferView) -> Self {
        let o = v.offer;
        Self {
            id: o.id,
            title: o.title,
            description: o.description,
            terms: o.terms,
            valid_from_ms: o.valid_from_ms,
            valid_until_ms: o.valid_until_ms,
            needs_activation: o.needs_activation,
            reward: o.reward.as_str().into(),
            value: o.value,
            category: o.category,
            min_spend_minor: o.min_spend_minor,
            use_limit: o.use_limit,
            use_count: o.use_count,
            state: match v.state {
                CoreOfferState::Upcoming => OfferState::Upcoming,
                CoreOfferState::Active => OfferState::Active,
                CoreOfferState::Available => OfferState::Available,
                CoreOfferState::UsedUp => OfferState::UsedUp,
                CoreOfferState::Expired => OfferState::Expired,
            },
            activated_at_ms: v.activated_at_ms,
        }
    }
}

/// Which offers to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OfferFilter {
    All,
    /// Usable now (state `Active`).
    Active,
    /// Waiting to be activated (state `Available`).
    Available,
    /// Activated by the member, whatever their state now.
    Activated,
    Upcoming,
    /// Used up to their limit (state `UsedUp`).
    UsedUp,
    Expired,
}

impl OfferFilter {
    pub(crate) fn keeps(self, o: &Offer) -> bool {
        match self {
            OfferFilter::All => true,
            OfferFilter::Active => o.state == OfferState::Active,
            OfferFilter::Available => o.state == OfferState::Available,
            OfferFilter::Activated => o.activated_at_ms.is_some(),
            OfferFilter::Upcoming => o.state == OfferState::Upcoming,
            OfferFilter::UsedUp => o.state == OfferState::UsedUp,
            OfferFilter::Expired => o.state == OfferState::Expired,
        }
    }
}

/// A message in the member's inbox with their marks.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    pub id: String,
    /// `inapp`, `push`, `sms` or `email`.
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub sent_at_ms: i64,
    pub read_at_ms: Option<i64>,
    pub archived_at_ms: Option<i64>,
    /// `marketing` or `service`; empty for messages from before kinds existed.
    pub kind: String,
    /// How it fared on push, SMS or e-mail; `None` for in-app messages.
    pub delivery: Option<Delivery>,
}

/// A message's state on its external channel: `status` is `queued`, `handed_over` (a provider
/// accepted it), `delivered` (the provider's receipt says it arrived), `logged` (no provider is
/// configured: nothing was delivered), `failed` or `refused`; `reason` says why it was not sent
/// (`no_consent`: the member has not allowed marketing on that channel; `no_address`;
/// `rate_limited`) or did not arrive (the provider's reason).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Delivery {
    pub status: String,
    pub reason: Option<String>,
    pub at_ms: i64,
}

impl From<MessageView> for Message {
    fn from(v: MessageView) -> Self {
        let m = v.message;
        Self {
            id: m.id,
            channel: m.channel,
            subject: m.subject,
            body: m.body,
            sent_at_ms: m.sent_at_ms,
            read_at_ms: v.read_at_ms,
            archived_at_ms: v.archived_at_ms,
            kind: m.kind,
            delivery: m.delivery.map(|d| Delivery {
                status: d.status,
                reason: d.reason,
                at_ms: d.at_ms,
            }),
        }
    }
}

/// What a member's request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RequestKind {
    Question,
    Complaint,
}

impl RequestKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestKind::Question => "question",
            RequestKind::Complaint => "complaint",
        }
    }
}

/// Where a request stands: `Open` until the retailer answers (and again after the member follows
/// up on an answer), `Answered`, or `Closed` for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RequestStatus {
    Open,
    Answered,
    Closed,
}

/// One message of a request's conversation after its opening text.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RequestEntry {
    pub id: String,
    /// True for the retailer's replies, false for the member's follow-ups.
    pub from_operator: bool,
    /// The reply's signature ("Customer care"); empty for the member.
    pub author: String,
    pub body: String,
    pub at_ms: i64,
}

/// A question or complaint the member opened, with its conversation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberRequest {
    pub id: String,
    pub kind: RequestKind,
    pub subject: String,
    pub body: String,
    pub opened_at_ms: i64,
    pub status: RequestStatus,
    pub last_activity_ms: i64,
    /// Follow-ups and replies, oldest first.
    pub entries: Vec<RequestEntry>,
}

impl From<RequestView> for MemberRequest {
    fn from(v: RequestView) -> Self {
        Self {
            kind: if v.kind == "complaint" {
                RequestKind::Complaint
            } else {
                RequestKind::Question
            },
            status: match v.status.as_str() {
                "answered" => RequestStatus::Answered,
                "closed" => RequestStatus::Closed,
                _ => RequestStatus::Open,
            },
            entries: v
                .entries
                .into_iter()
                .map(|e| RequestEntry {
                    from_operator: e.from == "operator",
                    id: e.id,
                    author: e.author,
                    body: e.body,
                    at_ms: e.at_ms,
                })
                .collect(),
            id: v.id,
            subject: v.subject,
            body: v.body,
            opened_at_ms: v.opened_at_ms,
            last_activity_ms: v.last_activity_ms,
        }
    }
}

/// Which messages to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageFilter {
    /// Everything, archived or not.
    All,
    /// The inbox: not archived.
    Inbox,
    /// Not archived and not read.
    Unread,
    Archived,
}

impl MessageFilter {
    pub(crate) fn keeps(self, m: &Message) -> bool {
        match self {
            MessageFilter::All => true,
            MessageFilter::Inbox => m.archived_at_ms.is_none(),
            MessageFilter::Unread => m.archived_at_ms.is_none() && m.read_at_ms.is_none(),
            MessageFilter::Archived => m.archived_at_ms.is_some(),
        }
    }
}

/// A channel the member consents (or not) to be contacted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentChannel {
    Push,
    Sms,
    Email,
}

impl ConsentChannel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConsentChannel::Push => "push",
            ConsentChannel::Sms => "sms",
            ConsentChannel::Email => "email",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Push, Self::Sms, Self::Email]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Consent {
    pub channel: ConsentChannel,
    pub granted: bool,
    pub at_ms: i64,
}

/// A QR code as a square of modules, row by row, `true` for dark. Draw it with a quiet zone of
/// 4 modules on every side.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QrCode {
    /// Modules on a side.
    pub size: u32,
    /// QR version (1–40).
    pub version: u8,
    /// `size * size` modules, row-major: module (x, y) is `modules[y * size + x]`.
    pub modules: Vec<bool>,
}

/// The code to show at the till: valid until `expires_at_ms` (server time), then show the next.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CheckoutCode {
    /// The code's text, for a QR code in alphanumeric mode (or for a till that types it in).
    pub text: String,
    pub qr: QrCode,
    pub card_number: String,
    pub key_id: u32,
    pub time_step: u32,
    pub expires_at_ms: i64,
}

impl TryFrom<CoreCheckoutCode> for CheckoutCode {
    type Error = LoyaltyError;

    fn try_from(c: CoreCheckoutCode) -> Result<Self, LoyaltyError> {
        let qr = QrMatrix::encode_checkout_code(&c).map_err(|e| LoyaltyError::Storage {
            detail: format!("cannot draw the checkout code: {e}"),
        })?;
        Ok(Self {
            qr: QrCode {
                size: qr.size,
                version: qr.version,
                modules: qr.modules,
            },
            card_number: format!("{:016}", c.card_number),
            key_id: c.key_id,
            time_step: c.time_step,
            expires_at_ms: c.expires_at_ms,
            text: c.text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::member::{Activation, MemberState};
    use loyalty_core::offers::{Offer as CoreOffer, Reward};

    #[test]
    fn usable_now_leaves_out_an_offer_used_up_to_its_limit() {
        let offer = |id: &str, use_count: i64| CoreOffer {
            id: id.into(),
            title: id.into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: 0,
            valid_until_ms: 10_000,
            needs_activation: true,
            reward: Reward::FixedPoints,
            value: 100,
            category: String::new(),
            min_spend_minor: 0,
            use_limit: 1,
            use_count,
        };
        let mut member = MemberState::default();
        for id in ["fresh", "spent"] {
            member.activations.insert(
                id.into(),
                Activation {
                    at_ms: 1,
                    device: "d".into(),
                },
            );
        }
        let offers: Vec<Offer> = [offer("fresh", 0), offer("spent", 1)]
            .into_iter()
            .map(|o| Offer::from(OfferView::new(o, &member, 5_000)))
            .collect();
        let ids = |filter: OfferFilter| -> Vec<&str> {
            offers
                .iter()
                .filter(|o| filter.keeps(o))
                .map(|o| o.id.as_str())
                .collect()
        };
        assert_eq!(ids(OfferFilter::Active), ["fresh"]);
        assert_eq!(ids(OfferFilter::UsedUp), ["spent"]);
        assert_eq!(ids(OfferFilter::Activated), ["fresh", "spent"]);
    }
}

/// A plastic card linked to the member.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LinkedCard {
    /// 16 digits.
    pub card_number: String,
    pub status: LinkedCardStatus,
    pub linked_at_ms: i64,
}

/// Whether a linked card still opens a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LinkedCardStatus {
    Linked,
    /// Reported lost: it opens nothing; the points stay with the member.
    Lost,
}

impl From<loyalty_core::api::LinkedCard> for LinkedCard {
    fn from(c: loyalty_core::api::LinkedCard) -> Self {
        use loyalty_core::api::LinkedCardStatus as Core;
        Self {
            card_number: c.card_number,
            status: match c.status {
                Core::Lost => LinkedCardStatus::Lost,
                Core::Primary | Core::Linked => LinkedCardStatus::Linked,
            },
            linked_at_ms: c.linked_at_ms,
        }
    }
}
