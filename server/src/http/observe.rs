//! What every request leaves behind: its Prometheus counts and latency ([`crate::metrics`]) and,
//! when `access_log` is on, one `loyalty::access` log line. A middleware on every route (and the
//! fallback), so handlers do nothing for it.
//!
//! Labels are the matched route template (`/v1/members/{member_id}/sync`), never the raw path:
//! member and device ids would make a series per member. The access line has the method, the
//! template, the status, the duration and the answer's length — no query string, no header, no
//! id — so it carries neither credentials nor personal data. Each template is interned once with
//! its metric handles (`route_metrics`), so a request updates two handles it holds: no
//! allocation, and no look-up of a series by its name and labels (about 2,000 instructions a
//! request when the `metrics` macros did it each time, docs/benchmarks.md).

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
        .map_or("unmatched", |p| p.as_str());
    let route = route_metrics(route);
    let method = method_index(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    route.requests(method, status).increment(1);
    route.duration(method).record(elapsed.as_secs_f64());
    if app.config.access_log {
        // The body's exact length, known for every answer but a stream (which logs none).
        let bytes = axum::body::HttpBody::size_hint(response.body()).exact();
        tracing::info!(
            target: ACCESS_TARGET,
            method = METHODS[method],
            route = route.label,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            "request"
        );
    }
    response
}

/// The method labels; every non-standard method is `other` (a client picks the method; it must
/// not pick label values).
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other",
];

/// The status classes, the third label of the request count.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// An index into [`METHODS`].
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// An index into [`STATUS_CLASSES`].
fn status_class(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// A route template's label and its series, each registered with the recorder the first time a
/// request needs it. The recorder is installed before the router serves (`crate::http::router`),
/// so a handle taken here is the recorder's and stays valid.
struct RouteMetrics {
    label: &'static str,
    requests: [[OnceLock<metrics::Counter>; STATUS_CLASSES.len()]; METHODS.len()],
    durations: [OnceLock<metrics::Histogram>; METHODS.len()],
}

impl RouteMetrics {
    fn requests(&self, method: usize, status: StatusCode) -> &metrics::Counter {
        let class = status_class(status);
        self.requests[method][class].get_or_init(|| {
            metrics::counter!(
                HTTP_REQUESTS,
                "route" => self.label,
                "method" => METHODS[method],
                "status" => STATUS_CLASSES[class]
            )
        })
    }

    fn duration(&self, method: usize) -> &metrics::Histogram {
        self.durations[method].get_or_init(|| {
            metrics::histogram!(HTTP_DURATION, "route" => self.label, "method" => METHODS[method])
        })
    }
}

/// The route template's metrics: each distinct template (a few dozen, from the route table) is
/// leaked once, then found by a read lock.
fn route_metrics(template: &str) -> &'static RouteMetrics {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static RouteMetrics>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(route) = routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(template)
    {
        return route;
    }
    let mut routes = routes.write().unwrap_or_else(|p| p.into_inner());
    routes.entry(template.to_string()).or_insert_with(|| {
        Box::leak(Box::new(RouteMetrics {
            label: Box::leak(template.to_string().into_boxed_str()),
            requests: Default::default(),
            durations: Default::default(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            METHODS[method_index(&Method::from_bytes(b"BREW").unwrap())],
            "other"
        );
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
        assert_eq!(
            STATUS_CLASSES[status_class(StatusCode::SERVICE_UNAVAILABLE)],
            "5xx"
        );
        assert_eq!(STATUS_CLASSES[status_class(StatusCode::NO_CONTENT)], "2xx");
        let a = route_metrics("/v1/members/{member_id}/sync");
        let b = route_metrics(&String::from("/v1/members/{member_id}/sync"));
        assert!(std::ptr::eq(a, b), "a template is interned once");
        assert_eq!(a.label, "/v1/members/{member_id}/sync");
    }
}
