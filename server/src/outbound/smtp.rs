//! E-mail deliveries over SMTP, with `lettre`: the adapter hands each e-mail to the retailer's
//! mail server (its relay or a provider's submission port) and records the server's reply.
//!
//! The URL says how to connect: `smtp://[user:password@]host[:port]` upgrades with STARTTLS and
//! refuses to go on without it (port 587 by default); `smtps://…` speaks TLS from the first byte
//! (port 465); `smtp://host:port?tls=none` is plaintext, for a relay on the same machine, and is
//! refused together with credentials. A private certificate authority can be trusted with a CA
//! file; otherwise the public web roots are.
//!
//! SMTP's reply codes decide what the worker does next: a 4xx reply or a connection that fails is
//! tried again later; 550, 551 and 553 (and enhanced codes `5.1.x`) refuse the address; any other
//! 5xx refuses the message. Each e-mail's Message-ID is built from the delivery id, so a retry of a
//! delivery whose answer was lost carries the same id and a mailbox can drop the copy.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Handover, Outbound, OutboundError, OutboundMessage, SetupError};

/// How long one SMTP conversation may take; below the worker's own limit, so a slow server
/// counts as unavailable here rather than as a worker timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to send e-mail.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://…` (STARTTLS required), `smtps://…` (implicit TLS), or `smtp://…?tls=none`.
    pub url: String,
    /// The sender, as `Name <address>` or a bare address.
    pub from: String,
    /// PEM certificates of a private authority the mail server's certificate is signed by.
    pub ca_file: Option<PathBuf>,
}

/// The SMTP adapter (e-mail only).
pub struct SmtpOutbound {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// How the connection is secured, from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    StartTls,
    Implicit,
    None,
}

impl SmtpOutbound {
    /// Checks the settings and prepares the connection pool; nothing is dialled until the first
    /// e-mail. Call it inside the Tokio runtime: the pool starts its upkeep task at once.
    pub fn new(settings: &SmtpSettings) -> Result<Self, SetupError> {
        let bad = |why: String| SetupError::Smtp(why);
        let url = reqwest::Url::parse(&settings.url).map_err(|e| bad(format!("the URL: {e}")))?;
        let security = security(&url).map_err(bad)?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("the URL names no host".into()))?
            .to_string();
        let port = url.port().unwrap_or(match security {
            Security::Implicit => 465,
            Security::StartTls | Security::None => 587,
        });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(SMTP_TIMEOUT));
        if !url.username().is_empty() {
            if security == Security::None {
                return Err(bad(
                    "credentials are never sent without TLS (drop tls=none)".into(),
                ));
            }
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| bad("the URL's credentials are not UTF-8".into()))
            };
            let user = decode(url.username())?;
            let password = decode(url.password().unwrap_or_default())?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        if security != Security::None {
            let parameters = tls_parameters(&host, settings.ca_file.as_ref())?;
            builder = builder.tls(match security {
                Security::Implicit => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| bad(format!("the sender {:?}: {e}", settings.from)))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    fn email(&self, m: &OutboundMessage) -> Result<Message, OutboundError> {
        let to: Mailbox = m
            .address
            .parse()
            .map_err(|_| OutboundError::BadAddress("not an e-mail address".into()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                m.delivery_id(),
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| OutboundError::Rejected(format!("the e-mail cannot be built: {e}")))
    }
}

#[async_trait]
impl Outbound for SmtpOutbound {
    async fn send(&self, m: &OutboundMessage) -> Result<Handover, OutboundError> {
        if m.channel != super::OutboundChannel::Email {
            return Err(OutboundError::Unsupported);
        }
        let email = self.email(m)?;
        match self.transport.send(email).await {
            Ok(reply) => Ok(Handover::Provider {
                reference: Some(format!(
                    "{} {}",
                    reply.code(),
                    reply.message().collect::<Vec<_>>().join(" ")
                )),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn security(url: &reqwest::Url) -> Result<Security, String> {
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => Ok(Security::Implicit),
        ("smtp", None | Some("required")) => Ok(Security::StartTls),
        ("smtp", Some("none")) => Ok(Security::None),
        ("smtp" | "smtps", Some(other)) => Err(format!(
            "tls={other}: the choices are tls=required (the default) and tls=none"
        )),
        (scheme, _) => Err(format!("the scheme {scheme:?}: use smtp:// or smtps://")),
    }
}

fn tls_parameters(host: &str, ca_file: Option<&PathBuf>) -> Result<TlsParameters, SetupError> {
    let bad = |why: String| SetupError::Smtp(why);
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| bad(format!("the CA file {}: {e}", path.display())))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| bad(format!("the CA file {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| bad(format!("TLS: {e}")))
}

/// What an SMTP failure means for the delivery.
fn classify(e: &lettre::transport::smtp::Error) -> OutboundError {
    let words = e.to_string();
    match e.status().map(u16::from) {
        Some(code) if e.is_permanent() => {
            if matches!(code, 550 | 551 | 553) || words.contains(" 5.1.") {
                OutboundError::BadAddress(words)
            } else {
                OutboundError::Rejected(words)
            }
        }
        // 4xx replies, connections refused or cut, timeouts, TLS handshakes that failed.
        _ => OutboundError::Unavailable(words),
    }
}

/// `%xx` escapes in a URL's user or password, decoded.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.into(),
            from: "Programme <loyalty@shop.example>".into(),
            ca_file: None,
        }
    }

    #[test]
    fn urls_choose_how_the_connection_is_secured() {
        let of = |u: &str| security(&reqwest::Url::parse(u).unwrap());
        assert_eq!(of("smtp://mail.example"), Ok(Security::StartTls));
        assert_eq!(
            of("smtp://mail.example?tls=required"),
            Ok(Security::StartTls)
        );
        assert_eq!(of("smtps://mail.example"), Ok(Security::Implicit));
        assert_eq!(of("smtp://127.0.0.1:25?tls=none"), Ok(Security::None));
        assert!(of("smtp://mail.example?tls=maybe").is_err());
        assert!(of("http://mail.example").is_err());
    }

    #[tokio::test]
    async fn bad_settings_are_refused_before_any_mail() {
        for (url, from) in [
            ("smtp://user:pw@127.0.0.1:25?tls=none", "a@b.example"),
            ("smtp://", "a@b.example"),
            ("smtp://mail.example", "not an address"),
            ("ftp://mail.example", "a@b.example"),
        ] {
            let mut s = settings(url);
            s.from = from.into();
            assert!(SmtpOutbound::new(&s).is_err(), "{url} {from}");
        }
        let mut missing_ca = settings("smtp://mail.example");
        missing_ca.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(SmtpOutbound::new(&missing_ca).is_err());
        assert!(SmtpOutbound::new(&settings("smtp://u%40x:p%2Fw@mail.example")).is_ok());
    }

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(percent_decode("u%40x").as_deref(), Some("u@x"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("tail%4"), None);
    }
}
