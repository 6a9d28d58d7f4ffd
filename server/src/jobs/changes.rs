//! Hears the changes other server instances on the same database announce
//! ([`crate::storage::ChangeStore`]) and wakes this instance's long polls for them, so a phone
//! waiting here learns of a purchase posted through another instance at once. Nothing to do on a
//! backend no other instance shares.

use std::sync::Arc;

use crate::app::App;
use crate::storage::Change;

/// Forwards other instances' changes to this instance's feed until the backend's feed ends.
pub async fn hear_other_instances(app: Arc<App>) {
    let mut changes = match app.storage.changes().await {
        Ok(Some(changes)) => changes,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot hear other instances' changes");
            return;
        }
    };
    while let Some(change) = changes.recv().await {
        match change {
            Change::Member(member_id) => app.live.notify(&member_id),
            Change::Everyone => app.live.wake_all(),
        }
    }
}
