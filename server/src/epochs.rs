//! Starting a member's documents afresh — a new epoch (`loyalty_core::epoch`) — on an operator's
//! request (`POST /v1/admin/members/{id}/epochs`, `loyalty admin epoch`), and for the card when
//! its history has grown past the policy after a catch-up with the ledger (each catch-up adds a
//! change). A sync starts a due document afresh by itself (`crate::sync`).
//!
//! This is also how a member whose history is poisoned — a run-length bomb stored before the
//! server counted operations — is recovered: the new epoch holds only the state, and every device
//! replaces its copy at its next sync, carrying over what the member did offline.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use loyalty_core::DocKind;
use loyalty_core::api::{DocumentEpoch, EpochsStarted, StartEpochs};
use loyalty_core::epoch;

use crate::app::App;
use crate::documents::load;
use crate::error::ApiError;
use crate::storage::{DocWrite, StorageError, StoredDoc};

/// Attempts at storing the new epochs before answering "busy".
const ATTEMPTS: usize = 5;

/// `POST /v1/admin/members/{member_id}/epochs` with an optional [`StartEpochs`] body.
pub async fn start(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EpochsStarted>, ApiError> {
    app.authenticate_operator(&headers)?;
    let body = body?;
    let request: StartEpochs = if body.iter().all(u8::is_ascii_whitespace) {
        StartEpochs::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_body", format!("epochs: {e}")))?
    };
    if app.storage.member(&member_id).await?.is_none() {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    let mut kinds = if request.docs.is_empty() {
        DocKind::ALL.to_vec()
    } else {
        request.docs
    };
    kinds.sort();
    kinds.dedup();
    if kinds.contains(&DocKind::Card) {
        // The new epoch starts from the card as the ledger has it now.
        crate::card_projection::catch_up(&app, &member_id).await?;
    }
    let documents = {
        let _guard = app.lock_member(&member_id).await;
        renew(&app, &member_id, &kinds).await?
    };
    tracing::info!(member = %member_id, docs = ?kinds, "an operator started documents afresh");
    Ok(Json(EpochsStarted {
        member_id,
        documents,
    }))
}

/// Starts the member's documents of these kinds afresh and stores them, each under its next
/// epoch, forgetting every device's sync state for them. The caller holds the member's lock.
pub async fn renew(
    app: &App,
    member_id: &str,
    kinds: &[DocKind],
) -> Result<Vec<DocumentEpoch>, ApiError> {
    for _ in 0..ATTEMPTS {
        let docs = app.storage.load_documents(member_id, kinds).await?;
        let now = app.now_ms();
        let job = app
            .sync_jobs
            .start()
            .await
            .map_err(|e| ApiError::internal("sync jobs", e))?;
        let (writes, report) = tokio::task::spawn_blocking(move || fresh_documents(docs, now))
            .await
            .map_err(|e| ApiError::internal("new epoch panicked", e))??;
        drop(job);
        match app
            .storage
            .commit(member_id, None, writes, Vec::new(), None)
            .await
        {
            Ok(()) => {
                app.cards.forget(member_id);
                // Watching devices sync now and take the new epochs.
                app.notify(member_id);
                return Ok(report);
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Conflict.into())
}

/// Each stored document started afresh: what to write and what to report.
fn fresh_documents(
    docs: Vec<StoredDoc>,
    now_ms: i64,
) -> Result<(Vec<DocWrite>, Vec<DocumentEpoch>), ApiError> {
    let mut writes = Vec::new();
    let mut report = Vec::new();
    for stored in docs {
        let doc = load(stored.kind, &stored.bytes)?;
        let before = automerge::ReadDoc::stats(&doc);
        let mut fresh = epoch::fresh(stored.kind, &doc, now_ms)
            .map_err(|e| ApiError::internal("starting a document afresh", e))?;
        let after = automerge::ReadDoc::stats(&fresh);
        let next = stored.epoch + 1;
        writes.push(DocWrite {
            kind: stored.kind,
            expected_version: stored.version,
            bytes: fresh.save(),
            append: false,
            new_epoch: Some(next),
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
