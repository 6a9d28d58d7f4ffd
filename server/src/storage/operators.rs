//! Operator accounts and the audit log as stored: each account's role and the SHA-256 of its
//! token (never the token), and one row per operator write. Nothing here decides who may do what:
//! that is `crate::service::operators`. The console's sessions are kept here too, beside the
//! accounts they belong to: a session is read joined with its account, so disabling the account
//! ends its sessions in the same read.

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

/// A console session as stored: the SHA-256 of the id its cookie carries (never the id), whose
/// it is, the CSRF token its writes must echo, and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: [u8; 32],
    pub operator_id: String,
    pub csrf_token: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A live session and the named account it belongs to (`None` for the bootstrap admin, who has
/// no account row — or for an account that no longer exists, which the service refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedSession {
    pub session: ConsoleSession,
    pub account: Option<OperatorAccount>,
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

    /// Stores a new console session, and deletes the sessions that expired by `now_ms`.
    async fn create_console_session(
        &self,
        session: ConsoleSession,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// The session whose id hashes to `id_hash`, if it has not expired by `now_ms`, with its
    /// account (disabled or not: the service decides).
    async fn console_session(
        &self,
        id_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<ResumedSession>, StorageError>;

    /// Ends a session (logout); `false` when there was none.
    async fn end_console_session(&self, id_hash: [u8; 32]) -> Result<bool, StorageError>;
}
