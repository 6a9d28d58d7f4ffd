//! The offline till's wire types: the key feed a till caches (`GET /v1/till/keys`), a purchase it
//! made offline and flushes later (`POST /v1/till/offline-purchases`), and the exceptions a flush
//! records for operators (`GET /v1/admin/till-exceptions`). `docs/checkout-code.md` §9–10 say how
//! a till uses them.

use serde::{Deserialize, Serialize};

use super::PurchaseLine;
use crate::offline::OfflinePolicy;
use crate::redemption::RedemptionPolicy;

/// One page of the key feed: every key and card whose state changed after the cursor asked for,
/// oldest change first. A till stores `cursor` and asks again with it; `more` says another page
/// is already waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyFeed {
    /// Pass as `since` next time. Changes are numbered in the order they became visible, so a
    /// change is never behind a cursor a till already holds.
    pub cursor: u64,
    pub more: bool,
    /// The server's clock when the page was read: a till keeps its clock's offset from it.
    pub server_time_ms: i64,
    /// The programme's offline policy, as it is now.
    pub offline: OfflinePolicy,
    /// What points are worth, so an offline till can turn money asked into points.
    #[serde(default)]
    pub redemption: RedemptionPolicy,
    pub keys: Vec<FeedKey>,
    pub cards: Vec<FeedCard>,
}

/// A device key as the till caches it; the latest state of a key replaces any earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedKey {
    pub card_number: String,
    pub key_id: u32,
    /// The 32-byte Ed25519 public key, base64url without padding (43 characters).
    pub public_key: String,
    /// The device was revoked: codes it signs are refused.
    pub revoked: bool,
}

/// A card whose status changed: blocked, or unblocked again. Cards never blocked are not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedCard {
    pub card_number: String,
    pub blocked: bool,
}

/// `POST /v1/till/offline-purchases`: a purchase the till made while it could not reach the
/// server, posted when the link returns under the same idempotency key (a retry changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflinePurchaseRequest {
    /// The checkout code the till scanned, as text.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub code: String,
    /// When the till scanned it, by the till's clock kept in step with the server's.
    pub scanned_at_ms: i64,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^(?!till:)")
    )]
    pub idempotency_key: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub receipt_id: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000_000))]
    pub total_minor: i64,
    #[serde(default)]
    pub lines: Vec<PurchaseLine>,
    /// Points the till let the member redeem offline: honoured up to the programme's offline
    /// allowance and the member's balance; the rest is a reported shortfall.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 1_000_000_000_000i64)
    )]
    pub redeem_points: i64,
}

/// What a flush could not do as the till did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TillExceptionKind {
    /// The code was already used, online or by another till's offline purchase: this purchase
    /// was not posted (a screenshot shown at two tills).
    CodeReuse,
    /// The purchase was posted but redeemed fewer points than the till gave (`points`): beyond
    /// the allowance, the balance, or by a revoked device.
    RedeemShortfall,
    /// The purchase was not posted: the card was blocked, the code forged, expired or too old.
    Refused,
}

impl TillExceptionKind {
    pub const ALL: [TillExceptionKind; 3] = [Self::CodeReuse, Self::RedeemShortfall, Self::Refused];

    /// The name it is serialised and stored under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeReuse => "code_reuse",
            Self::RedeemShortfall => "redeem_shortfall",
            Self::Refused => "refused",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One exception, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TillException {
    /// The offline purchase's posting id (`till:<till id>:<key>`).
    pub posting: String,
    pub kind: TillExceptionKind,
    /// The code's member, when the code named a known card.
    pub member_id: Option<String>,
    pub till_id: String,
    /// Points the till redeemed that were not honoured (0 when none were at stake).
    pub points: i64,
    /// The error code or reason (`code_replayed`, `key_revoked`, `balance`…).
    pub detail: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TillExceptions {
    /// Newest first.
    pub exceptions: Vec<TillException>,
}
