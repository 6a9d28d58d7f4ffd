//! The group-commit writer: one thread owns the write connection for till postings, and postings
//! that arrive together are written in one transaction — one fsync for the group.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::backend;
use super::ledger::apply_posting;
use crate::storage::{PostOutcome, Posting, StorageError};

/// Postings written in one transaction at most.
const MAX_POSTING_BATCH: usize = 256;

pub(super) type PostingJob = (Posting, oneshot::Sender<Result<PostOutcome, StorageError>>);

/// Postings waiting together are written in one transaction: one durable commit (one fsync) for
/// the whole group, while a posting that fails rolls back alone (see [`write_batch`]).
/// Nobody is answered before the commit, so an acknowledged purchase is on disk.
pub(super) fn posting_writer(
    conn: Arc<Mutex<Connection>>,
    jobs: std::sync::mpsc::Receiver<PostingJob>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_POSTING_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!(crate::metrics::GROUP_COMMIT).record(batch.len() as f64);
        let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        let results = write_batch(&mut guard, &batch);
        drop(guard);
        for ((_, done), result) in batch.into_iter().zip(results) {
            let _ = done.send(result);
        }
    }
}

pub(super) fn write_batch(
    conn: &mut Connection,
    batch: &[PostingJob],
) -> Vec<Result<PostOutcome, StorageError>> {
    // A posting rarely fails (a retried key, a race with another instance), and a savepoint costs
    // every posting a statement journal: the group is written without them first, and only when
    // one fails is it written again with a savepoint each, so that one fails alone.
    match write_together(conn, batch) {
        Ok(PostOutcome::Posted) => batch.iter().map(|_| Ok(PostOutcome::Posted)).collect(),
        alone if batch.len() == 1 => vec![alone],
        _ => write_each(conn, batch),
    }
}

/// The whole group in one transaction; the first posting refused or failed rolls it all back
/// (dropping the transaction) and is what this returns.
fn write_together(
    conn: &mut Connection,
    batch: &[PostingJob],
) -> Result<PostOutcome, StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    for (posting, _) in batch {
        let outcome = apply_posting(&tx, posting)?;
        if outcome != PostOutcome::Posted {
            return Ok(outcome);
        }
    }
    tx.commit().map_err(backend)?;
    Ok(PostOutcome::Posted)
}

fn write_each(
    conn: &mut Connection,
    batch: &[PostingJob],
) -> Vec<Result<PostOutcome, StorageError>> {
    // One cause for every posting of the batch, shared so each keeps it as its source.
    let fail_all = |e: rusqlite::Error| {
        let e = Arc::new(e);
        batch.iter().map(|_| Err(backend(e.clone()))).collect()
    };
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (posting, _) in batch {
        let outcome = match tx.savepoint() {
            Ok(mut sp) => match apply_posting(&sp, posting) {
                Ok(PostOutcome::Posted) => {
                    sp.commit().map(|()| PostOutcome::Posted).map_err(backend)
                }
                refused_or_failed => {
                    sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                    refused_or_failed
                }
            },
            Err(e) => Err(backend(e)),
        };
        results.push(outcome);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}
