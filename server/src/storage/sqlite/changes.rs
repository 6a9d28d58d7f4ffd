//! SQLite's side of [`ChangeStore`]: one process owns the file (plus batch jobs that signal
//! fan-outs through `fanout_seq`), so there is no other instance to tell.

use async_trait::async_trait;

use super::SqliteStorage;
use crate::storage::{Change, ChangeStore, StorageError};

#[async_trait]
impl ChangeStore for SqliteStorage {
    fn shared(&self) -> bool {
        false
    }

    fn announce(&self, _change: Change) -> Result<(), StorageError> {
        Ok(())
    }

    async fn changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>, StorageError> {
        Ok(None)
    }
}
