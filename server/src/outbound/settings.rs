//! Which adapter each channel uses, from the server's configuration: the one place that turns
//! `--email-via smtp --smtp-url …` into the [`ByChannel`] routes the outbound worker sends through.
//!
//! A channel named without an adapter takes the natural one: e-mail goes over SMTP when an SMTP
//! server is configured, else to the webhook when one is; push goes to FCM and APNs when both are
//! configured (by token, [`PushByPlatform`]), else to whichever of them is, else to the webhook;
//! SMS goes to the webhook when one is configured; anything else only reaches the log (and its
//! deliveries say `logged`).

use std::sync::Arc;

use super::apns::{ApnsOutbound, ApnsSettings};
use super::channels::{ByChannel, PushByPlatform};
use super::fcm::{FcmOutbound, FcmSettings};
use super::smtp::{SmtpOutbound, SmtpSettings};
use super::webhook::{WebhookOutbound, WebhookSettings};
use super::{LogOutbound, Outbound, OutboundChannel, SetupError};

/// An adapter a channel can be sent through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Logged only; nothing is delivered.
    Log,
    /// E-mail over SMTP.
    Smtp,
    /// Posted to the signed webhook.
    Webhook,
    /// Push through Firebase Cloud Messaging (HTTP v1).
    Fcm,
    /// Push straight to Apple (APNs).
    Apns,
    /// Push to FCM or APNs by the token's platform (`apns:` tokens to Apple).
    Platform,
}

/// The outbound part of the configuration.
#[derive(Clone, Default)]
pub struct OutboundSettings {
    pub email: Option<Via>,
    pub sms: Option<Via>,
    pub push: Option<Via>,
    pub smtp: Option<SmtpSettings>,
    pub webhook: Option<WebhookSettings>,
    pub fcm: Option<FcmSettings>,
    pub apns: Option<ApnsSettings>,
}

impl OutboundSettings {
    /// The adapter a channel ends up with.
    pub fn via(&self, channel: OutboundChannel) -> Via {
        let chosen = match channel {
            OutboundChannel::Email => self.email,
            OutboundChannel::Sms => self.sms,
            OutboundChannel::Push => self.push,
        };
        let push = channel == OutboundChannel::Push;
        chosen.unwrap_or(match channel {
            OutboundChannel::Email if self.smtp.is_some() => Via::Smtp,
            _ if push && self.fcm.is_some() && self.apns.is_some() => Via::Platform,
            _ if push && self.fcm.is_some() => Via::Fcm,
            _ if push && self.apns.is_some() => Via::Apns,
            _ if self.webhook.is_some() => Via::Webhook,
            _ => Via::Log,
        })
    }

    /// Builds every adapter the channels use, or says which setting is wrong.
    pub fn build(&self) -> Result<ByChannel, SetupError> {
        let built = Built {
            smtp: self
                .smtp
                .as_ref()
                .map(SmtpOutbound::new)
                .transpose()?
                .map(shared),
            webhook: self
                .webhook
                .as_ref()
                .map(WebhookOutbound::new)
                .transpose()?
                .map(shared),
            fcm: self
                .fcm
                .as_ref()
                .map(FcmOutbound::new)
                .transpose()?
                .map(shared),
            apns: self
                .apns
                .as_ref()
                .map(ApnsOutbound::new)
                .transpose()?
                .map(shared),
        };
        let mut routes = ByChannel::default();
        for channel in OutboundChannel::ALL {
            routes = routes.with(channel, built.adapter(channel, self.via(channel))?);
        }
        Ok(routes)
    }

    /// One line for the startup log: each channel and its adapter (no URLs or secrets).
    pub fn describe(&self) -> String {
        OutboundChannel::ALL
            .iter()
            .map(|c| format!("{}={:?}", c.as_str(), self.via(*c)).to_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shared(adapter: impl Outbound) -> Arc<dyn Outbound> {
    Arc::new(adapter)
}

/// The adapters the settings configure, each built once and shared by the channels that use it.
struct Built {
    smtp: Option<Arc<dyn Outbound>>,
    webhook: Option<Arc<dyn Outbound>>,
    fcm: Option<Arc<dyn Outbound>>,
    apns: Option<Arc<dyn Outbound>>,
}

impl Built {
    fn adapter(&self, channel: OutboundChannel, via: Via) -> Result<Arc<dyn Outbound>, SetupError> {
        let name = channel.as_str();
        let needs = |adapter: &Option<Arc<dyn Outbound>>, flags: &str| {
            adapter.clone().ok_or_else(|| {
                SetupError::Routing(format!("{name} via {via:?} needs {flags}").to_lowercase())
            })
        };
        let push_only = |what: &str| {
            Err(SetupError::Routing(format!(
                "{what} carries push only, not {name}"
            )))
        };
        match via {
            Via::Log => Ok(Arc::new(LogOutbound)),
            Via::Smtp if channel != OutboundChannel::Email => Err(SetupError::Routing(format!(
                "SMTP carries e-mail only, not {name}"
            ))),
            Via::Fcm | Via::Apns | Via::Platform if channel != OutboundChannel::Push => {
                push_only("FCM/APNs")
            }
            Via::Smtp => needs(&self.smtp, "--smtp-url and --smtp-from"),
            Via::Webhook => needs(&self.webhook, "--webhook-url and --webhook-secret"),
            Via::Fcm => needs(&self.fcm, "--fcm-service-account"),
            Via::Apns => needs(&self.apns, "--apns-key-file and its ids"),
            Via::Platform => Ok(Arc::new(PushByPlatform {
                fcm: needs(&self.fcm, "--fcm-service-account")?,
                apns: needs(&self.apns, "--apns-key-file and its ids")?,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp() -> Option<SmtpSettings> {
        Some(SmtpSettings {
            url: "smtp://mail.example".into(),
            from: "loyalty@shop.example".into(),
            ca_file: None,
        })
    }

    fn webhook() -> Option<WebhookSettings> {
        Some(WebhookSettings {
            url: "https://gw.example/hook".into(),
            secret: "0123456789abcdef0123456789abcdef".into(),
        })
    }

    #[tokio::test]
    async fn channels_take_the_natural_adapter_when_not_named() {
        let none = OutboundSettings::default();
        assert_eq!(none.describe(), "push=log sms=log email=log");
        let both = OutboundSettings {
            smtp: smtp(),
            webhook: webhook(),
            ..Default::default()
        };
        assert_eq!(both.describe(), "push=webhook sms=webhook email=smtp");
        let named = OutboundSettings {
            push: Some(Via::Log),
            ..both
        };
        assert_eq!(named.via(OutboundChannel::Push), Via::Log);
        assert!(named.build().is_ok());
    }

    #[tokio::test]
    async fn a_channel_without_its_adapter_settings_is_refused() {
        let email_smtp = OutboundSettings {
            email: Some(Via::Smtp),
            ..Default::default()
        };
        assert!(matches!(email_smtp.build(), Err(SetupError::Routing(_))));
        let sms_webhook = OutboundSettings {
            sms: Some(Via::Webhook),
            smtp: smtp(),
            ..Default::default()
        };
        assert!(matches!(sms_webhook.build(), Err(SetupError::Routing(_))));
        let sms_smtp = OutboundSettings {
            sms: Some(Via::Smtp),
            smtp: smtp(),
            ..Default::default()
        };
        assert!(matches!(sms_smtp.build(), Err(SetupError::Routing(_))));
    }
}
