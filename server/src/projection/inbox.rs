//! The inbox projection: messages and replies recorded relationally, written into a member's inbox document.

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents;
use loyalty_core::DocKind;
use loyalty_core::inbox::{self};

/// Writes what the member's inbox document lacks (recorded messages, delivery states, request
/// threads) into it, and marks it projected. Returns whether anything was written. Takes the
/// member's lock through [`documents::update`], so callers must not hold it. Idempotent: writing
/// an entry again adds nothing, so a crash between the write and the mark costs nothing.
pub async fn project_inbox(app: &App, member_id: &str) -> Result<bool, DomainError> {
    let mut wrote = false;
    // A few batches per call bound the work one sync does; the rest follows at the next one.
    for _ in 0..4 {
        let pending = app.storage.pending_inbox(member_id).await?;
        if pending.is_empty() {
            break;
        }
        documents::update(app, member_id, DocKind::Inbox, |doc| {
            for (m, _) in &pending.messages {
                inbox::put(doc, m).map_err(|e| DomainError::internal("projecting a message", e))?;
            }
            for (t, _) in &pending.threads {
                inbox::put_thread(doc, t)
                    .map_err(|e| DomainError::internal("projecting a request thread", e))?;
            }
            Ok(())
        })
        .await?;
        let messages = pending
            .messages
            .iter()
            .map(|(m, v)| (m.id.clone(), *v))
            .collect();
        let threads = pending
            .threads
            .iter()
            .map(|(t, v)| (t.request_id.clone(), *v))
            .collect();
        app.storage
            .mark_inbox_projected(member_id, messages, threads)
            .await?;
        wrote = true;
    }
    Ok(wrote)
}
