//! [`OperatorClient`]: the operator API from Rust, for `loyalty admin`, scripts and tests.

use std::time::Duration;

use loyalty_core::api::{
    ActivationCodeResponse, CreateMemberRequest, CreateMemberResponse, ErrorBody, MemberView,
    PostMessage, PostOffer,
};
use loyalty_core::inbox::Message;
use loyalty_core::offers::Offer;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the server could not be reached: {0}")]
    Unreachable(String),
    #[error("the server refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server's answer could not be read: {0}")]
    BadAnswer(String),
}

pub struct OperatorClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl OperatorClient {
    pub fn new(base_url: &str, token: &str) -> Result<Self, OperatorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| OperatorError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, OperatorError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| OperatorError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OperatorError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(b) => (b.error.code, b.error.message),
                Err(_) => (
                    "http_error".into(),
                    String::from_utf8_lossy(&body).into_owned(),
                ),
            };
            return Err(OperatorError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| OperatorError::BadAnswer(e.to_string()))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, OperatorError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn create_member(
        &self,
        external_ref: Option<String>,
    ) -> Result<CreateMemberResponse, OperatorError> {
        self.post("/v1/admin/members", &CreateMemberRequest { external_ref })
            .await
    }

    pub async fn activation_code(
        &self,
        member_id: &str,
    ) -> Result<ActivationCodeResponse, OperatorError> {
        self.post(
            &format!("/v1/admin/members/{member_id}/activation-codes"),
            &(),
        )
        .await
    }

    pub async fn post_offer(
        &self,
        member_id: &str,
        offer: &PostOffer,
    ) -> Result<Offer, OperatorError> {
        self.post(&format!("/v1/admin/members/{member_id}/offers"), offer)
            .await
    }

    pub async fn post_message(
        &self,
        member_id: &str,
        message: &PostMessage,
    ) -> Result<Message, OperatorError> {
        self.post(&format!("/v1/admin/members/{member_id}/messages"), message)
            .await
    }

    pub async fn member(&self, member_id: &str) -> Result<MemberView, OperatorError> {
        self.send(
            self.http
                .get(format!("{}/v1/admin/members/{member_id}", self.base)),
        )
        .await
    }
}
