//! Which database the end-to-end tests run their servers on: a SQLite file (the default), or
//! PostgreSQL when `LOYALTY_TEST_BACKEND=postgres` (the test command runs the whole suite both
//! ways, on the PostgreSQL server it names in `LOYALTY_TEST_PG`).
//!
//! Tests keep naming a server's database by a path in their temporary folder, as they always
//! did: on PostgreSQL the path stands for a fresh database made at its first use, and the same
//! path names the same database afterwards (a restarted server, a second instance, a helper that
//! opens the storage beside the server all find the first one's rows).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use loyalty_server::storage::Storage;
use loyalty_server::storage::postgres::PgStorage;
use loyalty_server::storage::sqlite::SqliteStorage;

/// Pool size of a server the harness opens on PostgreSQL: tests run side by side on one
/// PostgreSQL server, so each keeps few.
const TEST_POOL: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend this run's servers use.
pub fn backend() -> Backend {
    match std::env::var("LOYALTY_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// Whether this run is on PostgreSQL: what the few tests of SQLite's own file (its exclusive lock,
/// its online backup, damage written with SQLite's loose typing) check to pass over themselves.
pub fn on_postgres() -> bool {
    backend() == Backend::Postgres
}

/// What a server's `--database` is for the database a test names by `path`: the path itself on
/// SQLite, else the URL of the PostgreSQL database that path stands for.
pub fn database_for(path: &Path) -> String {
    match backend() {
        Backend::Sqlite => path.display().to_string(),
        Backend::Postgres => postgres_database(path),
    }
}

fn postgres_database(path: &Path) -> String {
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut known = DATABASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    known
        .entry(path.to_path_buf())
        .or_insert_with(|| shared_server().database())
        .clone()
}

/// The test command's PostgreSQL server: this mode needs one for the whole run.
fn shared_server() -> crate::postgres::Postgres {
    match std::env::var("LOYALTY_TEST_PG") {
        Ok(url) if !url.is_empty() => crate::postgres::Postgres::Shared { url },
        _ => panic!(
            "LOYALTY_TEST_BACKEND=postgres needs LOYALTY_TEST_PG: start one with \
             `bash scripts/postgres.sh start DIR` and export the URL it prints"
        ),
    }
}

/// The storage of the database `path` names, opened as a server would (migrated).
pub async fn open_storage(path: &Path) -> Arc<dyn Storage> {
    match backend() {
        Backend::Sqlite => Arc::new(SqliteStorage::open(path).expect("open the SQLite database")),
        Backend::Postgres => Arc::new(
            PgStorage::connect(&postgres_database(path), TEST_POOL)
                .await
                .expect("open the PostgreSQL database"),
        ),
    }
}

/// Counts one use of each offer for the member, as a till's posting does, in a transaction of its
/// own on the database `path` names (the backends' own helper for tools and tests).
pub async fn record_offer_uses_alone(path: &Path, member_id: &str, offer_ids: &[String]) -> bool {
    match backend() {
        Backend::Sqlite => SqliteStorage::open(path)
            .expect("open the SQLite database")
            .record_offer_uses_alone(member_id, offer_ids)
            .await
            .expect("the uses are counted or refused"),
        Backend::Postgres => PgStorage::connect(&postgres_database(path), 1)
            .await
            .expect("open the PostgreSQL database")
            .record_offer_uses_alone(member_id, offer_ids)
            .await
            .expect("the uses are counted or refused"),
    }
}
