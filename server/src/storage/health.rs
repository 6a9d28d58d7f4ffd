//! Whether the database can serve this binary ([`HealthStore`], what `/readyz` asks), and which
//! storage failures mean "the database is out of reach" rather than "the server has a bug"
//! ([`StorageError::is_unavailable`], answered `503 database_unavailable` with `Retry-After`).
//! The classification is here, below the services, because only storage knows its drivers' error
//! types; above it a failure is just unavailable or not.

use async_trait::async_trait;

use super::StorageError;

/// The schema version the database has and the one this binary migrates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaCheck {
    pub found: i64,
    pub expected: i64,
}

impl SchemaCheck {
    /// Ready to serve only on exactly this binary's schema: an older one would miss tables, and
    /// a newer one (another instance, upgraded, migrated it) may mean things this binary would
    /// write wrongly — two instances on different versions must not both serve.
    pub fn current(&self) -> bool {
        self.found == self.expected
    }
}

/// The connection pool's size and connections free now (PostgreSQL's pool; SQLite's read
/// connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
}

#[async_trait]
pub trait HealthStore: Send + Sync + 'static {
    /// Asks the database for its schema version: one round trip, no table read. An error is a
    /// database that does not answer.
    async fn schema_check(&self) -> Result<SchemaCheck, StorageError>;

    /// The pool's state, without asking the database.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

impl StorageError {
    /// The failure is the database being out of reach (refused or dropped connections, a pool
    /// with nothing to give in time, a file locked by another process past the busy timeout, the
    /// disk failing or full): a retry later can succeed, and nothing was applied. Anything else
    /// is a bug of ours.
    pub fn is_unavailable(&self) -> bool {
        let StorageError::Backend(cause) = self;
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
        while let Some(e) = next {
            if unavailable(e) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// One error of the chain, by the driver's own types.
fn unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(e) = e.downcast_ref::<rusqlite::Error>() {
        return sqlite_unavailable(e);
    }
    // The group-commit writer shares one cause among the postings of a batch.
    if let Some(e) = e.downcast_ref::<std::sync::Arc<rusqlite::Error>>() {
        return sqlite_unavailable(e);
    }
    if let Some(e) = e.downcast_ref::<deadpool_postgres::PoolError>() {
        use deadpool_postgres::PoolError;
        return matches!(
            e,
            PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed
        );
    }
    if let Some(e) = e.downcast_ref::<tokio_postgres::Error>() {
        return postgres_unavailable(e);
    }
    e.is::<std::io::Error>()
}

fn sqlite_unavailable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure | DiskFull)
    )
}

/// A closed connection, or a server refusing work for now: connection exceptions (class 08),
/// shutting down or starting up (57P01–57P03), too many connections (53300).
fn postgres_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }
        // No SQLSTATE: the failure was the connection's (its I/O), not a statement's.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StorageError {
        StorageError::Backend(Box::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        )))
    }

    #[test]
    fn a_locked_or_unopenable_database_is_unavailable_and_a_bug_is_not() {
        assert!(sqlite(rusqlite::ffi::SQLITE_BUSY).is_unavailable());
        assert!(sqlite(rusqlite::ffi::SQLITE_LOCKED).is_unavailable());
        assert!(sqlite(rusqlite::ffi::SQLITE_CANTOPEN).is_unavailable());
        assert!(!sqlite(rusqlite::ffi::SQLITE_CONSTRAINT).is_unavailable());
        assert!(!sqlite(rusqlite::ffi::SQLITE_MISMATCH).is_unavailable());
        let shared = StorageError::Backend(Box::new(std::sync::Arc::new(
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ),
        )));
        assert!(shared.is_unavailable());
        let bug = StorageError::Backend("a stored value this program cannot read".into());
        assert!(!bug.is_unavailable());
    }

    #[test]
    fn an_exhausted_pool_is_unavailable() {
        let timeout = deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait);
        assert!(StorageError::Backend(Box::new(timeout)).is_unavailable());
    }
}
