//! The `loyalty server` flags that choose each channel's outbound adapter and configure the SMTP
//! server and the webhook (`docs/communications.md`); secrets are taken from the environment or the
//! config file as well, and never echoed.

use std::path::PathBuf;

use clap::Args;
use loyalty_server::outbound::apns::{APNS_ENDPOINT, ApnsSettings};
use loyalty_server::outbound::fcm::{FCM_ENDPOINT, FcmSettings};
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
    /// How push notifications go out: fcm, apns, platform (FCM, and APNs for `apns:` tokens),
    /// webhook or log (default: by what is configured, in that order).
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
    /// The Firebase service account's JSON key file: push through FCM HTTP v1.
    #[arg(long, env = "LOYALTY_FCM_SERVICE_ACCOUNT")]
    fcm_service_account: Option<PathBuf>,
    /// Where FCM messages are sent.
    #[arg(long, env = "LOYALTY_FCM_ENDPOINT", default_value = FCM_ENDPOINT)]
    fcm_endpoint: String,
    /// Apple's `.p8` signing key: push straight to APNs.
    #[arg(long, env = "LOYALTY_APNS_KEY_FILE")]
    apns_key_file: Option<PathBuf>,
    /// The APNs key's id.
    #[arg(long, env = "LOYALTY_APNS_KEY_ID", default_value = "")]
    apns_key_id: String,
    /// The Apple developer team's id.
    #[arg(long, env = "LOYALTY_APNS_TEAM_ID", default_value = "")]
    apns_team_id: String,
    /// The iOS app's bundle id (`apns-topic`).
    #[arg(long, env = "LOYALTY_APNS_TOPIC", default_value = "")]
    apns_topic: String,
    /// Apple's endpoint: production, or https://api.sandbox.push.apple.com for development builds.
    #[arg(long, env = "LOYALTY_APNS_ENDPOINT", default_value = APNS_ENDPOINT)]
    apns_endpoint: String,
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
        let fcm = self.fcm_service_account.map(|service_account| FcmSettings {
            service_account,
            endpoint: self.fcm_endpoint,
        });
        let apns = self.apns_key_file.map(|key_file| ApnsSettings {
            key_file,
            key_id: self.apns_key_id,
            team_id: self.apns_team_id,
            topic: self.apns_topic,
            endpoint: self.apns_endpoint,
        });
        Ok(OutboundSettings {
            email: self.email_via,
            sms: self.sms_via,
            push: self.push_via,
            smtp,
            webhook,
            fcm,
            apns,
        })
    }
}
