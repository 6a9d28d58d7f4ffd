//! The JSON side of the HTTP API, shared by the server, the device and the operator tools: request
//! and response bodies, the error body every failed request carries, and the header that
//! authenticates a device.
//!
//! Request bodies refuse fields they do not know (`#[serde(deny_unknown_fields)]` on every request
//! type and on what they nest), so a misspelt field is an error, never a silently missing value.
//! Response bodies do not: a client keeps working when the server adds a field. None of the
//! request types may use `#[serde(flatten)]`, which does not combine with `deny_unknown_fields`.

use serde::{Deserialize, Serialize};

use crate::inbox::Message;
use crate::offers::Offer;
use crate::reasons::{ReasonCode, ReasonParams};

pub mod history;
pub mod offer_admin;
pub mod offline;
pub mod paths;
pub mod reports;
pub mod watch_list;

/// `GET /readyz`'s body, on `200` and on `503` alike: each check and whether it passed, so an
/// operator sees which one failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// `database` (it answers), `schema` (its version is this server's), `serving` (not shutting
    /// down), in that order.
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadinessCheck {
    pub name: String,
    pub ok: bool,
    /// For people: what was found.
    pub detail: String,
}

/// The body of every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorDetail {
    /// The code and message of an error answer's body; a body that is not ours (a proxy's page)
    /// is `http_error` with the body as its message. Every client reads errors through this.
    pub fn from_body(body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => b.error,
            Err(_) => Self {
                code: "http_error".into(),
                message: String::from_utf8_lossy(body).into_owned(),
            },
        }
    }
}

/// Device credentials as the `Authorization` header carries them: `Bearer <device_id>.<secret>`.
pub fn device_authorization(device_id: &str, secret: &str) -> String {
    format!("Bearer {device_id}.{secret}")
}

/// Splits a device bearer token into id and secret.
pub fn parse_device_token(header: &str) -> Option<(&str, &str)> {
    let token = header.strip_prefix("Bearer ")?;
    let (id, secret) = token.split_once('.')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// 12 Crockford Base32 characters as printed (`XXXX-XXXX-XXXX`); case, dashes and spaces do
    /// not matter, and O, I and L read as 0, 1 and 1.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[\- ]*([0-9A-TV-Za-tv-z][\- ]*){12}$")
    )]
    pub activation_code: String,
    /// A name the member recognises, shown in activations ("Anna's Pixel").
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub device_name: String,
    /// The device's Ed25519 public key for checkout codes, 32 bytes as 64 hex characters.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9a-f]{64}$"))]
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub member_id: String,
    pub card_number: String,
    pub device_id: String,
    /// Shown once; the server keeps only its hash.
    pub device_secret: String,
    pub server_time_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateMemberRequest {
    /// The retailer's own reference for the member (CRM id), optional.
    #[serde(default)]
    pub external_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateMemberResponse {
    pub member_id: String,
    pub card_number: String,
    pub activation_code: String,
    pub activation_expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationCodeResponse {
    pub member_id: String,
    pub activation_code: String,
    pub activation_expires_at_ms: i64,
}

/// An offer as an operator posts it; the server fills in the id when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostOffer {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 4096))]
    pub title: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub description: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub terms: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    #[serde(default)]
    pub needs_activation: bool,
    pub reward: crate::offers::Reward,
    /// Percent off 1-100, fixed points 1-10^9, or a points multiplier in percent 101-10000,
    /// as the reward says.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000_000))]
    pub value: i64,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub category: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub min_spend_minor: i64,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub use_limit: i64,
}

/// `POST /v1/admin/members/{id}/messages`: one message to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub id: Option<String>,
    /// `inapp` (the default), `push`, `sms` or `email`.
    #[serde(default = "default_channel")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(inapp|push|sms|email)$"))]
    pub channel: String,
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 512))]
    pub subject: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub body: String,
    /// `marketing` or `service`: required (a missing kind is `400 missing_message_kind`), since a
    /// service message skips the member's consent. An `Option` only so that the server, not the
    /// JSON decoder, answers its absence with that code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(marketing|service)$"))]
    pub kind: Option<String>,
}

/// `POST /v1/admin/messages`: one message to explicit members or to a segment. Unlike the
/// one-member endpoint, `kind` has no default: a campaign must say whether it is marketing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Names the message's text (kind, channel, subject, body). Sending the same text under the
    /// same id again reaches only recipients it has not reached (a retry changes nothing);
    /// another text under a used id is refused.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub id: Option<String>,
    /// `inapp`, `push`, `sms` or `email`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(inapp|push|sms|email)$"))]
    pub channel: String,
    /// `marketing` or `service`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(marketing|service)$"))]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 512))]
    pub subject: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub body: String,
    /// Member ids; give these or `segment`, not both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// What became of a message, counted over all its recipients so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendSummary {
    pub message_id: String,
    pub kind: String,
    pub channel: String,
    pub recipients: i64,
    /// Recipients whose in-app inbox gets the message (at their next sync, or at once when online).
    pub in_inbox: i64,
    /// Waiting for the outbound worker (push, SMS, e-mail).
    pub queued: i64,
    /// In-app messages, delivered by the inbox document itself.
    pub sent: i64,
    /// Accepted by a provider (an SMTP server, a gateway behind the webhook).
    #[serde(default)]
    pub handed_over: i64,
    /// Only logged: no provider is configured for the channel.
    #[serde(default)]
    pub logged: i64,
    /// Confirmed by the provider's delivery receipt to have reached the address.
    #[serde(default)]
    pub delivered: i64,
    pub failed: i64,
    /// Marketing not sent on its channel because the member has not consented to it.
    pub refused_no_consent: i64,
    /// Marketing not sent at all: the member had the day's maximum already.
    pub refused_rate_limited: i64,
}

/// What a provider's delivery receipt says: the delivery reached the address, or it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    Delivered,
    Failed,
}

/// The longest reason a receipt may give.
pub const MAX_RECEIPT_REASON: usize = 64;

/// `POST /v1/outbound/receipts`: a provider (the gateway behind the webhook) tells what became of
/// a delivery it accepted, naming it as the webhook's payload did. Signed like the webhook's own
/// requests (`Loyalty-Timestamp`, `Loyalty-Signature`), with the same secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeliveryReceipt {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub message_id: String,
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub member_id: String,
    pub status: ReceiptState,
    /// Why it failed, in the provider's words for machines (`bounced`, `bad_address`,
    /// `unreachable`): lower-case letters, digits and `_`, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9_]{1,64}$"))]
    pub reason: Option<String>,
    /// The provider's words for people (kept, clipped, for operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub detail: Option<String>,
}

/// The answer to a receipt: the delivery's status now, and whether this receipt changed it (a
/// provider's retry of a receipt already recorded changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptRecorded {
    pub status: ReceiptState,
    pub changed: bool,
}

/// One recipient of one message, for operators (`GET /v1/admin/deliveries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryRecord {
    pub message_id: String,
    pub member_id: String,
    pub channel: String,
    pub kind: String,
    /// `queued`, `sent` (in-app), `handed_over` (a provider accepted it), `delivered` (the
    /// provider's receipt says it arrived), `logged` (no provider is configured: it only reached
    /// the log), `failed` or `refused`.
    pub status: String,
    /// `no_consent`, `rate_limited`, `no_address` or the provider's error kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's words: its reply or id when it accepted the delivery, its error when not
    /// (it may quote the address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether the member's in-app inbox shows the message.
    pub in_inbox: bool,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An operator account (`GET /v1/admin/operators`). Its token is never shown again after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorAccount {
    pub operator_id: String,
    pub name: String,
    /// `support`, `marketing` or `admin`.
    pub role: String,
    pub created_at_ms: i64,
    /// Who created it (an operator id).
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at_ms: Option<i64>,
}

/// A new operator account (`POST /v1/admin/operators`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOperator {
    /// The person or system, as the audit log shows it: 1-100 characters.
    pub name: String,
    /// `support`, `marketing` or `admin`.
    pub role: String,
}

/// The answer to creating an operator: the account and its bearer token, shown this once (the
/// server keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedOperator {
    pub operator: OperatorAccount,
    pub token: String,
}

/// A console login (`POST /console/session`): an operator token, a named account's or the
/// bootstrap one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleLogin {
    pub token: String,
}

/// Who a console session is for, and the token its writes send back in `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleSessionInfo {
    pub operator_id: String,
    pub name: String,
    /// `support`, `marketing` or `admin`.
    pub role: String,
    pub csrf_token: String,
}

/// One operator write, as the audit log keeps it (`GET /v1/admin/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Increasing: a later entry has a larger id.
    pub id: i64,
    pub at_ms: i64,
    pub operator_id: String,
    pub operator_name: String,
    pub role: String,
    /// The HTTP method and route template: what kind of change (`POST /v1/admin/offers`).
    pub action: String,
    /// The request's path: which member, offer or request it touched.
    pub target: String,
    /// The answer's status: `2xx` done, anything else refused or failed (nothing changed).
    pub status: u16,
    /// The client's address (the proxy's `X-Forwarded-For` when it is trusted).
    pub client: String,
}

/// A member's request as operators see it (`GET /v1/admin/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestRecord {
    /// The operators' handle: `<member_id>.<request_id>` (request ids are drawn offline by devices
    /// and are unique only within a member).
    pub id: String,
    pub member_id: String,
    pub request_id: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub opened_at_ms: i64,
    /// `open`, `answered` or `closed`.
    pub status: String,
    pub last_activity_ms: i64,
    /// The member's follow-ups and the operators' replies, oldest first.
    pub entries: Vec<crate::requests::ThreadEntry>,
}

/// `POST /v1/admin/requests/{id}/replies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostReply {
    /// Makes the reply safe to retry.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 16384))]
    pub body: String,
    /// The name the member sees as the reply's author; "Customer service" when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 128))]
    pub author: Option<String>,
    /// Close the request with this reply.
    #[serde(default)]
    pub close: bool,
}

fn default_channel() -> String {
    "inapp".into()
}

/// What the server holds for a member, for operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    pub member_id: String,
    pub card: Option<crate::card::Card>,
    pub offers: Vec<Offer>,
    pub messages: Vec<Message>,
    pub member: crate::member::MemberState,
    /// Plastic cards linked to the member, lost ones included.
    #[serde(default)]
    pub cards: Vec<LinkedCard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_round_trip() {
        let h = device_authorization("dev_1", "abc");
        assert_eq!(parse_device_token(&h), Some(("dev_1", "abc")));
        assert_eq!(parse_device_token("Bearer nodot"), None);
        assert_eq!(parse_device_token("Basic a.b"), None);
        assert_eq!(parse_device_token("Bearer .b"), None);
    }

    #[test]
    fn post_message_defaults_to_inapp() {
        let m: PostMessage = serde_json::from_str(r#"{"subject":"Hi"}"#).unwrap();
        assert_eq!(m.channel, "inapp");
    }
}

/// `POST /v1/till/scan`: the text a till's scanner read from the member's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The version-1 checkout code: 122 Base45 characters (`docs/checkout-code.md`); or a card
    /// number, 16 digits with the spaces or dashes a printed card shows (a weaker proof:
    /// `docs/programme.md`, "Cards without the app").
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^([0-9A-Z $%*+\-./:]{122}|[0-9 \-]{16,40})$")
    )]
    pub code: String,
}

/// `POST /v1/till/sessions/{session_id}/pin`: the member's PIN, entered at the till for a session
/// opened by card number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,8}$"))]
    pub pin: String,
}

/// A member an operator's search found (`GET /v1/admin/members?…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberMatch {
    pub member_id: String,
    /// The member's own card number.
    pub card_number: String,
    pub external_ref: Option<String>,
    pub blocked: bool,
    pub tier: String,
    /// Points the member can spend now.
    pub balance: i64,
    /// When the member was created.
    #[serde(default)]
    pub enrolled_at_ms: i64,
}

/// A card a member holds besides the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LinkedCardStatus {
    /// The number the programme gave the member (the app's card, and its printed QR code).
    Primary,
    /// A plastic card linked to the member.
    Linked,
    /// A linked card reported lost: it opens nothing.
    Lost,
}

impl LinkedCardStatus {
    /// The name it is serialised and stored under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Linked => "linked",
            Self::Lost => "lost",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Primary, Self::Linked, Self::Lost]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkedCard {
    pub card_number: String,
    pub status: LinkedCardStatus,
    pub linked_at_ms: i64,
}

/// `POST …/cards`: a plastic card's number to link to the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkCard {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9 \-]{16,40}$"))]
    pub card_number: String,
}

/// What a checkout session may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionStanding {
    pub session_id: String,
    pub trust: crate::card_trust::SessionTrust,
    pub may_redeem: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanResponse {
    /// Names the member for this checkout's purchase.
    pub session_id: String,
    pub session_expires_at_ms: i64,
    pub member_id: String,
    pub card_number: String,
    pub tier: String,
    /// Points the member can spend now.
    pub balance: i64,
    /// What those points are worth, in minor units (`docs/programme.md`, "Points worth money").
    #[serde(default)]
    pub balance_value_minor: i64,
    /// Short lines for the cashier's screen: balance, tier progress, offers clipped, expiring points.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// How the session knows the member: the app's code, or a card number (with the PIN).
    #[serde(default)]
    pub trust: crate::card_trust::SessionTrust,
    /// Whether the session may redeem points (a card number alone may only earn, by default).
    #[serde(default)]
    pub may_redeem: bool,
}

/// A line of a purchase (defined with the earning rules that price it).
pub use crate::earning::PurchaseLine;

/// `POST /v1/till/purchases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    pub session_id: String,
    /// The till's retry token, unique per purchase at this till (not the receipt number): a retry
    /// with the same key changes nothing and gets the first answer. Scoped by till; keys beginning
    /// with `till:` are reserved.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^(?!till:)")
    )]
    pub idempotency_key: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub receipt_id: String,
    /// The receipt total in minor units (cents).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000_000))]
    pub total_minor: i64,
    #[serde(default)]
    pub lines: Vec<PurchaseLine>,
    /// Points the member spends on this purchase (0 for none).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 1_000_000_000_000i64)
    )]
    pub redeem_points: i64,
    /// Or an amount of money (minor units) to pay with points: the points worth at most this, in
    /// whole steps (`docs/programme.md`, "Points worth money"). Not together with `redeem_points`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000_000))]
    pub redeem_minor: i64,
}

/// One movement of points as tills and apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Movement {
    pub tx_id: String,
    pub points: i64,
    pub reason: String,
    /// The programme rule behind it (`base:gold`, `redeem`, `expiry`, `offer:off_1`...).
    #[serde(default)]
    pub rule: String,
    /// Why, as a stable code an app can word in the member's language; `reason` is the default
    /// English (`crate::reasons::default_text`). Unknown codes read as `other`.
    #[serde(default)]
    pub reason_code: ReasonCode,
    /// The reason's parameters: rule, offer, receipt, amount with currency, points a refund could
    /// not take back...
    #[serde(default)]
    pub reason_params: ReasonParams,
    /// When the points become spendable, if later than the movement (epoch ms).
    #[serde(default)]
    pub available_at_ms: Option<i64>,
    /// Whether the points were still pending when the server answered (`available_at_ms` is the
    /// lasting fact; an app decides from its own clock later).
    #[serde(default)]
    pub pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostingResponse {
    /// The posting id: `till:<till id>:<idempotency key>` for a till's purchase or refund, unique
    /// across tills. A refund at any till names its purchase by it.
    pub posting: String,
    pub member_id: String,
    /// Points added (purchase), or actually taken back (refund: the sum of its movements, which may
    /// be less than its share when points had expired or were spent).
    pub earned: i64,
    /// Points spent (purchase) or given back (refund).
    pub redeemed: i64,
    /// Points the member can spend now.
    pub balance: i64,
    /// Points earned but still pending (they become spendable after the programme's period).
    #[serde(default)]
    pub pending: i64,
    pub movements: Vec<Movement>,
    /// What the applied offers take off the receipt: the till charges the total less this.
    #[serde(default)]
    pub discount_minor: i64,
    /// The member's offers applied to this purchase, for the receipt.
    #[serde(default)]
    pub offers_applied: Vec<crate::earning::AppliedOffer>,
    /// A purchase's points redeemed, in money: what they took off the receipt.
    #[serde(default)]
    pub points_discount_minor: i64,
    /// A purchase's amount to charge: the total less the offers' and the points' discounts.
    #[serde(default)]
    pub charge_minor: i64,
    /// The amount a purchase earned points on (`docs/programme.md`, "Points worth money").
    #[serde(default)]
    pub earn_base_minor: i64,
    /// Short lines for the cashier's screen and the receipt ("12.50 more to Silver").
    #[serde(default)]
    pub prompts: Vec<String>,
}

/// `POST /v1/till/refunds`: gives back part or all of a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The purchase's posting id (`PostingResponse::posting`; any till may use it), or the
    /// idempotency key this same till posted it with.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub purchase: String,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^(?!till:)")
    )]
    pub idempotency_key: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub receipt_id: String,
    /// Minor units refunded; at most what is left of the purchase.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000_000))]
    pub amount_minor: i64,
}

/// `GET /v1/members/{id}/changes?since=SEQ&wait_s=25`: the long poll for live updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangesResponse {
    /// Poll again from here.
    pub seq: u64,
    /// Whether the member's server documents changed: sync now.
    pub changed: bool,
}

/// Who an operator's offer is for (`POST /v1/admin/offers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OfferTarget {
    /// These members, by id.
    Members { member_ids: Vec<String> },
    /// Every member in this tier, now and whenever segments are recomputed while the offer is valid.
    Tier { tier: String },
    /// Every member of this segment, now and after each recompute while the offer is valid.
    Segment { segment_id: String },
}

/// Most member ids one explicit target may list; larger groups are what segments are for.
pub const MAX_TARGET_MEMBERS: usize = 10_000;

/// `POST /v1/admin/offers`: an offer and who it is for. Posting an id that exists publishes a new
/// version of that offer: its members get the new terms, and the target's members are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostTargetedOffer {
    pub offer: PostOffer,
    pub target: OfferTarget,
}

/// The answer to a published offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedOffer {
    pub offer: Offer,
    /// 1 for a new offer, one more for every update.
    pub version: i64,
    /// Members newly targeted by this publication.
    pub added_members: i64,
    /// Members the offer is targeted at now, in all.
    pub members: i64,
}

/// `POST /v1/admin/segments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostSegment {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$"))]
    pub id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 128))]
    pub name: String,
    #[serde(default, deserialize_with = "crate::segments::rules_object")]
    pub rules: crate::segments::SegmentRules,
}

/// `PUT /v1/admin/segments/{segment_id}`: the segment's new name and rules. Its membership is
/// empty until the next recompute fills it by the new rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSegment {
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 128))]
    pub name: String,
    #[serde(default, deserialize_with = "crate::segments::rules_object")]
    pub rules: crate::segments::SegmentRules,
}

/// A segment as operators see it: its definition and when its membership was last computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentView {
    #[serde(flatten)]
    pub segment: crate::segments::Segment,
    pub created_at_ms: i64,
    /// `None` until the first recompute after the segment was created.
    pub computed_at_ms: Option<i64>,
    /// Members at the last recompute.
    pub members: i64,
}

/// `POST /v1/admin/members/{member_id}/tier`: `{"tier": "gold"}` pins a tier; `{"tier": null}`
/// hands the member back to the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetTier {
    /// The tier's id, or `null` for the ladder.
    pub tier: Option<String>,
}

/// Points one adjustment may credit or debit: far above any real correction (10,000.00 at a point
/// worth 0.01), so a mistyped amount is refused rather than posted; a larger correction is several.
pub const MAX_ADJUST_POINTS: i64 = 1_000_000;
/// Characters of an adjustment's note: it is shown on the member's card.
pub const MAX_ADJUST_NOTE: usize = 200;
/// Characters of an adjustment's reference (a receipt, a ticket number).
pub const MAX_ADJUST_REFERENCE: usize = 128;

pub use crate::reasons::AdjustReason;

/// `POST /v1/admin/members/{member_id}/adjustments`: an operator credits (`points` > 0) or debits
/// (`points` < 0) a member's points. Safe to retry with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdjustPoints {
    /// The operator's retry token (a support ticket's id will do): a retry with the same key and
    /// body changes nothing and gets the first answer; the same key with another body is refused.
    /// One namespace for all operators, apart from the tills'.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub idempotency_key: String,
    /// Points credited (positive) or debited (negative); never zero.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = -1_000_000, maximum = 1_000_000)
    )]
    pub points: i64,
    pub reason: AdjustReason,
    /// What happened, in a sentence the member will read on their card.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub note: String,
    /// A receipt, ticket or case number, shown with the note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub reference: Option<String>,
}

/// `POST /v1/admin/members/{member_id}/epochs`: start these documents afresh from their current
/// state (a new epoch, `crate::epoch`); no body or an empty list means all four.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartEpochs {
    #[serde(default)]
    pub docs: Vec<crate::DocKind>,
}

/// One document started afresh: its new epoch and its history before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentEpoch {
    pub doc: crate::DocKind,
    pub epoch: u64,
    pub ops_before: u64,
    pub changes_before: u64,
    pub ops_after: u64,
    pub changes_after: u64,
}

/// The answer to [`StartEpochs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EpochsStarted {
    pub member_id: String,
    pub documents: Vec<DocumentEpoch>,
}
