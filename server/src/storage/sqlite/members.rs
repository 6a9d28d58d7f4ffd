//! Members and their devices on SQLite: members, activation codes, devices, documents (appended
//! or replaced under their version), peer states, and the relational mirror of the member
//! document, which `commit` replaces in the same transaction as the document.

use async_trait::async_trait;
use loyalty_core::DocKind;
use loyalty_core::member::MemberState;
use rusqlite::{OptionalExtension, params};

use super::messages::INBOX_PENDING;
use super::offers::PENDING_WHERE as PENDING_OFFERS;
use super::{SqliteStorage, backend, cached_execute, cached_row, hash_from};
use crate::storage::members::{HEADER_FIELDS, MEMBER_HEADER_COLUMNS};
use crate::storage::{
    Commit, DeviceRecord, DocHeader, DocSummary, DocWrite, MemberCreation, MemberRecord,
    MemberStore, NewDevice, NewMember, Redemption, StorageError, StoredDoc, SyncCheck,
};

fn kinds_sql(kinds: &[DocKind]) -> String {
    kinds
        .iter()
        .map(|k| k.code().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[async_trait]
impl MemberStore for SqliteStorage {
    async fn create_member(&self, m: NewMember) -> Result<MemberCreation, StorageError> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let inserted = tx.execute(
                "INSERT INTO members (member_id, card_number, external_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![m.member_id, m.card_number, m.external_ref, m.created_at_ms],
            );
            if inserted.map_err(backend)? == 0 {
                return Ok(MemberCreation::Taken);
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
            tx.commit().map_err(backend)?;
            Ok(MemberCreation::Created)
        })
        .await
    }

    async fn member(&self, member_id: &str) -> Result<Option<MemberRecord>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            cached_row(
                conn,
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
    ) -> Result<Redemption, StorageError> {
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
            let Some((member_id, expires_at, used_at, card_number)) = row else {
                return Ok(Redemption::Unknown);
            };
            if used_at.is_some() {
                return Ok(Redemption::Used);
            }
            if now_ms >= expires_at {
                return Ok(Redemption::Expired);
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
                return Ok(Redemption::Used);
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
                return Ok(Redemption::KeyIdTaken);
            }
            tx.commit().map_err(backend)?;
            Ok(Redemption::Redeemed(MemberRecord {
                member_id,
                card_number,
            }))
        })
        .await
    }

    async fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StorageError> {
        let device_id = device_id.to_string();
        self.read_now(move |conn| {
            cached_row(
                conn,
                "SELECT device_id, member_id, secret_hash, revoked_at IS NOT NULL, last_seen_at
                 FROM devices WHERE device_id = ?1",
                [device_id],
                device_from,
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
            "SELECT kind, version, data, epoch, summary_digest, summary_ops, summary_changes
             FROM documents WHERE member_id = ?1 AND kind IN ({})",
            kinds_sql(kinds)
        );
        let tails_sql = format!(
            "SELECT kind, data FROM document_tails
             WHERE member_id = ?1 AND kind IN ({}) ORDER BY kind, version",
            kinds_sql(kinds)
        );
        self.read(move |conn| {
            // One snapshot for the documents and their tails.
            let tx = conn.transaction().map_err(backend)?;
            let mut docs = Vec::new();
            {
                let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map([&member_id], |r| {
                        Ok((
                            r.get::<_, u8>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, i64>(3)?,
                            summary_from(r.get(4)?, r.get(5)?, r.get(6)?),
                        ))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (code, version, bytes, epoch, summary) = row.map_err(backend)?;
                    if let Some(kind) = DocKind::from_code(code) {
                        docs.push(StoredDoc {
                            kind,
                            version,
                            epoch: u64::try_from(epoch).unwrap_or(0),
                            bytes,
                            summary,
                        });
                    }
                }
                let mut tails = tx.prepare_cached(&tails_sql).map_err(backend)?;
                let rows = tails
                    .query_map([&member_id], |r| {
                        Ok((r.get::<_, u8>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (code, tail) = row.map_err(backend)?;
                    if let Some(doc) = docs.iter_mut().find(|d| d.kind.code() == code) {
                        doc.bytes.extend_from_slice(&tail);
                    }
                }
            }
            Ok(docs)
        })
        .await
    }

    async fn sync_check(&self, member_id: &str, now_ms: i64) -> Result<SyncCheck, StorageError> {
        let member_id = member_id.to_string();
        self.read_now(move |conn| {
            let mut stmt = conn.prepare_cached(&SYNC_CHECK_SQL).map_err(backend)?;
            let mut rows = stmt.query(params![member_id, now_ms]).map_err(backend)?;
            let mut check = SyncCheck::default();
            while let Some(r) = rows.next().map_err(backend)? {
                read_check_row(&mut check, r)?;
            }
            Ok(check)
        })
        .await
    }

    async fn device_and_sync_check(
        &self,
        device_id: &str,
        member_id: &str,
        now_ms: i64,
    ) -> Result<(Option<DeviceRecord>, SyncCheck), StorageError> {
        let (device_id, member_id) = (device_id.to_string(), member_id.to_string());
        self.read_now(move |conn| {
            let mut stmt = conn
                .prepare_cached(&DEVICE_AND_CHECK_SQL)
                .map_err(backend)?;
            let mut rows = stmt
                .query(params![member_id, now_ms, device_id])
                .map_err(backend)?;
            match rows.next().map_err(backend)? {
                Some(r) => Ok((
                    Some(device_from(r).map_err(backend)?),
                    read_member_check(r, 5)?,
                )),
                None => Ok((None, SyncCheck::default())),
            }
        })
        .await
    }

    async fn remember_summaries(
        &self,
        member_id: &str,
        summaries: Vec<(DocKind, i64, DocSummary)>,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        // Summaries can be computed again from the documents: no need to wait for the disk.
        self.run_relaxed(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE documents SET summary_digest = ?1, summary_ops = ?2, summary_changes = ?3
                         WHERE member_id = ?4 AND kind = ?5 AND version = ?6
                           AND summary_digest IS NULL",
                    )
                    .map_err(backend)?;
                for (kind, version, summary) in &summaries {
                    let (digest, ops, changes) = summary_columns(summary)?;
                    stmt.execute(params![digest, ops, changes, member_id, kind.code(), version])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
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
        // A few small rows by key: read on the calling thread when a reader is free.
        self.read_now(move |conn| {
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
    ) -> Result<Commit, StorageError> {
        let relaxed = crate::storage::members::only_sync_states(&documents, &mirror);
        let member_id = member_id.to_string();
        let device_id = device_id.map(str::to_string);
        let write = move |conn: &mut rusqlite::Connection| {
            let tx = conn.transaction().map_err(backend)?;
            for d in &documents {
                if !update_document(&tx, &member_id, d)? {
                    // Dropping the transaction rolls back what was written before.
                    return Ok(Commit::Conflict);
                }
            }
            if let Some(state) = &mirror {
                mirror_member(&tx, &member_id, state)?;
            }
            if let Some(device_id) = &device_id {
                let mut put = tx
                    .prepare_cached(
                        "INSERT INTO peer_states (device_id, kind, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (device_id, kind) DO UPDATE SET data = excluded.data",
                    )
                    .map_err(backend)?;
                for (kind, bytes) in &peer_states {
                    put.execute(params![device_id, kind.code(), bytes])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(Commit::Committed)
        };
        if relaxed {
            self.run_relaxed(write).await
        } else {
            self.run(write).await
        }
    }

    async fn device_seen(&self, device_id: &str, at_ms: i64) -> Result<(), StorageError> {
        let device_id = device_id.to_string();
        // When a device was last seen is for operators' eyes: no need to wait for the disk.
        self.run_relaxed(move |conn| {
            cached_execute(
                conn,
                "UPDATE devices SET last_seen_at = max(coalesce(last_seen_at, ?1), ?1)
                 WHERE device_id = ?2",
                params![at_ms, device_id],
            )
            .map_err(backend)?;
            Ok(())
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
        cached_execute(
            tx,
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

/// Writes one document if it is still at its expected version, in the caller's transaction;
/// false (nothing written) when it is not. Appended changes go into a row of their own
/// (`document_tails`, migration 030), so an append writes its change alone; a whole save
/// replaces the bytes and drops the tails.
pub(super) fn update_document(
    tx: &rusqlite::Connection,
    member_id: &str,
    d: &DocWrite,
) -> Result<bool, StorageError> {
    // An append leaves `data` as it is (NULL keeps it): SQLite rewrites a row of the same size in
    // place and only the pages whose bytes differ, so the document's pages stay untouched.
    let whole: Option<&[u8]> = (!d.append).then_some(d.bytes.as_slice());
    let (digest, ops, changes) = match &d.summary {
        Some(summary) => {
            let (digest, ops, changes) = summary_columns(summary)?;
            (Some(digest), Some(ops), Some(changes))
        }
        None => (None, None, None),
    };
    let updated = cached_execute(
        tx,
        "UPDATE documents SET data = coalesce(?1, data), version = version + 1,
                summary_digest = ?5, summary_ops = ?6, summary_changes = ?7
         WHERE member_id = ?2 AND kind = ?3 AND version = ?4",
        params![
            whole,
            member_id,
            d.kind.code(),
            d.expected_version,
            digest,
            ops,
            changes
        ],
    )
    .map_err(backend)?;
    if updated != 1 {
        return Ok(false);
    }
    let tails = if d.append {
        cached_execute(
            tx,
            "INSERT INTO document_tails (member_id, kind, version, data) VALUES (?1, ?2, ?3, ?4)",
            params![member_id, d.kind.code(), d.expected_version + 1, d.bytes],
        )
    } else {
        cached_execute(
            tx,
            "DELETE FROM document_tails WHERE member_id = ?1 AND kind = ?2",
            params![member_id, d.kind.code()],
        )
    };
    tails.map_err(backend)?;
    if let Some(epoch) = d.new_epoch {
        let epoch = i64::try_from(epoch).map_err(backend)?;
        cached_execute(
            tx,
            "UPDATE documents SET epoch = ?1 WHERE member_id = ?2 AND kind = ?3",
            params![epoch, member_id, d.kind.code()],
        )
        .map_err(backend)?;
        // Every device's sync state described the old history.
        cached_execute(
            tx,
            "DELETE FROM peer_states WHERE kind = ?1
             AND device_id IN (SELECT device_id FROM devices WHERE member_id = ?2)",
            params![d.kind.code(), member_id],
        )
        .map_err(backend)?;
    }
    if let Some(revision) = d.shows_revision {
        card_shows(tx, member_id, revision)?;
    }
    Ok(true)
}

/// Records that the member's card shows their points up to `revision`. Never back: a slower
/// catch-up of an older revision must not undo a newer one.
pub(super) fn card_shows(
    tx: &rusqlite::Connection,
    member_id: &str,
    revision: i64,
) -> Result<(), StorageError> {
    cached_execute(
        tx,
        "UPDATE members SET card_revision = max(card_revision, ?2) WHERE member_id = ?1",
        params![member_id, revision],
    )
    .map_err(backend)?;
    Ok(())
}

/// The member's pending work (`m`; member id `?1`, now `?2`): postings the card does not show,
/// offers and inbox entries not yet projected.
static PENDING_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("m.card_revision < m.revision, EXISTS (SELECT 1 {PENDING_OFFERS}), {INBOX_PENDING}")
});

/// A member's sync check (`?1`, at `?2`) from the documents themselves, a row per document: its
/// header, then the member's pending work. Read again under the lock by a sync past "nothing
/// changed", and by the long poll. The headers come from the index `documents_headers`
/// (migration 031), never from a document's row.
pub(super) static SYNC_CHECK_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT d.kind, d.version, d.epoch, d.summary_digest, d.summary_ops, d.summary_changes, {}
         FROM documents d JOIN members m ON m.member_id = d.member_id
         WHERE d.member_id = ?1",
        *PENDING_COLUMNS
    )
});

/// The device `?3`'s row, and member `?1`'s check at `?2` only when the device is that member's:
/// the statement every sync starts with. One row: the device's, joined by key to the member's,
/// which holds copies of the document headers, so "nothing changed" reads two rows. The device
/// is read from its covering index (migration 033), which the planner would pass over for the
/// unique index on its id and a second seek into the table.
pub(super) static DEVICE_AND_CHECK_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "SELECT dev.device_id, dev.member_id, dev.secret_hash, dev.revoked_at IS NOT NULL,
                    dev.last_seen_at, {}, {}
             FROM devices dev INDEXED BY devices_for_sync
             LEFT JOIN members m ON m.member_id = dev.member_id AND dev.member_id = ?1
             WHERE dev.device_id = ?3",
            *MEMBER_HEADER_COLUMNS, *PENDING_COLUMNS
        )
    });

/// The check in a row of [`DEVICE_AND_CHECK_SQL`], from column `at`: a header for each document
/// the member has, and the pending flags when it has any (as [`read_check_row`] reads them from
/// the documents).
fn read_member_check(r: &rusqlite::Row<'_>, at: usize) -> Result<SyncCheck, StorageError> {
    let mut check = SyncCheck::default();
    for (i, kind) in DocKind::ALL.into_iter().enumerate() {
        let c = at + i * HEADER_FIELDS;
        let Some(version) = r.get::<_, Option<i64>>(c).map_err(backend)? else {
            continue;
        };
        let epoch: i64 = r.get(c + 1).map_err(backend)?;
        check.documents.push(DocHeader {
            kind,
            version,
            epoch: u64::try_from(epoch).map_err(backend)?,
            summary: summary_from(
                r.get(c + 2).map_err(backend)?,
                r.get(c + 3).map_err(backend)?,
                r.get(c + 4).map_err(backend)?,
            ),
        });
    }
    if !check.documents.is_empty() {
        let p = at + DocKind::ALL.len() * HEADER_FIELDS;
        check.card_behind = r.get(p).map_err(backend)?;
        check.offers_pending = r.get(p + 1).map_err(backend)?;
        check.inbox_pending = r.get(p + 2).map_err(backend)?;
    }
    Ok(check)
}

/// Adds the document of a row of [`SYNC_CHECK_SQL`] to `check`, and the member's pending flags
/// from its first row.
fn read_check_row(check: &mut SyncCheck, r: &rusqlite::Row<'_>) -> Result<(), StorageError> {
    if check.documents.is_empty() {
        // The member's, the same on every row.
        check.card_behind = r.get(6).map_err(backend)?;
        check.offers_pending = r.get(7).map_err(backend)?;
        check.inbox_pending = r.get(8).map_err(backend)?;
    }
    let Some(kind) = DocKind::from_code(r.get(0).map_err(backend)?) else {
        return Ok(());
    };
    let epoch: i64 = r.get(2).map_err(backend)?;
    check.documents.push(DocHeader {
        kind,
        version: r.get(1).map_err(backend)?,
        epoch: u64::try_from(epoch).map_err(backend)?,
        summary: summary_from(
            r.get(3).map_err(backend)?,
            r.get(4).map_err(backend)?,
            r.get(5).map_err(backend)?,
        ),
    });
    Ok(())
}

fn device_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: r.get(0)?,
        member_id: r.get(1)?,
        secret_hash: hash_from(r.get(2)?),
        revoked: r.get(3)?,
        last_seen_ms: r.get(4)?,
    })
}

/// A stored summary, when all of it is there (a row is written whole or not at all).
fn summary_from(
    digest: Option<Vec<u8>>,
    ops: Option<i64>,
    changes: Option<i64>,
) -> Option<DocSummary> {
    Some(DocSummary {
        digest: <[u8; 8]>::try_from(digest?.as_slice()).ok()?,
        ops: u64::try_from(ops?).ok()?,
        changes: u64::try_from(changes?).ok()?,
    })
}

/// A summary as its three columns.
fn summary_columns(s: &DocSummary) -> Result<([u8; 8], i64, i64), StorageError> {
    Ok((
        s.digest,
        i64::try_from(s.ops).map_err(backend)?,
        i64::try_from(s.changes).map_err(backend)?,
    ))
}
