//! The SQLite backend's own tests, beyond the conformance suite every backend runs: the
//! migrations (every earlier version upgrades), the group-commit writer's batches, the indexes
//! behind the hot path, and guards that need a second connection or the raw file to set up.

use super::ledger::{LOT_BALANCES_SQL, OPEN_LOTS_SQL, UNSEEN_MOVEMENTS_SQL, qualifying_sql};
use super::members::{DEVICE_AND_CHECK_SQL, SYNC_CHECK_SQL};
use super::writer::{PostingJob, write_batch};
use super::*;
use crate::storage::*;
use loyalty_core::DocKind;
use loyalty_core::reasons::{ReasonCode, ReasonParams};
use loyalty_core::tiers::{Metric, TierState};
use rusqlite::params;
use tokio::sync::oneshot;

#[tokio::test]
async fn appended_document_bytes_are_kept_exactly_and_guarded_by_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
    // Bytes no text encoding would keep: NULs, invalid UTF-8.
    let first = vec![0x85, 0x6f, 0x4a, 0x83, 0x00, 0xff, 0xfe, 0x00];
    assert!(matches!(
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
            .unwrap(),
        MemberCreation::Created
    ));
    let write = |expected_version, bytes: &[u8], append| DocWrite {
        new_epoch: None,
        summary: None,
        kind: DocKind::Card,
        expected_version,
        bytes: bytes.to_vec(),
        append,
        shows_revision: None,
    };
    let tail = [0x00, 0xc3, 0x28, 0x00, 0x80];
    assert!(matches!(
        storage
            .commit("m1", None, vec![write(1, &tail, true)], Vec::new(), None)
            .await
            .unwrap(),
        Commit::Committed
    ));
    // A writer that read version 1 lost the race: nothing is appended twice.
    assert!(matches!(
        storage
            .commit("m1", None, vec![write(1, &tail, true)], Vec::new(), None)
            .await,
        Ok(Commit::Conflict)
    ));
    let stored = storage
        .load_documents("m1", &[DocKind::Card])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.bytes, [first.as_slice(), &tail].concat());
    // A whole write replaces them.
    assert!(matches!(
        storage
            .commit(
                "m1",
                None,
                vec![write(2, &[7, 0, 7], false)],
                Vec::new(),
                None,
            )
            .await
            .unwrap(),
        Commit::Committed
    ));
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
    // The ledger's `rule` column (007), and the structured reasons (020).
    const RULES: usize = 7;
    const REASONS: usize = 20;
    // The card's own revision (009), and the ledger's revisions (034).
    const CARD_REVISION: usize = 9;
    const LEDGER_REVISIONS: usize = 34;
    for version in 1..=MIGRATIONS.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = Migrations::new(MIGRATIONS[..version].iter().map(|sql| M::up(sql)).collect());
            let conn = loyalty_core::store::open_sqlite(&path, APPLICATION_ID, &old).unwrap();
            let user_version: usize = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(user_version, version);
            conn.execute_batch(
                "INSERT INTO members (member_id, card_number, external_ref, created_at)
                     VALUES ('old', '6270000000000009', NULL, 1);
                 INSERT INTO documents (member_id, kind, version, data)
                     VALUES ('old', 0, 1, x'0102');
                 INSERT INTO devices (device_id, member_id, secret_hash, name, created_at)
                     VALUES ('old-phone', 'old', zeroblob(32), 'phone', 1);",
            )
            .unwrap();
            if version >= LEDGER {
                conn.execute_batch(
                    "INSERT INTO postings (idempotency_key, request_hash, member_id, kind,
                         refers_to, till_id, receipt_id, total_minor, earned, redeemed, at,
                         response)
                     VALUES ('k1', x'00', 'old', 'purchase', NULL, 't1', 'r1', 100, 1, 0, 1,
                         x'7b7d');
                     INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id,
                         receipt_id, at)
                     VALUES ('tx-old', 'old', 'k1', 1, 'Earned (pending until 2026-12-11)',
                         't1', 'r1', 1);",
                )
                .unwrap();
            }
            if (RULES..REASONS).contains(&version) {
                conn.execute("UPDATE ledger SET rule = 'offer:o1'", [])
                    .unwrap();
            }
            if version >= CARD_REVISION {
                // The purchase raised the member's revision; the card (at 0) has not caught up.
                conn.execute("UPDATE members SET revision = 1", []).unwrap();
            }
        }
        let storage = SqliteStorage::open(&path)
            .unwrap_or_else(|e| panic!("a database of version {version} does not upgrade: {e}"));
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
        // The copies of the headers in the member's row (032) agree with the documents.
        let (phone, check) = storage
            .device_and_sync_check("old-phone", "old", 0)
            .await
            .unwrap();
        assert!(phone.is_some(), "version {version}");
        assert_eq!(check.documents.len(), 1, "version {version}: {check:?}");
        assert_eq!(check, storage.sync_check("old", 0).await.unwrap());
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
            // An old ledger row keeps its text and reads with the code its rule implies.
            let page = storage.ledger_page("old", None, 10).await.unwrap();
            let entry = &page[0].entry;
            assert_eq!(entry.reason, "Earned (pending until 2026-12-11)");
            let code = if (RULES..REASONS).contains(&version) {
                ReasonCode::PurchaseOffer
            } else {
                ReasonCode::Other
            };
            assert_eq!(entry.reason_code, code, "version {version}");
            assert_eq!(entry.reason_params, ReasonParams::default());
            assert_eq!(entry.available_at_ms, None);
            // A card behind its ledger when the movements got their revisions (034) is still
            // shown the movement; a card that was up to date (every card before 009) is not.
            let unseen = storage
                .card_source("old", Metric::Spend, 0, 10)
                .await
                .unwrap()
                .expect("the old member's book")
                .unseen;
            let behind = (CARD_REVISION..LEDGER_REVISIONS).contains(&version);
            assert_eq!(unseen.len(), usize::from(behind), "version {version}");
        }
        assert!(matches!(
            storage.create_member(member_named("new")).await.unwrap(),
            MemberCreation::Created
        ));
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
            ..Default::default()
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
        operator: None,
    };
    (posting, oneshot::channel().0)
}

#[tokio::test]
async fn a_posting_that_fails_in_a_group_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
    for id in ["m1", "m22", "m333"] {
        assert!(matches!(
            storage.create_member(member(id)).await.unwrap(),
            MemberCreation::Created
        ));
    }
    let batch = [
        posting("k1", "m1", 10),
        // The same key again: a duplicate, which must not take the others with it.
        posting("k1", "m22", 20),
        posting("k3", "m333", 30),
    ];
    let mut conn = storage.conn.lock().unwrap();
    let results = write_batch(&mut conn, &batch);
    assert!(
        matches!(results[0], Ok(PostOutcome::Posted))
            && matches!(results[2], Ok(PostOutcome::Posted)),
        "{results:?}"
    );
    assert!(matches!(results[1], Ok(PostOutcome::KeyTaken)));
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
    assert!(matches!(results[..], [Ok(PostOutcome::KeyTaken)]));
}

/// The bundled SQLite is built without its two process-wide mutexes on the hot paths
/// (`.cargo/config.toml`): each connection's page cache is its own, and allocations are not
/// counted under a global lock. A build from outside the workspace (which would not read that
/// file) fails here rather than quietly contending again.
#[test]
fn sqlite_is_built_without_its_global_page_cache_and_memory_statistics_locks() {
    let conn = Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
}

/// SQLite's plan for `sql` with `params` bound, its steps joined by "; ".
fn query_plan(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> String {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("; ")
}

#[test]
fn the_database_is_mapped_and_the_reads_of_every_posting_are_covered_by_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let conn = connection(&dir.path().join("s.db")).unwrap();
    let plan = |sql: &str| query_plan(&conn, sql, params!["m1", 0]);
    let mapped: i64 = conn
        .query_row("PRAGMA mmap_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mapped, MMAP_BYTES, "the database is mapped");
    for sql in [OPEN_LOTS_SQL, LOT_BALANCES_SQL] {
        let lots = plan(&sql.replace("?1", "?1 AND ?2 = ?2"));
        assert!(
            lots.contains("COVERING INDEX lots_open_by_member"),
            "{lots}"
        );
    }
    for metric in [Metric::Spend, Metric::Points] {
        let q = plan(qualifying_sql(metric));
        assert!(q.contains("COVERING INDEX postings_by_member"), "{q}");
    }
    // The card's catch-up seeks the movements above its revision, never walks the history.
    let unseen = query_plan(&conn, UNSEEN_MOVEMENTS_SQL, params!["m1", 0, 50]);
    assert!(
        unseen.contains("USING INDEX ledger_by_revision (member_id=? AND revision>?)"),
        "{unseen}"
    );
}

/// A statement with a bound `LIMIT` is prepared once per connection: SQLite would otherwise plan
/// it again at every execution, the parameter being bound again (the planner stability guarantee).
#[test]
fn a_statement_with_a_bound_limit_is_not_prepared_again_at_each_execution() {
    use rusqlite::StatementStatus;
    let dir = tempfile::tempdir().unwrap();
    let conn = connection(&dir.path().join("s.db")).unwrap();
    for (revision, limit) in [(0, 50), (1, 50), (2, 10), (3, 50)] {
        let mut stmt = conn.prepare_cached(UNSEEN_MOVEMENTS_SQL).unwrap();
        let rows = stmt
            .query_map(params!["m1", revision, limit], |_| Ok(()))
            .unwrap()
            .count();
        assert_eq!(rows, 0);
    }
    let stmt = conn.prepare_cached(UNSEEN_MOVEMENTS_SQL).unwrap();
    assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
}

#[test]
fn the_sync_checks_read_document_headers_from_their_index_never_a_documents_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let conn = connection(&dir.path().join("s.db")).unwrap();
    let plan = |sql: &str, params: &[&dyn rusqlite::ToSql]| query_plan(&conn, sql, params);
    // A document's epoch and summary come after its bytes in the row: read from the row, they
    // would walk the overflow pages of every document longer than a few kilobytes.
    let check = plan(&SYNC_CHECK_SQL, params!["m1", 0]);
    assert!(
        check.contains("SEARCH d USING COVERING INDEX documents_headers"),
        "{check}"
    );
    // The sync's first statement reads the copies in the member's row: no document table.
    let first = plan(&DEVICE_AND_CHECK_SQL, params!["m1", 0, "d1"]);
    assert!(
        first.contains("SEARCH dev USING COVERING INDEX devices_for_sync")
            && first.contains("SEARCH m USING INDEX"),
        "{first}"
    );
    assert!(!first.contains("SEARCH d "), "{first}");
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
    assert!(matches!(
        storage.create_member(member("m1")).await.unwrap(),
        MemberCreation::Created
    ));
    assert!(matches!(
        storage.post(posting("till:t:p", "m1", 10).0).await.unwrap(),
        PostOutcome::Posted
    ));
    assert!(matches!(
        storage
            .post(refund("till:t:r1", "till:t:p", 40, 0, 1))
            .await
            .unwrap(),
        PostOutcome::Posted
    ));
    // The member's revision is current, but the shares were computed as if nothing had been
    // refunded: another instance's snapshot, say. The write must not go through.
    assert!(matches!(
        storage
            .post(refund("till:t:r2", "till:t:p", 40, 0, 2))
            .await,
        Ok(PostOutcome::Conflict)
    ));
    assert!(matches!(
        storage
            .post(refund("till:t:r2", "till:t:p", 40, 40, 2))
            .await
            .unwrap(),
        PostOutcome::Posted
    ));
    assert!(matches!(
        storage
            .post(refund("till:t:r3", "till:t:p", 30, 80, 3))
            .await,
        Ok(PostOutcome::RefundExceedsPurchase)
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
    assert!(matches!(
        storage.create_member(member("m1")).await.unwrap(),
        MemberCreation::Created
    ));
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
        Ok(PostOutcome::Conflict)
    ));
    let book = storage
        .member_book("m1", Metric::Spend, 0, None)
        .await
        .unwrap()
        .unwrap();
    assert!(book.blocked);
}

#[test]
fn external_deliveries_recorded_sent_before_delivery_states_read_as_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    // The schema as it was before migration 018, with what the server wrote then.
    migrations().to_version(&mut conn, 17).unwrap();
    conn.execute_batch(
        "INSERT INTO members (member_id, card_number, created_at) VALUES ('m1', 'c1', 0);
         INSERT INTO messages VALUES ('e', 'service', 'email', 's', 'b', 'm1', x'', 0),
                                     ('i', 'service', 'inapp', 's', 'b', 'm1', x'', 0);
         INSERT INTO deliveries (message_id, member_id, kind, channel, day, status, in_inbox,
                                 projected, created_at, updated_at)
         VALUES ('e', 'm1', 'service', 'email', 0, 'sent', 1, 1, 0, 0),
                ('i', 'm1', 'service', 'inapp', 0, 'sent', 1, 1, 0, 0);",
    )
    .unwrap();
    migrations().to_latest(&mut conn).unwrap();
    let rows: Vec<(String, String, i64, i64)> = conn
        .prepare("SELECT message_id, status, projected, version FROM deliveries ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            // Relabelled, and pending for the inbox again so the app shows the truth.
            ("e".to_string(), "logged".to_string(), 0, 2),
            ("i".to_string(), "sent".to_string(), 1, 1),
        ]
    );
}

/// A write that need not wait for the disk runs with `synchronous = NORMAL`, and the writer is
/// back to `FULL` afterwards, also when the write failed: every other commit stays durable.
#[tokio::test]
async fn a_relaxed_write_leaves_the_writer_fully_durable() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
    let level = |c: &mut Connection| {
        c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))
            .map_err(backend)
    };
    // SQLite's numbers: NORMAL is 1, FULL is 2.
    assert_eq!(storage.run(level).await.unwrap(), 2);
    assert_eq!(storage.run_relaxed(level).await.unwrap(), 1);
    assert_eq!(storage.run(level).await.unwrap(), 2);
    let failed = storage
        .run_relaxed(|c| {
            c.execute("INSERT INTO no_such_table VALUES (1)", [])
                .map_err(backend)
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(storage.run(level).await.unwrap(), 2);
}
