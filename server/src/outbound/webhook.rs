//! The webhook adapter: each delivery is POSTed as JSON to a URL the retailer runs, signed with an
//! HMAC, which is how any SMS or push gateway (or a CRM's own mailer) is connected without code in
//! this server. The contract a receiver implements is in `docs/communications.md`:
//!
//! - the body is a JSON object (`delivery_id`, `message_id`, `member_id`, `channel`, `kind`,
//!   `subject`, `body`, `address`, `attempt`);
//! - `Loyalty-Timestamp` is the sending time in Unix seconds and `Loyalty-Signature` is
//!   `v1=` and the lower-case hex HMAC-SHA256, under the shared secret, of the timestamp, a `.`,
//!   and the body's bytes; `Idempotency-Key` is the delivery id, the same on every retry;
//! - a 2xx answer means handed over (an optional `{"reference": "…"}` is kept for operators);
//!   408, 425, 429 and 5xx, and no answer at all, are tried again later; any other 4xx is final,
//!   with `{"reason": "bad_address"}` marking the address as the cause; redirects are not
//!   followed.
//!
//! Plain `http://` is allowed only to a loopback address: deliveries carry addresses and texts.
//!
//! The gateway may post delivery receipts back to `POST /v1/outbound/receipts`, signed the same
//! way with the same secret (`Loyalty-Timestamp`, `Loyalty-Signature`); a receipt whose timestamp
//! is more than [`RECEIPT_MAX_AGE_S`] from the server's clock is refused, so a captured one cannot
//! be replayed later.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ring::hmac;

use super::{Handover, Outbound, OutboundError, OutboundMessage, SetupError};

/// How long the receiver may take to answer; below the worker's own limit.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

/// How far a receipt's `Loyalty-Timestamp` may be from the server's clock, in seconds.
pub const RECEIPT_MAX_AGE_S: u64 = 300;

/// The shortest secret accepted, in bytes: HMAC-SHA256's own output length.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where the deliveries go and the key that signs them.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: String,
}

/// The webhook adapter (any channel).
pub struct WebhookOutbound {
    client: reqwest::Client,
    url: reqwest::Url,
    key: hmac::Key,
}

#[derive(serde::Serialize)]
struct Payload<'a> {
    delivery_id: String,
    message_id: &'a str,
    member_id: &'a str,
    channel: &'a str,
    kind: &'a str,
    subject: &'a str,
    body: &'a str,
    address: &'a str,
    attempt: i64,
}

impl WebhookOutbound {
    pub fn new(settings: &WebhookSettings) -> Result<Self, SetupError> {
        let bad = |why: String| SetupError::Webhook(why);
        let url = super::http::provider_url(&settings.url).map_err(bad)?;
        if settings.secret.len() < MIN_SECRET_BYTES {
            return Err(bad(format!(
                "the secret must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            key: key(&settings.secret),
        })
    }
}

#[async_trait]
impl Outbound for WebhookOutbound {
    async fn send(&self, m: &OutboundMessage) -> Result<Handover, OutboundError> {
        let payload = Payload {
            delivery_id: m.delivery_id(),
            message_id: &m.message_id,
            member_id: &m.member_id,
            channel: m.channel.as_str(),
            kind: &m.kind,
            subject: &m.subject,
            body: &m.body,
            address: &m.address,
            attempt: m.attempt,
        };
        let body = serde_json::to_vec(&payload)
            .map_err(|e| OutboundError::Rejected(format!("the payload: {e}")))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let answer = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &payload.delivery_id)
            .header("Loyalty-Timestamp", timestamp.to_string())
            .header("Loyalty-Signature", signature(&self.key, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| OutboundError::Unavailable(format!("no answer: {}", without_url(e))))?;
        let status = answer.status().as_u16();
        let text = super::http::read_some(answer).await;
        outcome(status, &text)
    }

    fn check_receipt(&self, timestamp: &str, body: &[u8], signature: &str) -> Option<bool> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(verify(&self.key, now, timestamp, body, signature))
    }
}

/// Whether `signature` is the `Loyalty-Signature` of `body` at `timestamp` under `key`, with the
/// timestamp within [`RECEIPT_MAX_AGE_S`] of `now` (Unix seconds). The comparison is ring's,
/// in constant time.
pub fn verify(key: &hmac::Key, now: u64, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(at) = timestamp.parse::<u64>() else {
        return false;
    };
    let Some(tag) = signature.strip_prefix("v1=").and_then(from_hex) else {
        return false;
    };
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    now.abs_diff(at) <= RECEIPT_MAX_AGE_S && hmac::verify(key, &message, &tag).is_ok()
}

/// Lower-case or upper-case hex to bytes; `None` for anything else.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// The HMAC-SHA256 key a shared secret makes, for [`signature`] and [`verify`].
pub fn key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

/// The `Loyalty-Signature` header's value for a body sent at `timestamp`.
pub fn signature(key: &hmac::Key, timestamp: u64, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let mut out = String::from("v1=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What the receiver's answer means for the delivery.
fn outcome(status: u16, text: &str) -> Result<Handover, OutboundError> {
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(super::http::clip)
    };
    let words = || format!("HTTP {status}: {}", super::http::clip(text));
    match status {
        200..=299 => Ok(Handover::Provider {
            reference: field("reference"),
        }),
        408 | 425 | 429 | 500..=599 => Err(OutboundError::Unavailable(words())),
        300..=399 => Err(OutboundError::Rejected(format!(
            "HTTP {status}: the webhook redirected, and redirects are not followed"
        ))),
        _ if field("reason").as_deref() == Some("bad_address") => {
            Err(OutboundError::BadAddress(words()))
        }
        _ => Err(OutboundError::Rejected(words())),
    }
}

/// A transport error's text without its URL, which may carry credentials in its query.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, secret: &str) -> WebhookSettings {
        WebhookSettings {
            url: url.into(),
            secret: secret.into(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Worked by hand with Python: hmac.new(SECRET, b"1700000000.{}", sha256).hexdigest()
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        let sig = signature(&key, 1_700_000_000, b"{}");
        assert_eq!(sig.len(), 3 + 64);
        let mut expected = hmac::Context::with_key(&key);
        expected.update(b"1700000000.{}");
        let tag = expected.sign();
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("v1={hex}"));
    }

    #[test]
    fn a_receipt_verifies_only_signed_fresh_and_unchanged() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        let at = 1_700_000_000;
        let body = br#"{"status":"delivered"}"#;
        let sig = signature(&key, at, body);
        let ts = at.to_string();
        assert!(verify(&key, at, &ts, body, &sig));
        assert!(verify(&key, at + RECEIPT_MAX_AGE_S, &ts, body, &sig));
        assert!(verify(&key, at - RECEIPT_MAX_AGE_S, &ts, body, &sig));
        assert!(
            !verify(&key, at + RECEIPT_MAX_AGE_S + 1, &ts, body, &sig),
            "stale"
        );
        assert!(
            !verify(&key, at, &ts, br#"{"status":"failed"}"#, &sig),
            "another body"
        );
        assert!(
            !verify(&key, at, "1700000001", body, &sig),
            "another timestamp"
        );
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another secret of 32 bytes or more!");
        assert!(!verify(&other, at, &ts, body, &sig), "another key");
        for bad in [
            "",
            "v1=",
            "v1=zz",
            "v2=00",
            &sig[3..],
            &sig[..sig.len() - 1],
        ] {
            assert!(!verify(&key, at, &ts, body, bad), "{bad:?}");
        }
        assert!(!verify(&key, at, "soon", body, &sig));
    }

    #[test]
    fn answers_decide_retry_or_final() {
        let handed = outcome(202, r#"{"reference":"gw-7"}"#);
        assert_eq!(
            handed,
            Ok(Handover::Provider {
                reference: Some("gw-7".into())
            })
        );
        assert_eq!(
            outcome(200, "ok"),
            Ok(Handover::Provider { reference: None })
        );
        for retried in [408, 425, 429, 500, 503] {
            assert!(
                matches!(outcome(retried, ""), Err(OutboundError::Unavailable(_))),
                "{retried}"
            );
        }
        assert!(matches!(
            outcome(422, r#"{"reason":"bad_address"}"#),
            Err(OutboundError::BadAddress(_))
        ));
        assert!(matches!(
            outcome(400, "nope"),
            Err(OutboundError::Rejected(ref w)) if w == "HTTP 400: nope"
        ));
        assert!(matches!(outcome(302, ""), Err(OutboundError::Rejected(_))));
    }

    #[test]
    fn weak_secrets_and_plain_http_to_other_hosts_are_refused() {
        assert!(WebhookOutbound::new(&settings("https://gw.example/hook", SECRET)).is_ok());
        assert!(WebhookOutbound::new(&settings("http://127.0.0.1:9/hook", SECRET)).is_ok());
        assert!(WebhookOutbound::new(&settings("http://[::1]:9/hook", SECRET)).is_ok());
        for (url, secret) in [
            ("https://gw.example/hook", "short"),
            ("http://gw.example/hook", SECRET),
            ("ftp://gw.example/hook", SECRET),
            ("not a url", SECRET),
        ] {
            assert!(
                WebhookOutbound::new(&settings(url, secret)).is_err(),
                "{url}"
            );
        }
    }
}
