//! The OpenAPI 3.1 document of the HTTP API, generated, never written by hand: every handler
//! carries a `#[utoipa::path]` annotation (its path from [`loyalty_core::api::paths`], its body,
//! answers, parameters and credentials), the wire types derive `utoipa::ToSchema` (in the core
//! behind its `openapi` feature), and `utoipa-axum` mounts each handler at the path and methods its
//! annotation declares, so the router and the document are built from one list ([`super::routes`]).
//!
//! This module adds what no single handler knows: the title, the four security schemes of
//! [`crate::http::extract`], the error body's code enum (from [`crate::http::error::CODES`]), and
//! the error answers each kind of route may give, as reusable response sets ([`Refusals`],
//! [`Authentication`], …) that annotations list after their success answer. Served at
//! `GET /openapi.json`; `loyalty openapi` prints it without a server.

use std::collections::BTreeMap;

use utoipa::openapi::content::Content;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify};

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use loyalty_core::api::paths;

use crate::http::error::CODES;

/// The document's fixed parts; [`super::routes`] adds every operation.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "loyalty server",
        description = "Enrollment and sync for members' devices, checkout for tills, and the operators' \
            back office. Generated from the server's handlers; the prose is `docs/protocol.md`. Every \
            error answer has the JSON body `ErrorBody`; its `code` is stable, its `message` is for people.",
    ),
    modifiers(&Security, &ErrorCodes),
    components(schemas(loyalty_core::api::ErrorBody, loyalty_core::api::ErrorDetail)),
    tags(
        (name = "device", description = "A member's device: enrollment, sync, documents, live updates"),
        (name = "till", description = "Checkout: scan a member's code, post purchases and refunds"),
        (name = "admin", description = "The operators' back office"),
        (name = "outbound", description = "Message providers: delivery receipts from the gateway behind the webhook"),
        (name = "console", description = "The operators' console: logging in and out (docs/console.md)"),
        (name = "service", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as served, serialised once when the router is built.
#[derive(Clone)]
pub struct Document(axum::body::Bytes);

impl Document {
    pub fn new(document: &OpenApi) -> Self {
        // Serialising a tree of strings and maps cannot fail; an empty body would be refused by
        // every client rather than misread.
        let json = serde_json::to_vec(document).unwrap_or_default();
        Self(json.into())
    }
}

/// This document: every route, its bodies, answers, parameters and credentials.
#[utoipa::path(
    get,
    path = paths::OPENAPI,
    tag = "service",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
            body = inline(Object)),
        Refusals
    )
)]
pub async fn openapi_json(Extension(document): Extension<Document>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.0,
    )
}

/// Bytes that are not JSON (Automerge sync messages and documents, images), for annotations:
/// `body = inline(Binary)`.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("binary".into())))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// An optional request body, annotated `Option<T>`, is one that may be left out, never JSON `null`
/// (which its handler refuses): the body stays optional (`required` unset) and its schema becomes
/// `T`'s. utoipa reads `Option<T>` as "`T` or `null`".
pub fn optional_bodies(document: &mut OpenApi) {
    let operations = document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
    });
    for operation in operations.flatten() {
        let Some(body) = operation.request_body.as_mut() else {
            continue;
        };
        for content in body.content.values_mut() {
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let not_null: Vec<&RefOr<Schema>> =
                one_of.items.iter().filter(|item| !is_null(item)).collect();
            if let [only] = not_null[..] {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == Type::Null.into())
}

/// The security scheme names the annotations use.
pub const OPERATOR: &str = "operator";
pub const TILL: &str = "till";
pub const DEVICE: &str = "device";
pub const METRICS: &str = "metrics";

/// The three credentials of [`crate::http::extract`], each a bearer token.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: Option<&str>, description: &str| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            OPERATOR,
            bearer(
                None,
                "The operator token of the server's configuration (`--operator-token`).",
            ),
        );
        components.add_security_scheme(
            TILL,
            bearer(
                None,
                "The till token of the server's configuration (`--till-token`), with the till's id \
                 in the `X-Till-Id` header.",
            ),
        );
        components.add_security_scheme(
            METRICS,
            bearer(
                None,
                "The metrics token of the server's configuration (`--metrics-token`), for a \
                 Prometheus scraper.",
            ),
        );
        components.add_security_scheme(
            DEVICE,
            bearer(
                Some("<device_id>.<device_secret>"),
                "A device's credentials from its enrollment, joined by a dot; valid only on paths \
                 under the device's own member.",
            ),
        );
    }
}

/// Makes `ErrorDetail.code` an enum of every code the server answers with.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(detail))) = components.schemas.get_mut("ErrorDetail")
        else {
            return;
        };
        let mut codes: Vec<&str> = CODES.iter().map(|(_, code)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        let code = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Stable, for programs (`docs/protocol.md`, *Errors*). A client should treat a code \
                 it does not know by its status: new codes may be added.",
            ))
            .enum_values(Some(codes))
            .build();
        detail.properties.insert("code".into(), code.into());
    }
}

/// An error answer of `status`: the JSON error body, the codes it may carry, and `Retry-After`
/// where the server sends it.
fn error_response(status: u16) -> RefOr<Response> {
    let codes: Vec<String> = CODES
        .iter()
        .filter(|(s, _)| *s == status)
        .map(|(_, code)| format!("`{code}`"))
        .collect();
    let body = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "ErrorBody",
    ))));
    let mut response = ResponseBuilder::new()
        .description(format!("Refused: {}", codes.join(", ")))
        .content("application/json", body);
    if status == 429 || status == 503 {
        let seconds: Object = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .build();
        response = response.header(
            "Retry-After",
            utoipa::openapi::header::HeaderBuilder::new()
                .schema(seconds)
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    response.build().into()
}

/// A reusable set of error answers, listed in an annotation's `responses(...)`.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+]
                    .into_iter()
                    .map(|status: u16| (status.to_string(), error_response(status)))
                    .collect()
            }
        }
    };
}

error_set!(
    /// What any request may be answered with: a malformed request, a body too large or too slow,
    /// overload, a failure.
    Refusals: 400, 408, 413, 500, 503
);
error_set!(
    /// Credentials missing or wrong, credentials whose role does not allow the route (operators),
    /// and the per-address limit on failures.
    Authentication: 401, 403, 429
);
error_set!(
    /// The per-address limit on enrollment attempts.
    Throttled: 429
);
error_set!(
    /// A device asking under another member, or revoked.
    Forbidden: 403
);
error_set!(
    /// What the request names does not exist.
    NotFound: 404
);
error_set!(
    /// The request clashes with the state.
    Conflict: 409
);
error_set!(
    /// What the request names is no longer usable.
    Gone: 410
);
error_set!(
    /// Well formed but refused by a business rule (a checkout code).
    Unprocessable: 422
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_of_a_set_has_codes() {
        for set in [
            Refusals::responses(),
            Authentication::responses(),
            Forbidden::responses(),
            NotFound::responses(),
            Conflict::responses(),
            Gone::responses(),
            Unprocessable::responses(),
        ] {
            for (status, response) in set {
                let RefOr::T(response) = response else {
                    panic!("{status} is a reference");
                };
                assert!(response.description.contains('`'), "{status} lists no code");
            }
        }
    }
}
