//! The operators' console sessions: a login trades an operator token (a named account's or the
//! configured bootstrap token) for a random session id, which the browser keeps in an HttpOnly
//! cookie, and a CSRF token, which the console's script sends back on every write. Only the
//! SHA-256 of the id is stored, so a copy of the database opens no session. A session lasts
//! [`SESSION_MS`], and ends sooner at logout or when its account is disabled (checked at every
//! use, not only at login); a bootstrap session ends when the server's operator token is no longer
//! the one it was opened with (rotating a leaked `--operator-token` ends its consoles too).

use loyalty_core::ids::{constant_time_eq, hex, random_bytes, sha256};

use crate::app::App;
use crate::error::DomainError;
use crate::service::operators::{self, Identity, Role};
use crate::storage::{ConsoleSession, ResumedSession};

/// How long a console session lasts: a working day, then the operator logs in again.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

/// A session just made: the id for the cookie (handed out this once) and who it is for.
pub struct NewSession {
    pub session_id: String,
    pub csrf_token: String,
    pub identity: Identity,
}

/// A live session: who it is for, and the token its writes must carry.
pub struct LiveSession {
    pub identity: Identity,
    pub csrf_token: String,
}

/// Logs in with an operator token; `401` when it is nobody's (or a disabled account's).
pub async fn login(app: &App, token: &str) -> Result<NewSession, DomainError> {
    let identity = identify_token(app, token)
        .await?
        .ok_or_else(|| DomainError::unauthorized("operator token is wrong or disabled"))?;
    let session_id = hex(&random_bytes::<32>());
    let csrf_token = hex(&random_bytes::<32>());
    let now = app.now_ms();
    app.storage
        .create_console_session(
            ConsoleSession {
                id_hash: sha256(session_id.as_bytes()),
                operator_id: owner(app, &identity),
                csrf_token: csrf_token.clone(),
                created_at_ms: now,
                expires_at_ms: now + SESSION_MS,
            },
            now,
        )
        .await?;
    tracing::info!(operator = %identity.operator_id, "console session started");
    Ok(NewSession {
        session_id,
        csrf_token,
        identity,
    })
}

/// The live session a cookie's id names, if any.
pub async fn resume(app: &App, session_id: &str) -> Result<Option<LiveSession>, DomainError> {
    let Some(found) = app
        .storage
        .console_session(sha256(session_id.as_bytes()), app.now_ms())
        .await?
    else {
        return Ok(None);
    };
    let csrf_token = found.session.csrf_token.clone();
    Ok(identity_of(app, found).map(|identity| LiveSession {
        identity,
        csrf_token,
    }))
}

/// Ends the session a cookie's id names (nothing to do when there is none).
pub async fn logout(app: &App, session_id: &str) -> Result<(), DomainError> {
    app.storage
        .end_console_session(sha256(session_id.as_bytes()))
        .await?;
    Ok(())
}

/// Whether a write's `X-CSRF-Token` is the session's, in constant time.
pub fn csrf_matches(session: &LiveSession, sent: &str) -> bool {
    constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes())
}

/// The operator a token belongs to, as the `Authorization` header's check does: the configured
/// token's bootstrap admin, or a named account that is not disabled.
async fn identify_token(app: &App, token: &str) -> Result<Option<Identity>, DomainError> {
    let bootstrap = app
        .operator_token_hash
        .as_ref()
        .is_some_and(|h| constant_time_eq(&sha256(token.as_bytes()), h));
    if bootstrap {
        return Ok(Some(Identity::bootstrap()));
    }
    operators::identify(app, token).await
}

/// The owner a session is stored under: the operator's id, or for the bootstrap admin, its id
/// bound to the configured token (`admin#` and 8 bytes of the SHA-256 of the token's hash), which
/// matches no account.
fn owner(app: &App, identity: &Identity) -> String {
    match bootstrap_owner(app) {
        Some(bootstrap) if *identity == Identity::bootstrap() => bootstrap,
        _ => identity.operator_id.clone(),
    }
}

fn bootstrap_owner(app: &App) -> Option<String> {
    let hash = app.operator_token_hash.as_ref()?;
    Some(format!(
        "{}#{}",
        operators::BOOTSTRAP_OPERATOR,
        hex(&sha256(hash)[..8])
    ))
}

/// Who a stored session is for, now: its account if still enabled, or the bootstrap admin while
/// an operator token is configured.
fn identity_of(app: &App, found: ResumedSession) -> Option<Identity> {
    match found.account {
        Some(account) if account.disabled_at_ms.is_none() => Some(Identity {
            role: Role::parse(&account.role)?,
            operator_id: account.operator_id,
            name: account.name,
        }),
        Some(_) => None,
        None if Some(&found.session.operator_id) == bootstrap_owner(app).as_ref() => {
            Some(Identity::bootstrap())
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn app() -> (tempfile::TempDir, Arc<App>) {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            crate::storage::sqlite::SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        let config = crate::Config::new("operator-token-0123456789".into());
        (dir, App::new(config, Arc::new(storage)))
    }

    #[tokio::test]
    async fn a_session_lives_until_logout_and_checks_its_csrf_token() {
        let (_d, app) = app();
        let made = login(&app, "operator-token-0123456789").await.unwrap();
        assert_eq!(made.identity, Identity::bootstrap());
        let live = resume(&app, &made.session_id).await.unwrap().unwrap();
        assert_eq!(live.identity.operator_id, operators::BOOTSTRAP_OPERATOR);
        assert!(csrf_matches(&live, &made.csrf_token));
        assert!(!csrf_matches(&live, "not-the-token"));
        assert!(!csrf_matches(&live, ""));
        logout(&app, &made.session_id).await.unwrap();
        assert!(resume(&app, &made.session_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_wrong_token_or_unknown_session_is_nobody() {
        let (_d, app) = app();
        let refused = login(&app, "wrong").await.err().unwrap();
        assert_eq!(refused.code, "unauthorized");
        assert!(resume(&app, "no-such-session").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_bootstrap_session_ends_when_the_operator_token_changes_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let open = |token: &str| {
            let storage = crate::storage::sqlite::SqliteStorage::open(&path).unwrap();
            App::new(crate::Config::new(token.into()), Arc::new(storage))
        };
        let made = login(
            &open("operator-token-0123456789"),
            "operator-token-0123456789",
        )
        .await
        .unwrap();
        let without = open("");
        assert!(resume(&without, &made.session_id).await.unwrap().is_none());
        let rotated = open("another-operator-token-0123");
        assert!(resume(&rotated, &made.session_id).await.unwrap().is_none());
        let same = open("operator-token-0123456789");
        let live = resume(&same, &made.session_id).await.unwrap().unwrap();
        assert_eq!(live.identity, Identity::bootstrap());
    }

    #[tokio::test]
    async fn a_disabled_operators_session_ends() {
        let (_d, app) = app();
        let created = operators::create(
            &app,
            &Identity::bootstrap(),
            loyalty_core::api::NewOperator {
                name: "Sam".into(),
                role: "support".into(),
            },
        )
        .await
        .unwrap();
        let made = login(&app, &created.token).await.unwrap();
        let live = resume(&app, &made.session_id).await.unwrap().unwrap();
        assert_eq!(live.identity.role, Role::Support);
        operators::disable(&app, &Identity::bootstrap(), &created.operator.operator_id)
            .await
            .unwrap();
        assert!(resume(&app, &made.session_id).await.unwrap().is_none());
    }
}
