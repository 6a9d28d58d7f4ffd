//! The server's writes to a member's documents: creating them for a new member, and changing one
//! under the member's lock with the storage's optimistic version check, retrying as a merge when
//! another instance wrote first.

use crate::locks::Retry;
use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use loyalty_core::DocKind;
use loyalty_core::document::genesis;

use crate::app::App;
use crate::error::DomainError;
use crate::storage::{Commit, DocSummary, DocWrite};

/// The four documents of a new member, saved.
pub fn new_member_documents(
    app: &App,
    member_id: &str,
    card_number: &str,
) -> Result<Vec<(DocKind, Vec<u8>)>, DomainError> {
    let mut out = Vec::new();
    for kind in DocKind::ALL {
        let mut doc = genesis(kind);
        if kind == DocKind::Card {
            doc.set_actor(app.actor.clone());
            loyalty_core::card::issue(&mut doc, card_number, member_id)
                .map_err(|e| DomainError::internal("issuing a card", e))?;
            commit(app, &mut doc);
        }
        out.push((kind, doc.save()));
    }
    Ok(out)
}

pub(crate) fn commit(app: &App, doc: &mut AutoCommit) {
    doc.commit_with(CommitOptions::default().with_time(app.now_ms() / 1000));
}

/// What a sync compares of `doc` without loading it again (`crate::storage::DocSummary`).
pub fn summary(doc: &mut AutoCommit) -> DocSummary {
    let stats = automerge::ReadDoc::stats(doc);
    DocSummary {
        digest: loyalty_core::document::heads_digest(&doc.get_heads()),
        ops: stats.num_ops,
        changes: stats.num_changes,
    }
}

pub fn load(kind: DocKind, bytes: &[u8]) -> Result<AutoCommit, DomainError> {
    AutoCommit::load(bytes)
        .map_err(|e| DomainError::internal(&format!("stored {kind} document is unreadable"), e))
}

/// Applies `edit` to one of a member's server-written documents and stores the result.
pub async fn update<T>(
    app: &App,
    member_id: &str,
    kind: DocKind,
    mut edit: impl FnMut(&mut AutoCommit) -> Result<T, DomainError>,
) -> Result<T, DomainError> {
    let _guard = app.lock_member(member_id).await;
    let mut retry = Retry::default();
    loop {
        retry.another()?;
        let stored = app
            .storage
            .load_documents(member_id, &[kind])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DomainError::not_found("member_not_found", "no such member"))?;
        let mut doc = load(kind, &stored.bytes)?;
        doc.set_actor(app.actor.clone());
        let result = edit(&mut doc)?;
        commit(app, &mut doc);
        let write = DocWrite {
            kind,
            expected_version: stored.version,
            bytes: doc.save(),
            append: false,
            new_epoch: None,
            summary: Some(summary(&mut doc)),
            shows_revision: None,
        };
        match app
            .storage
            .commit(member_id, None, vec![write], Vec::new(), None)
            .await
        {
            Ok(Commit::Committed) => {
                if kind == DocKind::Card {
                    // The version check would catch the stale copy anyway; this frees it now.
                    app.cards.forget(member_id);
                }
                app.notify(member_id);
                return Ok(result);
            }
            Ok(Commit::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
