//! The operators' console's files (`docs/console.md`): a page and its scripts, styles and the
//! vendored Chart.js, embedded in the binary from `server/console/`, so the console ships with
//! the server and needs no node to build. Every page path under `/console` answers the one
//! `index.html` (the script routes by the URL's fragment); `/console/assets/NAME` answers a file
//! by name, or `404`.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles and connections only
//! from this server, no inline script or style, no framing. Member-provided text reaches the page
//! only as DOM text (the scripts never use `innerHTML` with data), and the policy is the second
//! line should a script ever slip.
//!
//! These routes are files, not API: they are outside the OpenAPI document and need no
//! credentials (the data comes from the admin API, under its own access control).

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::http::error::ApiError;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX: &str = include_str!("../../console/index.html");

/// (name, content type, bytes) of every file under `/console/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../console/app.js")),
    ("api.js", JS, include_str!("../../console/api.js")),
    ("dom.js", JS, include_str!("../../console/dom.js")),
    ("login.js", JS, include_str!("../../console/login.js")),
    ("members.js", JS, include_str!("../../console/members.js")),
    ("member.js", JS, include_str!("../../console/member.js")),
    ("requests.js", JS, include_str!("../../console/requests.js")),
    (
        "liability.js",
        JS,
        include_str!("../../console/liability.js"),
    ),
    ("audit.js", JS, include_str!("../../console/audit.js")),
    ("charts.js", JS, include_str!("../../console/charts.js")),
    ("offers.js", JS, include_str!("../../console/offers.js")),
    ("segments.js", JS, include_str!("../../console/segments.js")),
    ("points.js", JS, include_str!("../../console/points.js")),
    (
        "memberstats.js",
        JS,
        include_str!("../../console/memberstats.js"),
    ),
    (
        "deliveries.js",
        JS,
        include_str!("../../console/deliveries.js"),
    ),
    ("watch.js", JS, include_str!("../../console/watch.js")),
    ("window.js", JS, include_str!("../../console/window.js")),
    ("rfm.js", JS, include_str!("../../console/rfm.js")),
    ("uptake.js", JS, include_str!("../../console/uptake.js")),
    ("audience.js", JS, include_str!("../../console/audience.js")),
    ("messages.js", JS, include_str!("../../console/messages.js")),
    (
        "operators.js",
        JS,
        include_str!("../../console/operators.js"),
    ),
    (
        "programme.js",
        JS,
        include_str!("../../console/programme.js"),
    ),
    (
        "console.css",
        CSS,
        include_str!("../../console/console.css"),
    ),
    (
        "chart.umd.min.js",
        JS,
        include_str!("../../console/vendor/chart.umd.min.js"),
    ),
];

/// The console's routes: the page at `/console`, `/console/` and any page path below, the files
/// under `/console/assets/`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*page}", get(index))
        .route("/console/assets/{name}", get(asset))
}

async fn index() -> Response {
    file(HTML, INDEX)
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, body)| file(content_type, body))
        .ok_or_else(|| ApiError::not_found("not_found", "no such console file"))
}

/// A file with the console's security headers. Not cached across restarts' versions: the
/// browser revalidates, so an upgraded server never runs yesterday's script against today's API.
fn file(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_console_file_runs_inline_script_or_writes_html_from_data() {
        assert!(!INDEX.contains("<script>"), "inline script in index.html");
        assert!(!INDEX.contains(" style="), "inline style in index.html");
        for (name, _, body) in ASSETS {
            if name.starts_with("chart.") {
                continue;
            }
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!body.contains(forbidden), "{name} uses {forbidden}");
            }
        }
    }

    /// A page module left out of `ASSETS` would build and pass every other check, then fail to
    /// load in the browser: every file in `server/console/` must be served.
    #[test]
    fn every_console_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") || name.ends_with(".css") {
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{name} is not in ASSETS"
                );
            }
        }
    }

    #[test]
    fn the_vendored_chart_js_keeps_its_licence_header() {
        let (_, _, chart) = ASSETS
            .iter()
            .find(|(n, _, _)| *n == "chart.umd.min.js")
            .unwrap();
        let head: String = chart.chars().take(400).collect();
        assert!(head.contains("Chart.js") && head.contains("MIT"), "{head}");
    }
}
