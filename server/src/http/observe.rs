//! What every request leaves behind: its Prometheus counts and latency ([`crate::metrics`]) and,
//! when `access_log` is on, one `loyalty::access` log line. A middleware on every route (and the
//! fallback), so handlers do nothing for it.
//!
//! Labels are the matched route template (`/v1/members/{member_id}/sync`), never the raw path:
//! member and device ids would make a series per member. The access line has the method, the
//! template, the status, the duration and the answer's length — no query string, no header, no
//! id — so it carries neither credentials nor personal data. The template strings are interned
//! once each ([`route_label`]), so a request costs two metric updates and no allocation.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::App;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// The target of access log lines: filter them with `RUST_LOG=loyalty::access=off` or
/// `--access-log false`.
pub const ACCESS_TARGET: &str = "loyalty::access";

/// Records the request's metrics and logs its access line.
pub async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_label(p.as_str()));
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => status_class(status)
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
    if app.config.access_log {
        // The body's exact length, known for every answer but a stream (which logs none).
        let bytes = axum::body::HttpBody::size_hint(response.body()).exact();
        tracing::info!(
            target: ACCESS_TARGET,
            method,
            route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            "request"
        );
    }
    response
}

/// The route template as a `'static` string: each distinct template (a few dozen, from the route
/// table) is leaked once, then found by a read lock.
fn route_label(template: &str) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(label) = routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(template)
    {
        return label;
    }
    let mut routes = routes.write().unwrap_or_else(|p| p.into_inner());
    routes
        .entry(template.to_string())
        .or_insert_with(|| Box::leak(template.to_string().into_boxed_str()))
}

/// The method, with every non-standard one as `other` (a client picks the method; it must not
/// pick label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        let a = route_label("/v1/members/{member_id}/sync");
        let b = route_label(&String::from("/v1/members/{member_id}/sync"));
        assert!(std::ptr::eq(a, b), "a template is interned once");
    }
}
