//! An online backup of the server's SQLite database, taken while the server runs: SQLite's backup
//! API copies the pages in steps, so the server keeps answering tills and phones meanwhile, and a
//! write during the copy makes it start over from a consistent state rather than copy a torn one.
//! The copy is then checked (`PRAGMA integrity_check`, and the application id and migration level
//! of a server database) before it is called a backup. Restoring is copying the file back while
//! the server is stopped (docs/operations.md).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{APPLICATION_ID, MIGRATIONS};

/// Pages copied per step; between steps the server's writer gets the database.
const PAGES_PER_STEP: i32 = 1024;
/// The pause between steps.
const PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no server database at {0}")]
    Missing(String),
    #[error("{0} exists; a backup never overwrites a file")]
    Exists(String),
    #[error("{0} is not a loyalty server database")]
    NotOurs(String),
    #[error("the backup failed its check: {0}")]
    Check(String),
    #[error("the database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a finished backup holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupReport {
    pub pages: i64,
    pub bytes: u64,
    pub schema_version: i64,
}

/// Copies the database at `from` into a new file `to`, online, then checks the copy. `progress`
/// hears (pages left, pages in all) after each step.
pub fn backup(
    from: &Path,
    to: &Path,
    progress: &mut dyn FnMut(i64, i64),
) -> Result<BackupReport, BackupError> {
    if !from.exists() {
        return Err(BackupError::Missing(from.display().to_string()));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.display().to_string()));
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // Busy while the server checkpoints: wait rather than fail the step.
    source.busy_timeout(Duration::from_secs(30))?;
    if application_id(&source)? != APPLICATION_ID {
        return Err(BackupError::NotOurs(from.display().to_string()));
    }
    let mut target = Connection::open(to)?;
    {
        use rusqlite::backup::StepResult;
        let copy = rusqlite::backup::Backup::new(&source, &mut target)?;
        loop {
            let step = copy.step(PAGES_PER_STEP)?;
            let p = copy.progress();
            progress(i64::from(p.remaining), i64::from(p.pagecount));
            match step {
                StepResult::Done => break,
                // More to copy, or the server holds a lock just now: let it work, then go on.
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(PAUSE)
                }
                _ => std::thread::sleep(PAUSE),
            }
        }
    }
    check(&target, to)
}

fn application_id(conn: &Connection) -> rusqlite::Result<i32> {
    conn.pragma_query_value(None, "application_id", |r| r.get(0))
}

/// The copy is whole, a server database, and migrated as far as this program knows.
fn check(copy: &Connection, path: &Path) -> Result<BackupReport, BackupError> {
    let verdict: String = copy.pragma_query_value(None, "integrity_check", |r| r.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Check(verdict));
    }
    if application_id(copy)? != APPLICATION_ID {
        return Err(BackupError::Check("not a server database".into()));
    }
    let schema_version: i64 = copy.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if schema_version < 1 || schema_version > MIGRATIONS.len() as i64 {
        return Err(BackupError::Check(format!(
            "schema version {schema_version} is not one of this program's"
        )));
    }
    let pages: i64 = copy.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        pages,
        bytes,
        schema_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_of_a_server_database_is_whole_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("server.db");
        let storage = super::super::SqliteStorage::open(&from).unwrap();
        let to = dir.path().join("copy.db");
        let mut steps = 0;
        let report = backup(&from, &to, &mut |_, _| steps += 1).unwrap();
        drop(storage);
        assert_eq!(report.schema_version, MIGRATIONS.len() as i64);
        assert!(
            report.pages > 0 && report.bytes > 0 && steps > 0,
            "{report:?}"
        );
        // The copy opens as a server database with nothing left to migrate.
        super::super::SqliteStorage::open(&to).unwrap();
    }

    #[test]
    fn a_backup_is_refused_over_a_file_and_from_a_foreign_database() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let to = dir.path().join("copy.db");
        let e = backup(&foreign, &to, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, BackupError::NotOurs(_)), "{e}");
        assert!(!to.exists(), "nothing written for a refused backup");
        let e = backup(&foreign, &foreign, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, BackupError::Exists(_)), "{e}");
        let e = backup(&dir.path().join("none.db"), &to, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, BackupError::Missing(_)), "{e}");
    }
}
