//! Programme benchmark: RFM scores, segments and offer fan-out for a million members on the
//! embedded server's SQLite database. Run with `cargo bench -p loyalty-tests --bench programme`;
//! `PROGRAMME_MEMBERS=100000` for a quick run.
//!
//! Seeding (members, a skewed spread of purchases and refunds, preferences) is bulk SQL in one
//! transaction and reported apart. The timed part is what an operator's week costs: the batch job
//! recomputing RFM and the segments on the database file, then two offers published over HTTP to
//! the real server, one to a mid-sized segment and one to every member. Then a second recompute
//! (the nightly steady state) and the per-sync check for offers waiting to be projected. Peak
//! memory is the process's VmHWM, reset after seeding; database growth counts the -wal file.

use std::path::Path;
use std::time::Instant;

use loyalty_core::api::{OfferTarget, PostOffer, PostSegment, PostTargetedOffer};
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::offers::Reward;
use loyalty_core::segments::{ScoreRange, SegmentRules};
use loyalty_server::storage::sqlite::SqliteStorage;
use loyalty_server::storage::{DEFAULT_RFM_WINDOW_MS, OfferStore};
use loyalty_tests::TestServer;
use loyalty_tests::memory::{peak_kib, reset_peak};

const DAY: i64 = 86_400_000;

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Database, WAL and shared-memory file sizes, in bytes.
fn sizes(db: &Path) -> (u64, u64, u64) {
    let with = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        file_size(Path::new(&p))
    };
    (file_size(db), with("-wal"), with("-shm"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Members with a skewed spread of purchases over two years: 30% never buy, most buy a few times,
/// a few per cent buy weekly; a third of buyers lapsed months ago. 3% of purchases are half
/// refunded. 37% of members like coffee. Tiers: 70% base, 20% silver, 10% gold.
fn seed(db: &Path, members: i64, now: i64) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("open for seeding");
    // Seeding only: the figures are about what comes after. `drawn` is materialised because
    // SQLite would otherwise inline `r` and draw a new random number at every use.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA foreign_keys = ON;",
    )
    .expect("pragmas");
    let rnd = "(random() & 9223372036854775807)";
    let sql = format!(
        "BEGIN;
         CREATE TEMP TABLE nums (i INTEGER PRIMARY KEY);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 59)
         INSERT INTO nums SELECT i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {members} - 1)
         INSERT INTO members (member_id, card_number, created_at, tier)
         SELECT 'mbr_' || lower(hex(randomblob(12))), printf('627%013d', i),
                {now} - {rnd} % (5 * 365 * {DAY}),
                CASE {rnd} % 10 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' WHEN 2 THEN 'silver'
                     ELSE 'base' END
         FROM n;
                  CREATE TEMP TABLE buyers AS
         WITH drawn AS MATERIALIZED (SELECT member_id, {rnd} % 100 AS r FROM members)
         SELECT member_id,
                CASE WHEN r < 30 THEN 0
                     WHEN r < 60 THEN 1 + {rnd} % 2
                     WHEN r < 85 THEN 3 + {rnd} % 6
                     WHEN r < 97 THEN 9 + {rnd} % 16
                     ELSE 25 + {rnd} % 36 END AS k,
                CASE WHEN {rnd} % 3 = 0 THEN {rnd} % (365 * {DAY}) ELSE 0 END AS lapse
                  FROM drawn;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id, receipt_id,
                               total_minor, earned, redeemed, at, response)
         SELECT b.member_id || '-' || n.i, x'', b.member_id, 'purchase', 'till-' || ({rnd} % 500),
                'R-' || n.i,
                300 + {rnd} % 6000 + CASE WHEN {rnd} % 20 = 0 THEN {rnd} % 30000 ELSE 0 END,
                0, 0, {now} - b.lapse - {rnd} % (365 * {DAY}), x''
         FROM buyers b JOIN nums n ON n.i < b.k;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                               receipt_id, total_minor, earned, redeemed, at, response)
         SELECT idempotency_key || '-r', x'', member_id, 'refund', idempotency_key, till_id,
                receipt_id || 'r', total_minor / 2, 0, 0, min(at + {DAY}, {now}), x''
         FROM postings WHERE kind = 'purchase' AND (random() & 127) < 4;
         INSERT INTO member_preferences (member_id, key, value)
         SELECT member_id, 'coffee', 'yes' FROM members WHERE (random() & 7) < 3;
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);"
    );
    conn.execute_batch(&sql).expect("seed");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    (
        count("SELECT count(*) FROM postings WHERE kind = 'purchase'"),
        count("SELECT count(*) FROM postings WHERE kind = 'refund'"),
    )
}

fn offer(id: &str, now: i64) -> PostOffer {
    PostOffer {
        id: Some(id.into()),
        title: "Double points on coffee".into(),
        description: "All coffee, this fortnight".into(),
        terms: "Once per member".into(),
        valid_from_ms: now,
        valid_until_ms: now + 14 * DAY,
        needs_activation: true,
        reward: Reward::PointsMultiplier,
        value: 200,
        category: "coffee".into(),
        min_spend_minor: 0,
        use_limit: 1,
    }
}

fn main() {
    let members: i64 = std::env::var("PROGRAMME_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("server.db");
    let now = SystemClock.now_ms();

    // The server's schema, from its own migrations.
    drop(SqliteStorage::open(&db).expect("create the server database"));
    let t = Instant::now();
    let (purchases, refunds) = seed(&db, members, now);
    let seeding = t.elapsed();
    let before = sizes(&db);
    println!(
        "seeded {members} members, {purchases} purchases, {refunds} refunds in {:.1} s (not counted)",
        seeding.as_secs_f64()
    );
    // Peak memory from here on, not the seeding's page cache.
    reset_peak("self");

    rt.block_on(async {
        let server = TestServer::start_with(
            db.clone(),
            "127.0.0.1:0",
            std::sync::Arc::new(SystemClock),
            |_| {},
        )
        .await;
        let op = server.operator();
        for (id, rules) in [
            (
                "active-coffee",
                SegmentRules {
                    recency: Some(ScoreRange { min: 4, max: 5 }),
                    preferences: [("coffee".into(), "yes".into())].into(),
                    ..Default::default()
                },
            ),
            ("everyone", SegmentRules::default()),
        ] {
            op.create_segment(&PostSegment {
                id: Some(id.into()),
                name: id.into(),
                rules,
            })
            .await
            .expect("segment");
        }

        let recompute = |label: &'static str| {
            let db = db.clone();
            async move {
                let storage = SqliteStorage::open(&db).expect("open");
                let t = Instant::now();
                let report = storage
                    .recompute_segments(
                        SystemClock.now_ms(),
                        DEFAULT_RFM_WINDOW_MS,
                        Box::new(move |line| eprintln!("  [{label}] {line}")),
                    )
                    .await
                    .expect("recompute");
                Ok::<_, std::convert::Infallible>((t.elapsed(), report))
            }
        };
        let (first, report) = recompute("recompute").await.expect("task");
        let t = Instant::now();
        let small = op
            .publish_offer(&PostTargetedOffer {
                offer: offer("coffee-x2", now),
                target: OfferTarget::Segment {
                    segment_id: "active-coffee".into(),
                },
            })
            .await
            .expect("publish to a segment");
        let small_time = t.elapsed();
        let t = Instant::now();
        let all = op
            .publish_offer(&PostTargetedOffer {
                offer: offer("everyone-x2", now),
                target: OfferTarget::Segment {
                    segment_id: "everyone".into(),
                },
            })
            .await
            .expect("publish to everyone");
        let all_time = t.elapsed();
        let total = first + small_time + all_time;
        let peak = peak_kib("self");
        let after = sizes(&db);
        let (again, _) = recompute("again").await.expect("task");

        // The per-sync check once everyone's documents show their offers.
        {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.busy_timeout(std::time::Duration::from_secs(60))
                .expect("busy timeout");
            conn.execute(
                "UPDATE offer_members SET projected_version = 1, projected_uses = uses",
                [],
            )
            .expect("mark projected");
        }
        let storage = SqliteStorage::open(&db).expect("open");
        let programme = &storage;
        let ids: Vec<String> = {
            let conn = rusqlite::Connection::open(&db).expect("open");
            let mut s = conn
                .prepare("SELECT member_id FROM members ORDER BY random() LIMIT 1000")
                .expect("sample");
            s.query_map([], |r| r.get(0))
                .expect("sample")
                .collect::<Result<_, _>>()
                .expect("sample")
        };
        let t = Instant::now();
        for id in &ids {
            let pending = programme.pending_offers(id, now).await.expect("pending");
            assert!(pending.is_empty());
        }
        let check = t.elapsed().as_secs_f64() * 1e6 / ids.len() as f64;

        let segment = |id: &str| {
            report
                .segments
                .iter()
                .find(|(s, _)| s == id)
                .map_or(0, |(_, n)| *n)
        };
        println!();
        println!("| {members} members, {purchases} purchases, {refunds} refunds | figure |");
        println!("|---|---|");
        println!(
            "| recompute: RFM scores ({} buyers) + 2 segments (`active-coffee` {}, `everyone` {}) | {:.1} s |",
            report.scored_members,
            segment("active-coffee"),
            segment("everyone"),
            first.as_secs_f64()
        );
        println!(
            "| publish to `active-coffee` over HTTP ({} members) | {:.2} s |",
            small.members,
            small_time.as_secs_f64()
        );
        println!(
            "| publish to `everyone` over HTTP ({} members) | {:.1} s |",
            all.members,
            all_time.as_secs_f64()
        );
        println!(
            "| **total: recompute + both fan-outs** | **{:.1} s** |",
            total.as_secs_f64()
        );
        println!(
            "| peak memory of the process (VmHWM, server + batch job) | {:.0} MiB |",
            peak as f64 / 1024.0
        );
        println!(
            "| database before (file + wal) | {:.0} + {:.0} MiB |",
            mib(before.0),
            mib(before.1)
        );
        println!(
            "| database after (file + wal) | {:.0} + {:.0} MiB (+{:.0} MiB) |",
            mib(after.0),
            mib(after.1),
            mib((after.0 + after.1).saturating_sub(before.0 + before.1))
        );
        println!(
            "| recompute again, nothing changed (the nightly steady state) | {:.1} s |",
            again.as_secs_f64()
        );
        println!("| per-sync check for offers waiting to be projected | {check:.0} µs |");
        server.stop().await;
    });
}
