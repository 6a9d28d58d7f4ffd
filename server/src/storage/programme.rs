//! The programme's configuration as stored: the earning rules, points policy and tier ladder an
//! operator sets (`docs/programme.md`). Offers and segments are [`crate::storage::offers`]; the
//! settle job is [`crate::jobs::settle`].

use async_trait::async_trait;
use loyalty_core::programme::Programme;

use crate::storage::StorageError;

#[async_trait]
pub trait ProgrammeStore: Send + Sync + 'static {
    /// The programme configuration, `None` before an operator set one.
    async fn programme(&self) -> Result<Option<Programme>, StorageError>;
    async fn set_programme(&self, programme: &Programme, now_ms: i64) -> Result<(), StorageError>;
}
