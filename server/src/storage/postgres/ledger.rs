//! The till's ledger on PostgreSQL: card lookup, checkout keys, single-use checkout codes and
//! sessions, postings, the refund book, the card's source and store, the member's book, and the
//! members the settle job must look at.
//!
//! A purchase costs the database two round trips: what it reads (the prior posting under its key,
//! and the session with its member's book — row, open lots, qualifying amount, offers — in one
//! statement, so one snapshot) and the posting, one statement that commits by itself
//! ([`WRITE_POSTING`]). PostgreSQL commits concurrent transactions together itself, so there is no
//! group-commit writer, and a refused or failed posting rolls back alone. Its guards: the member's
//! revision (`UPDATE … WHERE revision = $n`; every other write of the posting hangs on it), the
//! posting id (its primary key: a concurrent posting under the same id waits for the first and
//! then fails, `KeyTaken`), and — in a transaction of their own, as they need more statements — a
//! refund's purchase (its row locked, so refunds of one purchase are checked one after the other
//! against every committed one) and the offers' use limits. Reads that must agree across
//! statements (a refund's book and purchase, a card's source) run in one REPEATABLE READ,
//! read-only transaction: one snapshot, as SQLite's read transaction.

use super::Cached;
use crate::storage::ledger::stored_entry;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use loyalty_core::DocKind;
use loyalty_core::card::LedgerEntry;
use loyalty_core::lots::Lot;
use loyalty_core::tiers::{Metric, TierState};
use tokio_postgres::Row;

use super::members::{card_shows, update_document};
use super::offers::{parse_offer, record_offer_uses};
use super::{PgStorage, backend, hash_from};
use crate::storage::{
    CardSource, CheckoutOpening, CheckoutSession, Commit, DeviceKey, DocWrite, LedgerStore,
    MemberBook, MemberProgramme, PostOutcome, Posting, PostingKind, PriorPosting, PurchaseContext,
    PurchaseRecord, StorageError, TillMember, TillOffer,
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

/// The whole posting as one statement: the member's balance, tier and revision (the revision
/// guard), the posting under its id, its ledger movements and the lots it creates or changes. Each
/// write hangs on the one before it (`FROM moved`, `FROM posting`), so a stale revision writes
/// nothing. One statement is one round trip, one plan and, outside a transaction, one commit:
/// the dozen statements a posting took in its own transaction were most of the database's work
/// per purchase (`docs/benchmarks.md`).
const WRITE_POSTING: &str = "
    WITH moved AS (
        UPDATE members SET balance = $1, pending = $2, tier = $3, tier_manual = $4,
            tier_since = $5, tier_review_at = $6, tier_downgrade_at = $7, next_event_at = $8,
            revision = revision + 1
        WHERE member_id = $9 AND revision = $10
        RETURNING member_id),
    posting AS (
        INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                              receipt_id, total_minor, earned, redeemed, at, response, operator)
        SELECT $11::TEXT, $12::BYTEA, member_id, $13::TEXT, $14::TEXT, $15::TEXT, $16::TEXT,
               $17::BIGINT, $18::BIGINT, $19::BIGINT, $20::BIGINT, $21::BYTEA, $35::TEXT
        FROM moved
        RETURNING idempotency_key, member_id),
    movements AS (
        INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
                            rule, reason_code, reason_params, available_at, revision)
        SELECT t.tx_id, p.member_id, p.idempotency_key, t.points, t.reason, $15, $16, $20, t.rule,
               t.reason_code, t.reason_params, t.available_at, $10::BIGINT + 1
        FROM posting p,
             unnest($22::TEXT[], $23::BIGINT[], $24::TEXT[], $25::TEXT[], $36::TEXT[],
                    $37::TEXT[], $38::BIGINT[])
                 AS t (tx_id, points, reason, rule, reason_code, reason_params, available_at)),
    touched AS (
        INSERT INTO lots (lot_id, member_id, posting, rule, points, remaining, expired,
                          earned_at, available_at, expires_at, warned)
        SELECT l.lot_id, p.member_id, p.idempotency_key, l.rule, l.points, l.remaining,
               l.expired, l.earned_at, l.available_at, l.expires_at, l.warned
        FROM posting p,
             unnest($26::TEXT[], $27::TEXT[], $28::BIGINT[], $29::BIGINT[], $30::BIGINT[],
                    $31::BIGINT[], $32::BIGINT[], $33::BIGINT[], $34::BIGINT[])
                 AS l (lot_id, rule, points, remaining, expired, earned_at, available_at,
                       expires_at, warned)
        ON CONFLICT (lot_id) DO UPDATE SET remaining = excluded.remaining,
            expired = excluded.expired, warned = excluded.warned)
    SELECT count(*) FROM moved";

/// Runs [`WRITE_POSTING`] on `conn` (a connection: its own commit; or a transaction). The
/// posting's id already taken is PostgreSQL's unique violation on it, which undoes the whole
/// statement; a concurrent posting under the same id waits for the first and then fails so.
async fn write_posting(
    conn: &impl GenericClient,
    p: &Posting,
) -> Result<PostOutcome, StorageError> {
    let st = &p.state;
    let m = &p.movements;
    let tx_ids: Vec<&str> = m.iter().map(|m| m.tx_id.as_str()).collect();
    let points: Vec<i64> = m.iter().map(|m| m.points).collect();
    let reasons: Vec<&str> = m.iter().map(|m| m.reason.as_str()).collect();
    let rules: Vec<&str> = m.iter().map(|m| m.rule.as_str()).collect();
    let codes: Vec<&str> = m.iter().map(|m| m.reason_code.as_str()).collect();
    let reason_params: Vec<String> = m.iter().map(|m| m.reason_params.to_stored()).collect();
    let movement_available_at: Vec<Option<i64>> = m.iter().map(|m| m.available_at_ms).collect();
    let l = &p.lots;
    let lot_ids: Vec<&str> = l.iter().map(|l| l.lot_id.as_str()).collect();
    let lot_rules: Vec<&str> = l.iter().map(|l| l.rule.as_str()).collect();
    let lot_points: Vec<i64> = l.iter().map(|l| l.points).collect();
    let remaining: Vec<i64> = l.iter().map(|l| l.remaining).collect();
    let expired: Vec<i64> = l.iter().map(|l| l.expired).collect();
    let earned_at: Vec<i64> = l.iter().map(|l| l.earned_at_ms).collect();
    let available_at: Vec<i64> = l.iter().map(|l| l.available_at_ms).collect();
    let expires_at: Vec<Option<i64>> = l.iter().map(|l| l.expires_at_ms).collect();
    // Flags are integer columns, as in SQLite, so the schemas stay column for column.
    let warned: Vec<i64> = l.iter().map(|l| i64::from(l.warned)).collect();
    let written = conn
        .fetch_one(
            WRITE_POSTING,
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
                &p.idempotency_key,
                &p.request_hash.as_slice(),
                &p.kind.as_str(),
                &p.refers_to,
                &p.till_id,
                &p.receipt_id,
                &p.total_minor,
                &p.earned,
                &p.redeemed,
                &p.at_ms,
                &p.response,
                &tx_ids,
                &points,
                &reasons,
                &rules,
                &lot_ids,
                &lot_rules,
                &lot_points,
                &remaining,
                &expired,
                &earned_at,
                &available_at,
                &expires_at,
                &warned,
                &p.operator,
                &codes,
                &reason_params,
                &movement_available_at,
            ],
        )
        .await;
    match written.and_then(|r| r.try_get::<_, i64>(0)) {
        // The revision guard makes a concurrent change (another instance) a conflict to retry,
        // never a lost update: a writer blocked on the member's row re-checks the revision once
        // the other commits.
        Ok(0) => Ok(PostOutcome::Conflict),
        Ok(_) => Ok(PostOutcome::Posted),
        Err(e) if is_posting_key_taken(&e) => Ok(PostOutcome::KeyTaken),
        Err(e) => Err(backend(e)),
    }
}

/// Whether `e` is the unique violation of a posting's id.
fn is_posting_key_taken(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.constraint() == Some("postings_pkey")
    })
}

/// Writes a posting that needs more than [`WRITE_POSTING`] — a refund (its purchase locked and
/// checked) or offers used — inside the caller's transaction. Anything but
/// [`PostOutcome::Posted`] leaves part of it written: the caller rolls back (drops the
/// transaction).
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
    let outcome = write_posting(tx, p).await?;
    if outcome != PostOutcome::Posted {
        return Ok(outcome);
    }
    if let Some(purchase) = &p.refers_to {
        let outcome = check_refund(tx, purchase, p).await?;
        if outcome != PostOutcome::Posted {
            return Ok(outcome);
        }
    }
    if !p.offer_uses.is_empty() && !record_offer_uses(tx, &p.member_id, &p.offer_uses).await? {
        // An offer's last use went to a concurrent posting: read again, post without it.
        return Ok(PostOutcome::Conflict);
    }
    Ok(PostOutcome::Posted)
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

/// What member `m` qualifies with since `$3`; `postings_by_member` covers it.
fn qualifying_sql(metric: Metric) -> &'static str {
    match metric {
        Metric::Spend => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN total_minor ELSE -total_minor END),
                             0)::BIGINT
             FROM postings q
             WHERE q.member_id = m.member_id AND q.at >= $3 AND q.kind IN ('purchase', 'refund')"
        }
        Metric::Points => {
            "SELECT coalesce(sum(CASE kind WHEN 'purchase' THEN earned ELSE -earned END), 0)::BIGINT
             FROM postings q
             WHERE q.member_id = m.member_id AND q.at >= $3 AND q.kind IN ('purchase', 'refund')"
        }
    }
}

/// A member's book in one statement — one snapshot and one round trip instead of a transaction
/// of five: `FROM` names the member's row `m`; `$2` is the card's kind, `$3` the qualifying
/// window's start, `$4` the time to read the valid offers at (NULL: none). The columns from
/// `at` on are [`book_of`]'s: the member's row (13), the open lots as arrays (9), the
/// qualifying amount, the offers as arrays (3). The arrays of one aggregate are filled in one
/// pass over the same rows, so their elements line up; the offers are aggregated from a sorted
/// subquery, so they come in the order the till's earning expects.
fn book_sql(select_first: &str, from: &str, metric: Metric) -> String {
    let qualifying = qualifying_sql(metric);
    format!(
        "SELECT {select_first}
                m.card_number, m.status, m.revision, m.balance, m.pending, m.tier,
                m.tier_manual, coalesce(m.tier_since, m.created_at), m.tier_review_at,
                m.tier_downgrade_at, m.next_event_at, d.version, m.card_revision,
                l.lot_id, l.rule, l.points, l.remaining, l.expired, l.earned_at, l.available_at,
                l.expires_at, l.warned,
                ({qualifying}),
                o.definition, o.uses, o.activated_at
         {from}
         LEFT JOIN documents d ON d.member_id = m.member_id AND d.kind = $2
         LEFT JOIN LATERAL (
             SELECT array_agg(lot_id) AS lot_id, array_agg(rule) AS rule,
                    array_agg(points) AS points, array_agg(remaining) AS remaining,
                    array_agg(expired) AS expired, array_agg(earned_at) AS earned_at,
                    array_agg(available_at) AS available_at, array_agg(expires_at) AS expires_at,
                    array_agg(warned) AS warned
             FROM lots WHERE lots.member_id = m.member_id AND remaining > 0) l ON true
         LEFT JOIN LATERAL (
             SELECT array_agg(definition) AS definition, array_agg(uses) AS uses,
                    array_agg(activated_at) AS activated_at
             FROM (SELECT o.definition, om.uses, a.at AS activated_at
                   FROM offer_members om
                   JOIN offers o ON o.offer_id = om.offer_id
                   LEFT JOIN member_activations a
                       ON a.member_id = om.member_id AND a.offer_id = om.offer_id
                   WHERE om.member_id = m.member_id
                     AND o.valid_from <= $4::BIGINT AND o.valid_until > $4::BIGINT
                   ORDER BY o.valid_until, o.offer_id COLLATE \"C\") valid) o ON true"
    )
}

/// An array column of [`book_sql`]: NULL when no row was aggregated.
fn array<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a Row,
    i: usize,
) -> Result<Vec<T>, StorageError> {
    Ok(r.try_get::<_, Option<Vec<T>>>(i)
        .map_err(backend)?
        .unwrap_or_default())
}

/// The member's open lots from [`book_sql`]'s arrays starting at column `at`.
fn lots_of(r: &Row, at: usize) -> Result<Vec<Lot>, StorageError> {
    let ids: Vec<String> = array(r, at)?;
    let rules: Vec<String> = array(r, at + 1)?;
    let points: Vec<i64> = array(r, at + 2)?;
    let remaining: Vec<i64> = array(r, at + 3)?;
    let expired: Vec<i64> = array(r, at + 4)?;
    let earned_at: Vec<i64> = array(r, at + 5)?;
    let available_at: Vec<i64> = array(r, at + 6)?;
    let expires_at: Vec<Option<i64>> = array(r, at + 7)?;
    let warned: Vec<i64> = array(r, at + 8)?;
    let n = ids.len();
    let lengths = [
        rules.len(),
        points.len(),
        remaining.len(),
        expired.len(),
        earned_at.len(),
        available_at.len(),
        expires_at.len(),
        warned.len(),
    ];
    if lengths.iter().any(|&len| len != n) {
        return Err(backend(
            "a lot's columns came back in arrays of different lengths",
        ));
    }
    Ok((0..n)
        .map(|i| Lot {
            lot_id: ids[i].clone(),
            rule: rules[i].clone(),
            points: points[i],
            remaining: remaining[i],
            expired: expired[i],
            earned_at_ms: earned_at[i],
            available_at_ms: available_at[i],
            expires_at_ms: expires_at[i],
            warned: warned[i] != 0,
        })
        .collect())
}

/// The offers from [`book_sql`]'s arrays starting at column `at`.
fn offers_of(r: &Row, at: usize) -> Result<Vec<TillOffer>, StorageError> {
    let definitions: Vec<String> = array(r, at)?;
    let uses: Vec<i64> = array(r, at + 1)?;
    let activated: Vec<Option<i64>> = array(r, at + 2)?;
    if uses.len() != definitions.len() || activated.len() != definitions.len() {
        return Err(backend(
            "an offer's columns came back in arrays of different lengths",
        ));
    }
    definitions
        .iter()
        .zip(uses)
        .zip(activated)
        .map(|((definition, uses), activated_at_ms)| {
            let mut offer = parse_offer(definition)?;
            offer.use_count = uses;
            Ok(TillOffer {
                offer,
                activated_at_ms,
            })
        })
        .collect()
}

/// The member's programme state from the `members` columns of [`book_sql`] starting at `at`.
fn programme_of(r: &Row, at: usize) -> Result<MemberProgramme, StorageError> {
    Ok(MemberProgramme {
        balance: r.try_get(at + 3).map_err(backend)?,
        pending: r.try_get(at + 4).map_err(backend)?,
        tier: TierState {
            tier: r.try_get(at + 5).map_err(backend)?,
            manual: r.try_get::<_, i64>(at + 6).map_err(backend)? != 0,
            since_ms: r.try_get(at + 7).map_err(backend)?,
            // 0: no review date yet; the ledger derives one from `since`.
            review_at_ms: r
                .try_get::<_, Option<i64>>(at + 8)
                .map_err(backend)?
                .unwrap_or(0),
            downgrade_at_ms: r.try_get(at + 9).map_err(backend)?,
        },
        next_event_at_ms: r.try_get(at + 10).map_err(backend)?,
    })
}

/// The book in a row of [`book_sql`] whose book columns start at `at`; none when the row has no
/// member (a session whose member is gone).
fn book_of(r: &Row, at: usize, member_id: &str) -> Result<Option<MemberBook>, StorageError> {
    let Some(card_number) = r.try_get::<_, Option<String>>(at).map_err(backend)? else {
        return Ok(None);
    };
    let status: String = r.try_get(at + 1).map_err(backend)?;
    Ok(Some(MemberBook {
        member_id: member_id.to_string(),
        card_number,
        blocked: status == "blocked",
        revision: r.try_get(at + 2).map_err(backend)?,
        card_version: r.try_get(at + 11).map_err(backend)?,
        card_revision: r.try_get(at + 12).map_err(backend)?,
        state: programme_of(r, at)?,
        lots: lots_of(r, at + 13)?,
        qualifying: r.try_get(at + 22).map_err(backend)?,
        offers: offers_of(r, at + 23)?,
    }))
}

/// The member's row, open lots, qualifying amount and (at `offers_at_ms`) offers, in one
/// statement: one snapshot of its own, or the caller's transaction's.
async fn read_book(
    conn: &impl GenericClient,
    member_id: &str,
    metric: Metric,
    window_start_ms: i64,
    offers_at_ms: Option<i64>,
) -> Result<Option<MemberBook>, StorageError> {
    let sql = book_sql("", "FROM members m", metric) + " WHERE m.member_id = $1";
    let row = conn
        .fetch_opt(
            &sql,
            &[
                &member_id,
                &i64::from(DocKind::Card.code()),
                &window_start_ms,
                &offers_at_ms,
            ],
        )
        .await
        .map_err(backend)?;
    match row {
        Some(r) => book_of(&r, 0, member_id),
        None => Ok(None),
    }
}

/// A checkout session and its member's book with the offers valid at `now_ms`, in one statement.
async fn read_session_book(
    conn: &impl GenericClient,
    session_id: &str,
    metric: Metric,
    window_start_ms: i64,
    now_ms: i64,
) -> Result<(Option<CheckoutSession>, Option<MemberBook>), StorageError> {
    let sql = book_sql(
        "s.session_id, s.member_id, s.till_id, s.expires_at,",
        "FROM checkout_sessions s LEFT JOIN members m ON m.member_id = s.member_id",
        metric,
    ) + " WHERE s.session_id = $1";
    let row = conn
        .fetch_opt(
            &sql,
            &[
                &session_id,
                &i64::from(DocKind::Card.code()),
                &window_start_ms,
                &Some(now_ms),
            ],
        )
        .await
        .map_err(backend)?;
    let Some(r) = row else {
        return Ok((None, None));
    };
    let session = CheckoutSession {
        session_id: r.try_get(0).map_err(backend)?,
        member_id: r.try_get(1).map_err(backend)?,
        till_id: r.try_get(2).map_err(backend)?,
        expires_at_ms: r.try_get(3).map_err(backend)?,
    };
    let book = book_of(&r, 4, &session.member_id)?;
    Ok((Some(session), book))
}

/// The member's ledger movements posted after a revision, newest first, at most a number. The
/// `OFFSET 0` keeps the order and the limit out of the inner query's plan: with them, the generic
/// plan of a prepared statement walks the time index backwards (no sort), filtering every movement
/// of the member by revision — the history this read is there to avoid. Public for the plan's
/// test (tests/tests/e2e/postgres.rs).
pub const UNSEEN_MOVEMENTS_SQL: &str = "
    SELECT * FROM (
        SELECT tx_id, points, reason, at, rule, reason_code, reason_params, available_at
        FROM ledger WHERE member_id = $1 AND revision > $2 OFFSET 0) unseen
    ORDER BY at DESC, tx_id DESC LIMIT $3";

/// The member's `limit` most recent ledger movements posted after `card_revision`, newest first,
/// as the card shows them (see [`LedgerStore::card_source`]).
async fn read_unseen_movements(
    conn: &impl GenericClient,
    member_id: &str,
    card_revision: i64,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StorageError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .fetch_all(UNSEEN_MOVEMENTS_SQL, &[&member_id, &card_revision, &limit])
        .await
        .map_err(backend)?;
    rows.iter().map(entry_row).collect()
}

/// A ledger row whose first eight columns are `tx_id, points, reason, at, rule, reason_code,
/// reason_params, available_at`, as the card shows the movement.
pub(super) fn entry_row(r: &Row) -> Result<LedgerEntry, StorageError> {
    let code: Option<String> = r.try_get(5).map_err(backend)?;
    let params: String = r.try_get(6).map_err(backend)?;
    let entry = LedgerEntry {
        tx_id: r.try_get(0).map_err(backend)?,
        points: r.try_get(1).map_err(backend)?,
        reason: r.try_get(2).map_err(backend)?,
        at_ms: r.try_get(3).map_err(backend)?,
        rule: r.try_get(4).map_err(backend)?,
        available_at_ms: r.try_get(7).map_err(backend)?,
        ..LedgerEntry::default()
    };
    stored_entry(entry, code.as_deref(), &params)
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
                        k.revoked_at IS NOT NULL OR d.revoked_at IS NOT NULL,
                        least(k.revoked_at, d.revoked_at)
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
            revoked_at_ms: r.try_get(3).map_err(backend)?,
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
        // Two statements sent together (tokio-postgres pipelines them on one connection): one
        // round trip. They need not share a snapshot: a posting stored under the key after the
        // first read is found by the posting's own write (`KeyTaken`), and the book is one
        // statement, so one snapshot, guarded at the write by its revision.
        let client = self.client().await?;
        let (prior, session_book) = tokio::try_join!(
            read_prior_posting(&client, idempotency_key),
            read_session_book(&client, session_id, metric, window_start_ms, now_ms),
        )?;
        let (session, book) = session_book;
        let book = if prior.is_some() { None } else { book };
        Ok(PurchaseContext {
            prior,
            session,
            book,
        })
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
        if p.refers_to.is_none() && p.offer_uses.is_empty() {
            // One statement, its own transaction: all of it or (an outcome but Posted) nothing.
            return write_posting(&client, &p).await;
        }
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
            let Some(mut book) = read_book(tx, member_id, metric, window_start_ms, None).await?
            else {
                return Ok(None);
            };
            let unseen = read_unseen_movements(tx, member_id, book.card_revision, limit).await?;
            // The lots come in the book's one statement; the card is handed only their balances.
            let balances = std::mem::take(&mut book.lots)
                .iter()
                .map(Lot::balance)
                .collect();
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
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        match card {
            Some(card) => {
                let card = DocWrite {
                    shows_revision: Some(revision),
                    ..card
                };
                if !update_document(&tx, member_id, &card).await? {
                    return Ok(Commit::Conflict);
                }
            }
            None => card_shows(&tx, member_id, revision).await?,
        }
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
