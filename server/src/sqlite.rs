//! The embedded storage: one SQLite file in WAL mode with full synchronous commits, so what the
//! server has answered is on disk even if the process is killed the next instant.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so request handlers never block
//! the runtime's worker threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use loyalty_core::DocKind;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::storage::{
    DeviceRecord, DocWrite, MemberRecord, NewDevice, NewMember, Storage, StorageError, StoredDoc,
};

/// `PRAGMA application_id` of a server database ("LYLS").
const APPLICATION_ID: i32 = 0x4C59_4C53;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(
        "CREATE TABLE members (
             member_id TEXT PRIMARY KEY,
             card_number TEXT NOT NULL UNIQUE,
             external_ref TEXT,
             created_at INTEGER NOT NULL
         );
         CREATE TABLE activation_codes (
             code_hash BLOB PRIMARY KEY,
             member_id TEXT NOT NULL REFERENCES members (member_id),
             expires_at INTEGER NOT NULL,
             used_at INTEGER,
             device_id TEXT
         );
         CREATE TABLE devices (
             device_id TEXT PRIMARY KEY,
             member_id TEXT NOT NULL REFERENCES members (member_id),
             secret_hash BLOB NOT NULL,
             name TEXT NOT NULL,
             created_at INTEGER NOT NULL,
             revoked_at INTEGER
         );
         CREATE INDEX devices_by_member ON devices (member_id);
         CREATE TABLE documents (
             member_id TEXT NOT NULL REFERENCES members (member_id),
             kind INTEGER NOT NULL,
             version INTEGER NOT NULL,
             data BLOB NOT NULL,
             PRIMARY KEY (member_id, kind)
         ) WITHOUT ROWID;
         CREATE TABLE peer_states (
             device_id TEXT NOT NULL REFERENCES devices (device_id),
             kind INTEGER NOT NULL,
             data BLOB NOT NULL,
             PRIMARY KEY (device_id, kind)
         ) WITHOUT ROWID;",
    )])
}

#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SqliteStorage {
    pub fn open(path: &Path) -> Result<Self, loyalty_core::store::StoreError> {
        let conn = loyalty_core::store::open_sqlite(path, APPLICATION_ID, &migrations())?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

fn kinds_sql(kinds: &[DocKind]) -> String {
    kinds
        .iter()
        .map(|k| k.code().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn hash_from(blob: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    if blob.len() == 32 {
        out.copy_from_slice(&blob);
    }
    out
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn create_member(&self, m: NewMember) -> Result<(), StorageError> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let inserted = tx.execute(
                "INSERT INTO members (member_id, card_number, external_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![m.member_id, m.card_number, m.external_ref, m.created_at_ms],
            );
            if inserted.map_err(backend)? == 0 {
                return Err(StorageError::Duplicate("member id or card number".into()));
            }
            for (kind, bytes) in &m.documents {
                tx.execute(
                    "INSERT INTO documents (member_id, kind, version, data) VALUES (?1, ?2, 1, ?3)",
                    params![m.member_id, kind.code(), bytes],
                )
                .map_err(backend)?;
            }
            tx.execute(
                "INSERT INTO activation_codes (code_hash, member_id, expires_at) VALUES (?1, ?2, ?3)",
                params![m.code_hash.as_slice(), m.member_id, m.code_expires_at_ms],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn member(&self, member_id: &str) -> Result<Option<MemberRecord>, StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT member_id, card_number FROM members WHERE member_id = ?1",
                [member_id],
                |r| {
                    Ok(MemberRecord {
                        member_id: r.get(0)?,
                        card_number: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn add_activation_code(
        &self,
        member_id: &str,
        code_hash: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO activation_codes (code_hash, member_id, expires_at) VALUES (?1, ?2, ?3)",
                params![code_hash.as_slice(), member_id, expires_at_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn redeem_activation_code(
        &self,
        code_hash: [u8; 32],
        now_ms: i64,
        device: NewDevice,
    ) -> Result<MemberRecord, StorageError> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let row: Option<(String, i64, Option<i64>, String)> = tx
                .query_row(
                    "SELECT a.member_id, a.expires_at, a.used_at, m.card_number
                     FROM activation_codes a JOIN members m USING (member_id)
                     WHERE a.code_hash = ?1",
                    [code_hash.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(backend)?;
            let (member_id, expires_at, used_at, card_number) =
                row.ok_or(StorageError::CodeUnknown)?;
            if used_at.is_some() {
                return Err(StorageError::CodeUsed);
            }
            if now_ms >= expires_at {
                return Err(StorageError::CodeExpired);
            }
            // The `used_at IS NULL` guard makes a concurrent second redemption update nothing.
            let updated = tx
                .execute(
                    "UPDATE activation_codes SET used_at = ?1, device_id = ?2
                     WHERE code_hash = ?3 AND used_at IS NULL",
                    params![now_ms, device.device_id, code_hash.as_slice()],
                )
                .map_err(backend)?;
            if updated != 1 {
                return Err(StorageError::CodeUsed);
            }
            tx.execute(
                "INSERT INTO devices (device_id, member_id, secret_hash, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    device.device_id,
                    member_id,
                    device.secret_hash.as_slice(),
                    device.name,
                    device.created_at_ms
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(MemberRecord {
                member_id,
                card_number,
            })
        })
        .await
    }

    async fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StorageError> {
        let device_id = device_id.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT device_id, member_id, secret_hash, revoked_at IS NOT NULL
                 FROM devices WHERE device_id = ?1",
                [device_id],
                |r| {
                    Ok(DeviceRecord {
                        device_id: r.get(0)?,
                        member_id: r.get(1)?,
                        secret_hash: hash_from(r.get(2)?),
                        revoked: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn load_documents(
        &self,
        member_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<StoredDoc>, StorageError> {
        let member_id = member_id.to_string();
        let sql = format!(
            "SELECT kind, version, data FROM documents WHERE member_id = ?1 AND kind IN ({})",
            kinds_sql(kinds)
        );
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map([member_id], |r| {
                    Ok((
                        r.get::<_, u8>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(backend)?;
            let mut docs = Vec::new();
            for row in rows {
                let (code, version, bytes) = row.map_err(backend)?;
                if let Some(kind) = DocKind::from_code(code) {
                    docs.push(StoredDoc {
                        kind,
                        version,
                        bytes,
                    });
                }
            }
            Ok(docs)
        })
        .await
    }

    async fn load_peer_states(
        &self,
        device_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<(DocKind, Vec<u8>)>, StorageError> {
        let device_id = device_id.to_string();
        let sql = format!(
            "SELECT kind, data FROM peer_states WHERE device_id = ?1 AND kind IN ({})",
            kinds_sql(kinds)
        );
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map([device_id], |r| {
                    Ok((r.get::<_, u8>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(backend)?;
            let mut states = Vec::new();
            for row in rows {
                let (code, bytes) = row.map_err(backend)?;
                if let Some(kind) = DocKind::from_code(code) {
                    states.push((kind, bytes));
                }
            }
            Ok(states)
        })
        .await
    }

    async fn commit(
        &self,
        member_id: &str,
        device_id: Option<&str>,
        documents: Vec<DocWrite>,
        peer_states: Vec<(DocKind, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        let device_id = device_id.map(str::to_string);
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for d in &documents {
                let updated = tx
                    .execute(
                        "UPDATE documents SET data = ?1, version = version + 1
                         WHERE member_id = ?2 AND kind = ?3 AND version = ?4",
                        params![d.bytes, member_id, d.kind.code(), d.expected_version],
                    )
                    .map_err(backend)?;
                if updated != 1 {
                    return Err(StorageError::Conflict);
                }
            }
            if let Some(device_id) = &device_id {
                for (kind, bytes) in &peer_states {
                    tx.execute(
                        "INSERT INTO peer_states (device_id, kind, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (device_id, kind) DO UPDATE SET data = excluded.data",
                        params![device_id, kind.code(), bytes],
                    )
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }
}
