//! The RFM scores' migration between two recomputes on PostgreSQL: the job's scoring statement
//! counts the moves itself (a CTE of `segments.rs`'s `RFM_SQL` reads `member_rfm` in the
//! statement's snapshot, so the previous scores, beside the new), and this file records the run
//! around it in the same transaction, keeps the latest runs, and reads the latest for the report.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::{Cached, backend};
use crate::storage::reports::fold_moves;
use crate::storage::{KEPT_RFM_RUNS, RfmMoveTotals, StorageError};

/// Records the run at `now` (with the run before it) and clears its cells, so that a rerun at
/// the same time replaces them: before the scoring statement inserts the new cells.
pub(super) async fn begin_run(tx: &Transaction<'_>, now: i64) -> Result<(), StorageError> {
    tx.exec(
        "INSERT INTO rfm_runs (computed_at, previous_at)
         SELECT $1, max(computed_at) FROM rfm_runs WHERE computed_at < $1
         ON CONFLICT (computed_at) DO UPDATE SET previous_at = excluded.previous_at",
        &[&now],
    )
    .await
    .map_err(backend)?;
    tx.exec("DELETE FROM rfm_moves WHERE computed_at = $1", &[&now])
        .await
        .map_err(backend)?;
    Ok(())
}

/// Drops the runs older than the latest [`KEPT_RFM_RUNS`] and their cells.
pub(super) async fn prune(tx: &Transaction<'_>) -> Result<(), StorageError> {
    let offset: &(dyn ToSql + Sync) = &(KEPT_RFM_RUNS - 1);
    tx.exec(
        "DELETE FROM rfm_runs WHERE computed_at <
             (SELECT computed_at FROM rfm_runs ORDER BY computed_at DESC LIMIT 1 OFFSET $1)",
        &[offset],
    )
    .await
    .map_err(backend)?;
    tx.exec(
        "DELETE FROM rfm_moves WHERE computed_at < (SELECT min(computed_at) FROM rfm_runs)",
        &[],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The latest recorded run's moves, if any run was recorded.
pub(super) async fn latest(tx: &Transaction<'_>) -> Result<Option<RfmMoveTotals>, StorageError> {
    let run = tx
        .fetch_opt(
            "SELECT computed_at, previous_at FROM rfm_runs ORDER BY computed_at DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(backend)?;
    let Some(run) = run else {
        return Ok(None);
    };
    let computed_at: i64 = run.try_get(0).map_err(backend)?;
    let previous_at: Option<i64> = run.try_get(1).map_err(backend)?;
    let rows = tx
        .fetch_all(
            "SELECT dimension, from_score, to_score, members FROM rfm_moves
             WHERE computed_at = $1",
            &[&computed_at],
        )
        .await
        .map_err(backend)?;
    let cells = rows
        .iter()
        .map(super::reports::four)
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(Some(RfmMoveTotals {
        computed_at,
        previous_at,
        moves: fold_moves(cells),
    }))
}
