//! The one error type request handlers return, and how it becomes an HTTP answer with the JSON
//! error body every client can rely on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loyalty_core::api::{ErrorBody, ErrorDetail};

use crate::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to retry after `secs` seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the request was not applied",
        )
    }

    /// Maps an extractor's rejection (bad JSON, body too large) onto our error body.
    pub fn from_rejection(status: StatusCode, text: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(status, "payload_too_large", text)
        } else {
            Self::new(StatusCode::BAD_REQUEST, "malformed_body", text)
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::CodeUnknown => {
                ApiError::not_found("activation_code_not_found", e.to_string())
            }
            StorageError::CodeUsed => {
                ApiError::new(StatusCode::CONFLICT, "activation_code_used", e.to_string())
            }
            StorageError::CodeExpired => {
                ApiError::new(StatusCode::GONE, "activation_code_expired", e.to_string())
            }
            StorageError::Duplicate(what) => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("{what} exists already; retry"),
            ),
            StorageError::CodeReplayed => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "code_replayed",
                "this code was already used",
            ),
            StorageError::RequestClosed => ApiError::new(
                StatusCode::CONFLICT,
                "request_closed",
                "the request is closed: the member opens a new one",
            ),
            StorageError::RefundExceedsPurchase => {
                crate::ledger::refund_exceeds("the refunds would exceed the purchase")
            }
            StorageError::NotFound(what) => ApiError::not_found(
                match what {
                    "member" => "member_not_found",
                    "segment" => "segment_not_found",
                    "request" => "request_not_found",
                    _ => "not_found",
                },
                format!("no such {what}"),
            ),
            StorageError::IdReused(what) => ApiError::new(
                StatusCode::CONFLICT,
                "id_reused",
                format!("{what} was used before for something else; choose another id"),
            ),
            StorageError::Conflict => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the member's documents are changing too fast; retry",
            ),
            other => ApiError::internal("storage failed", other),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        body_timeout(&r).unwrap_or_else(|| Self::from_rejection(r.status(), r.body_text()))
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        body_timeout(&r).unwrap_or_else(|| Self::from_rejection(r.status(), r.body_text()))
    }
}

/// `408 request_timeout` when a body could not be read because the client paused longer than the
/// edge allows (`crate::edge`), rather than "malformed": the body was never complete.
pub fn body_timeout(rejection: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut cause = rejection.source();
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return Some(ApiError::request_timeout());
        }
        cause = e.source();
    }
    None
}

impl ApiError {
    /// `408 request_timeout`: the request did not arrive (or finish) in the time the edge allows.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long to arrive or to answer; retry",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
