//! Readiness: whether this instance should be sent traffic. Three checks, all named in the
//! answer so an operator sees which failed: the database answers (`database`), at exactly this
//! binary's schema version (`schema`: an instance of another version must not serve beside it,
//! see [`crate::storage::SchemaCheck::current`]), and the server is not shutting down (`serving`).
//! Liveness (`/healthz`) is separate and asks nothing of the database: a database outage should
//! take instances out of the load balancer, not get them restarted.

use loyalty_core::api::{Readiness, ReadinessCheck};

use crate::app::App;

pub async fn readiness(app: &App) -> Readiness {
    let check = |name: &str, ok: bool, detail: String| ReadinessCheck {
        name: name.into(),
        ok,
        detail,
    };
    let (database, schema) = match app.storage.schema_check().await {
        Ok(found) => (
            check("database", true, "answers".into()),
            check(
                "schema",
                found.current(),
                format!(
                    "version {} (this server's: {})",
                    found.found, found.expected
                ),
            ),
        ),
        Err(e) => {
            // The cause goes to the log, not to an unauthenticated client.
            tracing::warn!(error = %e, "readiness: the database does not answer");
            (
                check("database", false, "does not answer".into()),
                check(
                    "schema",
                    false,
                    "unknown: the database does not answer".into(),
                ),
            )
        }
    };
    let closing = app.live.is_closing();
    let serving = check(
        "serving",
        !closing,
        if closing { "shutting down" } else { "yes" }.into(),
    );
    let checks = vec![database, schema, serving];
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::storage::sqlite::SqliteStorage;
    use crate::{App, Config};

    #[tokio::test]
    async fn a_server_shutting_down_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        let app = App::new(
            Config::new("operator-token-0123456789".into()),
            Arc::new(storage),
        );
        assert!(super::readiness(&app).await.ready);
        app.live.close();
        let readiness = super::readiness(&app).await;
        assert!(!readiness.ready);
        let failed: Vec<&str> = readiness
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["serving"]);
    }
}
