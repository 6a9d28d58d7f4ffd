//! Reports benchmark: every operator report over a million members on the embedded server's
//! SQLite database, through the real server over HTTP. Run with
//! `cargo bench -p loyalty-tests --bench reports`; `REPORT_MEMBERS=100000` for a quick run.
//!
//! Seeding is bulk SQL in one transaction, reported apart: the programme benchmark's population
//! (a skewed spread of about five million purchases over two years, 3% half refunded) with what
//! the reports read besides — a ledger movement per purchase, a redemption for one purchase in
//! ten, the refunds' and expiries' movements, a lot per purchase (a year's life; those past it
//! expired), one to four devices per member, two sends to every member with their deliveries, and
//! a month of refused codes at 500 tills, and tier moves for the members above the first tier;
//! then an offer published to a segment, with activations and uses. Then each report is fetched as an operator would, JSON
//! and CSV, and timed; peak memory is the process's VmHWM (the server runs in it), reset after
//! seeding. `REPORT_DB=/path/file.db` keeps the seeded database there. `REPORT_BACKEND=postgres`
//! runs the same on a PostgreSQL 15 of the bench's own, seeded with the same population.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loyalty_core::api::{OfferTarget, PostOffer, PostSegment, PostTargetedOffer};
use loyalty_core::clock::{Clock, SystemClock};
use loyalty_core::offers::Reward;
use loyalty_core::segments::{ScoreRange, SegmentRules};
use loyalty_server::storage::postgres::PgStorage;
use loyalty_server::storage::sqlite::SqliteStorage;
use loyalty_server::storage::{DEFAULT_RFM_WINDOW_MS, OfferStore};
use loyalty_tests::memory::{anon_kib, peak_kib, postgres_peak_kib, reset_peak};
use loyalty_tests::postgres::{Postgres, psql};
use loyalty_tests::{OPERATOR_TOKEN, TestServer};

const DAY: i64 = 86_400_000;

/// The largest RssAnon seen, sampled every 20 ms until `stop` is set.
fn sample_anon(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(anon_kib("self"));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// How the two backends spell what the seed needs and differs: a random non-negative integer, an
/// empty blob, 24 random hex digits, and a card number from `i`.
struct SeedDialect {
    rnd: &'static str,
    empty_bytes: &'static str,
    hex24: &'static str,
    card: &'static str,
}

const SQLITE_SEED: SeedDialect = SeedDialect {
    rnd: "(random() & 9223372036854775807)",
    empty_bytes: "x''",
    hex24: "lower(hex(randomblob(12)))",
    card: "printf('627%013d', i)",
};

const POSTGRES_SEED: SeedDialect = SeedDialect {
    rnd: "floor(random() * 1000000000000000)::bigint",
    empty_bytes: "'\\x'::bytea",
    hex24: "substr(md5(i::text || random()::text), 1, 24)",
    card: "'627' || lpad(i::text, 13, '0')",
};

/// The population (see the crate guide), written once for both backends: members, purchases and
/// refunds, their ledger movements and lots, devices, two sends' deliveries, a month of refused
/// codes and the tier moves.
fn population_sql(d: &SeedDialect, members: i64, now: i64) -> String {
    let SeedDialect {
        rnd,
        empty_bytes: x,
        hex24,
        card,
    } = d;
    // Spans as literals computed here: PostgreSQL multiplies two int literals in int, which
    // overflows.
    let year = 365 * DAY;
    let (two_years, five_years) = (2 * year, 5 * year);
    let (month, fortnight) = (30 * DAY, 14 * DAY);
    let (twenty_days, five_days) = (20 * DAY, 5 * DAY);
    let series = |n: i64| {
        format!(
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n} - 1) SELECT i FROM s)"
        )
    };
    let (everyone, sixty) = (series(members), series(60));
    format!(
        "CREATE TEMP TABLE nums AS SELECT i FROM {sixty} n;
         INSERT INTO members (member_id, card_number, created_at, tier, status)
         SELECT 'mbr_' || {hex24}, {card}, {now} - {rnd} % {five_years},
                CASE {rnd} % 10 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' WHEN 2 THEN 'silver'
                     ELSE 'base' END,
                CASE WHEN {rnd} % 200 = 0 THEN 'blocked' ELSE 'active' END
         FROM {everyone} n;
         CREATE TEMP TABLE buyers AS
         WITH drawn AS MATERIALIZED (SELECT member_id, {rnd} % 100 AS r FROM members)
         SELECT member_id,
                CASE WHEN r < 30 THEN 0
                     WHEN r < 60 THEN 1 + {rnd} % 2
                     WHEN r < 85 THEN 3 + {rnd} % 6
                     WHEN r < 97 THEN 9 + {rnd} % 16
                     ELSE 25 + {rnd} % 36 END AS k,
                CASE WHEN {rnd} % 3 = 0 THEN {rnd} % {year} ELSE 0 END AS lapse
         FROM drawn;
         CREATE TEMP TABLE bought AS
         SELECT b.member_id || '-' || n.i AS k, b.member_id AS member_id,
                'till-' || ({rnd} % 500) AS till_id, 'R-' || n.i AS receipt_id,
                300 + {rnd} % 6000 + CASE WHEN {rnd} % 20 = 0 THEN {rnd} % 30000 ELSE 0 END AS total,
                CASE WHEN {rnd} % 10 = 0 THEN 100 ELSE 0 END AS redeemed,
                {now} - b.lapse - {rnd} % {year} AS at
         FROM buyers b JOIN nums n ON n.i < b.k;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, till_id, receipt_id,
                               total_minor, earned, redeemed, at, response)
         SELECT k, {x}, member_id, 'purchase', till_id, receipt_id, total, total / 100, redeemed,
                at, {x}
         FROM bought;
         INSERT INTO postings (idempotency_key, request_hash, member_id, kind, refers_to, till_id,
                               receipt_id, total_minor, earned, redeemed, at, response)
         SELECT k || '-r', {x}, member_id, 'refund', k, till_id, receipt_id || 'r', total / 2, 0, 0,
                CASE WHEN at + {DAY} < {now} THEN at + {DAY} ELSE {now} END, {x}
         FROM bought WHERE {rnd} % 128 < 4;
         INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
                             rule, reason_code, reason_params, available_at)
         SELECT k, member_id, k, total / 100, 'Purchase', till_id, receipt_id, at, 'base',
                'purchase', '', at + {fortnight}
         FROM bought;
         INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
                             rule, reason_code, reason_params)
         SELECT k || '-x', member_id, k, -redeemed, 'Points redeemed', till_id, receipt_id, at,
                'redeem', 'redeem', ''
         FROM bought WHERE redeemed > 0;
         INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
                             rule, reason_code, reason_params)
         SELECT p.idempotency_key, p.member_id, p.idempotency_key, -(p.total_minor / 100),
                'Refund', p.till_id, p.receipt_id, p.at, 'refund', 'refund', ''
         FROM postings p WHERE p.kind = 'refund';
         INSERT INTO lots (lot_id, member_id, posting, rule, points, remaining, expired, earned_at,
                           available_at, expires_at)
         SELECT k, member_id, k, 'base', total / 100,
                CASE WHEN at + {year} <= {now} THEN 0 ELSE total / 100 END,
                CASE WHEN at + {year} <= {now} THEN total / 100 ELSE 0 END,
                at, at + {fortnight}, at + {year}
         FROM bought;
         INSERT INTO ledger (tx_id, member_id, posting, points, reason, till_id, receipt_id, at,
                             rule, reason_code, reason_params)
         SELECT lot_id || '-e', member_id, lot_id, -expired, 'Points expired', 'settle', '',
                expires_at, 'expiry', 'expiry', ''
         FROM lots WHERE expired > 0;
         INSERT INTO devices (device_id, member_id, secret_hash, name, created_at, last_seen_at)
         SELECT 'dev_' || m.member_id || '-' || n.i, m.member_id, {x}, 'phone', m.created_at,
                {now} - {rnd} % {month}
         FROM (SELECT member_id, created_at,
                      CASE WHEN {rnd} % 50 = 0 THEN 4 WHEN {rnd} % 5 = 0 THEN 2 ELSE 1 END AS d
               FROM members) m
         JOIN nums n ON n.i < m.d;
         INSERT INTO messages (message_id, kind, channel, subject, body, target, request_hash,
                               created_at)
         VALUES ('msg_spring', 'marketing', 'email', 'Spring', '…', '{{}}', {x},
                 {now} - {twenty_days}),
                ('msg_points', 'service', 'in_app', 'Your points', '…', '{{}}', {x},
                 {now} - {five_days});
         INSERT INTO deliveries (message_id, member_id, kind, channel, day, status, reason,
                                 in_inbox, projected, created_at, updated_at)
         SELECT msg.message_id, m.member_id, msg.kind, msg.channel, msg.created_at / {DAY},
                CASE WHEN msg.channel = 'in_app' THEN 'sent'
                     WHEN {rnd} % 4 = 0 THEN 'refused' ELSE 'handed_over' END,
                NULL, 1, 1, msg.created_at, msg.created_at
         FROM messages msg CROSS JOIN members m;
         UPDATE deliveries SET reason = 'no_consent' WHERE status = 'refused';
         INSERT INTO code_refusals (day, till_id, member_id, reason, count)
         SELECT ({now} - {rnd} % {month}) / {DAY}, 'till-' || ({rnd} % 500), member_id,
                CASE {rnd} % 3 WHEN 0 THEN 'code_replayed' WHEN 1 THEN 'code_expired'
                     ELSE 'bad_signature' END,
                1 + {rnd} % 3
         FROM members WHERE {rnd} % 20 = 0
         ON CONFLICT DO NOTHING;
         INSERT INTO tier_moves (member_id, at, from_tier, to_tier)
         SELECT member_id, {now} - {rnd} % {two_years}, 'base', tier
         FROM members WHERE tier <> 'base';
         INSERT INTO tier_moves (member_id, at, from_tier, to_tier)
         SELECT member_id, {now} - {rnd} % {two_years}, 'gold', 'silver'
         FROM members WHERE tier = 'silver' AND {rnd} % 4 = 0
         ON CONFLICT DO NOTHING;"
    )
}

/// What was seeded: purchases, ledger rows, lots, deliveries.
const COUNTS: [&str; 4] = [
    "SELECT count(*) FROM postings WHERE kind = 'purchase'",
    "SELECT count(*) FROM ledger",
    "SELECT count(*) FROM lots",
    "SELECT count(*) FROM deliveries",
];

/// Seeds the server's SQLite file in one transaction; answers [`COUNTS`].
fn seed(db: &Path, members: i64, now: i64) -> [i64; 4] {
    let conn = rusqlite::Connection::open(db).expect("open for seeding");
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .expect("pragmas");
    let sql = population_sql(&SQLITE_SEED, members, now);
    conn.execute_batch(&format!(
        "BEGIN; {sql} COMMIT; PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .expect("seed");
    COUNTS.map(|sql| conn.query_row(sql, [], |r| r.get(0)).expect("count"))
}

/// Seeds a PostgreSQL database, then `VACUUM ANALYZE` as autovacuum would soon after a bulk
/// load; answers [`COUNTS`].
fn seed_postgres(url: &str, members: i64, now: i64) -> [i64; 4] {
    let sql = population_sql(&POSTGRES_SEED, members, now);
    psql(url, &format!("SET synchronous_commit = off; {sql}"));
    psql(url, "VACUUM ANALYZE");
    COUNTS.map(|sql| psql(url, sql).parse().expect("a count"))
}

/// The two segments the segments report and the uptake read, one recompute through the backend's
/// own job, and the offer whose uptake the bench reads, published through the API to the recent
/// buyers (none of it counted).
async fn segments_and_offer(server: &TestServer, job: &dyn OfferStore, now: i64) {
    let op = server.operator();
    for (id, recency) in [
        ("recent", Some(ScoreRange { min: 4, max: 5 })),
        ("everyone", None),
    ] {
        let rules = SegmentRules {
            recency,
            ..SegmentRules::default()
        };
        let segment = PostSegment {
            id: Some(id.into()),
            name: id.into(),
            rules,
        };
        op.create_segment(&segment).await.expect("segment");
    }
    let t = Instant::now();
    job.recompute_segments(now, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
        .await
        .expect("recompute");
    println!(
        "recomputed in {:.1} s (not counted)",
        t.elapsed().as_secs_f64()
    );
    let offer = PostOffer {
        id: Some("bench-offer".into()),
        title: "Double points".into(),
        description: String::new(),
        terms: String::new(),
        valid_from_ms: now - DAY,
        valid_until_ms: now + 30 * DAY,
        needs_activation: true,
        reward: Reward::PointsMultiplier,
        value: 200,
        category: String::new(),
        min_spend_minor: 0,
        use_limit: 0,
    };
    let t = Instant::now();
    let published = op
        .publish_offer(&PostTargetedOffer {
            offer,
            target: OfferTarget::Segment {
                segment_id: "recent".into(),
            },
        })
        .await
        .expect("publish");
    println!(
        "published an offer to {} recent buyers in {:.1} s (not counted)",
        published.members,
        t.elapsed().as_secs_f64()
    );
}

/// One reached member in five activates the offer and one in ten uses it one to three times
/// (seeded, as the purchases are); `rnd` is the dialect's random non-negative integer.
fn uptake_sql(now: i64, rnd: &str) -> String {
    format!(
        "INSERT INTO member_activations (member_id, offer_id, at)
         SELECT member_id, offer_id, {now} FROM offer_members
         WHERE offer_id = 'bench-offer' AND {rnd} % 5 = 0;
         UPDATE offer_members SET uses = 1 + {rnd} % 3
         WHERE offer_id = 'bench-offer' AND {rnd} % 10 = 0;"
    )
}

/// Fetches one report, checks it answered, and says how long it took and how big it was.
async fn fetch(http: &reqwest::Client, base: &str, path: &str) -> (Duration, usize) {
    let t = Instant::now();
    let response = http
        .get(format!("{base}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let body = response.bytes().await.expect("body");
    (t.elapsed(), body.len())
}

const REPORTS: [(&str, &str); 15] = [
    ("liability", "/v1/admin/reports/liability"),
    ("liability, CSV", "/v1/admin/reports/liability?format=csv"),
    ("points by month, last 365 days", "/v1/admin/reports/points"),
    (
        "points by day, last 365 days",
        "/v1/admin/reports/points?period=day",
    ),
    (
        "points by month, CSV",
        "/v1/admin/reports/points?format=csv",
    ),
    ("members", "/v1/admin/reports/members"),
    ("deliveries, last 30 days", "/v1/admin/reports/deliveries"),
    (
        "deliveries of one send",
        "/v1/admin/reports/deliveries?message_id=msg_spring",
    ),
    ("watch list, last 7 days", "/v1/admin/reports/watch"),
    (
        "watch list by refused codes, 90 days",
        "/v1/admin/reports/watch?by=refused_codes&from_ms=FROM90",
    ),
    (
        "watch list by refunds, 92 days (the longest)",
        "/v1/admin/reports/watch?by=refunds&from_ms=FROM92&to_ms=TO",
    ),
    (
        "watch list, 92 days, CSV",
        "/v1/admin/reports/watch?from_ms=FROM92&to_ms=TO&format=csv",
    ),
    (
        "segments and RFM scores (after a recompute)",
        "/v1/admin/reports/segments",
    ),
    (
        "offer uptake by segment (an offer to the recent buyers)",
        "/v1/admin/offers/bench-offer/uptake",
    ),
    (
        "offer uptake by segment, CSV",
        "/v1/admin/offers/bench-offer/uptake?format=csv",
    ),
];

fn main() {
    let members: i64 = std::env::var("REPORT_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = SystemClock.now_ms();
    match std::env::var("REPORT_BACKEND").as_deref() {
        Ok("postgres") => on_postgres(&rt, members, now),
        _ => on_sqlite(&rt, members, now),
    }
}

/// The embedded server's SQLite file.
fn on_sqlite(rt: &tokio::runtime::Runtime, members: i64, now: i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    // REPORT_DB keeps the seeded database at that path, to study a report's plan afterwards.
    let db = std::env::var_os("REPORT_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("server.db"));
    drop(SqliteStorage::open(&db).expect("create the server database"));
    let t = Instant::now();
    let [purchases, ledger, lots, deliveries] = seed(&db, members, now);
    println!(
        "seeded {members} members, {purchases} purchases, {ledger} ledger movements, {lots} lots, \
         {deliveries} deliveries in {:.1} s (not counted)",
        t.elapsed().as_secs_f64()
    );
    rt.block_on(async {
        let server =
            TestServer::start_with(db.clone(), "127.0.0.1:0", Arc::new(SystemClock), |_| {}).await;
        let job = SqliteStorage::open(&db).expect("open");
        segments_and_offer(&server, &job, now).await;
        rusqlite::Connection::open(&db)
            .expect("open for seeding")
            .execute_batch(&format!(
                "BEGIN; {} COMMIT;",
                uptake_sql(now, "(random() & 9223372036854775807)")
            ))
            .expect("seed the offer's uptake");
        time_reports(&server.url, members, now, false).await;
        server.stop().await;
    });
}

/// A PostgreSQL 15 of the bench's own (Debian's, in a temporary folder; no fsync, as for the
/// tests: the reports only read), the same population, and a server on it.
fn on_postgres(rt: &tokio::runtime::Runtime, members: i64, now: i64) {
    let pg = Postgres::start();
    let url = pg.database();
    rt.block_on(async {
        drop(PgStorage::connect(&url, 1).await.expect("migrate"));
        let t = Instant::now();
        let [purchases, ledger, lots, deliveries] = seed_postgres(&url, members, now);
        println!(
            "seeded {members} members, {purchases} purchases, {ledger} ledger movements, {lots} \
             lots, {deliveries} deliveries on PostgreSQL in {:.1} s (not counted)",
            t.elapsed().as_secs_f64()
        );
        let storage = PgStorage::connect(&url, 8).await.expect("open");
        let server = TestServer::start_on_storage(
            Arc::new(storage),
            std::path::PathBuf::from(&url),
            "127.0.0.1:0",
            Arc::new(SystemClock),
            Arc::new(loyalty_server::outbound::LogOutbound),
            |_| {},
        )
        .await;
        let job = PgStorage::connect(&url, 2).await.expect("open");
        segments_and_offer(&server, &job, now).await;
        psql(&url, &uptake_sql(now, "floor(random() * 1000000)::bigint"));
        psql(&url, "VACUUM ANALYZE");
        time_reports(&server.url, members, now, true).await;
        server.stop().await;
    });
    drop(pg);
}

/// Fetches every report in turn and prints the table, with the process's peak memory (and the
/// PostgreSQL processes' when the server is on PostgreSQL).
async fn time_reports(url: &str, members: i64, now: i64, postgres: bool) {
    reset_peak("self");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_anon(stop.clone());
    let http = reqwest::Client::new();
    println!();
    println!("| {members} members: report | time | answer |");
    println!("|---|---|---|");
    let mut slowest = Duration::ZERO;
    for (name, path) in REPORTS {
        let path = path
            .replace("FROM90", &(now - 90 * DAY).to_string())
            .replace("FROM92", &(now - 92 * DAY + 1).to_string())
            .replace("TO", &(now + 1).to_string());
        let (took, bytes) = fetch(&http, url, &path).await;
        slowest = slowest.max(took);
        println!(
            "| {name} | {:.2} s | {:.1} KiB |",
            took.as_secs_f64(),
            bytes as f64 / 1024.0
        );
    }
    println!(
        "| **slowest report** | **{:.2} s** | |",
        slowest.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let anon = sampler.join().unwrap_or(0);
    println!(
        "| peak anonymous memory of the process (RssAnon, sampled every 20 ms) | {:.0} MiB | |",
        anon as f64 / 1024.0
    );
    let mapped = if postgres {
        ""
    } else {
        ": also the database file mapped by the readers"
    };
    println!(
        "| peak resident memory (VmHWM{mapped}) | {:.0} MiB | |",
        peak_kib("self") as f64 / 1024.0
    );
    if postgres {
        println!(
            "| largest peak of a PostgreSQL process (shared buffers included) | {:.0} MiB | |",
            postgres_peak_kib() as f64 / 1024.0
        );
    }
}
