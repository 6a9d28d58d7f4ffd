//! The `loyalty server` flags that choose each channel's outbound adapter and configure the SMTP
//! server and the webhook (`docs/messages.md`); secrets are taken from the environment or the
//! config file as well, and never echoed.

use std::path::PathBuf;

use clap::Args;
use loyalty_server::outbound::settings::{OutboundSettings, Via};
use loyalty_server::outbound::smtp::SmtpSettings;
use loyalty_server::outbound::webhook::WebhookSettings;

#[derive(Args)]
pub struct OutboundFlags {
    /// How e-mail goes out: smtp, webhook or log (default: smtp when --smtp-url is set, else the
    /// webhook when --webhook-url is, else log: nothing is delivered and deliveries say `logged`).
    #[arg(long, env = "LOYALTY_EMAIL_VIA", value_enum)]
    email_via: Option<Via>,
    /// How SMS goes out: webhook or log (default: the webhook when --webhook-url is set).
    #[arg(long, env = "LOYALTY_SMS_VIA", value_enum)]
    sms_via: Option<Via>,
    /// How push notifications go out: webhook or log (default: the webhook when --webhook-url is
    /// set).
    #[arg(long, env = "LOYALTY_PUSH_VIA", value_enum)]
    push_via: Option<Via>,
    /// The mail server: smtp://[user:password@]host[:port] (STARTTLS required),
    /// smtps://… (implicit TLS), or smtp://host:port?tls=none for a relay on this machine.
    #[arg(long, env = "LOYALTY_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The sender of e-mails: `Name <address>` or an address.
    #[arg(long, env = "LOYALTY_SMTP_FROM")]
    smtp_from: Option<String>,
    /// PEM certificates of a private CA the mail server's certificate is signed by.
    #[arg(long, env = "LOYALTY_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// Where each delivery is POSTed, signed (https://, or http:// to a loopback address).
    #[arg(long, env = "LOYALTY_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The webhook's HMAC-SHA256 key, at least 32 bytes (`openssl rand -hex 32`).
    #[arg(long, env = "LOYALTY_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
}

impl OutboundFlags {
    /// The settings the flags name, or which flag is missing.
    pub fn settings(self) -> Result<OutboundSettings, String> {
        let smtp = match (self.smtp_url, self.smtp_from) {
            (Some(url), Some(from)) => Some(SmtpSettings {
                url,
                from,
                ca_file: self.smtp_ca_file,
            }),
            (None, None) => None,
            _ => return Err("--smtp-url and --smtp-from go together".into()),
        };
        let webhook = match (self.webhook_url, self.webhook_secret) {
            (Some(url), Some(secret)) => Some(WebhookSettings { url, secret }),
            (None, None) => None,
            _ => return Err("--webhook-url and --webhook-secret go together".into()),
        };
        Ok(OutboundSettings {
            email: self.email_via,
            sms: self.sms_via,
            push: self.push_via,
            smtp,
            webhook,
        })
    }
}
