//! The one error type request handlers return, and how it becomes an HTTP answer with the JSON
//! error body every client can rely on. The domain's errors ([`crate::error::DomainError`]) come
//! in through `From`, their kind mapped onto a status here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loyalty_core::api::{ErrorBody, ErrorDetail};

use crate::error::{DomainError, ErrorKind};
use crate::storage::StorageError;

/// Every error code the server answers with, and its status: `docs/protocol.md`'s table (a test
/// keeps the two equal) and the OpenAPI document's enum of `ErrorDetail.code`. A code used in a
/// handler or the domain and missing here is a response that does not match the document, which
/// the schemathesis run of `scripts/test.sh` reports.
pub const CODES: &[(u16, &str)] = &[
    (400, "malformed_body"),
    (400, "unknown_document"),
    (400, "malformed_activation_code"),
    (400, "invalid_device_name"),
    (400, "invalid_public_key"),
    (400, "invalid_enrollment"),
    (400, "invalid_member"),
    (400, "invalid_scan"),
    (400, "invalid_tier"),
    (400, "invalid_purchase"),
    (400, "invalid_refund"),
    (400, "invalid_idempotency_key"),
    (400, "invalid_adjustment"),
    (400, "invalid_receipt"),
    (400, "invalid_pin"),
    (400, "invalid_card_number"),
    (400, "missing_till_id"),
    (400, "invalid_offer"),
    (400, "invalid_message"),
    (400, "invalid_target"),
    (400, "invalid_segment"),
    (400, "invalid_reply"),
    (400, "invalid_request_id"),
    (400, "invalid_programme"),
    (400, "unknown_tier"),
    (400, "missing_message_kind"),
    (400, "malformed_query"),
    (400, "invalid_format"),
    (400, "invalid_operator"),
    (401, "unauthorized"),
    (403, "forbidden"),
    (403, "csrf_failed"),
    (404, "unknown_document"),
    (404, "activation_code_not_found"),
    (404, "member_not_found"),
    (404, "segment_not_found"),
    (404, "request_not_found"),
    (404, "session_not_found"),
    (404, "purchase_not_found"),
    (404, "device_not_found"),
    (404, "card_not_found"),
    (404, "operator_not_found"),
    (404, "offer_not_found"),
    (404, "message_not_found"),
    (404, "delivery_not_found"),
    (404, "receipts_not_configured"),
    (404, "not_found"),
    (408, "request_timeout"),
    (409, "insufficient_points"),
    (409, "idempotency_key_reused"),
    (409, "refund_exceeds_purchase"),
    (409, "duplicate"),
    (409, "id_reused"),
    (409, "request_closed"),
    (409, "card_taken"),
    (409, "activation_code_used"),
    (409, "poll_superseded"),
    (409, "segment_in_use"),
    (409, "delivery_not_handed_over"),
    (410, "session_expired"),
    (410, "activation_code_expired"),
    (413, "payload_too_large"),
    (422, "malformed_code"),
    (422, "unknown_card"),
    (422, "unknown_key"),
    (422, "key_revoked"),
    (422, "bad_signature"),
    (422, "code_expired"),
    (422, "code_not_yet_valid"),
    (422, "card_blocked"),
    (422, "code_replayed"),
    (422, "unsafe_key"),
    (422, "offline_too_old"),
    (422, "redemption_not_allowed"),
    (422, "card_scans_off"),
    (422, "invalid_card_number"),
    (422, "bad_check_digit"),
    (422, "card_lost"),
    (422, "second_factor_required"),
    (422, "no_pin"),
    (422, "wrong_pin"),
    (422, "pin_locked"),
    (429, "too_many_attempts"),
    (500, "internal"),
    (503, "busy"),
    (503, "database_unavailable"),
    (503, "overloaded"),
];

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
        if e.is::<crate::http::body_timeout::BodyTimedOut>() {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The (status, code) pairs of `docs/protocol.md`'s error table.
    fn documented() -> BTreeSet<(u16, String)> {
        let doc = include_str!("../../../docs/protocol.md");
        let table = doc
            .split("| status | code | when |")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_default();
        let mut pairs = BTreeSet::new();
        for row in table.lines() {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).and_then(|s| s.parse::<u16>().ok()) else {
                continue;
            };
            for code in cells[2].split(',') {
                pairs.insert((status, code.trim().trim_matches('`').to_string()));
            }
        }
        pairs
    }

    #[test]
    fn the_code_list_is_the_documented_table() {
        let listed: BTreeSet<(u16, String)> = super::CODES
            .iter()
            .map(|(status, code)| (*status, code.to_string()))
            .collect();
        assert_eq!(listed.len(), super::CODES.len(), "a code is listed twice");
        let documented = documented();
        assert!(
            documented.len() > 40,
            "the table was not found: {documented:?}"
        );
        let missing: Vec<_> = listed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&listed).collect();
        assert!(missing.is_empty(), "not in docs/protocol.md: {missing:?}");
        assert!(extra.is_empty(), "not in CODES: {extra:?}");
    }
}
