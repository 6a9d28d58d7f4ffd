//! Starting a member's documents afresh — a new epoch (`loyalty_core::epoch`) — on an operator's
//! request (`POST /v1/admin/members/{id}/epochs`, `loyalty admin epoch`), and for the card when
//! its history has grown past the policy after a catch-up with the ledger (each catch-up adds a
//! change). A sync starts a due document afresh by itself (`crate::service::sync`).
//!
//! This is also how a member whose history is poisoned — a run-length bomb stored before the
//! server counted operations — is recovered: the new epoch holds only the state, and every device
//! replaces its copy at its next sync, carrying over what the member did offline.

use crate::locks::Retry;
use loyalty_core::DocKind;
use loyalty_core::api::DocumentEpoch;
use loyalty_core::epoch;

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents::load;
use crate::storage::{Commit, DocWrite, StoredDoc};

/// Starts the member's documents of these kinds afresh and stores them, each under its next
/// epoch, forgetting every device's sync state for them. The caller holds the member's lock.
pub async fn renew(
    app: &App,
    member_id: &str,
    kinds: &[DocKind],
) -> Result<Vec<DocumentEpoch>, DomainError> {
    let mut retry = Retry::default();
    loop {
        retry.another()?;
        let docs = app.storage.load_documents(member_id, kinds).await?;
        let now = app.now_ms();
        let job = app
            .sync_jobs
            .start()
            .await
            .map_err(|e| DomainError::internal("sync jobs", e))?;
        let (writes, report) = tokio::task::spawn_blocking(move || fresh_documents(docs, now))
            .await
            .map_err(|e| DomainError::internal("new epoch panicked", e))??;
        drop(job);
        match app
            .storage
            .commit(member_id, None, writes, Vec::new(), None)
            .await
        {
            Ok(Commit::Committed) => {
                app.cards.forget(member_id);
                // Watching devices sync now and take the new epochs.
                app.notify(member_id);
                return Ok(report);
            }
            Ok(Commit::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Each stored document started afresh: what to write and what to report.
pub(crate) fn fresh_documents(
    docs: Vec<StoredDoc>,
    now_ms: i64,
) -> Result<(Vec<DocWrite>, Vec<DocumentEpoch>), DomainError> {
    let mut writes = Vec::new();
    let mut report = Vec::new();
    for stored in docs {
        let doc = load(stored.kind, &stored.bytes)?;
        let before = automerge::ReadDoc::stats(&doc);
        let mut fresh = epoch::fresh(stored.kind, &doc, now_ms)
            .map_err(|e| DomainError::internal("starting a document afresh", e))?;
        let after = automerge::ReadDoc::stats(&fresh);
        let next = stored.epoch + 1;
        writes.push(DocWrite {
            kind: stored.kind,
            expected_version: stored.version,
            bytes: fresh.save(),
            append: false,
            new_epoch: Some(next),
            summary: Some(crate::projection::documents::summary(&mut fresh)),
            shows_revision: None,
        });
        report.push(DocumentEpoch {
            doc: stored.kind,
            epoch: next,
            ops_before: before.num_ops,
            changes_before: before.num_changes,
            ops_after: after.num_ops,
            changes_after: after.num_changes,
        });
    }
    Ok((writes, report))
}
