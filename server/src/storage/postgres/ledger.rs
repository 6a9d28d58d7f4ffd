//! The till's ledger on PostgreSQL: card lookup, checkout keys, single-use checkout codes and
//! sessions, postings, the refund book, the card's source and store, the member's book, and the
//! members the settle job must look at.
//!
//! A posting is one transaction of its own: PostgreSQL commits concurrent transactions together
//! itself, so there is no group-commit writer, and a refused or failed posting rolls back alone.
//! Its guards, in SQLite's order so the outcomes match: the posting id (`INSERT … ON CONFLICT DO
//! NOTHING`: a concurrent posting under the same id waits for the first and then inserts nothing,
//! `KeyTaken`), a refund's purchase (its row locked, so refunds of one purchase are checked one
//! after the other against every committed one), the member's revision (`UPDATE … WHERE revision
//! = $n`) and the offers' use limits. Reads that must agree (a book, a card's source) run in one
//! REPEATABLE READ, read-only transaction: one snapshot, as SQLite's read transaction.

use super::Cached;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use loyalty_core::DocKind;
use loyalty_core::card::LedgerEntry;
use loyalty_core::lots::Lot;
use loyalty_core::tiers::{Metric, TierState};
use tokio_postgres::{IsolationLevel, Row};

use super::members::update_document;
use super::offers::{record_offer_uses, till_offers_in};
use super::{PgStorage, backend, hash_from};
use crate::storage::{
    CardSource, CheckoutOpening, CheckoutSession, Commit, DeviceKey, DocWrite, LedgerStore,
    MemberBook, MemberProgramme, PostOutcome, Posting, PostingKind, PriorPosting, PurchaseContext,
    PurchaseRecord, StorageError, TillMember,
};

/// How long a used checkout code is remembered (it expires after at most 90 s).
const USED_CODE_RETENTION_MS: i64 = 10 * 60 * 1000;

/// The columns of a lot, in [`read_lot`]'s order.
const LOT_COLUMNS: &str =
    "lot_id, rule, points, remaining, expired, earned_at, available_at, expires_at, warned";

fn read_lot(r: &Row) -> Result<Lot, StorageError> {
    Ok(Lot {
        lot_id: r.try_get(0).map_err(backend)?,
        rule: r.try_get(1).map_err(backend)?,
        points: r.try_get(2).map_err(backend)?,
        remaining: r.try_get(3).map_err(backend)?,
        expired: r.try_get(4).map_err(backend)?,
        earned_at_ms: r.try_get(5).map_err(backend)?,
        available_at_ms: r.try_get(6).map_err(backend)?,
        expires_at_ms: r.try_get(7).map_err(backend)?,
        // Flags are integer columns, as in SQLite, so the schemas stay column for column.
        warned: r.try_get::<_, i64>(8).map_err(backend)? != 0,
    })
}

fn posting_kind(name: &str) -> Result<PostingKind, StorageError> {
    PostingKind::from_name(name).ok_or_else(|| backend(format!("unknown posting kind `{name}`")))
}

/// Writes one posting inside the caller's transaction. Anything but [`PostOutcome::Posted`] leaves
/// part of it written: the caller rolls back (drops the transaction).
async fn apply_posting(tx: &Transaction<'_>, p: &Posting) -> Result<PostOutcome, StorageError> {
    // A refund locks its purchase before inserting its own row: the insert's foreign key takes a
    // share lock on the purchase, and two refunds each holding that while waiting for the other's
    // FOR UPDATE in `check_refund` were a deadlock (the conformance suite's concurrent refunds).
    if let Some(purchase) = &p.refers_to {
        tx.exec(
            "SELECT 1 FROM postings WHERE idempotency_key = $1 FOR UPDATE",
            &[purchase],
        )
        .await
        .map_err(backend)?;
    }
    let fresh = tx
        .exec(
            "INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to,
                                   till_id, receipt_id, total_minor, earned, redeemed, at, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            &[
                &p.idempotency_key,
                &p.request_hash.as_slice(),
                &p.member_id,
                &p.kind.as_str(),
                &p.refers_to,
                &p.till_id,
                &p.receipt_id,
                &p.total_minor,
                &p.earned,
                &p.redeemed,
                &p.at_ms,
                &p.response,
            ],
        )
        .await
        .map_err(backend)?;
    if fresh != 1 {
        return Ok(PostOutcome::KeyTaken);
    }
    record_operator(tx, p).await?;
    if let Some(purchase) = &p.refers_to {
        let outcome = check_refund(tx, purchase, p).await?;
        if outcome != PostOutcome::Posted {
            return Ok(outcome);
        }
    }
    let st = &p.state;
    // The revision guard makes a concurrent change (another instance) a conflict to retry,
    // never a lost update: a writer blocked here re-checks the revision once the other commits.
    let moved = tx
        .exec(
            "UPDATE members SET balance = $1, pending = $2, tier = $3, tier_manual = $4,
                 tier_since = $5, tier_review_at = $6, tier_downgrade_at = $7, next_event_at = $8,
                 revision = revision + 1
             WHERE member_id = $9 AND revision = $10",
            &[
                &st.balance,
                &st.pending,
                &st.tier.tier,
                &i64::from(st.tier.manual),
                &st.tier.since_ms,
                &st.tier.review_at_ms,
                &st.tier.downgrade_at_ms,
                &st.next_event_at_ms,
                &p.member_id,
                &p.expected_revision,
            ],
        )
        .await
        .map_err(backend)?;
    if moved != 1 {
        return Ok(PostOutcome::Conflict);
    }
    let ledger = tx
        .prepare_cached(
            "INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id,
                                 at, rule)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(backend)?;
    for m in &p.movements {
        tx.execute(
            &ledger,
            &[
                &m.tx_id,
                &p.member_id,
                &p.idempotency_key,
                &m.points,
                &m.reason,
                &p.till_id,
                &p.receipt_id,
                &p.at_ms,
                &m.rule,
            ],
        )
        .await
        .map_err(backend)?;
    }
    // The balance is what the lots hold, and `lots.remaining` cannot go below zero (a CHECK):
    // no overdraft reaches this far.
    let lots = tx
        .prepare_cached(
            "INSERT INTO lots (lot_id, member_id, posting, rule, points, remaining, expired,
                               earned_at, available_at, expires_at, warned)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (lot_id) DO UPDATE SET remaining = excluded.remaining,
                 expired = excluded.expired, warned = excluded.warned",
        )
        .await
        .map_err(backend)?;
    for l in &p.lots {
        tx.execute(
            &lots,
            &[
                &l.lot_id,
                &p.member_id,
                &p.idempotency_key,
                &l.rule,
                &l.points,
                &l.remaining,
                &l.expired,
                &l.earned_at_ms,
                &l.available_at_ms,
                &l.expires_at_ms,
                &i64::from(l.warned),
            ],
        )
        .await
        .map_err(backend)?;
    }
    if !p.offer_uses.is_empty() && !record_offer_uses(tx, &p.member_id, &p.offer_uses).await? {
        // An offer's last use went to a concurrent posting: read again, post without it.
        return Ok(PostOutcome::Conflict);
    }
    Ok(PostOutcome::Posted)
}

/// Records who made an operator's posting. Only operators' postings name one: the till's hot path
/// keeps its insert as it is.
async fn record_operator(tx: &Transaction<'_>, p: &Posting) -> Result<(), StorageError> {
    let Some(operator) = &p.operator else {
        return Ok(());
    };
    tx.exec(
        "UPDATE postings SET operator = $1 WHERE idempotency_key = $2",
        &[operator, &p.idempotency_key],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Refunds together never exceed their purchase, and the shares this refund reverses were
/// computed from the refunded total that is really there. The purchase's row is locked first, so
/// refunds of one purchase (through any instance) are checked one at a time, each seeing every
/// refund committed before it — what SQLite's single writer gives by itself.
async fn check_refund(
    tx: &Transaction<'_>,
    purchase: &str,
    p: &Posting,
) -> Result<PostOutcome, StorageError> {
    let total: i64 = tx
        .fetch_one(
            "SELECT total_minor FROM postings WHERE idempotency_key = $1 FOR UPDATE",
            &[&purchase],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(backend)?;
    // A new statement: at READ COMMITTED it sees the refunds committed while the lock was awaited.
    let refunded: i64 = tx
        .fetch_one(
            "SELECT coalesce(sum(total_minor), 0)::BIGINT FROM postings WHERE refers_to = $1",
            &[&purchase],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(backend)?;
    // A refund came between: read again and recompute (it may no longer fit, which the ledger
    // then says with what is left).
    if p.refunded_before
        .is_some_and(|before| before + p.total_minor != refunded)
    {
        return Ok(PostOutcome::Conflict);
    }
    if refunded > total {
        return Ok(PostOutcome::RefundExceedsPurchase);
    }
    Ok(PostOutcome::Posted)
}

async fn read_prior_posting(
    conn: &impl GenericClient,
    key: &str,
) -> Result<Option<PriorPosting>, StorageError> {
    let row = conn
        .fetch_opt(
            "SELECT member_id, till_id, kind, request_hash, response, operator FROM postings
             WHERE idempotency_key = $1",
            &[&key],
        )
        .await
        .map_err(backend)?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(PriorPosting {
        member_id: r.try_get(0).map_err(backend)?,
        till_id: r.try_get(1).map_err(backend)?,
        kind: posting_kind(r.try_get(2).map_err(backend)?)?,
        request_hash: hash_from(r.try_get(3).map_err(backend)?)?,
        response: r.try_get(4).map_err(backend)?,
        operator: r.try_get(5).map_err(backend)?,
    }))
}

/// The purchase posted under `posting`, with the lots it earned and what was refunded of it.
async fn read_purchase(
    conn: &impl GenericClient,
    posting: &str,
) -> Result<Option<PurchaseRecord>, StorageError> {
    let row = conn
        .fetch_opt(
            "SELECT p.member_id, p.total_minor, p.earned, p.redeemed,
                    (SELECT coalesce(sum(r.total_minor), 0)::BIGINT FROM postings r
                     WHERE r.refers_to = p.idempotency_key)
             FROM postings p WHERE p.idempotency_key = $1 AND p.kind = 'purchase'",
            &[&posting],
        )
        .await
        .map_err(backend)?;
    let Some(r) = row else { return Ok(None) };
    let lots = conn
        .fetch_all(
            &format!("SELECT {LOT_COLUMNS} FROM lots WHERE posting = $1 ORDER BY lot_id"),
            &[&posting],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(read_lot)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(PurchaseRecord {
        posting: posting.to_string(),
        member_id: r.try_get(0).map_err(backend)?,
        total_minor: r.try_get(1).map_err(backend)?,
        earned: r.try_get(2).map_err(backend)?,
        redeemed: r.try_get(3).map_err(backend)?,
        refunded_minor: r.try_get(4).map_err(backend)?,
        lots,
    }))
}

async fn read_checkout_session(
    conn: &impl GenericClient,
    session_id: &str,
) -> Result<Option<CheckoutSession>, StorageError> {
    let row = conn
        .fetch_opt(
            "SELECT session_id, member_id, till_id, expires_at FROM checkout_sessions
             WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(backend)?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(CheckoutSession {
        session_id: r.try_get(0).map_err(backend)?,
        member_id: r.try_get(1).map_err(backend)?,
        till_id: r.try_get(2).map_err(backend)?,
        expires_at_ms: r.try_get(3).map_err(backend)?,
    }))
}

/// What a member qualifies with since a time; `postings_by_member` covers it.
fn qualifying_sql(metric: Metric) -> &'static str {
    match metric {
        Metric::Spend => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN total_minor ELSE -total_minor END),
                             0)::BIGINT
             FROM postings WHERE member_id = $1 AND at >= $2 AND kind IN ('purchase', 'refund')"
        }
        Metric::Points => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN earned ELSE -earned END), 0)::BIGINT
             FROM postings WHERE member_id = $1 AND at >= $2 AND kind IN ('purchase', 'refund')"
        }
    }
}

/// The member's programme state from `members` columns 3..=10 of [`read_book`]'s query.
fn programme_of(r: &Row) -> Result<MemberProgramme, StorageError> {
    Ok(MemberProgramme {
        balance: r.try_get(3).map_err(backend)?,
        pending: r.try_get(4).map_err(backend)?,
        tier: TierState {
            tier: r.try_get(5).map_err(backend)?,
            manual: r.try_get::<_, i64>(6).map_err(backend)? != 0,
            since_ms: r.try_get(7).map_err(backend)?,
            // 0: no review date yet; the ledger derives one from `since`.
            review_at_ms: r
                .try_get::<_, Option<i64>>(8)
                .map_err(backend)?
                .unwrap_or(0),
            downgrade_at_ms: r.try_get(9).map_err(backend)?,
        },
        next_event_at_ms: r.try_get(10).map_err(backend)?,
    })
}

/// The member's row, lots and qualifying amount; the caller holds the snapshot (a transaction).
async fn read_book(
    tx: &impl GenericClient,
    member_id: &str,
    metric: Metric,
    window_start_ms: i64,
    offers_at_ms: Option<i64>,
) -> Result<Option<MemberBook>, StorageError> {
    let row = tx
        .fetch_opt(
            "SELECT m.card_number, m.status, m.revision, m.balance, m.pending, m.tier,
                    m.tier_manual, coalesce(m.tier_since, m.created_at), m.tier_review_at,
                    m.tier_downgrade_at, m.next_event_at, d.version, m.card_revision
             FROM members m LEFT JOIN documents d ON d.member_id = m.member_id AND d.kind = $2
             WHERE m.member_id = $1",
            &[&member_id, &i64::from(DocKind::Card.code())],
        )
        .await
        .map_err(backend)?;
    let Some(r) = row else { return Ok(None) };
    let status: String = r.try_get(1).map_err(backend)?;
    let lots = tx
        .fetch_all(
            &format!("SELECT {LOT_COLUMNS} FROM lots WHERE member_id = $1 AND remaining > 0"),
            &[&member_id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(read_lot)
        .collect::<Result<Vec<_>, _>>()?;
    let qualifying: i64 = tx
        .fetch_one(qualifying_sql(metric), &[&member_id, &window_start_ms])
        .await
        .and_then(|q| q.try_get(0))
        .map_err(backend)?;
    let offers = match offers_at_ms {
        Some(now_ms) => till_offers_in(tx, member_id, now_ms).await?,
        None => Vec::new(),
    };
    Ok(Some(MemberBook {
        member_id: member_id.to_string(),
        card_number: r.try_get(0).map_err(backend)?,
        blocked: status == "blocked",
        revision: r.try_get(2).map_err(backend)?,
        card_version: r.try_get(11).map_err(backend)?,
        card_revision: r.try_get(12).map_err(backend)?,
        state: programme_of(&r)?,
        lots,
        qualifying,
        offers,
    }))
}

/// The member's `limit` most recent ledger movements, newest first, as the card shows them.
async fn read_recent_movements(
    conn: &impl GenericClient,
    member_id: &str,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StorageError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .fetch_all(
            "SELECT tx_id, points, reason, at, rule FROM ledger WHERE member_id = $1
             ORDER BY at DESC, tx_id DESC LIMIT $2",
            &[&member_id, &limit],
        )
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|r| {
            Ok(LedgerEntry {
                tx_id: r.try_get(0).map_err(backend)?,
                points: r.try_get(1).map_err(backend)?,
                reason: r.try_get(2).map_err(backend)?,
                at_ms: r.try_get(3).map_err(backend)?,
                rule: r.try_get(4).map_err(backend)?,
            })
        })
        .collect()
}

impl PgStorage {
    /// Runs `read` in one REPEATABLE READ, read-only transaction: every query it makes sees the
    /// same snapshot, as one SQLite read transaction does.
    async fn snapshot<T>(
        &self,
        read: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let out = read(&tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }
}

#[async_trait]
impl LedgerStore for PgStorage {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT member_id, card_number, status, balance, tier FROM members
                 WHERE card_number = $1",
                &[&card_number],
            )
            .await
            .map_err(backend)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TillMember {
            member_id: r.try_get(0).map_err(backend)?,
            card_number: r.try_get(1).map_err(backend)?,
            blocked: r.try_get::<_, String>(2).map_err(backend)? == "blocked",
            balance: r.try_get(3).map_err(backend)?,
            tier: r.try_get(4).map_err(backend)?,
        }))
    }

    async fn device_key(
        &self,
        member_id: &str,
        key_id: u32,
    ) -> Result<Option<DeviceKey>, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT k.device_id, k.public_key,
                        k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL
                 FROM device_keys k JOIN devices d USING (device_id)
                 WHERE k.member_id = $1 AND k.key_id = $2",
                &[&member_id, &i64::from(key_id)],
            )
            .await
            .map_err(backend)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(DeviceKey {
            device_id: r.try_get(0).map_err(backend)?,
            public_key: r.try_get(1).map_err(backend)?,
            revoked: r.try_get(2).map_err(backend)?,
        }))
    }

    async fn open_checkout(
        &self,
        code_id: [u8; 16],
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<CheckoutOpening, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // A concurrent scan of the same code waits for this insert and then inserts nothing.
        let fresh = tx
            .exec(
                "INSERT INTO used_codes (code_id, used_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&code_id.as_slice(), &now_ms],
            )
            .await
            .map_err(backend)?;
        if fresh != 1 {
            return Ok(CheckoutOpening::Replayed);
        }
        // A code can pass the time check for at most three steps (90 s); keep its record well
        // past that, then let it go, so the table holds minutes of scans, not years.
        tx.exec(
            "DELETE FROM used_codes WHERE used_at < $1",
            &[&(now_ms - USED_CODE_RETENTION_MS)],
        )
        .await
        .map_err(backend)?;
        tx.exec(
            "DELETE FROM checkout_sessions WHERE expires_at < $1",
            &[&now_ms],
        )
        .await
        .map_err(backend)?;
        tx.exec(
            "INSERT INTO checkout_sessions (session_id, member_id, till_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &session.session_id,
                &session.member_id,
                &session.till_id,
                &now_ms,
                &session.expires_at_ms,
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(CheckoutOpening::Opened)
    }

    async fn checkout_session(
        &self,
        session_id: &str,
    ) -> Result<Option<CheckoutSession>, StorageError> {
        let client = self.client().await?;
        read_checkout_session(&client, session_id).await
    }

    async fn prior_posting(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<PriorPosting>, StorageError> {
        let client = self.client().await?;
        read_prior_posting(&client, idempotency_key).await
    }

    async fn purchase_context(
        &self,
        idempotency_key: &str,
        session_id: &str,
        metric: Metric,
        window_start_ms: i64,
        now_ms: i64,
    ) -> Result<PurchaseContext, StorageError> {
        self.snapshot(async |tx| {
            let prior = read_prior_posting(tx, idempotency_key).await?;
            let session = read_checkout_session(tx, session_id).await?;
            if prior.is_some() {
                return Ok(PurchaseContext {
                    prior,
                    session,
                    book: None,
                });
            }
            let book = match &session {
                Some(s) => {
                    read_book(tx, &s.member_id, metric, window_start_ms, Some(now_ms)).await?
                }
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
        // The purchase and its lots from one snapshot.
        self.snapshot(async |tx| read_purchase(tx, posting).await)
            .await
    }

    async fn refund_book(
        &self,
        member_id: &str,
        purchase: &str,
        metric: Metric,
        window_start_ms: i64,
    ) -> Result<Option<(MemberBook, Option<PurchaseRecord>)>, StorageError> {
        // One snapshot: the refunded total belongs to the book's revision.
        self.snapshot(async |tx| {
            let Some(book) = read_book(tx, member_id, metric, window_start_ms, None).await? else {
                return Ok(None);
            };
            Ok(Some((book, read_purchase(tx, purchase).await?)))
        })
        .await
    }

    async fn post(&self, p: Posting) -> Result<PostOutcome, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let outcome = apply_posting(&tx, &p).await?;
        if outcome == PostOutcome::Posted {
            tx.commit().await.map_err(backend)?;
        }
        // Otherwise the transaction is dropped uncommitted: nothing of the posting stays.
        Ok(outcome)
    }

    async fn card_behind(&self, member_id: &str) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT card_revision < revision FROM members WHERE member_id = $1",
                &[&member_id],
            )
            .await
            .map_err(backend)?;
        match row {
            Some(r) => r.try_get(0).map_err(backend),
            None => Ok(false),
        }
    }

    async fn card_source(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Option<CardSource>, StorageError> {
        // One snapshot: the movements and the book (with its revisions) agree.
        self.snapshot(async |tx| {
            let Some(book) = read_book(tx, member_id, metric, window_start_ms, None).await? else {
                return Ok(None);
            };
            let recent = read_recent_movements(tx, member_id, limit).await?;
            Ok(Some(CardSource { book, recent }))
        })
        .await
    }

    async fn store_card(
        &self,
        member_id: &str,
        card: Option<DocWrite>,
        revision: i64,
    ) -> Result<Commit, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if let Some(card) = &card
            && !update_document(&tx, member_id, card).await?
        {
            return Ok(Commit::Conflict);
        }
        // Never back: a slower catch-up of an older revision must not undo a newer one.
        tx.exec(
            "UPDATE members SET card_revision = greatest(card_revision, $2) WHERE member_id = $1",
            &[&member_id, &revision],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Commit::Committed)
    }

    async fn member_book(
        &self,
        member_id: &str,
        metric: Metric,
        window_start_ms: i64,
        offers_at_ms: Option<i64>,
    ) -> Result<Option<MemberBook>, StorageError> {
        // One snapshot for the member's row, lots, qualifying amount and offers.
        self.snapshot(async |tx| {
            read_book(tx, member_id, metric, window_start_ms, offers_at_ms).await
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .fetch_all(
                // `COLLATE "C"`: member ids compare byte-wise, as SQLite compares them, whatever
                // the database's collation, so pages follow one another exactly.
                "SELECT member_id, next_event_at FROM members
                 WHERE next_event_at <= $1
                   AND (next_event_at, member_id COLLATE \"C\") > ($2, $3 COLLATE \"C\")
                 ORDER BY next_event_at, member_id COLLATE \"C\" LIMIT $4",
                &[&now_ms, &at, &id, &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(backend)?,
                    r.try_get(1).map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn birthdays(&self, month: u8, day: u8) -> Result<Vec<String>, StorageError> {
        let md = format!("{month:02}-{day:02}");
        let client = self.client().await?;
        let rows = client
            .fetch_all(
                "SELECT member_id FROM member_preferences
                 WHERE key = 'birthday' AND (value = $1 OR value LIKE '____-' || $1)",
                &[&md],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|r| r.try_get(0).map_err(backend)).collect()
    }
}
