//! The PostgreSQL backend against a real PostgreSQL 15 server (`loyalty_tests::postgres`): its
//! schema is SQLite's, table for table and column for column; instances starting together migrate
//! once; a database from a newer program is refused.

use std::collections::BTreeSet;

use loyalty_server::storage::Change;
use loyalty_server::storage::postgres::schema::{MIGRATIONS, SchemaError};
use loyalty_server::storage::postgres::{PgError, PgStorage};
use loyalty_server::storage::sqlite::SqliteStorage;
use loyalty_tests::postgres::{Postgres, psql};
use loyalty_tests::*;

/// The next change `rx` hears (hang guard: 10 s).
async fn next(rx: &mut tokio::sync::mpsc::Receiver<Change>) -> Change {
    let wait = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv());
    wait.await
        .expect("heard in time")
        .expect("the feed is open")
}

/// Announces `tag-N` from `from` until `to` hears one (its listener connects in the background, and
/// what is announced before it listens is lost); then every earlier one has arrived too.
async fn handshake(from: &PgStorage, to: &mut tokio::sync::mpsc::Receiver<Change>, tag: &str) {
    use loyalty_server::storage::ChangeStore;
    for n in 0..100 {
        from.announce(Change::Member(format!("{tag}-{n}"))).unwrap();
        let heard = tokio::time::timeout(std::time::Duration::from_millis(100), to.recv()).await;
        if let Ok(Some(Change::Member(m))) = heard {
            assert!(m.starts_with(tag), "{m}");
            // Later copies may still be on their way: take them so they are not read as news.
            while let Ok(Some(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(300), to.recv()).await
            {
            }
            return;
        }
    }
    panic!("{tag}: never heard (hang guard)");
}

/// Two instances on one database hear each other's changes in order and never their own; an
/// instance whose listening connection is cut reconnects by itself and says it may have missed
/// some ([`Change::Everyone`]) before the next change.
#[test]
fn instances_hear_each_others_changes_and_not_their_own() {
    use loyalty_server::storage::ChangeStore;
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        let a = PgStorage::connect(&url, 2).await.unwrap();
        let b = PgStorage::connect(&url, 2).await.unwrap();
        assert!(a.shared());
        let mut heard_a = a.changes().await.unwrap().expect("a feed");
        let mut heard_b = b.changes().await.unwrap().expect("a feed");
        handshake(&b, &mut heard_a, "b-to-a").await;
        handshake(&a, &mut heard_b, "a-to-b").await;

        a.announce(Change::Member("mbr_from_a".into())).unwrap();
        b.announce(Change::Everyone).unwrap();
        // A's own announcement came first, and a skipped it.
        assert_eq!(next(&mut heard_a).await, Change::Everyone);
        // Announced after that one was heard (announcements queued together go out as one, and
        // everyone covers any member).
        b.announce(Change::Member("mbr_from_b".into())).unwrap();
        assert_eq!(
            next(&mut heard_a).await,
            Change::Member("mbr_from_b".into())
        );
        assert_eq!(
            next(&mut heard_b).await,
            Change::Member("mbr_from_a".into())
        );

        // Cut every listening connection: both reconnect and report the gap.
        let cut = psql(
            &url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN%' AND datname = current_database()",
        );
        assert_eq!(cut, "2");
        assert_eq!(next(&mut heard_a).await, Change::Everyone);
        assert_eq!(next(&mut heard_b).await, Change::Everyone);
        b.announce(Change::Member("mbr_after".into())).unwrap();
        assert_eq!(next(&mut heard_a).await, Change::Member("mbr_after".into()));

        // A burst (a busy instance's purchases) goes out in batched payloads: every member is
        // heard exactly once, though more than fit one payload.
        let burst: std::collections::BTreeSet<String> =
            (0..1_500).map(|i| format!("mbr_burst_{i:06}")).collect();
        for id in &burst {
            b.announce(Change::Member(id.clone())).unwrap();
        }
        let mut heard = std::collections::BTreeSet::new();
        while heard.len() < burst.len() {
            match next(&mut heard_a).await {
                Change::Member(id) => assert!(heard.insert(id), "a member heard twice"),
                Change::Everyone => panic!("no gap and no fan-out here"),
            }
        }
        assert_eq!(heard, burst);
    });
}

#[test]
fn four_instances_starting_together_migrate_the_database_once() {
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        let (a, b, c, d) = tokio::join!(
            PgStorage::connect(&url, 2),
            PgStorage::connect(&url, 2),
            PgStorage::connect(&url, 2),
            PgStorage::connect(&url, 2),
        );
        for storage in [a, b, c, d] {
            let version = storage.unwrap().schema_version().await.unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
        let recorded = psql(
            &url,
            "SELECT count(*), count(DISTINCT version) FROM schema_migrations",
        );
        let n = MIGRATIONS.len();
        assert_eq!(recorded, format!("{n}|{n}"), "each migration once");
        // Starting again applies nothing and changes nothing.
        PgStorage::connect(&url, 1).await.unwrap();
        assert_eq!(
            psql(&url, "SELECT count(*) FROM schema_migrations"),
            n.to_string()
        );
    });
}

/// The columns of every table, as `table.column`, in a fresh SQLite server database.
fn sqlite_columns() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStorage::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .unwrap();
    statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_postgres_schema_has_every_table_and_column_of_the_sqlite_one() {
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        PgStorage::connect(&url, 1).await.unwrap();
        let listed = psql(
            &url,
            "SELECT table_name || '.' || column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'schema_migrations'",
        );
        let postgres: BTreeSet<String> = listed.lines().map(str::to_string).collect();
        let sqlite = sqlite_columns();
        assert!(sqlite.len() > 100, "{} columns read", sqlite.len());
        assert_eq!(
            sqlite.difference(&postgres).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in SQLite only"
        );
        assert_eq!(
            postgres.difference(&sqlite).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in PostgreSQL only"
        );
    });
}

#[test]
fn a_database_migrated_by_a_newer_program_is_refused_and_left_alone() {
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        PgStorage::connect(&url, 1).await.unwrap();
        let newer = MIGRATIONS.len() + 1;
        psql(
            &url,
            &format!("INSERT INTO schema_migrations (version, name) VALUES ({newer}, 'future')"),
        );
        match PgStorage::connect(&url, 1).await {
            Err(PgError::Schema(SchemaError::Newer { found, known })) => {
                assert_eq!((found, known), (newer as i64, MIGRATIONS.len() as i64));
            }
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("a newer database was accepted"),
        }
        assert_eq!(
            psql(&url, "SELECT max(version) FROM schema_migrations"),
            newer.to_string()
        );
        let bad = PgStorage::connect("postgres://loyalty@127.0.0.1:1/x?connect_timeout=1", 1).await;
        assert!(
            matches!(bad, Err(PgError::Connect(_))),
            "an unreachable server is named as such"
        );
        let malformed = PgStorage::connect("postgres://[nonsense", 1).await;
        assert!(matches!(malformed, Err(PgError::Url(_))));
    });
}

/// A fresh database at the version before `migration`, its migrations recorded as the program
/// records them, so that connecting upgrades it from there.
fn migrated_to_before(url: &str, migration: &str) {
    let before = MIGRATIONS
        .iter()
        .position(|(name, _)| *name == migration)
        .unwrap_or_else(|| panic!("no migration {migration}"));
    psql(
        url,
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    );
    for (i, (name, sql)) in MIGRATIONS[..before].iter().enumerate() {
        psql(url, sql);
        psql(
            url,
            &format!(
                "INSERT INTO schema_migrations (version, name) VALUES ({}, '{name}')",
                i + 1
            ),
        );
    }
}

/// Members and documents written before the header copies (a database at the version before
/// `032_member_document_headers`) are checked, after the upgrade, from the copies it filled in:
/// the same answer as from the documents themselves, for a member with documents and one without.
#[test]
fn members_from_before_the_header_copies_are_checked_from_copies_of_their_documents() {
    use loyalty_server::storage::MemberStore;
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        migrated_to_before(&url, "032_member_document_headers");
        psql(
            &url,
            "INSERT INTO members (member_id, card_number, external_ref, created_at)
                 VALUES ('old', '6270000000000009', NULL, 1), ('bare', '6270000000000017', NULL, 1);
             INSERT INTO documents (member_id, kind, version, data, epoch, summary_digest,
                 summary_ops, summary_changes)
                 VALUES ('old', 0, 7, '\\x01', 2, '\\x0102030405060708', 40, 4),
                        ('old', 2, 3, '\\x02', 0, NULL, NULL, NULL);
             INSERT INTO devices (device_id, member_id, secret_hash, name, created_at)
                 VALUES ('old-phone', 'old', decode(repeat('00', 32), 'hex'), 'phone', 1),
                        ('bare-phone', 'bare', decode(repeat('00', 32), 'hex'), 'phone', 1);",
        );
        let storage = PgStorage::connect(&url, 1).await.expect("the upgrade");
        let mut checks = Vec::new();
        for (device, member, documents) in [("old-phone", "old", 2), ("bare-phone", "bare", 0)] {
            let (found, check) = storage
                .device_and_sync_check(device, member, 0)
                .await
                .unwrap();
            assert!(found.is_some(), "{device}");
            assert_eq!(check.documents.len(), documents, "{check:?}");
            assert_eq!(check, storage.sync_check(member, 0).await.unwrap());
            checks.push(check);
        }
        let card = &checks[0].documents[0];
        assert_eq!((card.version, card.epoch), (7, 2));
        assert_eq!(
            card.summary.map(|s| (s.digest, s.ops)),
            Some(([1, 2, 3, 4, 5, 6, 7, 8], 40))
        );
    });
}

/// A ledger row written before structured reasons (a database at the version before
/// `021_ledger_reasons`) reads back after the upgrade with its text kept and the code its rule implies.
#[test]
fn a_ledger_row_from_before_reasons_reads_with_the_code_its_rule_implies() {
    use loyalty_core::reasons::{ReasonCode, ReasonParams};
    use loyalty_server::storage::HistoryStore;
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        migrated_to_before(&url, "021_ledger_reasons");
        psql(
            &url,
            "INSERT INTO members (member_id, card_number, external_ref, created_at)
                 VALUES ('old', '6270000000000009', NULL, 1);
             INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to,
                 till_id, receipt_id, total_minor, earned, redeemed, at, response)
                 VALUES ('till:t1:k1', '\\x00', 'old', 'purchase', NULL, 't1', 'r1', 100, 1, 0, 1,
                 '\\x7b7d');
             INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id,
                 at, rule)
                 VALUES ('tx-old', 'old', 'till:t1:k1', 1, 'Offer (pending until 2026-12-11)',
                 't1', 'r1', 1, 'offer:o1');",
        );
        let storage = PgStorage::connect(&url, 1).await.expect("the upgrade");
        assert_eq!(
            storage.schema_version().await.unwrap(),
            MIGRATIONS.len() as i64
        );
        let page = storage.ledger_page("old", None, 10).await.unwrap();
        let entry = &page[0].entry;
        assert_eq!(
            (entry.reason.as_str(), entry.reason_code),
            (
                "Offer (pending until 2026-12-11)",
                ReasonCode::PurchaseOffer
            )
        );
        assert_eq!(entry.reason_params, ReasonParams::default());
        assert_eq!(entry.available_at_ms, None);
    });
}

/// Movements posted before they carried the member's revision (a database at the version before
/// `033_ledger_revisions`) are new, after the upgrade, to a card that was behind its ledger, and
/// not to a card that was up to date: the card's catch-up reads only what it has not shown.
#[test]
fn movements_from_before_their_revisions_are_new_only_to_a_card_behind_them() {
    use loyalty_server::storage::LedgerStore;
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        migrated_to_before(&url, "033_ledger_revisions");
        psql(
            &url,
            "INSERT INTO members (member_id, card_number, external_ref, created_at, revision,
                 card_revision)
                 VALUES ('behind', '6270000000000009', NULL, 1, 2, 1),
                        ('current', '6270000000000017', NULL, 1, 1, 1);
             INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to,
                 till_id, receipt_id, total_minor, earned, redeemed, at, response)
                 VALUES ('till:t1:k1', '\\x00', 'behind', 'purchase', NULL, 't1', 'r1', 100, 1,
                         0, 1, '\\x7b7d'),
                        ('till:t1:k2', '\\x00', 'current', 'purchase', NULL, 't1', 'r2', 100, 1,
                         0, 1, '\\x7b7d');
             INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id,
                 at, rule)
                 VALUES ('tx-1', 'behind', 'till:t1:k1', 1, 'Earned', 't1', 'r1', 1, 'base'),
                        ('tx-2', 'behind', 'till:t1:k1', 2, 'Earned', 't1', 'r1', 2, 'base'),
                        ('tx-3', 'current', 'till:t1:k2', 1, 'Earned', 't1', 'r2', 1, 'base');",
        );
        let storage = PgStorage::connect(&url, 1).await.expect("the upgrade");
        for (member, expected) in [("behind", &["tx-2", "tx-1"][..]), ("current", &[])] {
            let source = storage
                .card_source(member, loyalty_core::tiers::Metric::Spend, 0, 10)
                .await
                .unwrap()
                .expect("the member's book");
            let unseen: Vec<_> = source.unseen.iter().map(|e| e.tx_id.as_str()).collect();
            assert_eq!(unseen, expected, "{member}");
        }
    });
}

/// The card's catch-up seeks the movements above its revision by their index, also in the generic
/// plan a prepared statement settles on, never walking the member's history by time.
#[test]
fn the_catch_up_reads_movements_by_revision_in_the_generic_plan() {
    use loyalty_server::storage::postgres::UNSEEN_MOVEMENTS_SQL;
    let pg = Postgres::get();
    let url = pg.database();
    rt().block_on(PgStorage::connect(&url, 1))
        .expect("migrated");
    // A member with a long history, statistics taken: the time index is then the cheap-looking
    // way to the newest fifty.
    psql(
        &url,
        "INSERT INTO members (member_id, card_number, external_ref, created_at)
             SELECT 'm' || i, lpad(i::TEXT, 16, '0'), NULL, 1 FROM generate_series(1, 100) i;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to,
             till_id, receipt_id, total_minor, earned, redeemed, at, response)
             SELECT 'k' || i, '\\x00', 'm' || (i % 100 + 1), 'purchase', NULL, 't1', 'r', 1, 1,
                    0, i, '\\x00' FROM generate_series(1, 20000) i;
         INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
             revision)
             SELECT 'tx' || i, 'm' || (i % 100 + 1), 'k' || i, 1, 'r', 't1', 'r', i, i / 100
             FROM generate_series(1, 20000) i;
         ANALYZE ledger;",
    );
    let plan = psql(
        &url,
        &format!(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE unseen (TEXT, BIGINT, BIGINT) AS {UNSEEN_MOVEMENTS_SQL};
             EXPLAIN EXECUTE unseen ('m5', 199, 50);"
        ),
    );
    assert!(plan.contains("ledger_by_revision"), "{plan}");
    assert!(!plan.contains("ledger_by_member"), "{plan}");
}

/// The whole conformance suite, unchanged, on PostgreSQL: each test on a fresh database.
mod conformance {
    loyalty_server::storage_conformance!({
        let pg = loyalty_tests::postgres::Postgres::get();
        let storage = loyalty_server::storage::postgres::PgStorage::connect(&pg.database(), 8)
            .await
            .expect("a migrated database");
        (
            pg,
            std::sync::Arc::new(storage) as std::sync::Arc<dyn loyalty_server::storage::Storage>,
        )
    });
}

/// The segment batch job on PostgreSQL (set-based SQL, `storage/postgres/segments.rs`) reaches the
/// same RFM scores, segment memberships and standing-offer fan-outs as SQLite's, on members with
/// ties, refunds, a purchase outside the window and a member who no longer buys; and a second run
/// only adds members who newly qualify.
///
/// Beside `loyalty_tests::tamper`, this is the one test that writes and reads a server's tables in
/// SQL, the same text on both backends: it compares the two jobs row for row (every score,
/// membership and fan-out), and no storage trait lists another member's RFM row or a segment's
/// members — by design, as no operator needs them. The conformance suite checks the same job
/// through the traits alone.
#[test]
fn the_segment_job_on_postgres_decides_as_on_sqlite() {
    use loyalty_core::api::OfferTarget;
    use loyalty_core::offers::{Offer, Reward};
    use loyalty_core::segments::{ScoreRange, Segment, SegmentRules};
    use loyalty_server::storage::{
        DEFAULT_RFM_WINDOW_MS, OfferStore, Publication, RecomputeReport,
    };

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;
    let members = [
        ("a", "base", 10),
        ("b", "gold", 20),
        ("c", "gold", 30),
        ("d", "base", 40),
        ("e", "base", 50),
        ("lapsed", "gold", 60),
        ("none", "gold", 70),
    ];
    // (member, kind, total, days ago): b and c tie; d refunds most of its spend; lapsed bought
    // only before the window.
    let postings = [
        ("a", "purchase", 1_000, 300),
        ("b", "purchase", 5_000, 30),
        ("b", "purchase", 5_000, 20),
        ("c", "purchase", 5_000, 30),
        ("c", "purchase", 5_000, 20),
        ("d", "purchase", 90_000, 10),
        ("d", "refund", 85_000, 9),
        ("e", "purchase", 20_000, 1),
        ("e", "purchase", 20_000, 2),
        ("e", "purchase", 20_000, 3),
        ("lapsed", "purchase", 7_000, 400),
    ];
    let rows = |bytes: &str| {
        let mut sql = String::new();
        for (id, tier, created) in members {
            sql += &format!(
                "INSERT INTO members (member_id, card_number, created_at, tier)
                 VALUES ('{id}', '{id}', {created}, '{tier}');"
            );
        }
        for (i, (id, kind, total, ago)) in postings.iter().enumerate() {
            sql += &format!(
                "INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id,
                                       receipt_id, total_minor, earned, redeemed, at, response)
                 VALUES ('k{i}', {bytes}, '{id}', '{kind}', 't', 'r', {total}, 0, 0, {}, {bytes});",
                NOW - ago * DAY
            );
        }
        sql
    };
    let segments = [
        Segment {
            id: "loyal".into(),
            name: "Frequent gold".into(),
            rules: SegmentRules {
                frequency: Some(ScoreRange { min: 3, max: 5 }),
                tiers: vec!["gold".into()],
                ..SegmentRules::default()
            },
        },
        Segment {
            id: "early".into(),
            name: "Enrolled early, low spend".into(),
            rules: SegmentRules {
                monetary: Some(ScoreRange { min: 0, max: 2 }),
                enrolled_until_ms: Some(45),
                ..SegmentRules::default()
            },
        },
    ];
    let offer = Offer {
        id: "o1".into(),
        title: "Double points".into(),
        description: String::new(),
        terms: String::new(),
        valid_from_ms: NOW - DAY,
        valid_until_ms: NOW + DAY,
        needs_activation: false,
        reward: Reward::PointsMultiplier,
        value: 200,
        category: String::new(),
        min_spend_minor: 0,
        use_limit: 0,
        use_count: 0,
    };
    // Runs the job twice (a new gold member joins in between) and reads what it decided.
    async fn run(
        s: &dyn OfferStore,
        segments: &[Segment],
        offer: &Offer,
        add_member: impl Fn(),
        read: impl Fn() -> String,
    ) -> (RecomputeReport, RecomputeReport, String) {
        for segment in segments {
            let _ = s.create_segment(segment, NOW).await.unwrap();
        }
        let target = OfferTarget::Tier {
            tier: "gold".into(),
        };
        let published = s.publish_offer(offer, &target, NOW).await.unwrap();
        assert!(matches!(published, Publication::Published(ref p) if p.members == 4));
        let first = s
            .recompute_segments(NOW, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
            .await
            .unwrap();
        add_member();
        let second = s
            .recompute_segments(NOW, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
            .await
            .unwrap();
        (first, second, read())
    }
    let decided = "SELECT 'rfm ' || member_id || ' ' || recency || frequency || monetary || ' '
                          || purchases || ' ' || spend_minor FROM member_rfm
                   UNION ALL SELECT 'seg ' || segment_id || ' ' || member_id FROM segment_members
                   UNION ALL SELECT 'offer ' || offer_id || ' ' || member_id FROM offer_members
                   UNION ALL SELECT 'count ' || segment_id || ' ' || member_count FROM segments
                   UNION ALL SELECT 'count ' || offer_id || ' ' || member_count FROM offers
                   UNION ALL SELECT 'run ' || computed_at || ' ' || coalesce(previous_at, -1)
                             FROM rfm_runs
                   UNION ALL SELECT 'move ' || computed_at || ' ' || dimension || ' '
                                    || from_score || to_score || ' ' || members FROM rfm_moves";
    let newcomer = "INSERT INTO members (member_id, card_number, created_at, tier)
                    VALUES ('new', 'new', 80, 'gold')";
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines.join("\n")
    };

    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let sqlite = SqliteStorage::open(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&rows("x''")).unwrap();
        let on_sqlite = run(
            &sqlite,
            &segments,
            &offer,
            || {
                conn.execute(newcomer, []).unwrap();
            },
            || {
                let mut stmt = conn.prepare(decided).unwrap();
                let lines: Vec<String> = stmt
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                sorted(lines.join("\n"))
            },
        )
        .await;

        let pg = Postgres::get();
        let url = pg.database();
        let postgres = PgStorage::connect(&url, 4).await.unwrap();
        psql(&url, &rows("'\\x'::bytea"));
        let on_postgres = run(
            &postgres,
            &segments,
            &offer,
            || {
                psql(&url, newcomer);
            },
            || sorted(psql(&url, decided)),
        )
        .await;

        assert_eq!(on_postgres.0, on_sqlite.0, "first run");
        assert_eq!(on_postgres.1, on_sqlite.1, "second run");
        assert_eq!(on_postgres.2, on_sqlite.2, "rows decided");
        // The data is not degenerate: scores differ, both segments have members, the newcomer
        // got the standing offer on the second run only.
        assert_eq!(on_sqlite.0.scored_members, 5);
        assert!(
            on_sqlite.0.segments.iter().all(|(_, n)| *n > 0),
            "{:?}",
            on_sqlite.0
        );
        assert_eq!(on_sqlite.0.offers, vec![("o1".to_string(), 0)]);
        assert_eq!(on_sqlite.1.offers, vec![("o1".to_string(), 1)]);
        assert!(on_sqlite.2.contains("rfm e 555 3 60000"), "{}", on_sqlite.2);
        // The second run (at the same time, so it replaced the first) found every score where
        // the first left it: e stayed at 5 in recency.
        assert!(
            on_sqlite.2.contains(&format!("move {NOW} recency 55 1\n"))
                && on_sqlite.2.contains(&format!("run {NOW} -1")),
            "{}",
            on_sqlite.2
        );
    });
}

/// The job keeps the latest recorded RFM runs only (`KEPT_RFM_RUNS`), their cells with them, and
/// a rerun at the same time replaces its run: PostgreSQL's own statements for what SQLite's unit
/// test checks (`storage/sqlite/rfm_moves.rs`).
#[test]
fn the_postgres_job_keeps_the_latest_rfm_runs() {
    use loyalty_server::storage::{DEFAULT_RFM_WINDOW_MS, KEPT_RFM_RUNS, OfferStore};
    const NOW: i64 = 1_800_000_000_000;
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        let s = PgStorage::connect(&url, 2).await.unwrap();
        psql(
            &url,
            "INSERT INTO members (member_id, card_number, created_at, tier)
             VALUES ('a', 'a', 0, 'base');
             INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id,
                                   receipt_id, total_minor, earned, redeemed, at, response)
             VALUES ('k', '\\x', 'a', 'purchase', 't', 'r', 100, 0, 0, 1799999999000, '\\x')",
        );
        for at in 1..=KEPT_RFM_RUNS + 2 {
            s.recompute_segments(NOW + at, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
                .await
                .unwrap();
        }
        let last = NOW + KEPT_RFM_RUNS + 2;
        s.recompute_segments(last, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
            .await
            .unwrap();
        assert_eq!(
            psql(
                &url,
                "SELECT count(*) || ' ' || min(computed_at) || ' ' || max(previous_at)
                        || ' ' || (SELECT count(*) FROM rfm_moves) FROM rfm_runs"
            ),
            format!(
                "{KEPT_RFM_RUNS} {} {} {}",
                NOW + 3,
                last - 1,
                // One buyer, at 1 in every dimension in every run kept: three cells (1 → 1)
                // each; the first run's 0 → 1 went with it.
                3 * KEPT_RFM_RUNS
            )
        );
        assert_eq!(
            psql(
                &url,
                &format!("SELECT count(*) FROM rfm_moves WHERE computed_at = {last}")
            ),
            "3",
            "the rerun's cells, not both"
        );
    });
}

/// `loyalty admin segments recompute --database postgres://…` runs the batch job on PostgreSQL:
/// the segment is computed and the steps are printed; a wrong URL is an error naming the cause.
#[test]
fn the_recompute_command_runs_on_a_postgres_url() {
    use loyalty_core::segments::{Segment, SegmentRules};
    use loyalty_server::storage::{OfferStore, SegmentCreation};
    rt().block_on(async {
        let pg = Postgres::get();
        let url = pg.database();
        let storage = PgStorage::connect(&url, 2).await.unwrap();
        psql(
            &url,
            "INSERT INTO members (member_id, card_number, created_at, tier)
             VALUES ('m1', 'c1', 0, 'gold'), ('m2', 'c2', 0, 'base')",
        );
        let gold = Segment {
            id: "gold".into(),
            name: "Gold".into(),
            rules: SegmentRules {
                tiers: vec!["gold".into()],
                ..SegmentRules::default()
            },
        };
        let created = storage.create_segment(&gold, 1).await.unwrap();
        assert_eq!(created, SegmentCreation::Created);
        let run = |database: String| {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(loyalty_bin())
                    .args(["admin", "segments", "recompute", "--database", &database])
                    .output()
                    .unwrap()
            })
        };
        let done = run(url.clone()).await.unwrap();
        assert!(done.status.success(), "{done:?}");
        let printed = String::from_utf8_lossy(&done.stdout);
        assert!(
            printed.contains("segment 1/1 `gold`: 1 members"),
            "{printed}"
        );
        assert_eq!(storage.segments().await.unwrap()[0].members, 1);
        assert_eq!(psql(&url, "SELECT member_id FROM segment_members"), "m1");

        // While another recompute holds the database's recompute lock (here a session holding
        // it), a second one does nothing and says so: every instance may run the job.
        let mut holder = std::process::Command::new("psql")
            .args([&url, "-X", "-c"])
            .arg(format!(
                "SELECT pg_advisory_lock({}); SELECT pg_sleep(60)",
                0x4c4f_5941_4c52_464d_i64
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // pg_locks is the whole server's: only this database's recompute lock counts (other
        // tests' migrations hold advisory locks of their own meanwhile).
        let held = "FROM pg_locks WHERE locktype = 'advisory' AND classid = 1280268609
                      AND objid = 1280460365
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        while psql(&url, &format!("SELECT count(*) {held}")) == "0" {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let skipped = run(url.clone()).await.unwrap();
        // The holder's session ends (its backend is still in pg_sleep: killing psql would not
        // end it), and the lock with it.
        psql(&url, &format!("SELECT pg_terminate_backend(pid) {held}"));
        let _ = holder.wait();
        assert!(skipped.status.success(), "{skipped:?}");
        assert!(
            String::from_utf8_lossy(&skipped.stdout).contains("another recompute is running"),
            "{skipped:?}"
        );
        let again = run(url.clone()).await.unwrap();
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("segment 1/1 `gold`: 1 members"),
            "the lock went with the session that held it: {again:?}"
        );
        let refused = run("postgres://loyalty@127.0.0.1:1/x?connect_timeout=1".into())
            .await
            .unwrap();
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("database connection"),
            "{refused:?}"
        );
    });
}

/// `loyalty server` on a PostgreSQL database it cannot use stops at once with PostgreSQL's own
/// reason, and never prints the URL's password.
#[test]
fn a_server_on_a_database_it_cannot_open_says_why() {
    let pg = Postgres::get();
    let base = pg.url();
    let at = base.rfind('/').unwrap();
    let url =
        format!("{}/no_such_database", &base[..at]).replacen("loyalty@", "loyalty:s3cret@", 1);
    let out = std::process::Command::new(loyalty_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--database", &url])
        .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database \"no_such_database\" does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret") && !String::from_utf8_lossy(&out.stdout).contains("s3cret"));
}
