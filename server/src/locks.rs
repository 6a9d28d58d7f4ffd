//! The per-member lock: within one process, work on a member's documents and points is serialised
//! by a lock keyed by member id, made when first asked for and forgotten when nobody holds or waits
//! for it, so two members never share one (a shared stripe would make one member's sync, waiting
//! for a place among the sync jobs, hold up another member's purchase). Across processes the
//! storage's optimistic versions take over: a write that lost the race is a `Conflict` outcome of
//! the storage, retried as a merge under the one policy of [`Retry`].

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::DomainError;

/// The per-member locks of one process: only members someone holds or waits for have an entry.
#[derive(Default)]
pub struct MemberLocks {
    held: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// A member's lock, held until dropped.
pub struct MemberGuard<'a> {
    locks: &'a MemberLocks,
    member_id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl MemberLocks {
    /// Serialises work on one member's documents within this process.
    pub async fn lock(&self, member_id: &str) -> MemberGuard<'_> {
        let lock = self
            .entries()
            .entry(member_id.to_owned())
            .or_default()
            .clone();
        // Made before the wait, so a request cancelled while waiting still forgets its entry.
        let mut held = MemberGuard {
            locks: self,
            member_id: member_id.to_owned(),
            guard: None,
        };
        held.guard = Some(lock.lock_owned().await);
        held
    }

    /// Members with an entry now (held or waited for).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<()>>>> {
        // The map is consistent after any panic (one insert or remove), so a poisoned one is used.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MemberGuard<'_> {
    fn drop(&mut self) {
        let mut entries = self.locks.entries();
        // Handles are cloned only under the map's lock, so nobody can take one while we look;
        // a cancelled waiter's clone (in the wait it abandoned) is already gone, dropped before
        // its guard. Besides the map's own, ours is then the last one when nobody else needs it.
        let ours = usize::from(self.guard.is_some());
        if let Some(lock) = entries.get(&self.member_id)
            && Arc::strong_count(lock) <= 1 + ours
        {
            entries.remove(&self.member_id);
        }
        self.guard.take();
    }
}

/// Attempts at a write that lost an optimistic race — another instance wrote the member first
/// (a `Conflict` outcome) — before the request is answered `503 busy`. One count for every
/// such loop: a sync, a document's update, the card's catch-up, an epoch, a posting.
pub const CONFLICT_ATTEMPTS: usize = 8;

/// The one retry policy of those loops:
/// `let mut retry = Retry::default(); loop { retry.another()?; … Conflict => continue }`.
#[derive(Debug)]
pub struct Retry {
    left: usize,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            left: CONFLICT_ATTEMPTS,
        }
    }
}

impl Retry {
    /// Another attempt, or [`DomainError::busy`] once they are used up.
    pub fn another(&mut self) -> Result<(), DomainError> {
        self.left = self.left.checked_sub(1).ok_or_else(DomainError::busy)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_allows_the_attempts_then_answers_busy() {
        let mut retry = Retry::default();
        for _ in 0..CONFLICT_ATTEMPTS {
            assert!(retry.another().is_ok());
        }
        assert_eq!(retry.another().map_err(|e| e.code), Err("busy"));
        // And stays busy.
        assert_eq!(retry.another().map_err(|e| e.code), Err("busy"));
    }

    #[tokio::test]
    async fn one_members_lock_never_holds_up_another_and_is_forgotten_when_free() {
        let locks = MemberLocks::default();
        let a = locks.lock("a").await;
        // Another member is never kept waiting, whatever the ids hash to.
        let b = locks.lock("b").await;
        assert_eq!(locks.len(), 2);
        drop(b);
        assert_eq!(locks.len(), 1);
        // The same member waits for the holder.
        let mut second = Box::pin(locks.lock("a"));
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        drop(a);
        let again = second.await;
        assert_eq!(locks.len(), 1);
        drop(again);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_cancelled_while_waiting_leaves_no_entry_behind() {
        let locks = MemberLocks::default();
        let a = locks.lock("a").await;
        let mut waiter = Box::pin(locks.lock("a"));
        assert!(futures_poll_once(waiter.as_mut()).await.is_none());
        drop(waiter);
        assert_eq!(locks.len(), 1, "the holder's entry stays");
        drop(a);
        assert!(locks.is_empty());
    }

    /// Polls a future once: `Some` when it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
