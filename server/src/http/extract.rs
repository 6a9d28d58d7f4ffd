//! Who is asking: axum extractors that authenticate a request from its head alone, before any of
//! its body is read. A handler names the caller it needs as an argument placed before its body
//! argument — [`Operator`], [`Till`] or [`MemberDevice`] ([`SyncingDevice`] for a sync) — and axum
//! runs it first; a wrong credential is answered at once, and hyper then closes the connection
//! rather than read a body nobody will use (a client sending a megabyte with a wrong token costs
//! the server nothing).
//! [`EnrollAttempt`] is the unauthenticated counterpart for enrollment: only the rate limit.
//!
//! Every extractor applies the per-address limits of [`crate::http::guard`] first: a blocked address is
//! refused before its credentials are looked at, and a failed authentication (`401`) counts
//! against its address. `403` (a revoked device, another member's path) is not a guess and does
//! not count.
//!
//! ```text
//! pub async fn purchase(State(app): State<Arc<App>>, till: Till, body: Json<PurchaseRequest>) ...
//! pub async fn sync(State(app): State<Arc<App>>, SyncingDevice { device, check }: SyncingDevice, body: Bytes) ...
//! ```

use axum::http::HeaderMap;
use loyalty_core::api::parse_device_token;
use loyalty_core::ids::{constant_time_eq, sha256};

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use loyalty_core::ids;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::guard::Guard;
use crate::service::operators::{self, Identity};
use crate::storage::{DeviceRecord, SyncCheck};

/// An operator: `Authorization: Bearer <token>` of a named account that is not disabled, or the
/// configured operator token (the bootstrap admin, [`BOOTSTRAP_OPERATOR`]), or — without an
/// `Authorization` header — the console's session cookie, whose writes must also pass the CSRF
/// checks of [`crate::http::console_session`]; and whose role allows the
/// route ([`crate::http::access`]; else `403 forbidden`). `id` names who it is, recorded with
/// what they change in the ledger and in the audit log.
pub struct Operator {
    pub id: String,
    pub identity: Identity,
}

pub use crate::service::operators::BOOTSTRAP_OPERATOR;

/// A till: `Authorization: Bearer <till token>` and its id in `X-Till-Id`.
pub struct Till {
    pub till_id: String,
}

/// The device of the member named by the path's `{member_id}`: `Authorization: Bearer
/// <device_id>.<device_secret>`, not revoked, and belonging to that member.
pub struct MemberDevice(pub DeviceRecord);

/// [`MemberDevice`] for a sync, read in one statement with the member's [`SyncCheck`] (the
/// document headers and pending work "nothing changed" is answered from): the check is taken
/// when the request's head arrives, before its body, like any snapshot a moment older.
pub struct SyncingDevice {
    pub device: DeviceRecord,
    pub check: SyncCheck,
}

/// A Prometheus scraper: `Authorization: Bearer <metrics token>`.
pub struct MetricsScraper;

/// An enrollment attempt, counted against its address's budget.
pub struct EnrollAttempt;

/// Runs `check` under the guard's limits: refused at once while the address is blocked, and a
/// `401` counted as a failure.
async fn guarded<T>(
    parts: &Parts,
    check: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let guard = Guard::of(parts)?;
    let client = guard.client(parts);
    guard.admit(client)?;
    check.await.map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED {
            guard.failed(client, e)
        } else {
            e
        }
    })
}

impl FromRequestParts<Arc<App>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let identity = guarded(parts, operator_of(parts, app)).await?;
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        if let Some(slot) = parts.extensions.get::<crate::http::audit::AuditSlot>() {
            slot.fill(&identity, &route, Guard::of(parts)?.client(parts));
        }
        identity.require(crate::http::access::required(&parts.method, &route))?;
        Ok(Operator {
            id: identity.operator_id.clone(),
            identity,
        })
    }
}

/// The operator a request comes from: its bearer token, or (with no `Authorization` header) its
/// console session.
async fn operator_of(parts: &Parts, app: &Arc<App>) -> Result<Identity, ApiError> {
    let cookie = crate::http::console_session::session_cookie(&parts.headers);
    match cookie {
        Some(id)
            if !parts
                .headers
                .contains_key(axum::http::header::AUTHORIZATION) =>
        {
            crate::http::console_session::operator(app, parts, id).await
        }
        _ => app.identify_operator(&parts.headers).await,
    }
}

impl FromRequestParts<Arc<App>> for Till {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        guarded(parts, async { app.authenticate_till_token(&parts.headers) }).await?;
        let till_id = parts
            .headers
            .get("x-till-id")
            .and_then(|v| v.to_str().ok())
            .filter(|t| ids::valid_record_id(t))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "missing_till_id",
                    "send the till's id in X-Till-Id (1-64 of A-Z a-z 0-9 _ - .)",
                )
            })?;
        Ok(Till {
            till_id: till_id.to_string(),
        })
    }
}

impl FromRequestParts<Arc<App>> for MemberDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let device = guarded(parts, app.authenticate_device(&parts.headers)).await?;
        same_member(&device, &path_member(parts, app).await?)?;
        Ok(MemberDevice(device))
    }
}

impl FromRequestParts<Arc<App>> for SyncingDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let member_id = path_member(parts, app).await?;
        let (device, check) = guarded(parts, async {
            let (device_id, secret) = device_credentials(&parts.headers)?;
            let (found, check) = app
                .storage
                .device_and_sync_check(device_id, &member_id, app.now_ms())
                .await?;
            Ok((app.verify_device(found, secret).await?, check))
        })
        .await?;
        same_member(&device, &member_id)?;
        Ok(SyncingDevice { device, check })
    }
}

/// The path's `{member_id}`.
async fn path_member(parts: &mut Parts, app: &Arc<App>) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, app)
        .await
        .map_err(|e| ApiError::internal("reading the path", e))?;
    params
        .iter()
        .find_map(|(name, value)| (name == "member_id").then(|| value.to_string()))
        .ok_or_else(|| ApiError::internal("reading the path", "no {member_id} in the route"))
}

/// `403` unless the device is the path's member's.
fn same_member(device: &DeviceRecord, member_id: &str) -> Result<(), ApiError> {
    if device.member_id == member_id {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "these credentials belong to another member",
        ))
    }
}

/// The device id and secret of `Authorization: Bearer <device_id>.<device_secret>`, or 401.
fn device_credentials(headers: &HeaderMap) -> Result<(&str, &str), ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("device credentials are missing"))?;
    parse_device_token(header)
        .ok_or_else(|| ApiError::unauthorized("device credentials are malformed"))
}

impl FromRequestParts<Arc<App>> for MetricsScraper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        guarded(parts, async {
            check_bearer(&parts.headers, app.metrics_token_hash.as_ref(), "metrics")
        })
        .await?;
        Ok(MetricsScraper)
    }
}

impl FromRequestParts<Arc<App>> for EnrollAttempt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<App>) -> Result<Self, ApiError> {
        let guard = Guard::of(parts)?;
        guard.enroll_attempt(guard.client(parts))?;
        Ok(EnrollAttempt)
    }
}

impl App {
    /// The device the request's credentials belong to, or 401/403.
    pub async fn authenticate_device(&self, headers: &HeaderMap) -> Result<DeviceRecord, ApiError> {
        let (device_id, secret) = device_credentials(headers)?;
        let found = self.storage.device(device_id).await?;
        self.verify_device(found, secret).await
    }

    /// The device `found` under the credentials' id, if `secret` is its secret (else 401) and it
    /// is not revoked (else 403); recorded as seen.
    async fn verify_device(
        &self,
        found: Option<DeviceRecord>,
        secret: &str,
    ) -> Result<DeviceRecord, ApiError> {
        let wrong = || ApiError::unauthorized("device credentials are wrong");
        let device = found.ok_or_else(wrong)?;
        if !constant_time_eq(&sha256(secret.as_bytes()), &device.secret_hash) {
            return Err(wrong());
        }
        if device.revoked {
            return Err(ApiError::forbidden("this device has been revoked"));
        }
        crate::service::history::seen(self, &device).await;
        Ok(device)
    }

    /// The operator a bearer token names: the configured token's bootstrap admin, or a named
    /// account that is not disabled; else 401.
    pub async fn identify_operator(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        if check_bearer(headers, self.operator_token_hash.as_ref(), "operator").is_ok() {
            return Ok(Identity::bootstrap());
        }
        let token =
            bearer(headers).ok_or_else(|| ApiError::unauthorized("operator token is missing"))?;
        operators::identify(self, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("operator token is wrong or disabled"))
    }

    /// Checks the till bearer token, or 401.
    pub fn authenticate_till_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        check_bearer(headers, self.till_token_hash.as_ref(), "till")
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Checks `Authorization: Bearer <token>` against the hash of the configured token, in constant
/// time; `who` names the token in the error.
fn check_bearer(
    headers: &HeaderMap,
    expected: Option<&[u8; 32]>,
    who: &str,
) -> Result<(), ApiError> {
    let token =
        bearer(headers).ok_or_else(|| ApiError::unauthorized(format!("{who} token is missing")))?;
    let expected = expected.ok_or_else(|| {
        ApiError::unauthorized(format!("no {who} token is configured on this server"))
    })?;
    if constant_time_eq(&sha256(token.as_bytes()), expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!("{who} token is wrong")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn app(till_token: &str) -> (tempfile::TempDir, Arc<App>) {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            crate::storage::sqlite::SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        let mut config = crate::Config::new("operator-token-0123456789".into());
        config.till_token = till_token.into();
        (dir, App::new(config, Arc::new(storage)))
    }

    /// A request's head as the router hands it on: with the per-address guard in its extensions.
    fn parts(auth: &str, till_id: Option<&str>) -> Parts {
        let guard = Arc::new(Guard::new(&crate::config::EdgeConfig::default()));
        let mut request = Request::builder()
            .header("authorization", auth)
            .extension(guard);
        if let Some(id) = till_id {
            request = request.header("x-till-id", id);
        }
        request.body(()).unwrap().into_parts().0
    }

    async fn till(app: &Arc<App>, auth: &str, till_id: Option<&str>) -> Result<String, ApiError> {
        Till::from_request_parts(&mut parts(auth, till_id), app)
            .await
            .map(|t| t.till_id)
    }

    #[tokio::test]
    async fn a_request_without_the_guard_is_a_server_error_not_an_admission() {
        let (_d, app) = app("till-token-0123456789");
        let mut bare = Request::builder()
            .header("authorization", "Bearer operator-token-0123456789")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let refused = Operator::from_request_parts(&mut bare, &app).await;
        assert_eq!(refused.err().map(|e| e.code), Some("internal"));
    }

    #[tokio::test]
    async fn an_unset_till_token_admits_nobody() {
        let (_d, app) = app("");
        // A header that survives as "Bearer " with an empty token must not match an empty setting.
        let refused = till(&app, "Bearer ", Some("till-1")).await.unwrap_err();
        assert_eq!(refused.code, "unauthorized");
    }

    #[tokio::test]
    async fn the_configured_till_token_and_a_till_id_are_required() {
        let (_d, app) = app("till-token-0123456789");
        let token = "Bearer till-token-0123456789";
        assert_eq!(till(&app, token, Some("till-1")).await.unwrap(), "till-1");
        let wrong = till(&app, "Bearer wrong", Some("till-1")).await;
        assert_eq!(wrong.unwrap_err().code, "unauthorized");
        let no_id = till(&app, token, None).await.unwrap_err();
        assert_eq!(no_id.code, "missing_till_id");
        let bad_id = till(&app, token, Some("till 1")).await.unwrap_err();
        assert_eq!(bad_id.code, "missing_till_id");
    }

    #[tokio::test]
    async fn the_operator_token_is_checked() {
        let (_d, app) = app("till-token-0123456789");
        let ok = Operator::from_request_parts(
            &mut parts("Bearer operator-token-0123456789", None),
            &app,
        )
        .await;
        assert_eq!(ok.ok().map(|o| o.id), Some(BOOTSTRAP_OPERATOR.to_string()));
        for auth in ["Bearer till-token-0123456789", "operator-token-0123456789"] {
            let refused = Operator::from_request_parts(&mut parts(auth, None), &app).await;
            assert_eq!(refused.err().map(|e| e.code), Some("unauthorized"));
        }
    }
}
