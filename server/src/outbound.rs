//! The outbound adapter: how a message leaves the programme on an external channel (push, SMS,
//! e-mail). The server decides *whether* a member gets a message on a channel (consent, limits,
//! an address) and records every decision; an [`Outbound`] implementation only carries out a
//! delivery it is handed, so a real provider plugs in without touching that policy.
//!
//! The default, [`LogOutbound`], delivers nothing: it logs that it would have, naming the
//! message, the member and the channel only — never the address or the text.
//!
//! ## Plugging in a provider
//!
//! Implement [`Outbound`] and hand it to the server at startup:
//!
//! ```no_run
//! use std::sync::Arc;
//! use loyalty_server::outbound::{Outbound, OutboundError, OutboundMessage, OutboundChannel};
//!
//! struct Mailer; // holds the provider's HTTP client and credentials
//!
//! #[async_trait::async_trait]
//! impl Outbound for Mailer {
//!     async fn send(&self, m: &OutboundMessage) -> Result<(), OutboundError> {
//!         match m.channel {
//!             OutboundChannel::Email => { /* POST m.address, m.subject, m.body to the provider */ Ok(()) }
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
//! should answer `Unavailable`: a message sent twice is better than a service notice lost.

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

/// Leaves out the address and the text, so a `{:?}` in a log line cannot leak personal data.
impl std::fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("channel", &self.channel)
            .field("member_id", &self.member_id)
            .field("message_id", &self.message_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a delivery did not happen. The operators' delivery records keep its [`Self::reason`]; the
/// text is for people reading the error and must not carry the address or the message either.
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

/// A push, SMS or e-mail provider.
#[async_trait]
pub trait Outbound: Send + Sync + 'static {
    /// Delivers one message; `Ok` means the provider accepted it.
    async fn send(&self, message: &OutboundMessage) -> Result<(), OutboundError>;
}

/// The default adapter: logs each delivery (ids and channel only) and reports it accepted. For
/// development and for programmes that only use the in-app inbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOutbound;

#[async_trait]
impl Outbound for LogOutbound {
    async fn send(&self, message: &OutboundMessage) -> Result<(), OutboundError> {
        tracing::info!(
            channel = message.channel.as_str(),
            member = %message.member_id,
            message_id = %message.message_id,
            "outbound delivery (logged only: no provider is configured)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_out_address_and_text() {
        let m = OutboundMessage {
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
