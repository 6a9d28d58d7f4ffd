//! JSON request bodies: the [`Json`] extractor every JSON handler takes its body with, and the
//! error code each body type is refused under.
//!
//! A body that is not JSON at all (wrong content type, broken syntax, trailing bytes) is
//! `400 malformed_body`, as before. A body that is JSON but not the endpoint's body — a field
//! missing, a field the endpoint does not know, a value of the wrong type — is refused with the
//! endpoint's own code (`invalid_purchase`, `invalid_offer`, …; [`JsonBody::CODE`]) and a message
//! that names the field and where it is (`lines[2].amount_minor`). Unknown fields are refused, not
//! ignored (every request type carries `#[serde(deny_unknown_fields)]`): an offer posted with
//! `min_spend` for `min_spend_minor` must not be stored without its minimum.
//!
//! The same type answers JSON too, like axum's, so a handler module imports one `Json`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use loyalty_core::api;
use loyalty_core::programme::Programme;

use crate::http::error::ApiError;

/// A request body type and the code its refusals carry.
pub trait JsonBody: DeserializeOwned {
    /// The endpoint's own code for a body that breaks its rules (documented in `docs/protocol.md`).
    const CODE: &'static str;
    /// What the body is, for messages ("purchase").
    const WHAT: &'static str;

    /// The code for a refusal about `field` (the field's name, or the path's first part for an
    /// error inside a nested value). Bodies whose fields have codes of their own override it.
    fn code_for(field: &str) -> &'static str {
        let _ = field;
        Self::CODE
    }
}

/// Extracts a [`JsonBody`] (and answers any `Serialize` value as JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: JsonBody,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&req) {
            return Err(ApiError::bad_request(
                "malformed_body",
                format!(
                    "{}: expected a JSON body with `Content-Type: application/json`",
                    T::WHAT
                ),
            ));
        }
        // Honours the router's body limit: a larger body is `413 payload_too_large`.
        let bytes = Bytes::from_request(req, state).await?;
        parse(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// Reads a [`JsonBody`] from bytes, with the refusals described in the module docs. For handlers
/// whose body is optional and read as bytes.
pub fn parse<T: JsonBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(refusal::<T>)?;
    de.end().map_err(not_json::<T>)?;
    Ok(value)
}

fn not_json<T: JsonBody>(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(
        "malformed_body",
        format!("{}: the body is not valid JSON: {e}", T::WHAT),
    )
}

fn refusal<T: JsonBody>(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return not_json::<T>(inner);
    }
    let message = inner.to_string();
    let field = named_field(&message).map(str::to_string);
    let first = match (path.as_str(), &field) {
        (".", Some(f)) => f.clone(),
        (p, _) => p.split(['.', '[']).next().unwrap_or_default().to_string(),
    };
    let at = match path.as_str() {
        "." => String::new(),
        p => format!(" (at `{p}`)"),
    };
    ApiError::bad_request(
        T::code_for(&first),
        format!("{}: {}{at}", T::WHAT, without_position(&message)),
    )
}

/// The field a serde message names: "missing field `x`", "unknown field `x`, expected …".
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

/// serde_json ends its messages with " at line L column C"; the path says more.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

impl JsonBody for api::EnrollRequest {
    const CODE: &'static str = "invalid_enrollment";
    const WHAT: &'static str = "enrollment";

    /// The enrollment fields keep the codes their checks use.
    fn code_for(field: &str) -> &'static str {
        match field {
            "activation_code" => "malformed_activation_code",
            "device_name" => "invalid_device_name",
            "public_key" => "invalid_public_key",
            _ => Self::CODE,
        }
    }
}

impl JsonBody for api::CreateMemberRequest {
    const CODE: &'static str = "invalid_member";
    const WHAT: &'static str = "member";
}

impl JsonBody for api::ScanRequest {
    const CODE: &'static str = "invalid_scan";
    const WHAT: &'static str = "scan";
}

impl JsonBody for api::PurchaseRequest {
    const CODE: &'static str = "invalid_purchase";
    const WHAT: &'static str = "purchase";
}

impl JsonBody for api::offline::OfflinePurchaseRequest {
    const CODE: &'static str = "invalid_purchase";
    const WHAT: &'static str = "offline purchase";
}

impl JsonBody for api::LinkCard {
    const CODE: &'static str = "invalid_card_number";
    const WHAT: &'static str = "card";
}

impl JsonBody for api::PinEntry {
    const CODE: &'static str = "invalid_pin";
    const WHAT: &'static str = "PIN";
}

impl JsonBody for api::NewOperator {
    const CODE: &'static str = "invalid_operator";
    const WHAT: &'static str = "operator";
}

impl JsonBody for api::ConsoleLogin {
    const CODE: &'static str = "malformed_body";
    const WHAT: &'static str = "console login";
}

impl JsonBody for api::RefundRequest {
    const CODE: &'static str = "invalid_refund";
    const WHAT: &'static str = "refund";
}

impl JsonBody for api::PostOffer {
    const CODE: &'static str = "invalid_offer";
    const WHAT: &'static str = "offer";
}

impl JsonBody for api::PostTargetedOffer {
    const CODE: &'static str = "invalid_offer";
    const WHAT: &'static str = "targeted offer";

    fn code_for(field: &str) -> &'static str {
        match field {
            "target" => "invalid_target",
            _ => Self::CODE,
        }
    }
}

impl JsonBody for api::AdjustPoints {
    const CODE: &'static str = "invalid_adjustment";
    const WHAT: &'static str = "adjustment";

    /// The key keeps the code its check uses.
    fn code_for(field: &str) -> &'static str {
        match field {
            "idempotency_key" => "invalid_idempotency_key",
            _ => Self::CODE,
        }
    }
}

impl JsonBody for api::PostSegment {
    const CODE: &'static str = "invalid_segment";
    const WHAT: &'static str = "segment";
}

impl JsonBody for api::UpdateSegment {
    const CODE: &'static str = "invalid_segment";
    const WHAT: &'static str = "segment";
}

impl JsonBody for api::PostMessage {
    const CODE: &'static str = "invalid_message";
    const WHAT: &'static str = "message";
}

impl JsonBody for api::SendMessage {
    const CODE: &'static str = "invalid_message";
    const WHAT: &'static str = "message";
}

impl JsonBody for api::PostReply {
    const CODE: &'static str = "invalid_reply";
    const WHAT: &'static str = "reply";
}

impl JsonBody for Programme {
    const CODE: &'static str = "invalid_programme";
    const WHAT: &'static str = "programme";
}

impl JsonBody for api::SetTier {
    const CODE: &'static str = "invalid_tier";
    const WHAT: &'static str = "tier";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: JsonBody + std::fmt::Debug>(body: &str) -> (&'static str, String) {
        let e = parse::<T>(body.as_bytes()).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn a_missing_field_is_the_endpoints_code_and_named() {
        let (code, message) = refused::<api::PurchaseRequest>(
            r#"{"session_id": "chk_1", "idempotency_key": "k", "receipt_id": "r"}"#,
        );
        assert_eq!(code, "invalid_purchase");
        assert!(message.contains("`total_minor`"), "{message}");
    }

    #[test]
    fn an_unknown_field_is_refused_not_ignored() {
        let (code, message) = refused::<api::PostOffer>(
            r#"{"title": "t", "valid_from_ms": 0, "valid_until_ms": 1, "reward": "fixed_points",
                "value": 5, "min_spend": 300}"#,
        );
        assert_eq!(code, "invalid_offer");
        assert!(message.contains("`min_spend`"), "{message}");
    }

    #[test]
    fn a_nested_error_says_where() {
        let (code, message) = refused::<api::PurchaseRequest>(
            r#"{"session_id": "chk_1", "idempotency_key": "k", "receipt_id": "r", "total_minor": 5,
                "lines": [{"sku": "a", "amount_minor": 5}, {"sku": "b", "amount_minor": "5"}]}"#,
        );
        assert_eq!(code, "invalid_purchase");
        assert!(message.contains("lines[1].amount_minor"), "{message}");
        let (code, _) = refused::<api::PostTargetedOffer>(
            r#"{"offer": {"title": "t", "valid_from_ms": 0, "valid_until_ms": 1,
                "reward": "fixed_points", "value": 5}, "target": {"kind": "everyone"}}"#,
        );
        assert_eq!(code, "invalid_target");
    }

    #[test]
    fn enrollment_fields_keep_their_own_codes() {
        let (code, _) = refused::<api::EnrollRequest>(r#"{"activation_code": "ABCD"}"#);
        assert_eq!(code, "invalid_public_key");
        let (code, _) = refused::<api::EnrollRequest>(r#"{"public_key": "00"}"#);
        assert_eq!(code, "malformed_activation_code");
        let (code, _) = refused::<api::EnrollRequest>(
            r#"{"activation_code": "A", "public_key": "00", "device_name": 7}"#,
        );
        assert_eq!(code, "invalid_device_name");
        let (code, message) = refused::<api::EnrollRequest>(
            r#"{"activation_code": "A", "public_key": "00", "name": "phone"}"#,
        );
        assert_eq!(code, "invalid_enrollment");
        assert!(message.contains("`name`"), "{message}");
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed() {
        for body in ["", "{", "not json", r#"{"code": "x"} trailing"#] {
            let (code, _) = refused::<api::ScanRequest>(body);
            assert_eq!(code, "malformed_body", "{body}");
        }
        assert!(parse::<api::ScanRequest>(br#" {"code": "x"} "#).is_ok());
    }
}
