//! The embedded storage: one SQLite file in WAL mode with full synchronous commits, so what the
//! server has answered is on disk even if the process is killed the next instant.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so request handlers never block
//! the runtime's worker threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use loyalty_core::DocKind;
use loyalty_core::member::MemberState;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;

mod messaging;
pub mod offers;

use crate::storage::{
    CardSource, CheckoutSession, DeviceKey, DeviceRecord, DocWrite, LedgerStore, MemberBook,
    MemberProgramme, MemberRecord, MemberStore, NewDevice, NewMember, Posting, PostingKind,
    PriorPosting, ProgrammeStore, PurchaseContext, PurchaseRecord, StorageError, StoredDoc,
    TillMember,
};
use loyalty_core::card::LedgerEntry;
use loyalty_core::lots::Lot;
use loyalty_core::programme::Programme;
use loyalty_core::tiers::{Metric, TierState};

/// `PRAGMA application_id` of a server database ("LYLS").
pub(crate) const APPLICATION_ID: i32 = 0x4C59_4C53;

/// The server database's migrations, in order: one file each in `server/migrations/sqlite/`
/// (`NNN_name.sql`), applied once each in one transaction and counted in `PRAGMA user_version`. A
/// migration is never edited once released; a change is a new file at the end of the list.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/001_members_devices_documents.sql"),
    include_str!("../../../migrations/sqlite/002_checkout_keys_and_used_codes.sql"),
    include_str!("../../../migrations/sqlite/003_ledger.sql"),
    include_str!("../../../migrations/sqlite/004_sweep_indexes.sql"),
    include_str!("../../../migrations/sqlite/005_programme_mirror.sql"),
    include_str!("../../../migrations/sqlite/006_offers_and_segments.sql"),
    include_str!("../../../migrations/sqlite/007_lots_tiers_programme.sql"),
    include_str!("../../../migrations/sqlite/008_communications.sql"),
    include_str!("../../../migrations/sqlite/009_card_catches_up.sql"),
    include_str!("../../../migrations/sqlite/010_covering_indexes.sql"),
    include_str!("../../../migrations/sqlite/011_till_namespaces.sql"),
    include_str!("../../../migrations/sqlite/012_document_epochs.sql"),
];

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// The migration that moved till postings into their till's namespace (kept for its test).
#[cfg(test)]
const TILL_NAMESPACES: &str = MIGRATIONS[10];

/// How long a used checkout code is remembered (it expires after at most 90 s).
const USED_CODE_RETENTION_MS: i64 = 10 * 60 * 1000;

/// Read connections beside the writer.
const READERS: usize = 4;

/// Postings written in one transaction at most.
const MAX_POSTING_BATCH: usize = 256;

#[derive(Clone)]
pub struct SqliteStorage {
    /// The one connection that writes.
    conn: Arc<Mutex<Connection>>,
    /// Connections for reads, so a lookup never waits behind a write's fsync (WAL lets readers
    /// run beside the writer, each on the last committed state).
    readers: Arc<Vec<Mutex<Connection>>>,
    /// The group-commit writer for till postings (see [`posting_writer`]).
    poster: std::sync::mpsc::Sender<PostingJob>,
}

impl rusqlite::ToSql for PostingKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for PostingKind {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        PostingKind::from_name(name).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown posting kind `{name}`").into())
        })
    }
}

/// A failure of the database (or of what it returned), kept as the error's source.
pub(crate) fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    StorageError::Backend(e.into())
}

/// Bytes of the database file each connection maps into memory.
const MMAP_BYTES: i64 = 1 << 30;

/// A connection to the server's database, migrated. The file is memory-mapped: a connection's page
/// cache starts over whenever another connection commits (every posting), and with the file mapped
/// the pages it reads again are memory, not a system call and a copy each.
fn connection(path: &Path) -> Result<Connection, loyalty_core::store::StoreError> {
    let conn = loyalty_core::store::open_sqlite(path, APPLICATION_ID, &migrations())?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(|e| loyalty_core::store::StoreError::Open {
            path: path.to_path_buf(),
            message: format!("cannot map the database: {e}"),
        })?;
    Ok(conn)
}

impl SqliteStorage {
    pub fn open(path: &Path) -> Result<Self, loyalty_core::store::StoreError> {
        let conn = Arc::new(Mutex::new(connection(path)?));
        let (poster, jobs) = std::sync::mpsc::channel();
        let writer_conn = conn.clone();
        // The writer ends when the last SqliteStorage (and so the last sender) is dropped.
        std::thread::Builder::new()
            .name("loyalty-postings".into())
            .spawn(move || posting_writer(writer_conn, jobs))
            .map_err(|e| loyalty_core::store::StoreError::Open {
                path: path.to_path_buf(),
                message: format!("cannot start the posting writer: {e}"),
            })?;
        let readers = (0..READERS)
            .map(|_| connection(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            conn,
            readers: Arc::new(readers),
            poster,
        })
    }

    /// Runs a read-only `f` on one of the read connections, on the blocking pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            // Take the first free reader; wait on one only when all are busy.
            let mut guard = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
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
impl MemberStore for SqliteStorage {
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
        self.read(move |conn| {
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
            let key_id = loyalty_core::checkout_code::key_id(&device.public_key);
            let inserted = tx
                .execute(
                    "INSERT INTO device_keys (member_id, key_id, device_id, public_key, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    params![
                        member_id,
                        key_id,
                        device.device_id,
                        device.public_key.as_slice(),
                        device.created_at_ms
                    ],
                )
                .map_err(backend)?;
            if inserted != 1 {
                // Two keys of one member with the same 32-bit id: one in four billion. The
                // transaction rolls back and the code stays usable for a retry with a new key.
                return Err(StorageError::Duplicate("a key with this key id".into()));
            }
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
        self.read(move |conn| {
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
            "SELECT kind, version, data, epoch FROM documents WHERE member_id = ?1 AND kind IN ({})",
            kinds_sql(kinds)
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map([member_id], |r| {
                    Ok((
                        r.get::<_, u8>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(backend)?;
            let mut docs = Vec::new();
            for row in rows {
                let (code, version, bytes, epoch) = row.map_err(backend)?;
                if let Some(kind) = DocKind::from_code(code) {
                    docs.push(StoredDoc {
                        kind,
                        version,
                        epoch: u64::try_from(epoch).unwrap_or(0),
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
        self.read(move |conn| {
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
        mirror: Option<MemberState>,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        let device_id = device_id.map(str::to_string);
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for d in &documents {
                update_document(&tx, &member_id, d)?;
            }
            if let Some(state) = &mirror {
                mirror_member(&tx, &member_id, state)?;
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

    async fn revoke_device(&self, device_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let device_id = device_id.to_string();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE devices SET revoked_at = coalesce(revoked_at, ?1) WHERE device_id = ?2",
                    params![now_ms, device_id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_blocked(&self, member_id: &str, blocked: bool) -> Result<bool, StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            let n = conn
                .execute(
                    // A posting that read the member before the block is refused by the
                    // revision guard and reads again.
                    "UPDATE members SET status = ?1, revision = revision + 1 WHERE member_id = ?2",
                    params![if blocked { "blocked" } else { "active" }, member_id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}

/// Replaces the relational mirror of the member document with `state`, in the caller's
/// transaction, so the mirror never disagrees with the stored document.
fn mirror_member(
    tx: &rusqlite::Connection,
    member_id: &str,
    state: &MemberState,
) -> Result<(), StorageError> {
    for table in [
        "member_preferences",
        "member_consents",
        "member_activations",
        "member_requests",
        "member_request_followups",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE member_id = ?1"),
            [member_id],
        )
        .map_err(backend)?;
    }
    let mut put = tx
        .prepare_cached(
            "INSERT INTO member_preferences (member_id, key, value) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?;
    for (key, value) in &state.preferences {
        put.execute(params![member_id, key, value])
            .map_err(backend)?;
    }
    let mut put = tx
        .prepare_cached(
            "INSERT INTO member_consents (member_id, channel, granted, at) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(backend)?;
    for (channel, c) in &state.consents {
        put.execute(params![member_id, channel, c.granted, c.at_ms])
            .map_err(backend)?;
    }
    let mut put = tx
        .prepare_cached(
            "INSERT INTO member_activations (member_id, offer_id, at) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?;
    for (offer_id, a) in &state.activations {
        put.execute(params![member_id, offer_id, a.at_ms])
            .map_err(backend)?;
    }
    let mut put = tx
        .prepare_cached(
            "INSERT INTO member_requests (member_id, request_id, kind, subject, body, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    let mut put_followup = tx
        .prepare_cached(
            "INSERT INTO member_request_followups (member_id, request_id, followup_id, body, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend)?;
    for (request_id, r) in &state.requests {
        put.execute(params![
            member_id, request_id, r.kind, r.subject, r.body, r.at_ms
        ])
        .map_err(backend)?;
        for (followup_id, f) in &r.followups {
            put_followup
                .execute(params![member_id, request_id, followup_id, f.body, f.at_ms])
                .map_err(backend)?;
        }
    }
    Ok(())
}

fn till_member(r: &rusqlite::Row<'_>) -> rusqlite::Result<TillMember> {
    Ok(TillMember {
        member_id: r.get(0)?,
        card_number: r.get(1)?,
        blocked: r.get::<_, String>(2)? == "blocked",
        balance: r.get(3)?,
        tier: r.get(4)?,
    })
}

/// Writes one posting inside the caller's transaction.
fn apply_posting(tx: &rusqlite::Connection, p: &Posting) -> Result<(), StorageError> {
    // The balance is what the lots hold, and `lots.remaining` cannot go below zero (a CHECK):
    // no overdraft reaches this far.
    let st = &p.state;
    let fresh = tx
        .prepare_cached(
            "INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                                   receipt_id, total_minor, earned, redeemed, at, response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                p.idempotency_key, p.request_hash.as_slice(), p.member_id, p.kind, p.refers_to,
                p.till_id, p.receipt_id, p.total_minor, p.earned, p.redeemed, p.at_ms, p.response
            ])
        })
        .map_err(backend)?;
    if fresh != 1 {
        return Err(StorageError::Duplicate(
            "a posting with this idempotency key".into(),
        ));
    }
    if let Some(purchase) = &p.refers_to {
        check_refund(tx, purchase, p)?;
    }
    // The revision guard makes a concurrent change (another instance) a conflict to retry,
    // never a lost update.
    let moved = tx
        .prepare_cached(
            "UPDATE members SET balance = ?1, pending = ?2, tier = ?3, tier_manual = ?4,
                 tier_since = ?5, tier_review_at = ?6, tier_downgrade_at = ?7, next_event_at = ?8,
                 revision = revision + 1
             WHERE member_id = ?9 AND revision = ?10",
        )
        .and_then(|mut s| {
            s.execute(params![
                st.balance,
                st.pending,
                st.tier.tier,
                st.tier.manual,
                st.tier.since_ms,
                st.tier.review_at_ms,
                st.tier.downgrade_at_ms,
                st.next_event_at_ms,
                p.member_id,
                p.expected_revision
            ])
        })
        .map_err(backend)?;
    if moved != 1 {
        return Err(StorageError::Conflict);
    }
    let mut ledger = tx
        .prepare_cached(
            "INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at, rule)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?;
    for m in &p.movements {
        ledger
            .execute(params![
                m.tx_id,
                p.member_id,
                p.idempotency_key,
                m.points,
                m.reason,
                p.till_id,
                p.receipt_id,
                p.at_ms,
                m.rule
            ])
            .map_err(backend)?;
    }
    let mut lots = tx
        .prepare_cached(
            "INSERT INTO lots (lot_id, member_id, posting, rule, points, remaining, expired,
                               earned_at, available_at, expires_at, warned)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (lot_id) DO UPDATE SET remaining = excluded.remaining,
                 expired = excluded.expired, warned = excluded.warned",
        )
        .map_err(backend)?;
    for l in &p.lots {
        lots.execute(params![
            l.lot_id,
            p.member_id,
            p.idempotency_key,
            l.rule,
            l.points,
            l.remaining,
            l.expired,
            l.earned_at_ms,
            l.available_at_ms,
            l.expires_at_ms,
            l.warned
        ])
        .map_err(backend)?;
    }
    if !p.offer_uses.is_empty() {
        crate::storage::sqlite::offers::record_offer_uses(tx, &p.member_id, &p.offer_uses)?;
    }
    Ok(())
}

/// Checked in the writer, which sees every earlier refund of the purchase (this one included, just
/// inserted): refunds together never exceed their purchase, and the shares this refund reverses
/// were computed from the refunded total that is really there — even when refunds of the same
/// purchase race through several instances.
fn check_refund(
    tx: &rusqlite::Connection,
    purchase: &str,
    p: &Posting,
) -> Result<(), StorageError> {
    let (refunded, total): (i64, i64) = tx
        .prepare_cached(
            "SELECT (SELECT coalesce(sum(total_minor), 0) FROM postings WHERE refers_to = ?1),
                    total_minor
             FROM postings WHERE idempotency_key = ?1",
        )
        .and_then(|mut s| s.query_row([purchase], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(backend)?;
    // A refund came between: read again and recompute (it may no longer fit, which the ledger
    // then says with what is left).
    if p.refunded_before
        .is_some_and(|before| before + p.total_minor != refunded)
    {
        return Err(StorageError::Conflict);
    }
    if refunded > total {
        return Err(StorageError::RefundExceedsPurchase);
    }
    Ok(())
}

fn read_prior_posting(conn: &Connection, key: &str) -> Result<Option<PriorPosting>, StorageError> {
    conn.prepare_cached(
        "SELECT member_id, till_id, kind, request_hash, response FROM postings
         WHERE idempotency_key = ?1",
    )
    .and_then(|mut s| {
        s.query_row([key], |r| {
            Ok(PriorPosting {
                member_id: r.get(0)?,
                till_id: r.get(1)?,
                kind: r.get(2)?,
                request_hash: hash_from(r.get(3)?),
                response: r.get(4)?,
            })
        })
        .optional()
    })
    .map_err(backend)
}

/// The purchase posted under `posting`, with the lots it earned and what was refunded of it.
fn read_purchase(conn: &Connection, posting: &str) -> Result<Option<PurchaseRecord>, StorageError> {
    let record = conn
        .prepare_cached(
            "SELECT p.member_id, p.total_minor, p.earned, p.redeemed,
                    (SELECT coalesce(sum(r.total_minor), 0) FROM postings r
                     WHERE r.refers_to = p.idempotency_key)
             FROM postings p WHERE p.idempotency_key = ?1 AND p.kind = 'purchase'",
        )
        .and_then(|mut s| {
            s.query_row([posting], |r| {
                Ok(PurchaseRecord {
                    posting: posting.to_string(),
                    member_id: r.get(0)?,
                    total_minor: r.get(1)?,
                    earned: r.get(2)?,
                    redeemed: r.get(3)?,
                    refunded_minor: r.get(4)?,
                    lots: Vec::new(),
                })
            })
            .optional()
        })
        .map_err(backend)?;
    let Some(mut record) = record else {
        return Ok(None);
    };
    record.lots = conn
        .prepare_cached(
            "SELECT lot_id, rule, points, remaining, expired, earned_at, available_at, expires_at, warned
             FROM lots WHERE posting = ?1 ORDER BY lot_id",
        )
        .and_then(|mut s| {
            s.query_map([posting], read_lot)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend)?;
    Ok(Some(record))
}

fn read_checkout_session(
    conn: &Connection,
    session_id: &str,
) -> Result<Option<CheckoutSession>, StorageError> {
    conn.prepare_cached(
        "SELECT session_id, member_id, till_id, expires_at FROM checkout_sessions WHERE session_id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([session_id], |r| {
            Ok(CheckoutSession {
                session_id: r.get(0)?,
                member_id: r.get(1)?,
                till_id: r.get(2)?,
                expires_at_ms: r.get(3)?,
            })
        })
        .optional()
    })
    .map_err(backend)
}

fn read_lot(r: &rusqlite::Row<'_>) -> rusqlite::Result<Lot> {
    Ok(Lot {
        lot_id: r.get(0)?,
        rule: r.get(1)?,
        points: r.get(2)?,
        remaining: r.get(3)?,
        expired: r.get(4)?,
        earned_at_ms: r.get(5)?,
        available_at_ms: r.get(6)?,
        expires_at_ms: r.get(7)?,
        warned: r.get(8)?,
    })
}

/// A member's open lots; `lots_open_by_member` covers it.
const OPEN_LOTS_SQL: &str =
    "SELECT lot_id, rule, points, remaining, expired, earned_at, available_at, expires_at, warned
     FROM lots WHERE member_id = ?1 AND remaining > 0";

/// What a member qualifies with since a time; `postings_by_member` covers it.
fn qualifying_sql(metric: Metric) -> &'static str {
    match metric {
        Metric::Spend => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN total_minor ELSE -total_minor END), 0)
             FROM postings WHERE member_id = ?1 AND at >= ?2 AND kind IN ('purchase', 'refund')"
        }
        Metric::Points => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN earned ELSE -earned END), 0)
             FROM postings WHERE member_id = ?1 AND at >= ?2 AND kind IN ('purchase', 'refund')"
        }
    }
}

/// The member's row, lots and qualifying amount; the caller holds the snapshot (a transaction).
fn read_book(
    tx: &Connection,
    member_id: &str,
    metric: Metric,
    window_start_ms: i64,
    offers_at_ms: Option<i64>,
) -> Result<Option<MemberBook>, StorageError> {
    let row = tx
        .prepare_cached(
            "SELECT m.card_number, m.status, m.revision, m.balance, m.pending, m.tier, m.tier_manual,
                    coalesce(m.tier_since, m.created_at), m.tier_review_at, m.tier_downgrade_at,
                    m.next_event_at, d.version, m.card_revision
             FROM members m LEFT JOIN documents d ON d.member_id = m.member_id AND d.kind = ?2
             WHERE m.member_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![member_id, DocKind::Card.code()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)? == "blocked",
                    r.get::<_, i64>(2)?,
                    (r.get::<_, Option<i64>>(11)?, r.get::<_, i64>(12)?),
                    MemberProgramme {
                        balance: r.get(3)?,
                        pending: r.get(4)?,
                        tier: TierState {
                            tier: r.get(5)?,
                            manual: r.get(6)?,
                            since_ms: r.get(7)?,
                            // 0: no review date yet; the ledger derives one from `since`.
                            review_at_ms: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                            downgrade_at_ms: r.get(9)?,
                        },
                        next_event_at_ms: r.get(10)?,
                    },
                ))
            })
            .optional()
        })
        .map_err(backend)?;
    let Some((card_number, blocked, revision, (card_version, card_revision), state)) = row else {
        return Ok(None);
    };
    let lots = tx
        .prepare_cached(OPEN_LOTS_SQL)
        .and_then(|mut s| {
            s.query_map([member_id], read_lot)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend)?;
    let qualifying = tx
        .prepare_cached(qualifying_sql(metric))
        .and_then(|mut s| s.query_row(params![member_id, window_start_ms], |r| r.get(0)))
        .map_err(backend)?;
    let offers = match offers_at_ms {
        Some(now_ms) => crate::storage::sqlite::offers::till_offers_in(tx, member_id, now_ms)?,
        None => Vec::new(),
    };
    Ok(Some(MemberBook {
        member_id: member_id.to_string(),
        card_number,
        blocked,
        revision,
        card_version,
        card_revision,
        state,
        lots,
        qualifying,
        offers,
    }))
}

/// The member's `limit` most recent ledger movements, newest first, as the card shows them.
fn read_recent_movements(
    conn: &Connection,
    member_id: &str,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StorageError> {
    conn.prepare_cached(
        "SELECT tx_id, points, reason, at, rule FROM ledger WHERE member_id = ?1
         ORDER BY at DESC, tx_id DESC LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![member_id, limit as i64], |r| {
            Ok(LedgerEntry {
                tx_id: r.get(0)?,
                points: r.get(1)?,
                reason: r.get(2)?,
                at_ms: r.get(3)?,
                rule: r.get(4)?,
            })
        })?
        .collect()
    })
    .map_err(backend)
}

type PostingJob = (Posting, oneshot::Sender<Result<(), StorageError>>);

/// Postings waiting together are written in one transaction: one durable commit (one fsync) for
/// the whole group, while a posting that fails rolls back alone (see [`write_batch`]).
/// Nobody is answered before the commit, so an acknowledged purchase is on disk.
fn posting_writer(conn: Arc<Mutex<Connection>>, jobs: std::sync::mpsc::Receiver<PostingJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_POSTING_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        let results = write_batch(&mut guard, &batch);
        drop(guard);
        for ((_, done), result) in batch.into_iter().zip(results) {
            let _ = done.send(result);
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[PostingJob]) -> Vec<Result<(), StorageError>> {
    // A posting rarely fails (a retried key, a race with another instance), and a savepoint costs
    // every posting a statement journal: the group is written without them first, and only when
    // one fails is it written again with a savepoint each, so that one fails alone.
    match write_together(conn, batch) {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(e) if batch.len() == 1 => vec![Err(e)],
        Err(_) => write_each(conn, batch),
    }
}

fn write_together(conn: &mut Connection, batch: &[PostingJob]) -> Result<(), StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    for (posting, _) in batch {
        apply_posting(&tx, posting)?;
    }
    tx.commit().map_err(backend)
}

fn write_each(conn: &mut Connection, batch: &[PostingJob]) -> Vec<Result<(), StorageError>> {
    // One cause for every posting of the batch, shared so each keeps it as its source.
    let fail_all = |e: rusqlite::Error| {
        let e = Arc::new(e);
        batch.iter().map(|_| Err(backend(e.clone()))).collect()
    };
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (posting, _) in batch {
        let outcome = match tx.savepoint() {
            Ok(mut sp) => match apply_posting(&sp, posting) {
                Ok(()) => sp.commit().map_err(backend),
                Err(e) => {
                    sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                    Err(e)
                }
            },
            Err(e) => Err(backend(e)),
        };
        results.push(outcome);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

fn update_document(
    tx: &rusqlite::Connection,
    member_id: &str,
    d: &DocWrite,
) -> Result<(), StorageError> {
    let sql = if d.append {
        // `||` yields text; the cast takes its bytes back as they are (no conversion happens in
        // a UTF-8 database, and the length is kept, NULs and all).
        "UPDATE documents SET data = CAST(data || ?1 AS BLOB), version = version + 1
         WHERE member_id = ?2 AND kind = ?3 AND version = ?4"
    } else {
        "UPDATE documents SET data = ?1, version = version + 1
         WHERE member_id = ?2 AND kind = ?3 AND version = ?4"
    };
    let updated = tx
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                d.bytes,
                member_id,
                d.kind.code(),
                d.expected_version
            ])
        })
        .map_err(backend)?;
    if updated != 1 {
        return Err(StorageError::Conflict);
    }
    if let Some(epoch) = d.new_epoch {
        let epoch = i64::try_from(epoch).map_err(backend)?;
        tx.prepare_cached("UPDATE documents SET epoch = ?1 WHERE member_id = ?2 AND kind = ?3")
            .and_then(|mut s| s.execute(params![epoch, member_id, d.kind.code()]))
            .map_err(backend)?;
        // Every device's sync state described the old history.
        tx.prepare_cached(
            "DELETE FROM peer_states WHERE kind = ?1
             AND device_id IN (SELECT device_id FROM devices WHERE member_id = ?2)",
        )
        .and_then(|mut s| s.execute(params![d.kind.code(), member_id]))
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl LedgerStore for SqliteStorage {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError> {
        let card_number = card_number.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT member_id, card_number, status, balance, tier FROM members WHERE card_number = ?1",
                [card_number],
                till_member,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn device_key(
        &self,
        member_id: &str,
        key_id: u32,
    ) -> Result<Option<DeviceKey>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT k.device_id, k.public_key, k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL
                 FROM device_keys k JOIN devices d USING (device_id)
                 WHERE k.member_id = ?1 AND k.key_id = ?2",
                params![member_id, key_id],
                |r| {
                    Ok(DeviceKey {
                        device_id: r.get(0)?,
                        public_key: r.get(1)?,
                        revoked: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn open_checkout(
        &self,
        code_id: [u8; 16],
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let session = session.clone();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let fresh = tx
                .execute(
                    "INSERT INTO used_codes (code_id, used_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![code_id.as_slice(), now_ms],
                )
                .map_err(backend)?;
            if fresh != 1 {
                return Err(StorageError::CodeReplayed);
            }
            // A code can pass the time check for at most three steps (90 s); keep its record
            // well past that, then let it go, so the table holds minutes of scans, not years.
            tx.execute(
                "DELETE FROM used_codes WHERE used_at < ?1",
                [now_ms - USED_CODE_RETENTION_MS],
            )
            .map_err(backend)?;
            tx.execute("DELETE FROM checkout_sessions WHERE expires_at < ?1", [now_ms])
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO checkout_sessions (session_id, member_id, till_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![session.session_id, session.member_id, session.till_id, now_ms, session.expires_at_ms],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn checkout_session(
        &self,
        session_id: &str,
    ) -> Result<Option<CheckoutSession>, StorageError> {
        let session_id = session_id.to_string();
        self.read(move |conn| read_checkout_session(conn, &session_id))
            .await
    }

    async fn prior_posting(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<PriorPosting>, StorageError> {
        let key = idempotency_key.to_string();
        self.read(move |conn| read_prior_posting(conn, &key)).await
    }

    async fn purchase_context(
        &self,
        idempotency_key: &str,
        session_id: &str,
        metric: Metric,
        window_start_ms: i64,
        now_ms: i64,
    ) -> Result<PurchaseContext, StorageError> {
        let key = idempotency_key.to_string();
        let session_id = session_id.to_string();
        // One trip to the blocking pool instead of three: each costs more than its queries.
        self.read(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let prior = read_prior_posting(&tx, &key)?;
            let session = read_checkout_session(&tx, &session_id)?;
            if prior.is_some() {
                return Ok(PurchaseContext {
                    prior,
                    session,
                    book: None,
                });
            }
            let book = match &session {
                Some(s) => read_book(&tx, &s.member_id, metric, window_start_ms, Some(now_ms))?,
                None => None,
            };
            Ok(PurchaseContext {
                prior: None,
                session,
                book,
            })
        })
        .await
    }

    async fn purchase(&self, posting: &str) -> Result<Option<PurchaseRecord>, StorageError> {
        let posting = posting.to_string();
        self.read(move |conn| read_purchase(conn, &posting)).await
    }

    async fn refund_book(
        &self,
        member_id: &str,
        purchase: &str,
        metric: Metric,
        window_start_ms: i64,
    ) -> Result<Option<(MemberBook, Option<PurchaseRecord>)>, StorageError> {
        let member_id = member_id.to_string();
        let purchase = purchase.to_string();
        self.read(move |conn| {
            // One snapshot: the refunded total belongs to the book's revision.
            let tx = conn.transaction().map_err(backend)?;
            let Some(book) = read_book(&tx, &member_id, metric, window_start_ms, None)? else {
                return Ok(None);
            };
            Ok(Some((book, read_purchase(&tx, &purchase)?)))
        })
        .await
    }

    async fn card_behind(&self, member_id: &str) -> Result<bool, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT card_revision < revision FROM members WHERE member_id = ?1")
                .and_then(|mut s| s.query_row([&member_id], |r| r.get(0)).optional())
                .map(|behind| behind.unwrap_or(false))
                .map_err(backend)
        })
        .await
    }

    async fn card_source(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Option<CardSource>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            // One snapshot: the movements and the book (with its revisions) agree.
            let tx = conn.transaction().map_err(backend)?;
            let Some(book) = read_book(&tx, &member_id, metric, window_start_ms, None)? else {
                return Ok(None);
            };
            let recent = read_recent_movements(&tx, &member_id, limit)?;
            Ok(Some(CardSource { book, recent }))
        })
        .await
    }

    async fn store_card(
        &self,
        member_id: &str,
        card: Option<DocWrite>,
        revision: i64,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            if let Some(card) = &card {
                update_document(&tx, &member_id, card)?;
            }
            // Never back: a slower catch-up of an older revision must not undo a newer one.
            tx.prepare_cached(
                "UPDATE members SET card_revision = max(card_revision, ?2) WHERE member_id = ?1",
            )
            .and_then(|mut s| s.execute(params![member_id, revision]))
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn member_book(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        offers_at_ms: Option<i64>,
    ) -> Result<Option<MemberBook>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            // One snapshot for the member's row, lots, qualifying amount and offers.
            let tx = conn.transaction().map_err(backend)?;
            read_book(&tx, &member_id, metric, window_start_ms, offers_at_ms)
        })
        .await
    }

    async fn members_due(
        &self,
        now_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StorageError> {
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT member_id, next_event_at FROM members
                 WHERE next_event_at <= ?1 AND (next_event_at, member_id) > (?2, ?3)
                 ORDER BY next_event_at, member_id LIMIT ?4",
            )
            .and_then(|mut s| {
                s.query_map(params![now_ms, at, id, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend)
        })
        .await
    }

    async fn birthdays(&self, month: u8, day: u8) -> Result<Vec<String>, StorageError> {
        let md = format!("{month:02}-{day:02}");
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT member_id FROM member_preferences
                 WHERE key = 'birthday' AND (value = ?1 OR value LIKE '____-' || ?1)",
            )
            .and_then(|mut s| {
                s.query_map([md], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend)
        })
        .await
    }

    async fn post(&self, p: Posting) -> Result<(), StorageError> {
        let (done, result) = oneshot::channel();
        self.poster
            .send((p, done))
            .map_err(|_| backend("the posting writer has stopped"))?;
        result
            .await
            .map_err(|_| backend("the posting writer has stopped"))?
    }
}

#[async_trait]
impl ProgrammeStore for SqliteStorage {
    async fn programme(&self) -> Result<Option<Programme>, StorageError> {
        let text: Option<String> = self
            .read(|conn| {
                conn.query_row("SELECT config FROM programme WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)
            })
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(backend))
            .transpose()
    }

    async fn set_programme(&self, programme: &Programme, now_ms: i64) -> Result<(), StorageError> {
        let text = serde_json::to_string(programme).map_err(backend)?;
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO programme (id, config, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                params![text, now_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appended_document_bytes_are_kept_exactly_and_guarded_by_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        // Bytes no text encoding would keep: NULs, invalid UTF-8.
        let first = vec![0x85, 0x6f, 0x4a, 0x83, 0x00, 0xff, 0xfe, 0x00];
        storage
            .create_member(NewMember {
                member_id: "m1".into(),
                card_number: "6270000000000001".into(),
                external_ref: None,
                created_at_ms: 0,
                documents: vec![(DocKind::Card, first.clone())],
                code_hash: [1; 32],
                code_expires_at_ms: 1,
            })
            .await
            .unwrap();
        let write = |expected_version, bytes: &[u8], append| DocWrite {
            new_epoch: None,
            kind: DocKind::Card,
            expected_version,
            bytes: bytes.to_vec(),
            append,
        };
        let tail = [0x00, 0xc3, 0x28, 0x00, 0x80];
        storage
            .commit("m1", None, vec![write(1, &tail, true)], Vec::new(), None)
            .await
            .unwrap();
        // A writer that read version 1 lost the race: nothing is appended twice.
        assert!(matches!(
            storage
                .commit("m1", None, vec![write(1, &tail, true)], Vec::new(), None)
                .await,
            Err(StorageError::Conflict)
        ));
        let stored = storage
            .load_documents("m1", &[DocKind::Card])
            .await
            .unwrap()
            .remove(0);
        assert_eq!(stored.version, 2);
        assert_eq!(stored.bytes, [first.as_slice(), &tail].concat());
        // A whole write replaces them.
        storage
            .commit(
                "m1",
                None,
                vec![write(2, &[7, 0, 7], false)],
                Vec::new(),
                None,
            )
            .await
            .unwrap();
        let stored = storage
            .load_documents("m1", &[DocKind::Card])
            .await
            .unwrap()
            .remove(0);
        assert_eq!((stored.version, stored.bytes), (3, vec![7, 0, 7]));
    }
    /// A database made by every earlier version of the server upgrades to the latest: for each
    /// prefix of [`MIGRATIONS`], a database is built at that version with a member, a document and
    /// (from the ledger's version on) a till's purchase written by that version's schema, then
    /// opened by the server, which migrates it. The old rows must read back through the storage
    /// trait — the purchase under its till's namespace — and the upgraded database must take new
    /// members.
    #[tokio::test]
    async fn a_database_of_every_earlier_version_upgrades_to_the_latest() {
        const LEDGER: usize = 3;
        for version in 1..=MIGRATIONS.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("old.db");
            {
                let old =
                    Migrations::new(MIGRATIONS[..version].iter().map(|sql| M::up(sql)).collect());
                let conn = loyalty_core::store::open_sqlite(&path, APPLICATION_ID, &old).unwrap();
                let user_version: usize = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(user_version, version);
                conn.execute_batch(
                    "INSERT INTO members (member_id, card_number, external_ref, created_at)
                         VALUES ('old', '6270000000000009', NULL, 1);
                     INSERT INTO documents (member_id, kind, version, data)
                         VALUES ('old', 0, 1, x'0102');",
                )
                .unwrap();
                if version >= LEDGER {
                    conn.execute_batch(
                        "INSERT INTO postings (idempotency_key, request_hash, member_id, kind,
                             refers_to, till_id, receipt_id, total_minor, earned, redeemed, at,
                             response)
                         VALUES ('k1', x'00', 'old', 'purchase', NULL, 't1', 'r1', 100, 1, 0, 1,
                             x'7b7d');",
                    )
                    .unwrap();
                }
            }
            let storage = SqliteStorage::open(&path).unwrap_or_else(|e| {
                panic!("a database of version {version} does not upgrade: {e}")
            });
            let member = storage
                .member("old")
                .await
                .unwrap()
                .expect("the old member");
            assert_eq!(member.card_number, "6270000000000009", "version {version}");
            let card = storage
                .load_documents("old", &[DocKind::Card])
                .await
                .unwrap()
                .remove(0);
            assert_eq!((card.version, card.epoch, card.bytes), (1, 0, vec![1, 2]));
            if version >= LEDGER {
                // Up to version 10 the till namespaces migration (011) moves the key into the
                // till's namespace; from 11 on it has run already and the row stays as written.
                let key = if version <= 10 { "till:t1:k1" } else { "k1" };
                let prior = storage.prior_posting(key).await.unwrap();
                let prior = prior.unwrap_or_else(|| panic!("version {version}: no posting {key}"));
                assert_eq!(
                    (prior.member_id.as_str(), prior.till_id.as_str()),
                    ("old", "t1")
                );
            }
            storage.create_member(member_named("new")).await.unwrap();
            assert!(storage.member("new").await.unwrap().is_some());
        }
    }

    fn member_named(id: &str) -> NewMember {
        NewMember {
            card_number: "6270000000000010".into(),
            ..member(id)
        }
    }

    fn member(id: &str) -> NewMember {
        NewMember {
            member_id: id.into(),
            card_number: format!("627000000000000{}", id.len()),
            external_ref: None,
            created_at_ms: 0,
            documents: vec![(DocKind::Card, vec![1])],
            code_hash: [id.len() as u8; 32],
            code_expires_at_ms: 1,
        }
    }

    fn posting(key: &str, member_id: &str, balance: i64) -> PostingJob {
        let posting = Posting {
            idempotency_key: key.into(),
            request_hash: [0; 32],
            member_id: member_id.into(),
            till_id: "till".into(),
            receipt_id: key.into(),
            kind: PostingKind::Purchase,
            refers_to: None,
            refunded_before: None,
            total_minor: 100,
            earned: balance,
            redeemed: 0,
            movements: vec![crate::storage::LedgerMovement {
                tx_id: format!("tx-{key}"),
                points: balance,
                reason: "earned".into(),
                rule: "base".into(),
            }],
            expected_revision: 0,
            state: MemberProgramme {
                balance,
                pending: 0,
                tier: TierState {
                    tier: "base".into(),
                    manual: false,
                    since_ms: 0,
                    review_at_ms: 0,
                    downgrade_at_ms: None,
                },
                next_event_at_ms: None,
            },
            lots: Vec::new(),
            offer_uses: Vec::new(),
            at_ms: 1,
            response: b"{}".to_vec(),
        };
        (posting, oneshot::channel().0)
    }

    #[tokio::test]
    async fn a_posting_that_fails_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        for id in ["m1", "m22", "m333"] {
            storage.create_member(member(id)).await.unwrap();
        }
        let batch = [
            posting("k1", "m1", 10),
            // The same key again: a duplicate, which must not take the others with it.
            posting("k1", "m22", 20),
            posting("k3", "m333", 30),
        ];
        let mut conn = storage.conn.lock().unwrap();
        let results = write_batch(&mut conn, &batch);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StorageError::Duplicate(_))));
        let balances: Vec<(String, i64, i64)> = conn
            .prepare("SELECT member_id, balance, revision FROM members ORDER BY member_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            balances,
            [
                ("m1".to_string(), 10, 1),
                ("m22".to_string(), 0, 0),
                ("m333".to_string(), 30, 1)
            ]
        );
        let movements: i64 = conn
            .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
            .unwrap();
        assert_eq!(movements, 2);
        // A group of one that fails is answered with its own error.
        let results = write_batch(&mut conn, &[posting("k1", "m22", 20)]);
        assert!(matches!(results[..], [Err(StorageError::Duplicate(_))]));
    }

    #[test]
    fn the_database_is_mapped_and_the_reads_of_every_posting_are_covered_by_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(&dir.path().join("s.db")).unwrap();
        let plan = |sql: &str| -> String {
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params!["m1", 0], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let mapped: i64 = conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mapped, MMAP_BYTES, "the database is mapped");
        let lots = plan(&OPEN_LOTS_SQL.replace("?1", "?1 AND ?2 = ?2"));
        assert!(
            lots.contains("COVERING INDEX lots_open_by_member"),
            "{lots}"
        );
        for metric in [Metric::Spend, Metric::Points] {
            let q = plan(qualifying_sql(metric));
            assert!(q.contains("COVERING INDEX postings_by_member"), "{q}");
        }
    }

    /// A refund of `amount` of `purchase`, computed from `before` refunded and `revision`.
    fn refund(key: &str, purchase: &str, amount: i64, before: i64, revision: i64) -> Posting {
        let (mut p, _) = posting(key, "m1", 0);
        p.kind = PostingKind::Refund;
        p.refers_to = Some(purchase.into());
        p.total_minor = amount;
        p.refunded_before = Some(before);
        p.expected_revision = revision;
        p
    }

    #[tokio::test]
    async fn a_refund_computed_from_a_refunded_total_no_longer_stored_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        storage.create_member(member("m1")).await.unwrap();
        storage.post(posting("till:t:p", "m1", 10).0).await.unwrap();
        storage
            .post(refund("till:t:r1", "till:t:p", 40, 0, 1))
            .await
            .unwrap();
        // The member's revision is current, but the shares were computed as if nothing had been
        // refunded: another instance's snapshot, say. The write must not go through.
        assert!(matches!(
            storage
                .post(refund("till:t:r2", "till:t:p", 40, 0, 2))
                .await,
            Err(StorageError::Conflict)
        ));
        storage
            .post(refund("till:t:r2", "till:t:p", 40, 40, 2))
            .await
            .unwrap();
        assert!(matches!(
            storage
                .post(refund("till:t:r3", "till:t:p", 30, 80, 3))
                .await,
            Err(StorageError::RefundExceedsPurchase)
        ));
        let refunded: i64 = storage
            .read(|conn| {
                conn.query_row(
                    "SELECT sum(total_minor) FROM postings WHERE refers_to = 'till:t:p'",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(refunded, 80);
    }

    #[test]
    fn till_postings_made_before_namespaces_move_into_their_tills_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = connection(&path).unwrap();
        // Rows as the server wrote them before: till postings under the till's bare key.
        conn.execute_batch(
            "INSERT INTO members (member_id, card_number, created_at) VALUES ('m1', 'c1', 0);
             INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to,
                                   till_id, receipt_id, total_minor, earned, redeemed, at, response)
             VALUES ('1001', x'', 'm1', 'purchase', NULL, 't-1', '1001', 100, 1, 0, 0, x''),
                    ('1001-r', x'', 'm1', 'refund', '1001', 't-1', 'r', 50, 0, 0, 0, x''),
                    ('event:m1:enrollment', x'', 'm1', 'event', NULL, 'programme', '', 0, 5, 0, 0, x'');
             INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at)
             VALUES ('tx1', 'm1', '1001', 1, 'earned', 't-1', '1001', 0),
                    ('tx2', 'm1', 'event:m1:enrollment', 5, 'welcome', 'programme', '', 0);
             INSERT INTO lots (lot_id, member_id, posting, rule, points, remaining, earned_at,
                               available_at)
             VALUES ('lot1', 'm1', '1001', 'base', 1, 1, 0, 0);",
        )
        .unwrap();
        conn.execute_batch(&format!("BEGIN; {TILL_NAMESPACES} COMMIT;"))
            .unwrap();
        let keys: Vec<(String, Option<String>)> = conn
            .prepare("SELECT idempotency_key, refers_to FROM postings ORDER BY idempotency_key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            keys,
            [
                ("event:m1:enrollment".to_string(), None),
                ("till:t-1:1001".to_string(), None),
                (
                    "till:t-1:1001-r".to_string(),
                    Some("till:t-1:1001".to_string())
                ),
            ]
        );
        let named = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            named("SELECT posting FROM ledger ORDER BY tx_id"),
            ["till:t-1:1001", "event:m1:enrollment"]
        );
        assert_eq!(named("SELECT posting FROM lots"), ["till:t-1:1001"]);
        let broken: Vec<String> = named("SELECT \"table\" FROM pragma_foreign_key_check");
        assert!(broken.is_empty(), "{broken:?}");
    }

    #[tokio::test]
    async fn a_posting_read_before_a_block_is_refused_and_reads_again() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        storage.create_member(member("m1")).await.unwrap();
        let book = storage
            .member_book("m1", Metric::Spend, 0, None)
            .await
            .unwrap()
            .unwrap();
        assert!(!book.blocked);
        assert!(storage.set_blocked("m1", true).await.unwrap());
        // A purchase that read the member before the block (outside the member's lock) must not
        // go through on what it read.
        let (stale, _) = posting("k1", "m1", 10);
        assert_eq!(stale.expected_revision, book.revision);
        assert!(matches!(
            storage.post(stale).await,
            Err(StorageError::Conflict)
        ));
        let book = storage
            .member_book("m1", Metric::Spend, 0, None)
            .await
            .unwrap()
            .unwrap();
        assert!(book.blocked);
    }
}
