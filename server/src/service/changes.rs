//! The long poll's answer: whether a member's documents changed since a device last asked, waiting
//! for a change up to a deadline. One storage statement per check (the sync check, which says
//! whether postings, offers or messages are recorded but not yet in the documents: the sync that
//! follows projects them), then the change feed ([`crate::live`]).

use std::time::Duration;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::live::Wait;

/// The longest a poll may wait, whatever it asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// What a poll answers: the sequence number to poll from next, and whether there is something to
/// sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub seq: u64,
    pub changed: bool,
}

/// Waits up to `wait` (at most [`MAX_WAIT`]) for a change of the member's documents after `since`.
/// A newer poll of the same device ends this one with `409 poll_superseded`.
pub async fn wait(
    app: &App,
    member_id: &str,
    device_id: &str,
    since: u64,
    wait: Duration,
) -> Result<Changes, DomainError> {
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    // Open before the checks below, so a change between them and the wait is not missed.
    let poll = app.live.open(member_id, device_id);
    loop {
        // Read before the check: a fan-out or a send that lands after the check has woken after
        // this read, so the wait below still sees it.
        let wakes = app.wakes();
        let check = app.storage.sync_check(member_id, app.now_ms()).await?;
        if check.card_behind || check.offers_pending || check.inbox_pending {
            return Ok(Changes {
                seq: since,
                changed: true,
            });
        }
        match poll.wait(since, wakes, deadline).await {
            Wait::Changed(seq) => return Ok(Changes { seq, changed: true }),
            Wait::TimedOut(seq) => {
                return Ok(Changes {
                    seq,
                    changed: false,
                });
            }
            // A fan-out or a send somewhere: check this member again.
            Wait::Woken => continue,
            Wait::Superseded => {
                return Err(DomainError::new(
                    ErrorKind::Conflict,
                    "poll_superseded",
                    "a newer long poll of this device took this one's place; do not poll again from here",
                ));
            }
        }
    }
}
