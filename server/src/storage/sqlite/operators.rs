//! SQLite's [`OperatorStore`]: accounts found by their token hash through its unique index, and
//! the audit log appended through the writer and read newest first, console sessions read joined
//! with their account.

use async_trait::async_trait;
use loyalty_core::api::{AuditEntry, OperatorAccount};
use rusqlite::{OptionalExtension, params};

use super::hash_from;
use super::{SqliteStorage, backend};
use crate::storage::{
    AuditFilter, ConsoleSession, NewOperatorAccount, OperatorStore, ResumedSession, StorageError,
};

const ACCOUNT: &str =
    "SELECT operator_id, name, role, created_at, created_by, disabled_at FROM operators";

fn account(r: &rusqlite::Row<'_>) -> rusqlite::Result<OperatorAccount> {
    Ok(OperatorAccount {
        operator_id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        created_at_ms: r.get(3)?,
        created_by: r.get(4)?,
        disabled_at_ms: r.get(5)?,
    })
}

#[async_trait]
impl OperatorStore for SqliteStorage {
    async fn create_operator(&self, new: NewOperatorAccount) -> Result<(), StorageError> {
        self.run(move |conn| {
            let a = &new.account;
            conn.execute(
                "INSERT INTO operators (operator_id, name, role, token_hash, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![a.operator_id, a.name, a.role, &new.token_hash[..], a.created_at_ms, a.created_by],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn operator_by_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<OperatorAccount>, StorageError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("{ACCOUNT} WHERE token_hash = ?1"))
                .and_then(|mut s| s.query_row([&token_hash[..]], account).optional())
                .map_err(backend)
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<OperatorAccount>, StorageError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("{ACCOUNT} ORDER BY created_at, operator_id"))
                .and_then(|mut s| s.query_map([], account)?.collect())
                .map_err(backend)
        })
        .await
    }

    async fn disable_operator(&self, operator_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let operator_id = operator_id.to_string();
        self.run(move |conn| {
            conn.execute(
                "UPDATE operators SET disabled_at = coalesce(disabled_at, ?2) WHERE operator_id = ?1",
                params![operator_id, now_ms],
            )
            .map(|n| n == 1)
            .map_err(backend)
        })
        .await
    }

    async fn record_audit(&self, e: AuditEntry) -> Result<(), StorageError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, operator_id, operator_name, role, action, target, status,
                                        client)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![e.at_ms, e.operator_id, e.operator_name, e.role, e.action, e.target, e.status, e.client],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, f: AuditFilter) -> Result<Vec<AuditEntry>, StorageError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, at, operator_id, operator_name, role, action, target, status, client
                 FROM audit_log
                 WHERE (?1 IS NULL OR operator_id = ?1) AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![f.operator_id, f.before_id, f.limit], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        operator_id: r.get(2)?,
                        operator_name: r.get(3)?,
                        role: r.get(4)?,
                        action: r.get(5)?,
                        target: r.get(6)?,
                        status: r.get(7)?,
                        client: r.get(8)?,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn create_console_session(
        &self,
        s: ConsoleSession,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                [now_ms],
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO console_sessions (id_hash, operator_id, csrf_token, created_at,
                                               expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &s.id_hash[..],
                    s.operator_id,
                    s.csrf_token,
                    s.created_at_ms,
                    s.expires_at_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn console_session(
        &self,
        id_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<ResumedSession>, StorageError> {
        self.read_now(move |conn| {
            conn.prepare_cached(
                "SELECT s.id_hash, s.operator_id, s.csrf_token, s.created_at, s.expires_at,
                        o.operator_id, o.name, o.role, o.created_at, o.created_by, o.disabled_at
                 FROM console_sessions s LEFT JOIN operators o ON o.operator_id = s.operator_id
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![&id_hash[..], now_ms], resumed)
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn end_console_session(&self, id_hash: [u8; 32]) -> Result<bool, StorageError> {
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM console_sessions WHERE id_hash = ?1",
                [&id_hash[..]],
            )
            .map(|n| n == 1)
            .map_err(backend)
        })
        .await
    }
}

fn resumed(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResumedSession> {
    let account = match r.get::<_, Option<String>>(5)? {
        Some(operator_id) => Some(OperatorAccount {
            operator_id,
            name: r.get(6)?,
            role: r.get(7)?,
            created_at_ms: r.get(8)?,
            created_by: r.get(9)?,
            disabled_at_ms: r.get(10)?,
        }),
        None => None,
    };
    Ok(ResumedSession {
        session: ConsoleSession {
            id_hash: hash_from(r.get(0)?),
            operator_id: r.get(1)?,
            csrf_token: r.get(2)?,
            created_at_ms: r.get(3)?,
            expires_at_ms: r.get(4)?,
        },
        account,
    })
}
