//! Which adapter each channel uses, from the server's configuration: the one place that turns
//! `--email-via smtp --smtp-url …` into the [`ByChannel`] routes the outbound worker sends through.
//!
//! A channel named without an adapter takes the natural one: e-mail goes over SMTP when an SMTP
//! server is configured, else to the webhook when one is; SMS and push go to the webhook when one
//! is configured; anything else only reaches the log (and its deliveries say `logged`).

use std::sync::Arc;

use super::channels::ByChannel;
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
}

/// The outbound part of the configuration.
#[derive(Clone, Default)]
pub struct OutboundSettings {
    pub email: Option<Via>,
    pub sms: Option<Via>,
    pub push: Option<Via>,
    pub smtp: Option<SmtpSettings>,
    pub webhook: Option<WebhookSettings>,
}

impl OutboundSettings {
    /// The adapter a channel ends up with.
    pub fn via(&self, channel: OutboundChannel) -> Via {
        let chosen = match channel {
            OutboundChannel::Email => self.email,
            OutboundChannel::Sms => self.sms,
            OutboundChannel::Push => self.push,
        };
        chosen.unwrap_or(match channel {
            OutboundChannel::Email if self.smtp.is_some() => Via::Smtp,
            _ if self.webhook.is_some() => Via::Webhook,
            _ => Via::Log,
        })
    }

    /// Builds every adapter the channels use, or says which setting is wrong.
    pub fn build(&self) -> Result<ByChannel, SetupError> {
        let smtp = self.smtp.as_ref().map(SmtpOutbound::new).transpose()?;
        let webhook = self
            .webhook
            .as_ref()
            .map(WebhookOutbound::new)
            .transpose()?;
        let smtp: Option<Arc<dyn Outbound>> = smtp.map(|a| Arc::new(a) as Arc<dyn Outbound>);
        let webhook: Option<Arc<dyn Outbound>> = webhook.map(|a| Arc::new(a) as Arc<dyn Outbound>);
        let mut routes = ByChannel::default();
        for channel in OutboundChannel::ALL {
            let name = channel.as_str();
            let adapter: Arc<dyn Outbound> = match self.via(channel) {
                Via::Log => Arc::new(LogOutbound),
                Via::Smtp if channel != OutboundChannel::Email => {
                    return Err(SetupError::Routing(format!(
                        "SMTP carries e-mail only, not {name}"
                    )));
                }
                Via::Smtp => smtp.clone().ok_or_else(|| {
                    SetupError::Routing("e-mail via SMTP needs --smtp-url and --smtp-from".into())
                })?,
                Via::Webhook => webhook.clone().ok_or_else(|| {
                    SetupError::Routing(format!(
                        "{name} via the webhook needs --webhook-url and --webhook-secret"
                    ))
                })?,
            };
            routes = routes.with(channel, adapter);
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
