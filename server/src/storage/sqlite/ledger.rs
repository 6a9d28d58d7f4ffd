//! The till's ledger on SQLite: card lookup, checkout keys, single-use checkout codes and sessions,
//! postings (written by the group-commit writer, [`super::writer`]), the refund book, the card's
//! source and store, the member's book, and the members the settle job must look at.

use crate::storage::ledger::stored_entry;
use async_trait::async_trait;
use loyalty_core::DocKind;
use loyalty_core::card::LedgerEntry;
use loyalty_core::lots::{Lot, LotBalance};
use loyalty_core::tiers::{Metric, TierState};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::members::{card_shows, update_document};
use super::{SqliteStorage, backend, cached_execute, cached_row, cached_rows, hash_from};
use crate::storage::{
    CardSource, CheckoutOpening, CheckoutSession, Commit, DeviceKey, DocWrite, LedgerStore,
    MemberBook, MemberProgramme, PostOutcome, Posting, PostingKind, PriorPosting, PurchaseContext,
    PurchaseRecord, StorageError, TillMember,
};

/// How long a used checkout code is remembered (it expires after at most 90 s).
const USED_CODE_RETENTION_MS: i64 = 10 * 60 * 1000;

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

fn till_member(r: &rusqlite::Row<'_>) -> rusqlite::Result<TillMember> {
    Ok(TillMember {
        member_id: r.get(0)?,
        card_number: r.get(1)?,
        blocked: r.get::<_, String>(2)? == "blocked",
        balance: r.get(3)?,
        tier: r.get(4)?,
    })
}

/// Writes one posting inside the caller's transaction. Anything but [`PostOutcome::Posted`] leaves
/// part of it written: the caller rolls back.
pub(super) fn apply_posting(
    tx: &rusqlite::Connection,
    p: &Posting,
) -> Result<PostOutcome, StorageError> {
    // The balance is what the lots hold, and `lots.remaining` cannot go below zero (a CHECK):
    // no overdraft reaches this far.
    let st = &p.state;
    let fresh = cached_execute(
        tx,
        "INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                               receipt_id, total_minor, earned, redeemed, at, response, operator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
        params![
            p.idempotency_key,
            p.request_hash.as_slice(),
            p.member_id,
            p.kind,
            p.refers_to,
            p.till_id,
            p.receipt_id,
            p.total_minor,
            p.earned,
            p.redeemed,
            p.at_ms,
            p.response,
            p.operator
        ],
    )
    .map_err(backend)?;
    if fresh != 1 {
        return Ok(PostOutcome::KeyTaken);
    }
    if let Some(purchase) = &p.refers_to {
        let outcome = check_refund(tx, purchase, p)?;
        if outcome != PostOutcome::Posted {
            return Ok(outcome);
        }
    }
    // The revision guard makes a concurrent change (another instance) a conflict to retry,
    // never a lost update.
    let moved = cached_execute(
        tx,
        "UPDATE members SET balance = ?1, pending = ?2, tier = ?3, tier_manual = ?4,
             tier_since = ?5, tier_review_at = ?6, tier_downgrade_at = ?7, next_event_at = ?8,
             revision = revision + 1
         WHERE member_id = ?9 AND revision = ?10",
        params![
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
        ],
    )
    .map_err(backend)?;
    if moved != 1 {
        return Ok(PostOutcome::Conflict);
    }
    let mut ledger = tx
        .prepare_cached(
            "INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at, rule,
                                 reason_code, reason_params, available_at, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                m.rule,
                m.reason_code.as_str(),
                m.reason_params.to_stored(),
                m.available_at_ms,
                p.expected_revision + 1
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
    if !p.offer_uses.is_empty()
        && !crate::storage::sqlite::offers::record_offer_uses(tx, &p.member_id, &p.offer_uses)?
    {
        // An offer's last use went to a concurrent posting: read again, post without it.
        return Ok(PostOutcome::Conflict);
    }
    Ok(PostOutcome::Posted)
}

/// Checked in the writer, which sees every earlier refund of the purchase (this one included, just
/// inserted): refunds together never exceed their purchase, and the shares this refund reverses
/// were computed from the refunded total that is really there — even when refunds of the same
/// purchase race through several instances.
fn check_refund(
    tx: &rusqlite::Connection,
    purchase: &str,
    p: &Posting,
) -> Result<PostOutcome, StorageError> {
    let (refunded, total): (i64, i64) = cached_row(
        tx,
        "SELECT (SELECT coalesce(sum(total_minor), 0) FROM postings WHERE refers_to = ?1),
                total_minor
         FROM postings WHERE idempotency_key = ?1",
        [purchase],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
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

fn read_prior_posting(conn: &Connection, key: &str) -> Result<Option<PriorPosting>, StorageError> {
    cached_row(
        conn,
        "SELECT member_id, till_id, kind, request_hash, response, operator FROM postings
         WHERE idempotency_key = ?1",
        [key],
        |r| {
            Ok(PriorPosting {
                member_id: r.get(0)?,
                till_id: r.get(1)?,
                kind: r.get(2)?,
                request_hash: hash_from(r.get(3)?),
                response: r.get(4)?,
                operator: r.get(5)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

/// The purchase posted under `posting`, with the lots it earned and what was refunded of it.
fn read_purchase(conn: &Connection, posting: &str) -> Result<Option<PurchaseRecord>, StorageError> {
    let record = cached_row(
        conn,
        "SELECT p.member_id, p.total_minor, p.earned, p.redeemed,
                (SELECT coalesce(sum(r.total_minor), 0) FROM postings r
                 WHERE r.refers_to = p.idempotency_key)
         FROM postings p WHERE p.idempotency_key = ?1 AND p.kind = 'purchase'",
        [posting],
        |r| {
            Ok(PurchaseRecord {
                posting: posting.to_string(),
                member_id: r.get(0)?,
                total_minor: r.get(1)?,
                earned: r.get(2)?,
                redeemed: r.get(3)?,
                refunded_minor: r.get(4)?,
                lots: Vec::new(),
            })
        },
    )
    .optional()
    .map_err(backend)?;
    let Some(mut record) = record else {
        return Ok(None);
    };
    record.lots = cached_rows(
        conn,
        "SELECT lot_id, rule, points, remaining, expired, earned_at, available_at, expires_at, warned
         FROM lots WHERE posting = ?1 ORDER BY lot_id",
        [posting],
        read_lot,
    )
    .map_err(backend)?;
    Ok(Some(record))
}

fn read_checkout_session(
    conn: &Connection,
    session_id: &str,
) -> Result<Option<CheckoutSession>, StorageError> {
    cached_row(
        conn,
        "SELECT session_id, member_id, till_id, expires_at FROM checkout_sessions WHERE session_id = ?1",
        [session_id],
        |r| {
            Ok(CheckoutSession {
                session_id: r.get(0)?,
                member_id: r.get(1)?,
                till_id: r.get(2)?,
                expires_at_ms: r.get(3)?,
            })
        },
    )
    .optional()
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
pub(super) const OPEN_LOTS_SQL: &str =
    "SELECT lot_id, rule, points, remaining, expired, earned_at, available_at, expires_at, warned
     FROM lots WHERE member_id = ?1 AND remaining > 0";

/// What a member qualifies with since a time; `postings_by_member` covers it.
pub(super) fn qualifying_sql(metric: Metric) -> &'static str {
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

/// The member's row, qualifying amount and (at `offers_at_ms`) offers, its lots left empty; the
/// caller holds the snapshot (a transaction).
fn read_book_without_lots(
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
    let qualifying = cached_row(
        tx,
        qualifying_sql(metric),
        params![member_id, window_start_ms],
        |r| r.get(0),
    )
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
        lots: Vec::new(),
        qualifying,
        offers,
    }))
}

/// The member's row, lots, qualifying amount and (at `offers_at_ms`) offers; the caller holds the
/// snapshot (a transaction).
fn read_book(
    tx: &Connection,
    member_id: &str,
    metric: Metric,
    window_start_ms: i64,
    offers_at_ms: Option<i64>,
) -> Result<Option<MemberBook>, StorageError> {
    let Some(mut book) =
        read_book_without_lots(tx, member_id, metric, window_start_ms, offers_at_ms)?
    else {
        return Ok(None);
    };
    book.lots = cached_rows(tx, OPEN_LOTS_SQL, [member_id], read_lot).map_err(backend)?;
    Ok(Some(book))
}

/// What each of the member's open lots holds towards the balances; `lots_open_by_member` covers it.
pub(super) const LOT_BALANCES_SQL: &str =
    "SELECT remaining, available_at, expires_at FROM lots WHERE member_id = ?1 AND remaining > 0";

fn read_lot_balances(tx: &Connection, member_id: &str) -> Result<Vec<LotBalance>, StorageError> {
    cached_rows(tx, LOT_BALANCES_SQL, [member_id], |r| {
        Ok(LotBalance {
            remaining: r.get(0)?,
            available_at_ms: r.get(1)?,
            expires_at_ms: r.get(2)?,
        })
    })
    .map_err(backend)
}

/// The member's ledger movements posted after a revision, newest first, at most a number. By the
/// revision's index, named: the time index would spare the sort but walk every movement of the
/// member, the history the read is there to avoid.
pub(super) const UNSEEN_MOVEMENTS_SQL: &str =
    "SELECT tx_id, points, reason, at, rule, reason_code, reason_params, available_at
     FROM ledger INDEXED BY ledger_by_revision WHERE member_id = ?1 AND revision > ?2
     ORDER BY at DESC, tx_id DESC LIMIT ?3";

/// The member's `limit` most recent ledger movements posted after `card_revision`, newest first,
/// as the card shows them (see [`LedgerStore::card_source`]).
fn read_unseen_movements(
    conn: &Connection,
    member_id: &str,
    card_revision: i64,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StorageError> {
    cached_rows(
        conn,
        UNSEEN_MOVEMENTS_SQL,
        params![member_id, card_revision, limit as i64],
        entry_row,
    )
    .map_err(backend)?
    .into_iter()
    .collect()
}

/// A ledger row whose first eight columns are `tx_id, points, reason, at, rule, reason_code,
/// reason_params, available_at` as the card shows the movement. The outer error is the row's,
/// the inner one a stored reason that no longer reads.
pub(super) fn entry_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<LedgerEntry, StorageError>> {
    let code: Option<String> = r.get(5)?;
    let params: String = r.get(6)?;
    let entry = LedgerEntry {
        tx_id: r.get(0)?,
        points: r.get(1)?,
        reason: r.get(2)?,
        at_ms: r.get(3)?,
        rule: r.get(4)?,
        available_at_ms: r.get(7)?,
        ..LedgerEntry::default()
    };
    Ok(stored_entry(entry, code.as_deref(), &params))
}

#[async_trait]
impl LedgerStore for SqliteStorage {
    async fn member_by_card(&self, card_number: &str) -> Result<Option<TillMember>, StorageError> {
        let card_number = card_number.to_string();
        self.read_now(move |conn| {
            cached_row(
                conn,
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
        self.read_now(move |conn| {
            cached_row(
                conn,
                "SELECT k.device_id, k.public_key, k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL,
                        coalesce(min(k.revoked_at, d.revoked_at), k.revoked_at, d.revoked_at)
                 FROM device_keys k JOIN devices d USING (device_id)
                 WHERE k.member_id = ?1 AND k.key_id = ?2",
                params![member_id, key_id],
                |r| {
                    Ok(DeviceKey {
                        device_id: r.get(0)?,
                        public_key: r.get(1)?,
                        revoked: r.get(2)?,
                        revoked_at_ms: r.get(3)?,
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
    ) -> Result<CheckoutOpening, StorageError> {
        let session = session.clone();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            // Every checkout runs these four: through the statement cache.
            let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                cached_execute(&tx, sql, params).map_err(backend)
            };
            let fresh = run(
                "INSERT INTO used_codes (code_id, used_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![code_id.as_slice(), now_ms],
            )?;
            if fresh != 1 {
                return Ok(CheckoutOpening::Replayed);
            }
            // A code can pass the time check for at most three steps (90 s); keep its record
            // well past that, then let it go, so the table holds minutes of scans, not years.
            run(
                "DELETE FROM used_codes WHERE used_at < ?1",
                params![now_ms - USED_CODE_RETENTION_MS],
            )?;
            run(
                "DELETE FROM checkout_sessions WHERE expires_at < ?1",
                params![now_ms],
            )?;
            run(
                "INSERT INTO checkout_sessions (session_id, member_id, till_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![session.session_id, session.member_id, session.till_id, now_ms, session.expires_at_ms],
            )?;
            tx.commit().map_err(backend)?;
            Ok(CheckoutOpening::Opened)
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
        self.read_now(move |conn| {
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
        // On the calling thread when a reader is free: every part is read from an index that
        // covers it (the unseen movements, at most `limit`; the member's row and tier window; what
        // each open lot holds), and the hop to the blocking pool and back was about a tenth of a
        // live update's CPU (docs/benchmarks.md). One snapshot (a point read's transaction): the
        // movements and the book (with its revisions) agree.
        self.read_now(move |conn| {
            let Some(book) =
                read_book_without_lots(conn, &member_id, metric, window_start_ms, None)?
            else {
                return Ok(None);
            };
            let unseen = read_unseen_movements(conn, &member_id, book.card_revision, limit)?;
            let balances = read_lot_balances(conn, &member_id)?;
            Ok(Some(CardSource {
                book,
                unseen,
                balances,
            }))
        })
        .await
    }

    async fn store_card(
        &self,
        member_id: &str,
        card: Option<DocWrite>,
        revision: i64,
    ) -> Result<Commit, StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            match card {
                Some(card) => {
                    let card = DocWrite {
                        shows_revision: Some(revision),
                        ..card
                    };
                    if !update_document(&tx, &member_id, &card)? {
                        return Ok(Commit::Conflict);
                    }
                }
                None => card_shows(&tx, &member_id, revision)?,
            }
            tx.commit().map_err(backend)?;
            Ok(Commit::Committed)
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

    async fn post(&self, p: Posting) -> Result<PostOutcome, StorageError> {
        let (done, result) = oneshot::channel();
        self.poster
            .send((p, done))
            .map_err(|_| backend("the posting writer has stopped"))?;
        result
            .await
            .map_err(|_| backend("the posting writer has stopped"))?
    }
}
