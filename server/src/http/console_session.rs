//! The console's login and logout (`/console/session`), and how the [`Operator`] extractor reads
//! the session cookie. A login trades an operator token for a session (`crate::service::
//! console_sessions`) whose id goes in the `loyalty_console` cookie — `HttpOnly` so no script can
//! read it, `SameSite=Strict` so no other site's page can send it — and whose CSRF token goes in
//! the answer's body, for the console's script to send back in `X-CSRF-Token` on every write.
//! A login is held to the per-address limits as any credential is ([`Attempt`]).
//!
//! A cookie-authenticated request that may change something (any method but `GET` and `HEAD`) is
//! refused with `403 csrf_failed` unless it carries the session's CSRF token and, when it has an
//! `Origin` header, that origin is this server (its host and port are the request's `Host`).
//! SameSite alone would stop other sites in current browsers; the token and the origin check also
//! stop a page on a sibling host of the same site, and older browsers.
//!
//! The cookie gets `Secure` when `--console-secure-cookie` is set or the request came through a
//! proxy that says it was HTTPS (`X-Forwarded-Proto: https`): the server itself speaks plain HTTP,
//! so it cannot know otherwise, and the console must keep working on `http://localhost`.
//!
//! [`Operator`]: crate::http::extract::Operator

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::api::{ConsoleLogin, ConsoleSessionInfo, paths};

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::guard::Attempt;
use crate::http::json::Json;
use crate::http::openapi::{Authentication, Refusals};
use crate::service::console_sessions::{self, LiveSession, SESSION_MS};
use crate::service::operators::Identity;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "loyalty_console";

/// The header a cookie-authenticated write carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Logs in with an operator token: sets the session cookie and answers who is logged in and the
/// session's CSRF token.
#[utoipa::path(
    post,
    path = paths::CONSOLE_SESSION,
    tag = "console",
    request_body = ConsoleLogin,
    responses(
        (status = 200, body = ConsoleSessionInfo,
            description = "Logged in; the `loyalty_console` cookie holds the session",
            headers(("Set-Cookie" = String, description = "`loyalty_console=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`"))),
        Refusals, Authentication
    )
)]
pub async fn login(
    State(app): State<Arc<App>>,
    attempt: Attempt,
    headers: HeaderMap,
    body: Result<Json<ConsoleLogin>, ApiError>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let made = console_sessions::login(&app, &request.token)
        .await
        .map_err(|e| attempt.failed(e.into()))?;
    let cookie = format!(
        "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        made.session_id,
        SESSION_MS / 1000,
        if secure(&app, &headers) {
            "; Secure"
        } else {
            ""
        }
    );
    let info = info(&made.identity, made.csrf_token);
    Ok(answer(Some(cookie), Json(info).into_response()))
}

/// Who is logged in, with the session's CSRF token (a reloaded page reads it here); `401` when
/// the cookie names no live session.
#[utoipa::path(
    get,
    path = paths::CONSOLE_SESSION,
    tag = "console",
    responses((status = 200, body = ConsoleSessionInfo), Refusals, Authentication)
)]
pub async fn current(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let live = live(&app, &headers).await?;
    let info = info(&live.identity, live.csrf_token);
    Ok(answer(None, Json(info).into_response()))
}

/// Logs out: ends the session (it must carry its CSRF token, as every write does) and clears the
/// cookie. Without a live session there is nothing to end, and the cookie is cleared all the same.
#[utoipa::path(
    delete,
    path = paths::CONSOLE_SESSION,
    tag = "console",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Logged out; the cookie is cleared"), Refusals, Authentication)
)]
pub async fn logout(State(app): State<Arc<App>>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(id) = session_cookie(&parts.headers)
        && let Some(live) = console_sessions::resume(&app, id).await?
    {
        check_write(&parts, &live)?;
        console_sessions::logout(&app, id).await?;
    }
    let clear = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(answer(Some(clear), StatusCode::NO_CONTENT.into_response()))
}

/// The operator of a request authenticated by its session cookie (the [`Operator`] extractor's
/// second way in), after the CSRF checks when the request may write.
///
/// [`Operator`]: crate::http::extract::Operator
pub async fn operator(app: &App, parts: &Parts, session_id: &str) -> Result<Identity, ApiError> {
    let live = console_sessions::resume(app, session_id)
        .await?
        .ok_or_else(no_session)?;
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        check_write(parts, &live)?;
    }
    Ok(live.identity)
}

/// The session id of the request's `loyalty_console` cookie.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value)
}

/// The CSRF token and the origin of a write.
fn check_write(parts: &Parts, live: &LiveSession) -> Result<(), ApiError> {
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !console_sessions::csrf_matches(live, sent) {
        return Err(csrf_failed(
            "a console write must carry its session's token in X-CSRF-Token",
        ));
    }
    if let Some(origin) = parts.headers.get(ORIGIN) {
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        if !same_origin(origin.to_str().unwrap_or(""), host) {
            return Err(csrf_failed("the request's Origin is not this server"));
        }
    }
    Ok(())
}

/// Whether an `Origin` (`scheme://host[:port]`) names the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
}

async fn live(app: &App, headers: &HeaderMap) -> Result<LiveSession, ApiError> {
    let id = session_cookie(headers).ok_or_else(no_session)?;
    console_sessions::resume(app, id)
        .await?
        .ok_or_else(no_session)
}

fn no_session() -> ApiError {
    ApiError::unauthorized("no console session: it expired, was ended, or never began; log in")
}

fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", message)
}

fn secure(app: &App, headers: &HeaderMap) -> bool {
    app.config.console_secure_cookie
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn info(identity: &Identity, csrf_token: String) -> ConsoleSessionInfo {
    ConsoleSessionInfo {
        operator_id: identity.operator_id.clone(),
        name: identity.name.clone(),
        role: identity.role.as_str().into(),
        csrf_token,
    }
}

/// A session answer: never cached (it carries the CSRF token), with the cookie to set if any.
fn answer(cookie: Option<String>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; loyalty_console=abc; b=2"),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        let mut empty = HeaderMap::new();
        empty.append(
            COOKIE,
            HeaderValue::from_static("loyalty_console=; other=x"),
        );
        assert_eq!(session_cookie(&empty), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn an_origin_must_be_the_requests_host() {
        assert!(same_origin("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(same_origin("https://Shop.example", Some("shop.example")));
        assert!(!same_origin("http://evil.example", Some("shop.example")));
        assert!(!same_origin(
            "http://127.0.0.1:8081",
            Some("127.0.0.1:8080")
        ));
        assert!(!same_origin("null", Some("shop.example")));
        assert!(!same_origin("http://shop.example", None));
    }
}
