//! The one error type request handlers return, and how it becomes an HTTP answer with the JSON
//! error body every client can rely on. The domain's errors ([`crate::error::DomainError`]) come
//! in through `From`, their kind mapped onto a status here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loyalty_core::api::{ErrorBody, ErrorDetail};

use crate::error::{DomainError, ErrorKind};
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

    // The shorthands go through the domain's own, so a kind's status is decided once, in
    // `status` below.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::bad_request(code, message).into()
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        DomainError::unauthorized(message).into()
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        DomainError::forbidden(message).into()
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::not_found(code, message).into()
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        DomainError::internal(context, e).into()
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
        DomainError::from(e).into()
    }
}

/// The status each kind of domain outcome is answered with.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TimedOut => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self {
            status: status(e.kind),
            code: e.code,
            message: e.message,
            retry_after: e.retry_after,
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
/// edge allows (`crate::http::edge`), rather than "malformed": the body was never complete.
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
