//! PostgreSQL's [`OperatorStore`], as SQLite's: accounts found by their token hash through its
//! unique index, the audit log numbered by an identity column and read newest first, console
//! sessions read joined with their account.

use async_trait::async_trait;
use loyalty_core::api::{AuditEntry, OperatorAccount};
use tokio_postgres::Row;

use super::{Cached, PgStorage, backend, hash_from};
use crate::storage::{
    AuditFilter, ConsoleSession, NewOperatorAccount, OperatorStore, ResumedSession, StorageError,
};

const ACCOUNT: &str =
    "SELECT operator_id, name, role, created_at, created_by, disabled_at FROM operators";

fn account(r: &Row) -> Result<OperatorAccount, StorageError> {
    Ok(OperatorAccount {
        operator_id: r.try_get(0).map_err(backend)?,
        name: r.try_get(1).map_err(backend)?,
        role: r.try_get(2).map_err(backend)?,
        created_at_ms: r.try_get(3).map_err(backend)?,
        created_by: r.try_get(4).map_err(backend)?,
        disabled_at_ms: r.try_get(5).map_err(backend)?,
    })
}

fn entry(r: &Row) -> Result<AuditEntry, StorageError> {
    Ok(AuditEntry {
        id: r.try_get(0).map_err(backend)?,
        at_ms: r.try_get(1).map_err(backend)?,
        operator_id: r.try_get(2).map_err(backend)?,
        operator_name: r.try_get(3).map_err(backend)?,
        role: r.try_get(4).map_err(backend)?,
        action: r.try_get(5).map_err(backend)?,
        target: r.try_get(6).map_err(backend)?,
        status: u16::try_from(r.try_get::<_, i32>(7).map_err(backend)?).map_err(backend)?,
        client: r.try_get(8).map_err(backend)?,
    })
}

#[async_trait]
impl OperatorStore for PgStorage {
    async fn create_operator(&self, new: NewOperatorAccount) -> Result<(), StorageError> {
        let a = &new.account;
        self.client()
            .await?
            .exec(
                "INSERT INTO operators (operator_id, name, role, token_hash, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&a.operator_id, &a.name, &a.role, &&new.token_hash[..], &a.created_at_ms, &a.created_by],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn operator_by_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<OperatorAccount>, StorageError> {
        let row = self
            .client()
            .await?
            .fetch_opt(
                &format!("{ACCOUNT} WHERE token_hash = $1"),
                &[&&token_hash[..]],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(account).transpose()
    }

    async fn operators(&self) -> Result<Vec<OperatorAccount>, StorageError> {
        let rows = self
            .client()
            .await?
            .fetch_all(
                &format!("{ACCOUNT} ORDER BY created_at, operator_id COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(account).collect()
    }

    async fn disable_operator(&self, operator_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .exec(
                "UPDATE operators SET disabled_at = coalesce(disabled_at, $2) WHERE operator_id = $1",
                &[&operator_id, &now_ms],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn record_audit(&self, e: AuditEntry) -> Result<(), StorageError> {
        self.client()
            .await?
            .exec(
                "INSERT INTO audit_log (at, operator_id, operator_name, role, action, target, status,
                                        client)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&e.at_ms, &e.operator_id, &e.operator_name, &e.role, &e.action, &e.target, &i32::from(e.status), &e.client],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn audit(&self, f: AuditFilter) -> Result<Vec<AuditEntry>, StorageError> {
        let rows = self
            .client()
            .await?
            .fetch_all(
                "SELECT id, at, operator_id, operator_name, role, action, target, status, client
                 FROM audit_log
                 WHERE ($1::text IS NULL OR operator_id = $1) AND ($2::bigint IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
                &[&f.operator_id, &f.before_id, &f.limit],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(entry).collect()
    }

    async fn create_console_session(
        &self,
        s: ConsoleSession,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "DELETE FROM console_sessions WHERE expires_at <= $1",
                &[&now_ms],
            )
            .await
            .map_err(backend)?;
        client
            .exec(
                "INSERT INTO console_sessions (id_hash, operator_id, csrf_token, created_at,
                                               expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &&s.id_hash[..],
                    &s.operator_id,
                    &s.csrf_token,
                    &s.created_at_ms,
                    &s.expires_at_ms,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn console_session(
        &self,
        id_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<ResumedSession>, StorageError> {
        let row = self
            .client()
            .await?
            .fetch_opt(
                "SELECT s.id_hash, s.operator_id, s.csrf_token, s.created_at, s.expires_at,
                        o.operator_id, o.name, o.role, o.created_at, o.created_by, o.disabled_at
                 FROM console_sessions s LEFT JOIN operators o ON o.operator_id = s.operator_id
                 WHERE s.id_hash = $1 AND s.expires_at > $2",
                &[&&id_hash[..], &now_ms],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(resumed).transpose()
    }

    async fn end_console_session(&self, id_hash: [u8; 32]) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .exec(
                "DELETE FROM console_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }
}

fn resumed(r: &Row) -> Result<ResumedSession, StorageError> {
    let account = match r.try_get::<_, Option<String>>(5).map_err(backend)? {
        Some(operator_id) => Some(OperatorAccount {
            operator_id,
            name: r.try_get(6).map_err(backend)?,
            role: r.try_get(7).map_err(backend)?,
            created_at_ms: r.try_get(8).map_err(backend)?,
            created_by: r.try_get(9).map_err(backend)?,
            disabled_at_ms: r.try_get(10).map_err(backend)?,
        }),
        None => None,
    };
    Ok(ResumedSession {
        session: ConsoleSession {
            id_hash: hash_from(r.try_get(0).map_err(backend)?)?,
            operator_id: r.try_get(1).map_err(backend)?,
            csrf_token: r.try_get(2).map_err(backend)?,
            created_at_ms: r.try_get(3).map_err(backend)?,
            expires_at_ms: r.try_get(4).map_err(backend)?,
        },
        account,
    })
}
