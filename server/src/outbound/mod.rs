//! The outbound adapters: how a message leaves the programme on an external channel (push, SMS,
//! e-mail). The server decides *whether* a member gets a message on a channel (consent, limits,
//! an address) and records every decision; an [`Outbound`] implementation only carries out a
//! delivery it is handed, so a provider plugs in without touching that policy.
//!
//! The shipped adapters, chosen per channel by configuration ([`settings`]):
//!
//! - [`smtp::SmtpOutbound`]: e-mail over SMTP (STARTTLS or implicit TLS, AUTH);
//! - [`webhook::WebhookOutbound`]: each delivery posted to a URL with an HMAC signature, which is
//!   how a retailer connects any SMS or push gateway;
//! - [`fcm::FcmOutbound`] and [`apns::ApnsOutbound`]: push through Firebase Cloud Messaging
//!   (HTTP v1) and straight to Apple;
//! - [`LogOutbound`], the default: delivers nothing and says so — its deliveries are recorded as
//!   `logged`, never as handed over.
//!
//! [`channels::ByChannel`] routes each delivery to its channel's adapter, and
//! [`channels::PushByPlatform`] a push to FCM or APNs by its token when both are configured.
//!
//! ## Plugging in a provider
//!
//! Implement [`Outbound`] and hand it to the server at startup:
//!
//! ```no_run
//! use std::sync::Arc;
//! use loyalty_server::outbound::{Handover, Outbound, OutboundError, OutboundMessage, OutboundChannel};
//!
//! struct Mailer; // holds the provider's HTTP client and credentials
//!
//! #[async_trait::async_trait]
//! impl Outbound for Mailer {
//!     async fn send(&self, m: &OutboundMessage) -> Result<Handover, OutboundError> {
//!         match m.channel {
//!             // POST m.address, m.subject, m.body to the provider; keep its id for operators.
//!             OutboundChannel::Email => Ok(Handover::Provider { reference: Some("id-42".into()) }),
//!             // Not handled by this provider: say so; the delivery is recorded as failed.
//!             _ => Err(OutboundError::Unsupported),
//!         }
//!     }
//! }
//!
//! # fn start(config: loyalty_server::Config, storage: Arc<dyn loyalty_server::storage::Storage>) {
//! let app = loyalty_server::App::builder(config, storage).outbound(Arc::new(Mailer)).build();
//! # }
//! ```
//!
//! The background worker (`crate::jobs::outbound::run_outbound_worker`) calls `send` outside any request,
//! one delivery at a time, with a time limit; [`OutboundError::Unavailable`] is retried with a
//! growing pause, every other error is final. A provider that cannot tell whether it delivered
//! should answer `Unavailable`: a message sent twice is better than a service notice lost. Every
//! delivery carries a stable [`OutboundMessage::delivery_id`] a provider can deduplicate on.
//!
//! Whether a handed-over delivery then arrived is the provider's to tell: a gateway behind the
//! webhook posts a signed delivery receipt back ([`Outbound::check_receipt`],
//! `crate::service::receipts`), and the delivery becomes `delivered` or `failed` with the
//! gateway's reason.

pub mod apns;
pub mod channels;
pub mod fcm;
mod http;
mod jwt;
pub mod settings;
pub mod smtp;
pub mod webhook;

use async_trait::async_trait;

/// An external channel. In-app messages never go through an adapter: the inbox document is their
/// delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundChannel {
    Push,
    Sms,
    Email,
}

impl OutboundChannel {
    pub const ALL: [OutboundChannel; 3] = [
        OutboundChannel::Push,
        OutboundChannel::Sms,
        OutboundChannel::Email,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutboundChannel::Push => "push",
            OutboundChannel::Sms => "sms",
            OutboundChannel::Email => "email",
        }
    }

    /// The member preference that holds the channel's address: the app (or the retailer's CRM,
    /// through the app) sets it, and the server reads it at the moment of sending.
    pub fn address_preference(self) -> &'static str {
        match self {
            OutboundChannel::Push => "push_token",
            OutboundChannel::Sms => "phone",
            OutboundChannel::Email => "email",
        }
    }
}

/// One delivery to carry out.
#[derive(Clone)]
pub struct OutboundMessage {
    /// Delivery attempts made before this one (0 the first time).
    pub attempt: i64,
    pub channel: OutboundChannel,
    pub member_id: String,
    pub message_id: String,
    /// `marketing` or `service`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// Where to: the e-mail address, phone number or push token from the member's preferences.
    pub address: String,
}

impl OutboundMessage {
    /// The delivery's stable name, the same on every retry: `<message_id>.<member_id>` (both are
    /// ids of `A-Z a-z 0-9 _ - .`), for a provider's idempotency key or an e-mail's Message-ID.
    pub fn delivery_id(&self) -> String {
        format!("{}.{}", self.message_id, self.member_id)
    }
}

/// Leaves out the address and the text, so a `{:?}` in a log line cannot leak personal data.
impl std::fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("channel", &self.channel)
            .field("member_id", &self.member_id)
            .field("message_id", &self.message_id)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What became of a delivery an adapter carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// A provider accepted it (`handed_over`): whether it reaches the member is the provider's
    /// to tell. `reference` is the provider's id or reply (an SMTP queue id, a gateway's message
    /// id), kept for operators.
    Provider { reference: Option<String> },
    /// Nothing was delivered: the adapter only logged it (`logged`).
    Logged,
}

/// Why a delivery did not happen. The operators' delivery records keep its [`Self::reason`] and,
/// as the delivery's detail, the provider's words ([`Self::detail`]); logs get the reason only,
/// since a provider's reply may quote the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The provider is down or slow; the worker tries again later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the address (bounced, unknown number, expired token); final.
    #[error("the provider refused the address: {0}")]
    BadAddress(String),
    /// The provider refused the message itself; final.
    #[error("the provider refused the message: {0}")]
    Rejected(String),
    /// This adapter does not deliver on the channel; final.
    #[error("this adapter does not deliver on the channel")]
    Unsupported,
}

impl OutboundError {
    /// Whether the worker should try again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, OutboundError::Unavailable(_))
    }

    /// What the provider said, if anything: kept with the delivery for operators.
    pub fn detail(&self) -> Option<&str> {
        match self {
            OutboundError::Unavailable(d)
            | OutboundError::BadAddress(d)
            | OutboundError::Rejected(d) => Some(d.as_str()).filter(|d| !d.is_empty()),
            OutboundError::Unsupported => None,
        }
    }

    /// The short reason recorded with the delivery.
    pub fn reason(&self) -> &'static str {
        match self {
            OutboundError::Unavailable(_) => "provider_unavailable",
            OutboundError::BadAddress(_) => "bad_address",
            OutboundError::Rejected(_) => "provider_rejected",
            OutboundError::Unsupported => "channel_unsupported",
        }
    }
}

/// Settings an adapter cannot work with, found at startup (the server refuses to start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("FCM: {0}")]
    Fcm(String),
    #[error("APNs: {0}")]
    Apns(String),
    #[error("{0}")]
    Routing(String),
}

/// A push, SMS or e-mail provider.
#[async_trait]
pub trait Outbound: Send + Sync + 'static {
    /// Carries out one delivery: [`Handover::Provider`] when a provider accepted it.
    async fn send(&self, message: &OutboundMessage) -> Result<Handover, OutboundError>;

    /// Whether a delivery receipt posted back by a provider (`POST /v1/outbound/receipts`) was
    /// signed by this adapter's key, `body` at `timestamp` with `signature`, and is fresh; `None`
    /// when the adapter takes no receipts (the default: only the signed webhook does).
    fn check_receipt(&self, _timestamp: &str, _body: &[u8], _signature: &str) -> Option<bool> {
        None
    }
}

/// The default adapter: logs each delivery (ids and channel only) and reports it
/// [`Handover::Logged`], so no one mistakes it for a delivery. For development and for
/// programmes that only use the in-app inbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOutbound;

#[async_trait]
impl Outbound for LogOutbound {
    async fn send(&self, message: &OutboundMessage) -> Result<Handover, OutboundError> {
        tracing::info!(
            channel = message.channel.as_str(),
            member = %message.member_id,
            message_id = %message.message_id,
            "outbound delivery (logged only: no provider is configured)"
        );
        Ok(Handover::Logged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_out_address_and_text() {
        let m = OutboundMessage {
            attempt: 0,
            channel: OutboundChannel::Email,
            member_id: "mbr_1".into(),
            message_id: "msg_1".into(),
            kind: "marketing".into(),
            subject: "Secret subject".into(),
            body: "Secret body".into(),
            address: "anna@example.com".into(),
        };
        let text = format!("{m:?}");
        assert!(text.contains("msg_1"), "{text}");
        for private in ["anna@example.com", "Secret"] {
            assert!(!text.contains(private), "{text}");
        }
    }

    #[test]
    fn channels_parse_and_name_their_address() {
        for c in OutboundChannel::ALL {
            assert_eq!(OutboundChannel::parse(c.as_str()), Some(c));
        }
        assert_eq!(OutboundChannel::parse("inapp"), None);
        assert_eq!(OutboundChannel::Sms.address_preference(), "phone");
    }

    #[test]
    fn only_unavailability_is_retried() {
        assert!(OutboundError::Unavailable("503".into()).is_transient());
        assert!(!OutboundError::BadAddress("bounced".into()).is_transient());
        assert!(!OutboundError::Unsupported.is_transient());
    }
}
