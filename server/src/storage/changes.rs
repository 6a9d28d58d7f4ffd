//! Changes every server instance on one database must hear of: a member's documents changed (wake
//! that member's long polls), or everyone should re-check (a fan-out, or a gap in what this
//! instance heard). The embedded SQLite backend serves one process, so it has nobody to tell; the
//! PostgreSQL backend carries them with `LISTEN/NOTIFY`, so a purchase posted through one instance
//! wakes a phone long-polling on another at once, without polling the database.

use async_trait::async_trait;

use super::StorageError;

/// One change as instances tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This member's server documents changed.
    Member(String),
    /// Every waiting device should check again.
    Everyone,
}

#[async_trait]
pub trait ChangeStore: Send + Sync + 'static {
    /// Whether other processes share this database and must be told of changes: `false` lets a
    /// single-process backend skip [`ChangeStore::announce`] entirely.
    fn shared(&self) -> bool;

    /// Tells the other instances on this database of `change`; this instance does not hear its
    /// own. It only queues the change (the caller's answer never waits for the database), so an
    /// error means the backend can announce nothing any more. Best effort: a change an instance
    /// misses while disconnected is covered by the [`Change::Everyone`] it hears when it
    /// reconnects.
    fn announce(&self, change: Change) -> Result<(), StorageError>;

    /// The changes other instances announce from now on, for as long as the receiver is kept;
    /// `None` when nobody else shares the database. After a lost connection the feed reconnects
    /// by itself and yields [`Change::Everyone`] first, since it may have missed some.
    async fn changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>, StorageError>;
}
