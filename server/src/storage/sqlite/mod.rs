//! The embedded storage: one SQLite file in WAL mode with full synchronous commits, so what the
//! server has answered is on disk even if the process is killed the next instant.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so request handlers never block
//! the runtime's worker threads, except point reads of a few indexed rows, which run on the calling
//! thread when a read connection is free (`read_now`; the read connections and the snapshots they
//! keep between point reads are `readers.rs`).
//!
//! This file opens, migrates and wires the backend; each aggregate trait is implemented in its own
//! file: `members.rs`, `ledger.rs` (postings go through the group-commit writer, `writer.rs`),
//! [`offers`], `segments.rs` (RFM scores and segment membership), `messages.rs`, `programme.rs`.
//! The conformance suite runs at the end of this file; the backend's own tests are `tests.rs`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite_migration::{M, Migrations};

pub mod backup;
mod cards;
mod changes;
mod directory;
mod fanout;
mod health;
mod history;
mod ledger;
mod members;
mod messages;
mod offer_admin;
pub mod offers;
mod offline;
mod operators;
mod programme;
mod readers;
mod reports;
mod rfm_moves;
mod segments;
mod watch;
mod writer;

use crate::storage::StorageError;
use readers::{Pool, READERS};
use writer::{PostingJob, posting_writer};

/// `PRAGMA application_id` of a server database ("LYLS").
pub(crate) const APPLICATION_ID: i32 = 0x4C59_4C53;

/// The server database's migrations, in order: one file each in `server/migrations/sqlite/`
/// (`NNN_name.sql`), applied once each in one transaction and counted in `PRAGMA user_version`. A
/// migration is never edited once released; a change is a new file at the end of the list.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/001_members_devices_documents.sql"),
    include_str!("../../../migrations/sqlite/002_checkout_keys_and_used_codes.sql"),
    include_str!("../../../migrations/sqlite/003_ledger.sql"),
    include_str!("../../../migrations/sqlite/004_sweep_indexes.sql"),
    include_str!("../../../migrations/sqlite/005_programme_mirror.sql"),
    include_str!("../../../migrations/sqlite/006_offers_and_segments.sql"),
    include_str!("../../../migrations/sqlite/007_lots_tiers_programme.sql"),
    include_str!("../../../migrations/sqlite/008_communications.sql"),
    include_str!("../../../migrations/sqlite/009_card_catches_up.sql"),
    include_str!("../../../migrations/sqlite/010_covering_indexes.sql"),
    include_str!("../../../migrations/sqlite/011_till_namespaces.sql"),
    include_str!("../../../migrations/sqlite/012_document_epochs.sql"),
    include_str!("../../../migrations/sqlite/013_document_summaries.sql"),
    include_str!("../../../migrations/sqlite/014_adjustments.sql"),
    include_str!("../../../migrations/sqlite/015_till_feed.sql"),
    include_str!("../../../migrations/sqlite/016_cards_and_pins.sql"),
    include_str!("../../../migrations/sqlite/017_member_lookup.sql"),
    include_str!("../../../migrations/sqlite/018_delivery_states.sql"),
    include_str!("../../../migrations/sqlite/019_operators.sql"),
    include_str!("../../../migrations/sqlite/020_ledger_reasons.sql"),
    include_str!("../../../migrations/sqlite/021_device_last_seen.sql"),
    include_str!("../../../migrations/sqlite/022_console_sessions.sql"),
    include_str!("../../../migrations/sqlite/023_offer_management.sql"),
    include_str!("../../../migrations/sqlite/024_code_refusals.sql"),
    include_str!("../../../migrations/sqlite/025_segment_runs.sql"),
    include_str!("../../../migrations/sqlite/026_postings_by_time.sql"),
    include_str!("../../../migrations/sqlite/027_watch_indexes.sql"),
    include_str!("../../../migrations/sqlite/028_rfm_moves.sql"),
    include_str!("../../../migrations/sqlite/029_tier_moves.sql"),
    include_str!("../../../migrations/sqlite/030_document_tails.sql"),
    include_str!("../../../migrations/sqlite/031_document_headers.sql"),
    include_str!("../../../migrations/sqlite/032_member_document_headers.sql"),
    include_str!("../../../migrations/sqlite/033_devices_for_sync.sql"),
    include_str!("../../../migrations/sqlite/034_ledger_revisions.sql"),
];

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// The migration that moved till postings into their till's namespace (kept for its test).
#[cfg(test)]
const TILL_NAMESPACES: &str = MIGRATIONS[10];

#[derive(Clone)]
pub struct SqliteStorage {
    /// The database file, for connections of their own (the batch job's).
    path: Arc<std::path::PathBuf>,
    /// The one connection that writes.
    conn: Arc<Mutex<Connection>>,
    /// Connections for reads, so a lookup never waits behind a write's fsync (WAL lets readers
    /// run beside the writer, each on the last committed state); see `readers.rs`.
    readers: Arc<Pool>,
    /// The group-commit writer for till postings (see `writer.rs`).
    poster: std::sync::mpsc::Sender<PostingJob>,
}

/// A failure of the database (or of what it returned), kept as the error's source.
pub(crate) fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    StorageError::Backend(e.into())
}

/// Bytes of the database file each connection maps into memory.
const MMAP_BYTES: i64 = 1 << 30;

/// Prepared statements each connection keeps: more than the backend has distinct statements, so
/// a hot one is never parsed again because others pushed it out (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 256;

/// `query_row` through the connection's statement cache: the reads every request makes (a
/// device's authentication, the till's card lookup) are parsed once per connection, not per call.
pub(super) fn cached_row<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// `query_map` through the connection's statement cache, every row collected.
pub(super) fn cached_rows<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare_cached(sql)?.query_map(params, f)?.collect()
}

/// `execute` through the connection's statement cache: `Connection::execute` (and
/// `pragma_update`) parse the text again at every call, about 25,000 instructions a statement.
/// The rows changed.
pub(super) fn cached_execute<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// A connection to the server's database, migrated. The file is memory-mapped: a connection's page
/// cache starts over whenever another connection commits (every posting), and with the file mapped
/// the pages it reads again are memory, not a system call and a copy each. Its commits are counted
/// for the readers' snapshots (`readers.rs`).
fn connection(path: &Path) -> Result<Connection, loyalty_core::store::StoreError> {
    let conn = loyalty_core::store::open_sqlite(path, APPLICATION_ID, &migrations())?;
    readers::count_commits(&conn);
    let failed = |what: &str, e: rusqlite::Error| loyalty_core::store::StoreError::Open {
        path: path.to_path_buf(),
        message: format!("cannot {what}: {e}"),
    };
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(|e| failed("map the database", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: plans never depend on bound values. Without it,
    // SQLite 3.50 reads a parameter bound to a `LIMIT` while planning and marks the statement to
    // be parsed and planned again whenever that parameter is bound again — at every execution,
    // cached or not (the card's catch-up spent 110,000 instructions a call re-preparing its read
    // of the unseen movements). Our plans never rest on a bound value: no `ANALYZE` statistics,
    // and the hot statements name their index.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| failed("fix the query plans", e))?;
    Ok(conn)
}

impl SqliteStorage {
    pub fn open(path: &Path) -> Result<Self, loyalty_core::store::StoreError> {
        let mut writer = connection(path)?;
        // The writer's transactions take the write lock when they begin: one that read first and
        // wrote second would otherwise fail at once ("database is locked", without waiting) when
        // another process — a second instance or `loyalty admin` on the same file — wrote in
        // between. In this process only this connection writes, so it waits for nobody else.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        let conn = Arc::new(Mutex::new(writer));
        let (poster, jobs) = std::sync::mpsc::channel();
        let writer_conn = conn.clone();
        // The writer ends when the last SqliteStorage (and so the last sender) is dropped.
        std::thread::Builder::new()
            .name("loyalty-postings".into())
            .spawn(move || posting_writer(writer_conn, jobs))
            .map_err(|e| loyalty_core::store::StoreError::Open {
                path: path.to_path_buf(),
                message: format!("cannot start the posting writer: {e}"),
            })?;
        let readers = (0..READERS)
            .map(|_| connection(path))
            .collect::<Result<Vec<_>, _>>()?;
        // The readers' sweeper ends when the last SqliteStorage (and so the readers) is dropped.
        let readers =
            readers::pool(readers).map_err(|e| loyalty_core::store::StoreError::Open {
                path: path.to_path_buf(),
                message: format!("cannot start the readers' sweeper: {e}"),
            })?;
        Ok(Self {
            path: Arc::new(path.to_path_buf()),
            conn,
            readers,
            poster,
        })
    }

    /// Runs a read-only `f` on one of the read connections, on the blocking pool, with no
    /// transaction open: `f` may scan, and may begin one of its own.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = readers::take(&readers);
            f(reader.autocommit().map_err(backend)?)
        })
        .await
        .map_err(backend)?
    }

    /// Runs a point read (an indexed look-up of a few rows, microseconds of work) on the calling
    /// thread when a read connection is free at once, sparing the hop to the blocking pool and
    /// back, which costs more than such a read; otherwise on the blocking pool. Only for reads
    /// whose work is bounded by an index: a scan belongs in [`Self::read`]. `f` runs in one read
    /// transaction, which shows every commit of this process made before the call and may have
    /// been begun by an earlier point read (`readers.rs`): it must not begin one of its own.
    pub(crate) async fn read_now<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        if let Some(mut free) = readers::free(&self.readers) {
            return free.point_read(f);
        }
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers::take(&readers).point_read(f))
            .await
            .map_err(backend)?
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }

    /// As [`Self::run`], for writes the server may lose in a power failure without harm (a
    /// device's sync state, when a device was last seen, a document's summary): their commit does
    /// not wait for the disk (`synchronous = NORMAL` for the duration of `f`). WAL keeps the file
    /// consistent either way; a killed process loses nothing, since the commit is already the
    /// operating system's; and the next commit that waits makes them durable with it. A sync that
    /// only recorded what it told a device no longer pays an fsync of its own.
    pub(crate) async fn run_relaxed<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.run(move |conn| {
            cached_execute(conn, "PRAGMA synchronous = NORMAL", []).map_err(backend)?;
            let result = f(conn);
            // Back to full durability for every other write, whatever `f` did.
            cached_execute(conn, "PRAGMA synchronous = FULL", []).map_err(backend)?;
            result
        })
        .await
    }
}

fn hash_from(blob: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    if blob.len() == 32 {
        out.copy_from_slice(&blob);
    }
    out
}

#[cfg(test)]
mod tests;

/// The conformance suite every backend runs (`crate::storage::conformance`), on a fresh file each.
#[cfg(test)]
mod conformance {
    crate::storage_conformance!({
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage =
            super::SqliteStorage::open(&dir.path().join("conformance.db")).expect("a new database");
        (
            dir,
            std::sync::Arc::new(storage) as std::sync::Arc<dyn crate::storage::Storage>,
        )
    });
}
