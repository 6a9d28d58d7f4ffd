//! The per-member lock: within one process, work on a member's documents and points is serialised
//! by a striped lock keyed by member id. Across processes the storage's optimistic versions take
//! over: a write that lost the race is a `Conflict` outcome of the storage, retried as a merge under the one
//! policy of [`Retry`].

use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

use crate::error::DomainError;

/// Lock stripes: enough that unrelated members rarely share one, few enough to allocate up front.
const LOCK_STRIPES: usize = 1024;

/// The striped per-member lock of one process.
pub struct MemberLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for MemberLocks {
    fn default() -> Self {
        Self {
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl MemberLocks {
    /// Serialises work on one member's documents within this process.
    pub async fn lock(&self, member_id: &str) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        member_id.hash(&mut h);
        let stripe = (h.finish() as usize) % LOCK_STRIPES;
        self.stripes[stripe].lock().await
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
}
