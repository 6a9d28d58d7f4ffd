//! The programme benchmark on PostgreSQL: RFM scores, segments and offer fan-out for a million
//! members (`tests/benches/programme.rs` on SQLite; the same operator's week, the same skewed
//! purchases). Run with `cargo bench -p loyalty-tests --bench programme_pg`;
//! `PROGRAMME_MEMBERS=100000` for a quick run. It starts a PostgreSQL 15 of its own (Debian's, in a
//! temporary folder; no fsync, as for the tests: the figures are about the work, and a batch job
//! commits a handful of times).
//!
//! Seeding is bulk SQL (`generate_series`) and reported apart. Timed: the batch job's recompute
//! through `OfferStore` on its own connection, then two offers published through the server's
//! publish service (what its HTTP handler calls; see below), one to a mid-sized segment and one to
//! every member; then a second
//! recompute (the nightly steady state). Memory is this process's peak (server and job client)
//! and the largest peak of any PostgreSQL process (the job's backend does the work).

use std::time::Instant;

use loyalty_core::api::{OfferTarget, PostOffer, PostSegment};
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::offers::Reward;
use loyalty_core::segments::{ScoreRange, SegmentRules};
use loyalty_server::storage::postgres::PgStorage;
use loyalty_server::storage::{DEFAULT_RFM_WINDOW_MS, OfferStore};
use loyalty_tests::TestServer;
use loyalty_tests::memory::{peak_kib, postgres_peak_kib, reset_peak};
use loyalty_tests::postgres::{Postgres, psql};

const DAY: i64 = 86_400_000;

/// The same population as the SQLite bench: 30% never buy, most buy a few times, a few per cent
/// weekly; a third of buyers lapsed months ago; 3% of purchases half refunded; 37% like coffee;
/// tiers 70% base, 20% silver, 10% gold.
fn seed(url: &str, members: i64, now: i64) -> (i64, i64) {
    let sql = format!(
        "SET synchronous_commit = off;
         INSERT INTO members (member_id, card_number, created_at, tier)
         SELECT 'mbr_' || md5(i::text || random()::text), '627' || lpad(i::text, 13, '0'),
                {now} - floor(random() * 5 * 365 * {DAY})::bigint,
                CASE floor(random() * 10)::int WHEN 0 THEN 'gold' WHEN 1 THEN 'silver'
                     WHEN 2 THEN 'silver' ELSE 'base' END
         FROM generate_series(0, {members} - 1) AS g(i);
         CREATE TEMP TABLE buyers AS
         SELECT member_id,
                CASE WHEN r < 30 THEN 0
                     WHEN r < 60 THEN 1 + floor(random() * 2)::int
                     WHEN r < 85 THEN 3 + floor(random() * 6)::int
                     WHEN r < 97 THEN 9 + floor(random() * 16)::int
                     ELSE 25 + floor(random() * 36)::int END AS k,
                CASE WHEN random() < 1.0 / 3 THEN floor(random() * 365 * {DAY})::bigint
                     ELSE 0 END AS lapse
         FROM (SELECT member_id, floor(random() * 100)::int AS r FROM members) d;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id, receipt_id,
                               total_minor, earned, redeemed, at, response)
         SELECT b.member_id || '-' || n.i, '\\x'::bytea, b.member_id, 'purchase',
                'till-' || floor(random() * 500)::int, 'R-' || n.i,
                300 + floor(random() * 6000)::bigint
                    + CASE WHEN random() < 0.05 THEN floor(random() * 30000)::bigint ELSE 0 END,
                0, 0, {now} - b.lapse - floor(random() * 365 * {DAY})::bigint, '\\x'::bytea
         FROM buyers b JOIN generate_series(0, 59) AS n(i) ON n.i < b.k;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                               receipt_id, total_minor, earned, redeemed, at, response)
         SELECT idempotency_key || '-r', '\\x'::bytea, member_id, 'refund', idempotency_key,
                till_id, receipt_id || 'r', total_minor / 2, 0, 0, least(at + {DAY}, {now}),
                '\\x'::bytea
         FROM postings WHERE kind = 'purchase' AND random() < 4.0 / 128;
         INSERT INTO member_preferences (member_id, key, value)
         SELECT member_id, 'coffee', 'yes' FROM members WHERE random() < 3.0 / 8;"
    );
    psql(url, &sql);
    // As autovacuum would soon after a bulk load: visibility map and statistics.
    psql(url, "VACUUM ANALYZE");
    let count = |kind: &str| -> i64 {
        psql(
            url,
            &format!("SELECT count(*) FROM postings WHERE kind = '{kind}'"),
        )
        .parse()
        .expect("a count")
    };
    (count("purchase"), count("refund"))
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
    let pg = Postgres::start();
    let url = pg.database();
    let now = SystemClock.now_ms();
    rt.block_on(async {
        // The server's schema, from its own migrations.
        drop(PgStorage::connect(&url, 1).await.expect("migrate"));
        let t = Instant::now();
        let (purchases, refunds) = seed(&url, members, now);
        println!(
            "seeded {members} members, {purchases} purchases, {refunds} refunds in {:.1} s (not counted)",
            t.elapsed().as_secs_f64()
        );
        let size = |url: &str| -> f64 {
            let bytes: f64 = psql(url, "SELECT pg_database_size(current_database())")
                .parse()
                .expect("a size");
            bytes / (1024.0 * 1024.0)
        };
        let before = size(&url);
        reset_peak("self");

        let storage = PgStorage::connect(&url, 8).await.expect("open");
        let server = TestServer::start_on_storage(
            std::sync::Arc::new(storage),
            std::path::PathBuf::from(&url),
            "127.0.0.1:0",
            std::sync::Arc::new(SystemClock),
            std::sync::Arc::new(loyalty_server::outbound::LogOutbound),
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
        // The batch job on a connection of its own, as `loyalty admin segments recompute` runs.
        let job = PgStorage::connect(&url, 2).await.expect("open");
        let recompute = |label: &'static str| {
            let job = job.clone();
            async move {
                let t = Instant::now();
                let report = job
                    .recompute_segments(
                        SystemClock.now_ms(),
                        DEFAULT_RFM_WINDOW_MS,
                        Box::new(move |line| eprintln!("  [{label}] {line}")),
                    )
                    .await
                    .expect("recompute");
                (t.elapsed(), report)
            }
        };
        let (first, report) = recompute("recompute").await;
        // Through the server's publish service, as the HTTP handler calls it: on PostgreSQL the
        // fan-out to a million members takes longer than the operator client's 30 s timeout
        // (docs/benchmarks.md).
        let publish = |id: &'static str, segment: &'static str| {
            let app = server.app.clone();
            async move {
                let t = Instant::now();
                let published = loyalty_server::service::offers::publish(
                    &app,
                    loyalty_server::http::admin::offers::offer_from_post(offer(id, now)),
                    OfferTarget::Segment {
                        segment_id: segment.into(),
                    },
                )
                .await
                .expect("publish");
                (t.elapsed(), published.members)
            }
        };
        let (small_time, small) = publish("coffee-x2", "active-coffee").await;
        let (all_time, all) = publish("everyone-x2", "everyone").await;
        let total = first + small_time + all_time;
        let peak = peak_kib("self");
        let pg_peak = postgres_peak_kib();
        let after = size(&url);
        let (again, _) = recompute("again").await;
        let segment = |id: &str| {
            report
                .segments
                .iter()
                .find(|(s, _)| s == id)
                .map_or(0, |(_, n)| *n)
        };
        println!();
        println!("| {members} members, {purchases} purchases, {refunds} refunds (PostgreSQL) | figure |");
        println!("|---|---|");
        println!(
            "| recompute: RFM scores ({} buyers) + 2 segments (`active-coffee` {}, `everyone` {}) | {:.1} s |",
            report.scored_members,
            segment("active-coffee"),
            segment("everyone"),
            first.as_secs_f64()
        );
        println!(
            "| publish to `active-coffee` ({small} members) | {:.2} s |",
            small_time.as_secs_f64()
        );
        println!(
            "| publish to `everyone` ({all} members) | {:.1} s |",
            all_time.as_secs_f64()
        );
        println!(
            "| **total: recompute + both fan-outs** | **{:.1} s** |",
            total.as_secs_f64()
        );
        println!(
            "| peak memory of this process (server + job client) | {:.0} MiB |",
            peak as f64 / 1024.0
        );
        println!(
            "| largest peak of a PostgreSQL process (shared buffers included) | {:.0} MiB |",
            pg_peak as f64 / 1024.0
        );
        println!("| database before → after | {before:.0} → {after:.0} MiB |");
        println!(
            "| recompute again, nothing changed (the nightly steady state) | {:.1} s |",
            again.as_secs_f64()
        );
        server.stop().await;
    });
    drop(pg);
}
