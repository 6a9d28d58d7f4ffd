//! Operator accounts and the audit log as stored: each account's role and the SHA-256 of its
//! token (never the token), and one row per operator write. Nothing here decides who may do what:
//! that is `crate::service::operators`.

use async_trait::async_trait;
use loyalty_core::api::{AuditEntry, OperatorAccount};

use crate::storage::StorageError;

/// An account to create; `token_hash` is the SHA-256 of the bearer token handed out once.
#[derive(Debug, Clone)]
pub struct NewOperatorAccount {
    pub account: OperatorAccount,
    pub token_hash: [u8; 32],
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub operator_id: Option<String>,
    /// Only entries older than this id (the page before).
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    async fn create_operator(&self, new: NewOperatorAccount) -> Result<(), StorageError>;

    /// The account a token hash belongs to, disabled or not.
    async fn operator_by_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<OperatorAccount>, StorageError>;

    /// Every account, oldest first.
    async fn operators(&self) -> Result<Vec<OperatorAccount>, StorageError>;

    /// Disables an account from `now_ms` (a disabled one keeps its first date); `false` when
    /// there is no such account.
    async fn disable_operator(&self, operator_id: &str, now_ms: i64) -> Result<bool, StorageError>;

    /// Appends an entry (its `id` is the store's to give).
    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StorageError>;

    async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>, StorageError>;
}
