//! Push through Firebase Cloud Messaging's HTTP v1 API, which reaches Android apps and iOS apps
//! registered with Firebase. Authenticates as the retailer's service account: a JWT signed with
//! the account's key is exchanged at its `token_uri` for an OAuth access token (scope
//! `firebase.messaging`), kept until a minute before it expires and fetched again after a `401`.
//!
//! Each delivery is one `POST /v1/projects/{project_id}/messages:send` with the member's
//! registration token (the `push_token` preference; a leading `fcm:` is dropped), the subject as
//! the notification's title and the body as its text, and the message id and kind as data. FCM's
//! answer decides: `UNREGISTERED`, `NOT_FOUND`, `INVALID_ARGUMENT` and `SENDER_ID_MISMATCH` refuse
//! the address; 429 and 5xx are tried again; the message's `name` is kept as the reference.
//!
//! Google's endpoints cannot be reached from the test machines: the tests run this adapter against
//! a loopback receiver that checks the token grant's signature with the account's public key and
//! speaks FCM's answers (`tests/tests/e2e/outbound_adapters.rs`).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::jwt::{SigningKey, unix_now};
use super::{Handover, Outbound, OutboundChannel, OutboundError, OutboundMessage, SetupError};

const FCM_TIMEOUT: Duration = Duration::from_secs(20);
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Google's endpoint; `--fcm-endpoint` replaces it (a loopback receiver in the tests).
pub const FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

#[derive(Debug, Clone)]
pub struct FcmSettings {
    /// The service account's JSON key file, as the Firebase console downloads it.
    pub service_account: PathBuf,
    /// Where messages are sent: [`FCM_ENDPOINT`] unless replaced.
    pub endpoint: String,
}

#[derive(serde::Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// The FCM adapter (push only).
pub struct FcmOutbound {
    client: reqwest::Client,
    key: SigningKey,
    client_email: String,
    token_uri: reqwest::Url,
    send_url: reqwest::Url,
    /// The access token and the Unix second it stops being used.
    token: Mutex<Option<(String, u64)>>,
}

impl FcmOutbound {
    pub fn new(settings: &FcmSettings) -> Result<Self, SetupError> {
        let bad = |why: String| SetupError::Fcm(why);
        let path = settings.service_account.display();
        let text = std::fs::read_to_string(&settings.service_account)
            .map_err(|e| bad(format!("the service account {path}: {e}")))?;
        let account: ServiceAccount = serde_json::from_str(&text)
            .map_err(|e| bad(format!("the service account {path}: {e}")))?;
        let key = SigningKey::rs256(&account.private_key)
            .map_err(|e| bad(format!("the service account's private_key: {e}")))?;
        let token_uri = super::http::provider_url(&account.token_uri).map_err(bad)?;
        let endpoint = super::http::provider_url(&settings.endpoint).map_err(bad)?;
        let send_url = endpoint
            .join(&format!(
                "/v1/projects/{}/messages:send",
                account.project_id
            ))
            .map_err(|e| bad(format!("the project id: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(FCM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("the HTTP client: {e}")))?;
        Ok(Self {
            client,
            key,
            client_email: account.client_email,
            token_uri,
            send_url,
            token: Mutex::new(None),
        })
    }

    /// A valid access token, fetched when there is none or it is about to expire.
    async fn access_token(&self) -> Result<String, OutboundError> {
        let mut held = self.token.lock().await;
        let now = unix_now();
        if let Some((token, _)) = held.as_ref().filter(|(_, until)| *until > now) {
            return Ok(token.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri.as_str(),
            "iat": now, "exp": now + 3600,
        });
        let assertion = self
            .key
            .sign(None, &claims)
            .map_err(OutboundError::Unavailable)?;
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let answer = self
            .client
            .post(self.token_uri.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| OutboundError::Unavailable(format!("token: {}", e.without_url())))?;
        let status = answer.status().as_u16();
        let text = super::http::read_some(answer).await;
        let grant: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let token = grant["access_token"].as_str().filter(|_| status == 200);
        let Some(token) = token else {
            return Err(OutboundError::Unavailable(format!(
                "token: HTTP {status}: {}",
                super::http::clip(&text)
            )));
        };
        let lifetime = grant["expires_in"].as_u64().unwrap_or(3600);
        *held = Some((token.to_string(), now + lifetime.saturating_sub(60)));
        Ok(token.to_string())
    }
}

#[async_trait]
impl Outbound for FcmOutbound {
    async fn send(&self, m: &OutboundMessage) -> Result<Handover, OutboundError> {
        if m.channel != OutboundChannel::Push {
            return Err(OutboundError::Unsupported);
        }
        let token = self.access_token().await?;
        let registration = m.address.strip_prefix("fcm:").unwrap_or(&m.address);
        let payload = serde_json::json!({"message": {
            "token": registration,
            "notification": {"title": m.subject, "body": m.body},
            "data": {"message_id": m.message_id, "kind": m.kind},
        }});
        let answer = self
            .client
            .post(self.send_url.clone())
            .bearer_auth(token)
            .json(&payload)
            .send()
            .await
            .map_err(|e| OutboundError::Unavailable(format!("no answer: {}", e.without_url())))?;
        let status = answer.status().as_u16();
        let text = super::http::read_some(answer).await;
        if status == 401 {
            // Revoked or expired early: the next attempt fetches a new one.
            *self.token.lock().await = None;
        }
        outcome(status, &text)
    }
}

/// What FCM's answer means for the delivery.
fn outcome(status: u16, text: &str) -> Result<Handover, OutboundError> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(Handover::Provider {
            reference: json["name"].as_str().map(super::http::clip),
        });
    }
    let error = &json["error"];
    let code = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .or_else(|| error["status"].as_str())
        .unwrap_or("");
    let words = format!(
        "HTTP {status} {code}: {}",
        super::http::clip(error["message"].as_str().unwrap_or(text))
    );
    match (status, code) {
        (_, "UNREGISTERED" | "NOT_FOUND" | "INVALID_ARGUMENT" | "SENDER_ID_MISMATCH") => {
            Err(OutboundError::BadAddress(words))
        }
        (401 | 429 | 500..=599, _) => Err(OutboundError::Unavailable(words)),
        _ => Err(OutboundError::Rejected(words)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcm_answers_decide_retry_or_final() {
        assert_eq!(
            outcome(200, r#"{"name":"projects/p/messages/0:17"}"#),
            Ok(Handover::Provider {
                reference: Some("projects/p/messages/0:17".into())
            })
        );
        let unregistered = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
            "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert!(matches!(
            outcome(404, unregistered),
            Err(OutboundError::BadAddress(ref w)) if w.contains("UNREGISTERED")
        ));
        let quota = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#;
        assert!(matches!(
            outcome(429, quota),
            Err(OutboundError::Unavailable(_))
        ));
        assert!(matches!(
            outcome(503, ""),
            Err(OutboundError::Unavailable(_))
        ));
        assert!(matches!(
            outcome(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#),
            Err(OutboundError::Unavailable(_))
        ));
        assert!(matches!(
            outcome(403, r#"{"error":{"status":"PERMISSION_DENIED"}}"#),
            Err(OutboundError::Rejected(_))
        ));
    }

    #[test]
    fn a_service_account_that_cannot_sign_is_refused_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        let settings = FcmSettings {
            service_account: path.clone(),
            endpoint: FCM_ENDPOINT.into(),
        };
        assert!(FcmOutbound::new(&settings).is_err(), "a missing file");
        std::fs::write(&path, "{}").unwrap();
        assert!(FcmOutbound::new(&settings).is_err(), "no fields");
        let account = serde_json::json!({
            "project_id": "p", "client_email": "a@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&path, account.to_string()).unwrap();
        assert!(
            matches!(FcmOutbound::new(&settings), Err(SetupError::Fcm(ref w)) if w.contains("private_key"))
        );
    }
}
