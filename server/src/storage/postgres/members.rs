//! Members and their devices on PostgreSQL: members, activation codes, devices, documents
//! (appended or replaced under their version), peer states, and the relational mirror of the
//! member document, which `commit` replaces in the same transaction as the document.
//!
//! The guards are conditional `UPDATE`s at READ COMMITTED: a second writer blocked on the row
//! re-checks `version = $n` or `used_at IS NULL` once the first commits, updates nothing, and so
//! answers `Conflict` or `Used` exactly as SQLite's serialised writer does.

use super::Cached;
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use loyalty_core::DocKind;
use loyalty_core::member::MemberState;

use super::messages::INBOX_PENDING;
use super::offers::PENDING_WHERE as PENDING_OFFERS;
use super::{PgStorage, backend, hash_from};
use crate::storage::members::{HEADER_FIELDS, MEMBER_HEADER_COLUMNS};
use crate::storage::{
    Commit, DeviceRecord, DocHeader, DocSummary, DocWrite, MemberCreation, MemberRecord,
    MemberStore, NewDevice, NewMember, Redemption, StorageError, StoredDoc, SyncCheck,
};

/// The kinds' codes as the `kind` column stores them.
fn kind_codes(kinds: &[DocKind]) -> Vec<i64> {
    kinds.iter().map(|k| i64::from(k.code())).collect()
}

/// The kind a stored code names; codes this program does not know are skipped, as SQLite does.
fn kind_of(code: i64) -> Option<DocKind> {
    u8::try_from(code).ok().and_then(DocKind::from_code)
}

#[async_trait]
impl MemberStore for PgStorage {
    async fn create_member(&self, m: NewMember) -> Result<MemberCreation, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // No conflict target: a clash on the member id or on the card number both insert nothing.
        let inserted = tx
            .exec(
                "INSERT INTO members (member_id, card_number, external_ref, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &m.member_id,
                    &m.card_number,
                    &m.external_ref,
                    &m.created_at_ms,
                ],
            )
            .await
            .map_err(backend)?;
        if inserted == 0 {
            return Ok(MemberCreation::Taken);
        }
        for (kind, bytes) in &m.documents {
            tx.exec(
                "INSERT INTO documents (member_id, kind, version, data) VALUES ($1, $2, 1, $3)",
                &[&m.member_id, &i64::from(kind.code()), bytes],
            )
            .await
            .map_err(backend)?;
        }
        tx.exec(
            "INSERT INTO activation_codes (code_hash, member_id, expires_at) VALUES ($1, $2, $3)",
            &[&m.code_hash.as_slice(), &m.member_id, &m.code_expires_at_ms],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(MemberCreation::Created)
    }

    async fn member(&self, member_id: &str) -> Result<Option<MemberRecord>, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT member_id, card_number FROM members WHERE member_id = $1",
                &[&member_id],
            )
            .await
            .map_err(backend)?;
        Ok(row.map(|r| MemberRecord {
            member_id: r.get(0),
            card_number: r.get(1),
        }))
    }

    async fn add_activation_code(
        &self,
        member_id: &str,
        code_hash: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO activation_codes (code_hash, member_id, expires_at) VALUES ($1, $2, $3)",
                &[&code_hash.as_slice(), &member_id, &expires_at_ms],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn redeem_activation_code(
        &self,
        code_hash: [u8; 32],
        now_ms: i64,
        device: NewDevice,
    ) -> Result<Redemption, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .fetch_opt(
                "SELECT a.member_id, a.expires_at, a.used_at, m.card_number
                 FROM activation_codes a JOIN members m USING (member_id)
                 WHERE a.code_hash = $1",
                &[&code_hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(Redemption::Unknown);
        };
        let member_id: String = row.try_get(0).map_err(backend)?;
        let expires_at: i64 = row.try_get(1).map_err(backend)?;
        let used_at: Option<i64> = row.try_get(2).map_err(backend)?;
        let card_number: String = row.try_get(3).map_err(backend)?;
        if used_at.is_some() {
            return Ok(Redemption::Used);
        }
        if now_ms >= expires_at {
            return Ok(Redemption::Expired);
        }
        // A concurrent redemption of the same code waits on the row here, then finds
        // `used_at` set and updates nothing.
        let updated = tx
            .exec(
                "UPDATE activation_codes SET used_at = $1, device_id = $2
                 WHERE code_hash = $3 AND used_at IS NULL",
                &[&now_ms, &device.device_id, &code_hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        if updated != 1 {
            return Ok(Redemption::Used);
        }
        tx.exec(
            "INSERT INTO devices (device_id, member_id, secret_hash, name, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &device.device_id,
                &member_id,
                &device.secret_hash.as_slice(),
                &device.name,
                &device.created_at_ms,
            ],
        )
        .await
        .map_err(backend)?;
        let key_id = i64::from(loyalty_core::checkout_code::key_id(&device.public_key));
        let inserted = tx
            .exec(
                "INSERT INTO device_keys (member_id, key_id, device_id, public_key, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &member_id,
                    &key_id,
                    &device.device_id,
                    &device.public_key.as_slice(),
                    &device.created_at_ms,
                ],
            )
            .await
            .map_err(backend)?;
        if inserted != 1 {
            // Two keys of one member with the same 32-bit id: the transaction rolls back (it is
            // dropped uncommitted) and the code stays usable for a retry with a new key.
            return Ok(Redemption::KeyIdTaken);
        }
        tx.commit().await.map_err(backend)?;
        Ok(Redemption::Redeemed(MemberRecord {
            member_id,
            card_number,
        }))
    }

    async fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT device_id, member_id, secret_hash, revoked_at IS NOT NULL, last_seen_at
                 FROM devices WHERE device_id = $1",
                &[&device_id],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(device_from).transpose()
    }

    async fn load_documents(
        &self,
        member_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<StoredDoc>, StorageError> {
        let client = self.client().await?;
        // A document's bytes are its data followed by its tails (migration 031), in one snapshot.
        let rows = client
            .fetch_all(
                "SELECT d.kind, d.version,
                        d.data || coalesce((SELECT string_agg(t.data, ''::bytea ORDER BY t.version)
                                            FROM document_tails t
                                            WHERE t.member_id = d.member_id AND t.kind = d.kind),
                                           ''::bytea),
                        d.epoch, d.summary_digest, d.summary_ops, d.summary_changes
                 FROM documents d WHERE d.member_id = $1 AND d.kind = ANY($2)",
                &[&member_id, &kind_codes(kinds)],
            )
            .await
            .map_err(backend)?;
        let mut docs = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(kind) = kind_of(r.try_get(0).map_err(backend)?) else {
                continue;
            };
            let epoch: i64 = r.try_get(3).map_err(backend)?;
            docs.push(StoredDoc {
                kind,
                version: r.try_get(1).map_err(backend)?,
                epoch: u64::try_from(epoch).unwrap_or(0),
                bytes: r.try_get(2).map_err(backend)?,
                summary: summary_from(&r, 4)?,
            });
        }
        Ok(docs)
    }

    async fn sync_check(&self, member_id: &str, now_ms: i64) -> Result<SyncCheck, StorageError> {
        // A row per document: its header, then the member's pending work.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT d.kind, d.version, d.epoch, d.summary_digest, d.summary_ops,
                        d.summary_changes, {}
                 FROM documents d JOIN members m ON m.member_id = d.member_id
                 WHERE d.member_id = $1",
                *PENDING_COLUMNS
            )
        });
        let client = self.client().await?;
        let rows = client
            .fetch_all(&SQL, &[&member_id, &now_ms])
            .await
            .map_err(backend)?;
        let mut check = SyncCheck::default();
        for r in &rows {
            read_check_row(&mut check, r)?;
        }
        Ok(check)
    }

    async fn device_and_sync_check(
        &self,
        device_id: &str,
        member_id: &str,
        now_ms: i64,
    ) -> Result<(Option<DeviceRecord>, SyncCheck), StorageError> {
        // The device's row joined by key to its member's, which holds copies of the document
        // headers (migration 032): one row, no document read.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT dev.device_id, dev.member_id, dev.secret_hash, dev.revoked_at IS NOT NULL,
                        dev.last_seen_at, {}, {}
                 FROM devices dev
                 LEFT JOIN members m ON m.member_id = dev.member_id AND dev.member_id = $1
                 WHERE dev.device_id = $3",
                *MEMBER_HEADER_COLUMNS, *PENDING_COLUMNS
            )
        });
        let client = self.client().await?;
        let row = client
            .fetch_opt(&SQL, &[&member_id, &now_ms, &device_id])
            .await
            .map_err(backend)?;
        match row {
            Some(r) => Ok((Some(device_from(&r)?), read_member_check(&r, 5)?)),
            None => Ok((None, SyncCheck::default())),
        }
    }

    async fn remember_summaries(
        &self,
        member_id: &str,
        summaries: Vec<(DocKind, i64, DocSummary)>,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        for (kind, version, summary) in &summaries {
            let (digest, ops, changes) = summary_columns(summary)?;
            client
                .exec(
                    // The member's row first, as every write of a document (`update_document`).
                    "WITH m AS (SELECT 1 FROM members WHERE member_id = $4 FOR NO KEY UPDATE)
                     UPDATE documents SET summary_digest = $1, summary_ops = $2, summary_changes = $3
                     WHERE member_id = $4 AND kind = $5 AND version = $6
                       AND summary_digest IS NULL AND EXISTS (SELECT 1 FROM m)",
                    &[&digest, &ops, &changes, &member_id, &i64::from(kind.code()), version],
                )
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn load_peer_states(
        &self,
        device_id: &str,
        kinds: &[DocKind],
    ) -> Result<Vec<(DocKind, Vec<u8>)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .fetch_all(
                "SELECT kind, data FROM peer_states WHERE device_id = $1 AND kind = ANY($2)",
                &[&device_id, &kind_codes(kinds)],
            )
            .await
            .map_err(backend)?;
        let mut states = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(kind) = kind_of(r.try_get(0).map_err(backend)?) {
                states.push((kind, r.try_get(1).map_err(backend)?));
            }
        }
        Ok(states)
    }

    async fn commit(
        &self,
        member_id: &str,
        device_id: Option<&str>,
        mut documents: Vec<DocWrite>,
        peer_states: Vec<(DocKind, Vec<u8>)>,
        mirror: Option<MemberState>,
    ) -> Result<Commit, StorageError> {
        // Rows are locked in one order — the member's row first (`update_document`), then the
        // documents by kind — so two commits of one member's documents wait for each other
        // instead of deadlocking; the writes are one transaction either way.
        documents.sort_by_key(|d| d.kind.code());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if crate::storage::members::only_sync_states(&documents, &mirror) {
            // Sync states alone: the commit need not wait for the disk or the standby (see the
            // trait). LOCAL: the setting ends with the transaction, not with the pooled connection.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await
                .map_err(backend)?;
        }
        for d in &documents {
            if !update_document(&tx, member_id, d).await? {
                // Dropping the transaction uncommitted rolls back what was written before.
                return Ok(Commit::Conflict);
            }
        }
        if let Some(state) = &mirror {
            mirror_member(&tx, member_id, state).await?;
        }
        if let Some(device_id) = device_id {
            for (kind, bytes) in &peer_states {
                tx.exec(
                    "INSERT INTO peer_states (device_id, kind, data) VALUES ($1, $2, $3)
                     ON CONFLICT (device_id, kind) DO UPDATE SET data = excluded.data",
                    &[&device_id, &i64::from(kind.code()), bytes],
                )
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(Commit::Committed)
    }

    async fn device_seen(&self, device_id: &str, at_ms: i64) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "UPDATE devices SET last_seen_at = greatest(last_seen_at, $1) WHERE device_id = $2",
                &[&at_ms, &device_id],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn revoke_device(&self, device_id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .exec(
                "UPDATE devices SET revoked_at = coalesce(revoked_at, $1) WHERE device_id = $2",
                &[&now_ms, &device_id],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn set_blocked(&self, member_id: &str, blocked: bool) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let status = if blocked { "blocked" } else { "active" };
        let n = client
            .exec(
                // A posting that read the member before the block is refused by the revision
                // guard and reads again.
                "UPDATE members SET status = $1, revision = revision + 1 WHERE member_id = $2",
                &[&status, &member_id],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }
}

/// Replaces the relational mirror of the member document with `state`, in the caller's
/// transaction, so the mirror never disagrees with the stored document.
async fn mirror_member(
    tx: &Transaction<'_>,
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
        tx.exec(
            &format!("DELETE FROM {table} WHERE member_id = $1"),
            &[&member_id],
        )
        .await
        .map_err(backend)?;
    }
    let put = tx
        .prepare_cached(
            "INSERT INTO member_preferences (member_id, key, value) VALUES ($1, $2, $3)",
        )
        .await
        .map_err(backend)?;
    for (key, value) in &state.preferences {
        tx.execute(&put, &[&member_id, key, value])
            .await
            .map_err(backend)?;
    }
    let put = tx
        .prepare_cached(
            "INSERT INTO member_consents (member_id, channel, granted, at) VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(backend)?;
    for (channel, c) in &state.consents {
        // `granted` is an integer column, as in SQLite, so the two schemas stay column for column.
        tx.execute(
            &put,
            &[&member_id, channel, &i64::from(c.granted), &c.at_ms],
        )
        .await
        .map_err(backend)?;
    }
    let put = tx
        .prepare_cached(
            "INSERT INTO member_activations (member_id, offer_id, at) VALUES ($1, $2, $3)",
        )
        .await
        .map_err(backend)?;
    for (offer_id, a) in &state.activations {
        tx.execute(&put, &[&member_id, offer_id, &a.at_ms])
            .await
            .map_err(backend)?;
    }
    let put = tx
        .prepare_cached(
            "INSERT INTO member_requests (member_id, request_id, kind, subject, body, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(backend)?;
    let put_followup = tx
        .prepare_cached(
            "INSERT INTO member_request_followups (member_id, request_id, followup_id, body, at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(backend)?;
    for (request_id, r) in &state.requests {
        tx.execute(
            &put,
            &[
                &member_id, request_id, &r.kind, &r.subject, &r.body, &r.at_ms,
            ],
        )
        .await
        .map_err(backend)?;
        for (followup_id, f) in &r.followups {
            tx.execute(
                &put_followup,
                &[&member_id, request_id, followup_id, &f.body, &f.at_ms],
            )
            .await
            .map_err(backend)?;
        }
    }
    Ok(())
}

/// Writes one document if it is still at its expected version, in the caller's transaction;
/// false (nothing written) when it is not.
///
/// Every write of a document takes its member's row before the document's (`FOR NO KEY UPDATE`,
/// the lock the `UPDATE` would take, so foreign-key checks of other tables still pass). The
/// trigger that copies a document's header into the member's row (migration 032) locks the
/// member's row after the document's; a transaction writing two documents would then hold the
/// member's row while it waits for the second document, and a writer of that document would hold
/// the document while it waits for the member's row: a deadlock, seen in the conformance suite
/// (`commits_of_several_documents_and_of_one_never_deadlock`). Taken first, the member's row
/// orders every writer of the member's documents.
pub(super) async fn update_document(
    tx: &Transaction<'_>,
    member_id: &str,
    d: &DocWrite,
) -> Result<bool, StorageError> {
    // One statement either way. An append leaves `data` as it is (PostgreSQL keeps an unchanged
    // TOASTed value's pointer, never its bytes, in the new row) and adds the change as a tail; a
    // whole save replaces `data` and drops the tails. Automerge loads a save followed by change
    // chunks as one document. `m` takes the member's row first (see above).
    let sql = if d.append {
        "WITH m AS (SELECT 1 FROM members WHERE member_id = $2 FOR NO KEY UPDATE),
              d AS (UPDATE documents SET version = version + 1,
                        summary_digest = $5, summary_ops = $6, summary_changes = $7
                    WHERE member_id = $2 AND kind = $3 AND version = $4
                      AND EXISTS (SELECT 1 FROM m) RETURNING version)
         INSERT INTO document_tails (member_id, kind, version, data)
         SELECT $2, $3, d.version, $1 FROM d"
    } else {
        "WITH m AS (SELECT 1 FROM members WHERE member_id = $2 FOR NO KEY UPDATE),
              d AS (UPDATE documents SET data = $1, version = version + 1,
                        summary_digest = $5, summary_ops = $6, summary_changes = $7
                    WHERE member_id = $2 AND kind = $3 AND version = $4
                      AND EXISTS (SELECT 1 FROM m) RETURNING 1),
              t AS (DELETE FROM document_tails
                    WHERE member_id = $2 AND kind = $3 AND EXISTS (SELECT 1 FROM d))
         SELECT 1 FROM d"
    };
    let kind = i64::from(d.kind.code());
    let (digest, ops, changes) = match &d.summary {
        Some(summary) => {
            let (digest, ops, changes) = summary_columns(summary)?;
            (Some(digest), Some(ops), Some(changes))
        }
        None => (None, None, None),
    };
    // Rows inserted (an append) or selected (a whole save): 1 when the version matched.
    let updated = tx
        .exec(
            sql,
            &[
                &d.bytes,
                &member_id,
                &kind,
                &d.expected_version,
                &digest,
                &ops,
                &changes,
            ],
        )
        .await
        .map_err(backend)?;
    if updated != 1 {
        return Ok(false);
    }
    if let Some(epoch) = d.new_epoch {
        let epoch = i64::try_from(epoch).map_err(backend)?;
        tx.exec(
            "UPDATE documents SET epoch = $1 WHERE member_id = $2 AND kind = $3",
            &[&epoch, &member_id, &kind],
        )
        .await
        .map_err(backend)?;
        // Every device's sync state described the old history.
        tx.exec(
            "DELETE FROM peer_states WHERE kind = $1
             AND device_id IN (SELECT device_id FROM devices WHERE member_id = $2)",
            &[&kind, &member_id],
        )
        .await
        .map_err(backend)?;
    }
    if let Some(revision) = d.shows_revision {
        card_shows(tx, member_id, revision).await?;
    }
    Ok(true)
}

/// Records that the member's card shows their points up to `revision`. Never back: a slower
/// catch-up of an older revision must not undo a newer one.
pub(super) async fn card_shows(
    tx: &Transaction<'_>,
    member_id: &str,
    revision: i64,
) -> Result<(), StorageError> {
    tx.exec(
        "UPDATE members SET card_revision = greatest(card_revision, $2) WHERE member_id = $1",
        &[&member_id, &revision],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The member's pending work (`m`; member id `$1`, now `$2`): postings the card does not show,
/// offers and inbox entries not yet projected. PostgreSQL plans the subqueries as InitPlans, run
/// once per statement.
static PENDING_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("m.card_revision < m.revision, EXISTS (SELECT 1 {PENDING_OFFERS}), {INBOX_PENDING}")
});

/// The check in a row holding [`MEMBER_HEADER_COLUMNS`] then [`PENDING_COLUMNS`] from column
/// `at`: a header for each document the member has, and the pending flags when it has any (as
/// [`read_check_row`] reads them from the documents).
fn read_member_check(r: &tokio_postgres::Row, at: usize) -> Result<SyncCheck, StorageError> {
    let mut check = SyncCheck::default();
    for (i, kind) in DocKind::ALL.into_iter().enumerate() {
        let c = at + i * HEADER_FIELDS;
        let Some(version) = r.try_get::<_, Option<i64>>(c).map_err(backend)? else {
            continue;
        };
        let epoch: i64 = r.try_get(c + 1).map_err(backend)?;
        check.documents.push(DocHeader {
            kind,
            version,
            epoch: u64::try_from(epoch).map_err(backend)?,
            summary: summary_from(r, c + 2)?,
        });
    }
    if !check.documents.is_empty() {
        let p = at + DocKind::ALL.len() * HEADER_FIELDS;
        check.card_behind = r.try_get(p).map_err(backend)?;
        check.offers_pending = r.try_get(p + 1).map_err(backend)?;
        check.inbox_pending = r.try_get(p + 2).map_err(backend)?;
    }
    Ok(check)
}

/// Adds the document of a row of `sync_check`'s statement to `check`, and the member's pending
/// flags from its first row.
fn read_check_row(check: &mut SyncCheck, r: &tokio_postgres::Row) -> Result<(), StorageError> {
    if check.documents.is_empty() {
        // The member's, the same on every row.
        check.card_behind = r.try_get(6).map_err(backend)?;
        check.offers_pending = r.try_get(7).map_err(backend)?;
        check.inbox_pending = r.try_get(8).map_err(backend)?;
    }
    let Some(kind) = kind_of(r.try_get(0).map_err(backend)?) else {
        return Ok(());
    };
    let epoch: i64 = r.try_get(2).map_err(backend)?;
    check.documents.push(DocHeader {
        kind,
        version: r.try_get(1).map_err(backend)?,
        epoch: u64::try_from(epoch).map_err(backend)?,
        summary: summary_from(r, 3)?,
    });
    Ok(())
}

fn device_from(r: &tokio_postgres::Row) -> Result<DeviceRecord, StorageError> {
    Ok(DeviceRecord {
        device_id: r.try_get(0).map_err(backend)?,
        member_id: r.try_get(1).map_err(backend)?,
        secret_hash: hash_from(r.try_get(2).map_err(backend)?)?,
        revoked: r.try_get(3).map_err(backend)?,
        last_seen_ms: r.try_get(4).map_err(backend)?,
    })
}

/// The summary stored in a row's three columns from `first`, when all of it is there.
fn summary_from(r: &tokio_postgres::Row, first: usize) -> Result<Option<DocSummary>, StorageError> {
    let digest: Option<Vec<u8>> = r.try_get(first).map_err(backend)?;
    let ops: Option<i64> = r.try_get(first + 1).map_err(backend)?;
    let changes: Option<i64> = r.try_get(first + 2).map_err(backend)?;
    Ok((|| {
        Some(DocSummary {
            digest: <[u8; 8]>::try_from(digest?.as_slice()).ok()?,
            ops: u64::try_from(ops?).ok()?,
            changes: u64::try_from(changes?).ok()?,
        })
    })())
}

/// A summary as its three columns.
fn summary_columns(s: &DocSummary) -> Result<(Vec<u8>, i64, i64), StorageError> {
    Ok((
        s.digest.to_vec(),
        i64::try_from(s.ops).map_err(backend)?,
        i64::try_from(s.changes).map_err(backend)?,
    ))
}
