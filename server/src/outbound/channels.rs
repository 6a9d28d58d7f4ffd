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
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Accepts;

    #[async_trait]
    impl Outbound for Accepts {
        async fn send(&self, _: &OutboundMessage) -> Result<Handover, OutboundError> {
            Ok(Handover::Provider { reference: None })
        }
    }

    fn message(channel: OutboundChannel) -> OutboundMessage {
        OutboundMessage {
            attempt: 0,
            channel,
            member_id: "mbr_1".into(),
            message_id: "msg_1".into(),
            kind: "service".into(),
            subject: "s".into(),
            body: "b".into(),
            address: "a".into(),
        }
    }

    #[tokio::test]
    async fn each_channel_goes_to_its_own_adapter() {
        let routes = ByChannel::default().with(OutboundChannel::Email, Arc::new(Accepts));
        let email = routes.send(&message(OutboundChannel::Email)).await;
        assert_eq!(email, Ok(Handover::Provider { reference: None }));
        for other in [OutboundChannel::Sms, OutboundChannel::Push] {
            assert_eq!(routes.send(&message(other)).await, Ok(Handover::Logged));
        }
    }
}
