//! Wakes waiting devices when a fan-out happened in another process on the same database.

use std::sync::Arc;

use crate::app::App;

/// How often the server looks for fan-outs made by another process (the segment batch job).
pub(crate) const FANOUT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Wakes waiting devices when a fan-out happened elsewhere on the same database — the batch job
/// that recomputes segments runs as its own process and cannot call [`App::wake_all`]. One small
/// query every two seconds.
pub async fn watch_fanouts(app: Arc<App>) {
    let storage = app.storage.clone();
    let mut seen = None;
    loop {
        match storage.fanout_seq().await {
            Ok(seq) => {
                if seen.is_some_and(|s| s != seq) {
                    app.wake_all();
                }
                seen = Some(seq);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the fan-out sequence"),
        }
        tokio::time::sleep(FANOUT_POLL).await;
    }
}
