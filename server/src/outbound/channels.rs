//! Routing deliveries to the adapter configured for their channel: e-mail can go over SMTP while
//! SMS and push go to a gateway's webhook, and a channel left unconfigured only reaches the log.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Handover, LogOutbound, Outbound, OutboundChannel, OutboundError, OutboundMessage};

/// One adapter per channel; itself an [`Outbound`], so the worker sees a single adapter.
#[derive(Clone)]
pub struct ByChannel {
    push: Arc<dyn Outbound>,
    sms: Arc<dyn Outbound>,
    email: Arc<dyn Outbound>,
}

impl Default for ByChannel {
    /// Every channel only logged.
    fn default() -> Self {
        let log: Arc<dyn Outbound> = Arc::new(LogOutbound);
        Self {
            push: log.clone(),
            sms: log.clone(),
            email: log,
        }
    }
}

impl ByChannel {
    /// Sends `channel`'s deliveries through `adapter`.
    pub fn with(mut self, channel: OutboundChannel, adapter: Arc<dyn Outbound>) -> Self {
        *self.slot(channel) = adapter;
        self
    }

    fn slot(&mut self, channel: OutboundChannel) -> &mut Arc<dyn Outbound> {
        match channel {
            OutboundChannel::Push => &mut self.push,
            OutboundChannel::Sms => &mut self.sms,
            OutboundChannel::Email => &mut self.email,
        }
    }

    fn adapter(&self, channel: OutboundChannel) -> &Arc<dyn Outbound> {
        match channel {
            OutboundChannel::Push => &self.push,
            OutboundChannel::Sms => &self.sms,
            OutboundChannel::Email => &self.email,
        }
    }
}

#[async_trait]
impl Outbound for ByChannel {
    async fn send(&self, message: &OutboundMessage) -> Result<Handover, OutboundError> {
        self.adapter(message.channel).send(message).await
    }

    /// The first channel's adapter that takes receipts decides (there is one webhook, shared).
    fn check_receipt(&self, timestamp: &str, body: &[u8], signature: &str) -> Option<bool> {
        OutboundChannel::ALL
            .iter()
            .find_map(|c| self.adapter(*c).check_receipt(timestamp, body, signature))
    }
}

/// Push to Android and iOS when the retailer uses FCM for one and APNs for the other: a token the
/// app stored as `apns:<hex>` goes to APNs, every other token to FCM (which reaches iOS apps
/// registered with Firebase too).
pub struct PushByPlatform {
    pub fcm: Arc<dyn Outbound>,
    pub apns: Arc<dyn Outbound>,
}

#[async_trait]
impl Outbound for PushByPlatform {
    async fn send(&self, message: &OutboundMessage) -> Result<Handover, OutboundError> {
        if message.address.starts_with("apns:") {
            self.apns.send(message).await
        } else {
            self.fcm.send(message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter that answers with its own name as the reference.
    struct Named(&'static str);

    #[async_trait]
    impl Outbound for Named {
        async fn send(&self, _: &OutboundMessage) -> Result<Handover, OutboundError> {
            Ok(Handover::Provider {
                reference: Some(self.0.into()),
            })
        }
    }

    fn message(channel: OutboundChannel, address: &str) -> OutboundMessage {
        OutboundMessage {
            attempt: 0,
            channel,
            member_id: "mbr_1".into(),
            message_id: "msg_1".into(),
            kind: "service".into(),
            subject: "s".into(),
            body: "b".into(),
            address: address.into(),
        }
    }

    fn reference(answer: Result<Handover, OutboundError>) -> Option<String> {
        match answer {
            Ok(Handover::Provider { reference }) => reference,
            _ => None,
        }
    }

    #[tokio::test]
    async fn each_channel_goes_to_its_own_adapter() {
        let routes = ByChannel::default().with(OutboundChannel::Email, Arc::new(Named("smtp")));
        let email = routes
            .send(&message(OutboundChannel::Email, "a@b.example"))
            .await;
        assert_eq!(reference(email).as_deref(), Some("smtp"));
        for other in [OutboundChannel::Sms, OutboundChannel::Push] {
            assert_eq!(
                routes.send(&message(other, "x")).await,
                Ok(Handover::Logged)
            );
        }
    }

    #[tokio::test]
    async fn apns_tokens_go_to_apple_and_the_rest_to_firebase() {
        let push = PushByPlatform {
            fcm: Arc::new(Named("fcm")),
            apns: Arc::new(Named("apns")),
        };
        for (address, expected) in [
            ("apns:00ff", "apns"),
            ("fcm:abc", "fcm"),
            ("abc:def", "fcm"),
        ] {
            let answer = push.send(&message(OutboundChannel::Push, address)).await;
            assert_eq!(reference(answer).as_deref(), Some(expected), "{address}");
        }
    }
}
