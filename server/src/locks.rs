//! The per-member lock: within one process, work on a member's documents and points is serialised
//! by a striped lock keyed by member id. Across processes the storage's optimistic versions take
//! over (a write that lost the race is `StorageError::Conflict`, retried as a merge).

use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

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
