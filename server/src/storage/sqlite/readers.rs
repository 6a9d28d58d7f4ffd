//! The read connections, and the snapshot each keeps between point reads.
//!
//! Every read transaction of SQLite in WAL mode takes a read slot in the `-shm` file's lock and
//! gives it back at its end: a process-wide mutex with an `fcntl` lock inside, which two threads
//! reading at once contend for. That was about an eighth of the server's CPU in the "nothing
//! changed" replay, where each sync is one indexed read (`docs/benchmarks.md`). So a point read
//! ([`Reader::current`]) leaves its read transaction open for the next one on the same connection,
//! as long as it still shows everything a reader here must see:
//!
//! - **Every commit made in this process.** Each connection the backend opens counts its commits
//!   in [`COMMITS`] (a WAL hook, [`count_commits`], which SQLite calls after the commit is in the
//!   log and its lock released, so before any caller learns of it). A snapshot remembers the count
//!   it was begun under and is begun again as soon as the count moved: a read that follows an
//!   acknowledged write (a purchase, then the woken phone's sync) always sees it.
//! - **Another process's commits** (`loyalty admin` on the file, the segment batch job) are not
//!   counted: a snapshot is begun again when it is [`MAX_AGE`] old, so they show within that. The
//!   batch job's fan-outs, which wake phones here, are noticed through `fanout_seq`, whose read
//!   counts as a commit ([`saw_foreign_commit`]).
//! - **Nothing pinned.** An open read transaction holds back the checkpoint (it cannot copy past
//!   the snapshot) and the log's restart from its beginning (a reader on the log, not yet on the
//!   checkpointed file, stops it). Held snapshots must hold back no more than reads in progress
//!   did when each read had its own transaction, or the log grows (to 35 MB in 4,000 writes in
//!   a test) and every commit pays a checkpoint's copying. So a snapshot that a commit made
//!   stale is never kept idle: the commit hook ends the idle readers' snapshots before its
//!   checkpoint, and once that checkpoint copied the whole log it counts as a commit and ends
//!   them again (so readers leave the log for the file, and the next write can restart it); a
//!   read in progress ends its own when it finishes if a commit came meanwhile
//!   ([`Reader::point_read`]); a sweeper ([`sweep_forever`]) ends idle snapshots older than
//!   [`MAX_AGE`], so another process's checkpoint is not held back either.
//!
//! Reads that scan, or open transactions of their own, run without a held snapshot
//! ([`Reader::autocommit`]).

use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::{CheckpointMode, Wal};

use super::{backend, cached_execute};
use crate::storage::StorageError;

/// Read connections beside the writer.
pub(super) const READERS: usize = 4;

/// How old a snapshot may be before a point read begins another: the longest another process's
/// commit can stay unseen here.
pub(super) const MAX_AGE: Duration = Duration::from_millis(5);

/// How often idle connections give up a snapshot older than [`MAX_AGE`].
const SWEEP_EVERY: Duration = Duration::from_millis(5);

/// Log pages after which a commit checkpoints, as SQLite's own automatic checkpoint does (which
/// the commit hook replaces: a connection has one WAL hook).
const CHECKPOINT_PAGES: c_int = 1000;

/// Commits made by this process's server connections, on any database. Only its changes matter: a
/// snapshot begun under one count has seen every commit counted before.
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// The read connections of this process, one pool per open storage: the commit hook, which SQLite
/// calls with no state of ours, ends their idle snapshots. One database per server process; where
/// a process has several (the tests), a commit to one also ends the others' idle snapshots, which
/// costs them one new snapshot each.
pub(super) type Pool = Vec<Mutex<Reader>>;
static POOLS: Mutex<Vec<Weak<Pool>>> = Mutex::new(Vec::new());

/// Read connections on `conns`, known to the commit hook and swept until they are dropped.
pub(super) fn pool(conns: Vec<Connection>) -> std::io::Result<Arc<Pool>> {
    let pool: Arc<Pool> = Arc::new(
        conns
            .into_iter()
            .map(|c| Mutex::new(Reader::new(c)))
            .collect(),
    );
    let swept = Arc::downgrade(&pool);
    std::thread::Builder::new()
        .name("loyalty-readers".into())
        .spawn(move || sweep_forever(swept))?;
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    pools.retain(|p| p.strong_count() > 0);
    pools.push(Arc::downgrade(&pool));
    Ok(pool)
}

/// The first reader no read is using, if any.
pub(super) fn free(pool: &Pool) -> Option<MutexGuard<'_, Reader>> {
    pool.iter().find_map(|r| r.try_lock().ok())
}

/// The first free reader, or the first one (waiting for it) when all are busy.
pub(super) fn take(pool: &Pool) -> MutexGuard<'_, Reader> {
    free(pool).unwrap_or_else(|| pool[0].lock().unwrap_or_else(|p| p.into_inner()))
}

/// Makes `conn` count its commits in [`COMMITS`], and checkpoint as SQLite would by itself.
pub(super) fn count_commits(conn: &Connection) {
    conn.wal_hook(Some(committed));
}

/// SQLite's WAL hook: called after each commit that wrote to the log, once the commit is in the
/// log and its write lock released.
fn committed(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    COMMITS.fetch_add(1, Ordering::Release);
    end_idle_snapshots();
    // As SQLite's own: what reads in progress hold back, a later commit copies.
    if pages >= CHECKPOINT_PAGES
        && let Ok((log, copied)) = wal.checkpoint_v2(CheckpointMode::PASSIVE)
        && log == copied
    {
        // Readers begun during the checkpoint are on the log; they move to the file.
        COMMITS.fetch_add(1, Ordering::Release);
        end_idle_snapshots();
    }
    Ok(())
}

/// Another process committed (seen in a value it moves): every later point read starts from a
/// snapshot that shows it.
pub(super) fn saw_foreign_commit() {
    COMMITS.fetch_add(1, Ordering::Release);
    end_idle_snapshots();
}

/// Ends the snapshot of every reader no read is using (after a commit, all are stale).
fn end_idle_snapshots() {
    let pools: Vec<Arc<Pool>> = POOLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for pool in pools {
        end_snapshots(&pool, |_| true);
    }
}

/// Ends the snapshots of the idle readers of `pool` that `which` picks.
fn end_snapshots(pool: &Pool, which: impl Fn(&Reader) -> bool) {
    for reader in pool {
        let Ok(mut reader) = reader.try_lock() else {
            continue;
        };
        if reader.snapshot.is_some()
            && which(&reader)
            && let Err(e) = reader.end()
        {
            tracing::warn!(error = %e, "cannot end a read connection's snapshot");
        }
    }
}

/// A read connection and the snapshot it holds, if any.
pub(super) struct Reader {
    conn: Connection,
    /// The count of [`COMMITS`] and the time when the open read transaction began.
    snapshot: Option<(u64, Instant)>,
}

impl Reader {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn,
            snapshot: None,
        }
    }

    /// The connection in a read transaction that shows every commit this process made before the
    /// call: the one held since an earlier point read when it still does, else a new one. What
    /// runs on it must not begin a transaction of its own (it is in one).
    fn current(&mut self) -> rusqlite::Result<&mut Connection> {
        // Loaded before the transaction begins: its snapshot shows at least these commits.
        let commits = COMMITS.load(Ordering::Acquire);
        if self.stale(commits) {
            self.end()?;
        }
        if self.snapshot.is_none() {
            cached_execute(&self.conn, "BEGIN DEFERRED", [])?;
            self.snapshot = Some((commits, Instant::now()));
        }
        Ok(&mut self.conn)
    }

    /// Runs `f` on [`Self::current`], then ends the snapshot if a commit came meanwhile: a stale
    /// snapshot left idle would hold back the log (see the module's guide).
    pub(super) fn point_read<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = f(self.current().map_err(backend)?);
        if self
            .snapshot
            .is_some_and(|(seen, _)| seen != COMMITS.load(Ordering::Acquire))
            && let Err(e) = self.end()
        {
            // The read itself is done; the next one on this connection tries again.
            tracing::warn!(error = %e, "cannot end a read connection's snapshot");
        }
        result
    }

    /// The connection with no transaction open, for reads that scan or begin their own.
    pub(super) fn autocommit(&mut self) -> rusqlite::Result<&mut Connection> {
        self.end()?;
        Ok(&mut self.conn)
    }

    /// Whether the held snapshot (if any) may no longer be used; a transaction ended by SQLite
    /// itself (after an error) counts as stale.
    fn stale(&self, commits: u64) -> bool {
        self.snapshot.is_some_and(|(seen, since)| {
            seen != commits || since.elapsed() > MAX_AGE || self.conn.is_autocommit()
        })
    }

    #[cfg(test)]
    fn connection_is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }

    /// Ends the read transaction, if one is open. A read-only transaction's commit does not fail
    /// in practice; if it did, a rollback ends it as well, so the next point read can begin one.
    fn end(&mut self) -> rusqlite::Result<()> {
        self.snapshot = None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        cached_execute(&self.conn, "COMMIT", [])
            .map(|_| ())
            .inspect_err(|_| {
                let _ = self.conn.execute_batch("ROLLBACK");
            })
    }
}

/// Every [`SWEEP_EVERY`], until the readers are dropped, ends the snapshots of idle readers that
/// are older than [`MAX_AGE`]: a connection no request needed for a while would otherwise hold its
/// snapshot, and another process's log behind it, indefinitely.
fn sweep_forever(pool: Weak<Pool>) {
    loop {
        std::thread::sleep(SWEEP_EVERY);
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let commits = COMMITS.load(Ordering::Acquire);
        end_snapshots(&pool, |reader| reader.stale(commits));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStorage, backend, segments::open_for_batch};
    use super::*;

    /// A storage with a table of its own to write and count.
    async fn storage_with_scratch(dir: &tempfile::TempDir) -> SqliteStorage {
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        storage
            .run(|c| {
                c.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, bytes BLOB)")
                    .map_err(backend)
            })
            .await
            .unwrap();
        storage
    }

    /// The scratch rows a point read finds.
    async fn rows(storage: &SqliteStorage) -> i64 {
        storage
            .read_now(|c| {
                c.query_row("SELECT count(*) FROM scratch", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap()
    }

    fn insert(conn: &Connection) {
        conn.execute("INSERT INTO scratch (bytes) VALUES (zeroblob(8000))", [])
            .unwrap();
    }

    #[test]
    fn a_point_read_keeps_its_snapshot_while_nothing_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut reader = Reader::new(super::super::connection(&path).unwrap());
        // Other tests of this process commit too (the count is the process's): try again when
        // one did between the two reads.
        for _ in 0..100 {
            let before = COMMITS.load(Ordering::Acquire);
            reader.current().unwrap();
            let first = reader.snapshot;
            reader.current().unwrap();
            if COMMITS.load(Ordering::Acquire) != before {
                continue;
            }
            assert!(first.is_some());
            assert_eq!(
                reader.snapshot, first,
                "the second read began a snapshot of its own"
            );
            assert!(!reader.connection_is_autocommit());
            reader.autocommit().unwrap();
            assert!(reader.connection_is_autocommit() && reader.snapshot.is_none());
            return;
        }
        panic!("the process committed between every two reads");
    }

    #[tokio::test]
    async fn a_point_read_sees_every_commit_of_this_process_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_with_scratch(&dir).await;
        assert_eq!(rows(&storage).await, 0);
        storage
            .run(|c| {
                insert(c);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(rows(&storage).await, 1, "the writer's commit");
        // The batch job's connection, when the job runs in the server's process.
        insert(&open_for_batch(&dir.path().join("s.db")).unwrap());
        assert_eq!(rows(&storage).await, 2, "a batch connection's commit");
    }

    #[tokio::test]
    async fn a_read_that_a_commit_overtook_gives_its_snapshot_back_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_with_scratch(&dir).await;
        let batch = open_for_batch(&dir.path().join("s.db")).unwrap();
        storage
            .read_now(move |c| {
                c.query_row("SELECT count(*) FROM scratch", [], |r| r.get::<_, i64>(0))
                    .map_err(backend)?;
                // A commit while this read holds its reader: the hook cannot end its snapshot.
                insert(&batch);
                Ok(())
            })
            .await
            .unwrap();
        for reader in storage.readers.iter() {
            assert!(
                reader.lock().unwrap().snapshot.is_none(),
                "a stale snapshot kept"
            );
        }
    }

    #[tokio::test]
    async fn another_processs_commit_shows_once_the_snapshot_is_max_age_old() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_with_scratch(&dir).await;
        assert_eq!(rows(&storage).await, 0);
        // A connection whose commits nobody here counts, as another process's.
        insert(&Connection::open(dir.path().join("s.db")).unwrap());
        std::thread::sleep(MAX_AGE * 2);
        assert_eq!(rows(&storage).await, 1);
    }

    #[tokio::test]
    async fn an_idle_readers_snapshot_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_with_scratch(&dir).await;
        assert_eq!(rows(&storage).await, 0);
        let other = Connection::open(dir.path().join("s.db")).unwrap();
        insert(&other);
        std::thread::sleep((MAX_AGE + SWEEP_EVERY) * 4);
        // Restarting the log waits for every reader to leave it (and, with no busy handler on
        // this connection, does not wait: busy is 1 if one is still there).
        let busy: i64 = other
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "a reader still holds a snapshot on the log");
    }

    #[tokio::test]
    async fn the_log_starts_over_while_point_reads_and_writes_alternate() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_with_scratch(&dir).await;
        // Three pages a write: 12,000 pages (47 MB) of log if it never started over.
        for _ in 0..4_000 {
            storage
                .run_relaxed(|c| {
                    insert(c);
                    Ok(())
                })
                .await
                .unwrap();
            rows(&storage).await;
        }
        let log = std::fs::metadata(dir.path().join("s.db-wal"))
            .unwrap()
            .len();
        assert!(log < 16 << 20, "the log grew to {log} bytes");
    }
}
