//! Push straight to Apple's Push Notification service, for iOS apps that do not use Firebase. One
//! HTTP/2 `POST /3/device/{token}` per delivery, authenticated with a provider token: a JWT
//! (ES256) signed with the team's `.p8` key, naming the key id and the team, renewed every 40
//! minutes (Apple refuses tokens older than an hour and throttles ones renewed more often than
//! every 20) and at once after `ExpiredProviderToken`.
//!
//! The member's device token is the `push_token` preference (a leading `apns:` is dropped). The
//! subject and body are the alert's title and text; marketing goes at priority 5, service
//! messages at 10. Apple's answer decides: `BadDeviceToken`, `Unregistered` (410) and
//! `DeviceTokenNotForTopic` refuse the address; 429 and 5xx are tried again; the `apns-id` Apple
//! returns is kept as the reference.
//!
//! Apple's endpoints cannot be reached from the test machines: the tests run this adapter against
//! a loopback HTTP/2 receiver that checks the provider token's signature with the key's public half
//! and speaks Apple's answers (`tests/tests/e2e/outbound_adapters.rs`).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::jwt::{SigningKey, unix_now};
use super::{Handover, Outbound, OutboundChannel, OutboundError, OutboundMessage, SetupError};

const APNS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a provider token is used before a new one is signed.
const TOKEN_LIFETIME_S: u64 = 40 * 60;
/// Apple's production endpoint; `https://api.sandbox.push.apple.com` for development builds.
pub const APNS_ENDPOINT: &str = "https://api.push.apple.com";

#[derive(Debug, Clone)]
pub struct ApnsSettings {
    /// The `.p8` signing key from the Apple developer account.
    pub key_file: PathBuf,
    /// The key's id (10 characters, shown next to the key).
    pub key_id: String,
    /// The developer team's id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    pub endpoint: String,
}

/// The APNs adapter (push only).
pub struct ApnsOutbound {
    client: reqwest::Client,
    key: SigningKey,
    key_id: String,
    team_id: String,
    topic: String,
    endpoint: reqwest::Url,
    /// The provider token and the Unix second it was signed.
    token: Mutex<Option<(String, u64)>>,
}

impl ApnsOutbound {
    pub fn new(settings: &ApnsSettings) -> Result<Self, SetupError> {
        let bad = |why: String| SetupError::Apns(why);
        let pem = std::fs::read_to_string(&settings.key_file)
            .map_err(|e| bad(format!("the key {}: {e}", settings.key_file.display())))?;
        let key = SigningKey::es256(&pem)
            .map_err(|e| bad(format!("the key {}: {e}", settings.key_file.display())))?;
        for (name, value) in [
            ("key id", &settings.key_id),
            ("team id", &settings.team_id),
            ("topic", &settings.topic),
        ] {
            if value.trim().is_empty() {
                return Err(bad(format!("the {name} is missing")));
            }
        }
        let endpoint = super::http::provider_url(&settings.endpoint).map_err(bad)?;
        let mut client = reqwest::Client::builder()
            .timeout(APNS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if endpoint.scheme() == "http" {
            // A loopback receiver without TLS has no ALPN to agree on HTTP/2 with.
            client = client.http2_prior_knowledge();
        }
        Ok(Self {
            client: client
                .build()
                .map_err(|e| bad(format!("the HTTP client: {e}")))?,
            key,
            key_id: settings.key_id.clone(),
            team_id: settings.team_id.clone(),
            topic: settings.topic.clone(),
            endpoint,
            token: Mutex::new(None),
        })
    }

    async fn provider_token(&self) -> Result<String, OutboundError> {
        let mut held = self.token.lock().await;
        let now = unix_now();
        if let Some((token, _)) = held
            .as_ref()
            .filter(|(_, signed)| now < signed + TOKEN_LIFETIME_S)
        {
            return Ok(token.clone());
        }
        let claims = serde_json::json!({"iss": self.team_id, "iat": now});
        let token = self
            .key
            .sign(Some(&self.key_id), &claims)
            .map_err(OutboundError::Unavailable)?;
        *held = Some((token.clone(), now));
        Ok(token)
    }
}

#[async_trait]
impl Outbound for ApnsOutbound {
    async fn send(&self, m: &OutboundMessage) -> Result<Handover, OutboundError> {
        if m.channel != OutboundChannel::Push {
            return Err(OutboundError::Unsupported);
        }
        let device = m.address.strip_prefix("apns:").unwrap_or(&m.address);
        if device.is_empty() || !device.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(OutboundError::BadAddress("not an APNs device token".into()));
        }
        let url = self
            .endpoint
            .join(&format!("/3/device/{device}"))
            .map_err(|e| OutboundError::BadAddress(e.to_string()))?;
        let priority = if m.kind == "marketing" { "5" } else { "10" };
        let payload = serde_json::json!({
            "aps": {"alert": {"title": m.subject, "body": m.body}},
            "message_id": m.message_id,
        });
        let answer = self
            .client
            .post(url)
            .bearer_auth(self.provider_token().await?)
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", priority)
            .json(&payload)
            .send()
            .await
            .map_err(|e| OutboundError::Unavailable(format!("no answer: {}", e.without_url())))?;
        let status = answer.status().as_u16();
        let apns_id = answer
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .map(super::http::clip);
        let text = super::http::read_some(answer).await;
        let result = outcome(status, apns_id, &text);
        if text.contains("ExpiredProviderToken") || text.contains("InvalidProviderToken") {
            *self.token.lock().await = None;
        }
        result
    }
}

/// What Apple's answer means for the delivery.
fn outcome(status: u16, apns_id: Option<String>, text: &str) -> Result<Handover, OutboundError> {
    if status == 200 {
        return Ok(Handover::Provider { reference: apns_id });
    }
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let reason = json["reason"].as_str().unwrap_or("");
    let words = format!("HTTP {status} {reason}");
    match (status, reason) {
        (_, "BadDeviceToken" | "Unregistered" | "DeviceTokenNotForTopic") | (410, _) => {
            Err(OutboundError::BadAddress(words))
        }
        (403, "ExpiredProviderToken") | (429 | 500..=599, _) => {
            Err(OutboundError::Unavailable(words))
        }
        _ => Err(OutboundError::Rejected(words)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_answers_decide_retry_or_final() {
        assert_eq!(
            outcome(200, Some("EC1BF194".into()), ""),
            Ok(Handover::Provider {
                reference: Some("EC1BF194".into())
            })
        );
        for (status, body) in [
            (400, r#"{"reason":"BadDeviceToken"}"#),
            (410, r#"{"reason":"Unregistered","timestamp":1}"#),
            (400, r#"{"reason":"DeviceTokenNotForTopic"}"#),
        ] {
            assert!(
                matches!(
                    outcome(status, None, body),
                    Err(OutboundError::BadAddress(_))
                ),
                "{body}"
            );
        }
        for (status, body) in [
            (429, r#"{"reason":"TooManyRequests"}"#),
            (503, r#"{"reason":"ServiceUnavailable"}"#),
            (403, r#"{"reason":"ExpiredProviderToken"}"#),
        ] {
            assert!(
                matches!(
                    outcome(status, None, body),
                    Err(OutboundError::Unavailable(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            outcome(400, None, r#"{"reason":"PayloadTooLarge"}"#),
            Err(OutboundError::Rejected(ref w)) if w.contains("PayloadTooLarge")
        ));
    }
}
