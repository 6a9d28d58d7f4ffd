//! The device's local store: one SQLite file holding the member's documents, the sync state of each,
//! the device's credentials and small settings (the learned clock offset).
//!
//! Documents are kept as Automerge chunks: every local or synced change appends an incremental chunk,
//! and once [`COMPACT_AFTER`] chunks pile up they are replaced by one compacted snapshot in a single
//! transaction, so a process killed mid-compaction leaves either the old chunks or the new snapshot,
//! never neither. Reading a document back is loading the concatenation of its chunks.
//!
//! ```
//! # fn main() -> Result<(), loyalty_core::store::StoreError> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = loyalty_core::store::Store::open(dir.path().join("member.db"))?;
//! let card = store.load_doc(loyalty_core::DocKind::Card)?;
//! assert!(!card.is_empty());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::document::{DocKind, genesis};

/// Incremental chunks a document may have before it is compacted into one snapshot.
pub const COMPACT_AFTER: i64 = 64;

/// `PRAGMA application_id` of a device store ("LYLD"), so a stray file is recognised as not ours.
const APPLICATION_ID: i32 = 0x4C59_4C44;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path} is not a loyalty store (or it is corrupt)")]
    NotAStore { path: PathBuf },
    #[error("the store at {path} was written by a newer version of this library; update the app")]
    NewerSchema { path: PathBuf },
    #[error("the {doc} document in the store is corrupt: {message}")]
    CorruptDocument { doc: DocKind, message: String },
    #[error("storage failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a device needs to talk to its server as itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server_url: String,
    pub member_id: String,
    pub card_number: String,
    pub device_id: String,
    pub device_secret: String,
    pub device_name: String,
}

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE doc_chunks (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             doc INTEGER NOT NULL,
             snapshot INTEGER NOT NULL,
             data BLOB NOT NULL
         );
         CREATE INDEX doc_chunks_by_doc ON doc_chunks (doc, id);
         CREATE TABLE sync_states (doc INTEGER PRIMARY KEY, data BLOB NOT NULL);
         CREATE TABLE credentials (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             server_url TEXT NOT NULL,
             member_id TEXT NOT NULL,
             card_number TEXT NOT NULL,
             device_id TEXT NOT NULL,
             device_secret TEXT NOT NULL,
             device_name TEXT NOT NULL
         );
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        ),
        // Secrets kept in the file itself when the host app supplies no secret store. The column
        // says so, for anyone inspecting the file.
        M::up(
            "CREATE TABLE secrets (
                 name TEXT PRIMARY KEY,
                 value BLOB NOT NULL,
                 protection TEXT NOT NULL DEFAULT 'none: kept in the store file, not a platform secret store'
             );",
        ),
        // The epoch of each document's copy (`crate::epoch`); a document without a row is at 0.
        M::up(
            "CREATE TABLE doc_epochs (doc INTEGER PRIMARY KEY, epoch INTEGER NOT NULL);",
        ),
    ])
}

/// Opens (creating when absent) an SQLite file of ours: checks it is ours, brings its schema up to
/// date, and refuses a schema from a newer build rather than guessing. Shared with the server.
pub fn open_sqlite(
    path: &Path,
    application_id: i32,
    migrations: &Migrations<'_>,
) -> Result<Connection, StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let not_ours = || StoreError::NotAStore {
        path: path.to_path_buf(),
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    // The first read of the header is where SQLite notices a file that is not a database.
    let existing: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|_| not_ours())?;
    let user_version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|_| not_ours())?;
    if existing != 0 && existing != application_id {
        return Err(not_ours());
    }
    if existing == 0 && user_version != 0 {
        return Err(not_ours());
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    // FULL: what a member did is on disk before the call that did it returns.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    migrations.to_latest(&mut conn).map_err(|e| match e {
        rusqlite_migration::Error::MigrationDefinition(
            rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
        ) => StoreError::NewerSchema {
            path: path.to_path_buf(),
        },
        other => StoreError::Open {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })?;
    conn.pragma_update(None, "application_id", application_id)
        .map_err(open_err)?;
    Ok(conn)
}

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = open_sqlite(path.as_ref(), APPLICATION_ID, &migrations())?;
        Ok(Self { conn })
    }

    /// Loads a document; a document never stored starts at its genesis.
    pub fn load_doc(&self, kind: DocKind) -> Result<AutoCommit, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM doc_chunks WHERE doc = ?1 ORDER BY id")?;
        let mut bytes = Vec::new();
        let mut rows = stmt.query([kind.code()])?;
        while let Some(row) = rows.next()? {
            let chunk: Vec<u8> = row.get(0)?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Ok(genesis(kind));
        }
        let doc = AutoCommit::load(&bytes).map_err(|e| StoreError::CorruptDocument {
            doc: kind,
            message: e.to_string(),
        })?;
        crate::document::check_root(&doc, kind).map_err(|e| StoreError::CorruptDocument {
            doc: kind,
            message: e.to_string(),
        })?;
        Ok(doc)
    }

    /// Persists what changed in `doc` since it was last saved, and the sync state with it, in one
    /// transaction: after a crash the two never disagree.
    pub fn save(
        &mut self,
        kind: DocKind,
        doc: &mut AutoCommit,
        sync_state: Option<&automerge::sync::State>,
    ) -> Result<(), StoreError> {
        let chunk = doc.save_incremental();
        let tx = self.conn.transaction()?;
        if !chunk.is_empty() {
            tx.execute(
                "INSERT INTO doc_chunks (doc, snapshot, data) VALUES (?1, 0, ?2)",
                params![kind.code(), chunk],
            )?;
        }
        if let Some(state) = sync_state {
            tx.execute(
                "INSERT INTO sync_states (doc, data) VALUES (?1, ?2)
                 ON CONFLICT (doc) DO UPDATE SET data = excluded.data",
                params![kind.code(), state.encode()],
            )?;
        }
        let chunks: i64 = tx.query_row(
            "SELECT count(*) FROM doc_chunks WHERE doc = ?1",
            [kind.code()],
            |r| r.get(0),
        )?;
        if chunks > COMPACT_AFTER {
            compact(&tx, kind, doc)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The epoch of the stored copy of a document.
    pub fn epoch(&self, kind: DocKind) -> Result<u64, StoreError> {
        let epoch: Option<i64> = self
            .conn
            .query_row(
                "SELECT epoch FROM doc_epochs WHERE doc = ?1",
                [kind.code()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(epoch.and_then(|e| u64::try_from(e).ok()).unwrap_or(0))
    }

    /// Replaces a document by a new epoch of it, with its sync state, in one transaction: after
    /// a crash the store holds either the old epoch or the new one, never a mix.
    pub fn replace_doc(
        &mut self,
        kind: DocKind,
        doc: &mut AutoCommit,
        epoch: u64,
        sync_state: &automerge::sync::State,
    ) -> Result<(), StoreError> {
        let snapshot = doc.save();
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM doc_chunks WHERE doc = ?1", [kind.code()])?;
        tx.execute(
            "INSERT INTO doc_chunks (doc, snapshot, data) VALUES (?1, 1, ?2)",
            params![kind.code(), snapshot],
        )?;
        tx.execute(
            "INSERT INTO doc_epochs (doc, epoch) VALUES (?1, ?2)
             ON CONFLICT (doc) DO UPDATE SET epoch = excluded.epoch",
            params![kind.code(), epoch],
        )?;
        tx.execute(
            "INSERT INTO sync_states (doc, data) VALUES (?1, ?2)
             ON CONFLICT (doc) DO UPDATE SET data = excluded.data",
            params![kind.code(), sync_state.encode()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a document and its sync state; it starts again from genesis at the next load.
    pub fn reset_doc(&mut self, kind: DocKind) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM doc_chunks WHERE doc = ?1", [kind.code()])?;
        tx.execute("DELETE FROM sync_states WHERE doc = ?1", [kind.code()])?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets everything the store holds — documents, sync states, credentials, settings and
    /// secrets — in one transaction, leaving it as a new store: a crash leaves all or nothing.
    pub fn wipe(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for table in [
            "doc_chunks",
            "doc_epochs",
            "sync_states",
            "credentials",
            "settings",
            "secrets",
        ] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn chunk_count(&self, kind: DocKind) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM doc_chunks WHERE doc = ?1",
            [kind.code()],
            |r| r.get(0),
        )?)
    }

    pub fn sync_state(&self, kind: DocKind) -> Result<automerge::sync::State, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT data FROM sync_states WHERE doc = ?1",
                [kind.code()],
                |r| r.get(0),
            )
            .optional()?;
        // A sync state is only an optimisation: an unreadable one is replaced by a fresh one, which
        // costs a larger first message, never data.
        Ok(bytes
            .and_then(|b| automerge::sync::State::decode(&b).ok())
            .unwrap_or_default())
    }

    pub fn credentials(&self) -> Result<Option<Credentials>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT server_url, member_id, card_number, device_id, device_secret, device_name
                 FROM credentials WHERE id = 1",
                [],
                |r| {
                    Ok(Credentials {
                        server_url: r.get(0)?,
                        member_id: r.get(1)?,
                        card_number: r.get(2)?,
                        device_id: r.get(3)?,
                        device_secret: r.get(4)?,
                        device_name: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn set_credentials(&self, c: &Credentials) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO credentials (id, server_url, member_id, card_number, device_id, device_secret, device_name)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![c.server_url, c.member_id, c.card_number, c.device_id, c.device_secret, c.device_name],
        )?;
        Ok(())
    }

    pub fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_secret(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// Replaces a document's chunks with one snapshot, inside the caller's transaction.
fn compact(
    tx: &rusqlite::Transaction<'_>,
    kind: DocKind,
    doc: &mut AutoCommit,
) -> Result<(), StoreError> {
    let snapshot = doc.save();
    tx.execute("DELETE FROM doc_chunks WHERE doc = ?1", [kind.code()])?;
    tx.execute(
        "INSERT INTO doc_chunks (doc, snapshot, data) VALUES (?1, 1, ?2)",
        params![kind.code(), snapshot],
    )?;
    tracing::debug!(doc = %kind, bytes = snapshot.len(), "compacted document");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member;

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        (dir, path)
    }

    #[test]
    fn documents_survive_reopen_and_compaction() {
        let (_d, path) = temp();
        let mut store = Store::open(&path).unwrap();
        let mut doc = store.load_doc(DocKind::Member).unwrap();
        for i in 0..(COMPACT_AFTER + 10) {
            member::mark(&mut doc, "read", &format!("m{i}"), i).unwrap();
            doc.commit();
            store.save(DocKind::Member, &mut doc, None).unwrap();
        }
        assert!(store.chunk_count(DocKind::Member).unwrap() < COMPACT_AFTER);
        drop(store);
        let store = Store::open(&path).unwrap();
        let doc = store.load_doc(DocKind::Member).unwrap();
        assert_eq!(
            member::read(&doc).unwrap().read.len() as i64,
            COMPACT_AFTER + 10
        );
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused() {
        let (_d, path) = temp();
        std::fs::write(
            &path,
            b"this is not sqlite at all, just some text padding it out",
        )
        .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NotAStore { .. })
        ));
    }

    #[test]
    fn another_programs_database_is_refused() {
        let (_d, path) = temp();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3;")
            .unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NotAStore { .. })
        ));
    }

    #[test]
    fn a_store_from_a_newer_build_is_refused() {
        let (_d, path) = temp();
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NewerSchema { .. })
        ));
    }

    #[test]
    fn a_corrupt_document_chunk_is_reported() {
        let (_d, path) = temp();
        let store = Store::open(&path).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO doc_chunks (doc, snapshot, data) VALUES (2, 1, ?1)",
                [vec![0x85u8, 0x6f, 0x4a, 0x83, 0, 1, 2]],
            )
            .unwrap();
        assert!(matches!(
            store.load_doc(DocKind::Inbox),
            Err(StoreError::CorruptDocument {
                doc: DocKind::Inbox,
                ..
            })
        ));
        // Other documents are unaffected.
        store.load_doc(DocKind::Card).unwrap();
    }

    #[test]
    fn a_new_epoch_replaces_the_document_whole_and_is_remembered() {
        let (_d, path) = temp();
        let mut store = Store::open(&path).unwrap();
        let mut doc = store.load_doc(DocKind::Member).unwrap();
        for i in 0..3 {
            member::mark(&mut doc, "read", &format!("m{i}"), i).unwrap();
            doc.commit();
            store.save(DocKind::Member, &mut doc, None).unwrap();
        }
        assert_eq!(store.epoch(DocKind::Member).unwrap(), 0);
        let mut fresh = crate::epoch::fresh(DocKind::Member, &doc, 0).unwrap();
        let mut state = automerge::sync::State::new();
        state.shared_heads = fresh.get_heads();
        store
            .replace_doc(DocKind::Member, &mut fresh, 4, &state)
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.epoch(DocKind::Member).unwrap(), 4);
        assert_eq!(store.epoch(DocKind::Card).unwrap(), 0);
        assert_eq!(store.chunk_count(DocKind::Member).unwrap(), 1);
        let mut back = store.load_doc(DocKind::Member).unwrap();
        assert_eq!(back.get_heads(), fresh.get_heads());
        assert_eq!(
            store.sync_state(DocKind::Member).unwrap().shared_heads,
            state.shared_heads
        );
    }

    #[test]
    fn wipe_leaves_a_new_store() {
        let (_d, path) = temp();
        let mut store = Store::open(&path).unwrap();
        let mut doc = store.load_doc(DocKind::Member).unwrap();
        member::mark(&mut doc, "read", "m1", 1).unwrap();
        doc.commit();
        store
            .save(
                DocKind::Member,
                &mut doc,
                Some(&automerge::sync::State::new()),
            )
            .unwrap();
        store
            .set_credentials(&Credentials {
                server_url: "http://s".into(),
                member_id: "mbr_1".into(),
                card_number: "6000000000001237".into(),
                device_id: "dev_1".into(),
                device_secret: "secret".into(),
                device_name: "phone".into(),
            })
            .unwrap();
        store.set_setting("clock_offset_ms", "12").unwrap();
        store.set_secret("key", b"private").unwrap();
        let card = store.load_doc(DocKind::Card).unwrap();
        let mut fresh = crate::epoch::fresh(DocKind::Card, &card, 0).unwrap();
        store
            .replace_doc(DocKind::Card, &mut fresh, 2, &automerge::sync::State::new())
            .unwrap();
        store.wipe().unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.credentials().unwrap(), None);
        assert_eq!(store.setting("clock_offset_ms").unwrap(), None);
        assert_eq!(store.secret("key").unwrap(), None);
        assert_eq!(store.chunk_count(DocKind::Member).unwrap(), 0);
        assert_eq!(store.epoch(DocKind::Card).unwrap(), 0);
        assert!(
            member::read(&store.load_doc(DocKind::Member).unwrap())
                .unwrap()
                .read
                .is_empty()
        );
    }

    #[test]
    fn sync_state_and_settings_persist() {
        let (_d, path) = temp();
        let mut store = Store::open(&path).unwrap();
        let mut doc = store.load_doc(DocKind::Card).unwrap();
        let mut state = automerge::sync::State::new();
        state.shared_heads = doc.get_heads();
        store.save(DocKind::Card, &mut doc, Some(&state)).unwrap();
        store.set_setting("clock_offset_ms", "-1500").unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.sync_state(DocKind::Card).unwrap().shared_heads,
            state.shared_heads
        );
        assert_eq!(
            store.setting("clock_offset_ms").unwrap().as_deref(),
            Some("-1500")
        );
        assert_eq!(store.credentials().unwrap(), None);
    }
}
