//! The PostgreSQL schema: the migrations of `server/migrations/postgres/` (numbered as SQLite's,
//! one file each), applied in order, each in its own transaction with its version recorded in
//! `schema_migrations`. Several server instances may start at once against one database, so the
//! runner holds a transaction-scoped advisory lock: the first applies what is missing, the others
//! wait for it and then find nothing to do.
//!
//! A small runner rather than refinery: refinery's tokio-postgres driver brings native-tls with it
//! (the server uses rustls) and does not lock against instances starting together. A database
//! migrated by a newer program (a version this program does not know) is refused, as SQLite's is.

use tokio_postgres::Client;

/// The migrations in order; the version of the n-th (from 1) is n.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_members_devices_documents",
        include_str!("../../../migrations/postgres/001_members_devices_documents.sql"),
    ),
    (
        "002_checkout_keys_and_used_codes",
        include_str!("../../../migrations/postgres/002_checkout_keys_and_used_codes.sql"),
    ),
    (
        "003_ledger",
        include_str!("../../../migrations/postgres/003_ledger.sql"),
    ),
    (
        "004_sweep_indexes",
        include_str!("../../../migrations/postgres/004_sweep_indexes.sql"),
    ),
    (
        "005_programme_mirror",
        include_str!("../../../migrations/postgres/005_programme_mirror.sql"),
    ),
    (
        "006_offers_and_segments",
        include_str!("../../../migrations/postgres/006_offers_and_segments.sql"),
    ),
    (
        "007_lots_tiers_programme",
        include_str!("../../../migrations/postgres/007_lots_tiers_programme.sql"),
    ),
    (
        "008_communications",
        include_str!("../../../migrations/postgres/008_communications.sql"),
    ),
    (
        "009_card_catches_up",
        include_str!("../../../migrations/postgres/009_card_catches_up.sql"),
    ),
    (
        "010_covering_indexes",
        include_str!("../../../migrations/postgres/010_covering_indexes.sql"),
    ),
    (
        "011_till_namespaces",
        include_str!("../../../migrations/postgres/011_till_namespaces.sql"),
    ),
    (
        "012_document_epochs",
        include_str!("../../../migrations/postgres/012_document_epochs.sql"),
    ),
    (
        "013_document_summaries",
        include_str!("../../../migrations/postgres/013_document_summaries.sql"),
    ),
    (
        "014_adjustments",
        include_str!("../../../migrations/postgres/014_adjustments.sql"),
    ),
    (
        "015_fanout_without_foreign_keys",
        include_str!("../../../migrations/postgres/015_fanout_without_foreign_keys.sql"),
    ),
    (
        "016_till_feed",
        include_str!("../../../migrations/postgres/016_till_feed.sql"),
    ),
    (
        "017_cards_and_pins",
        include_str!("../../../migrations/postgres/017_cards_and_pins.sql"),
    ),
    (
        "018_member_lookup",
        include_str!("../../../migrations/postgres/018_member_lookup.sql"),
    ),
    (
        "019_delivery_states",
        include_str!("../../../migrations/postgres/019_delivery_states.sql"),
    ),
    (
        "020_operators",
        include_str!("../../../migrations/postgres/020_operators.sql"),
    ),
    (
        "021_ledger_reasons",
        include_str!("../../../migrations/postgres/021_ledger_reasons.sql"),
    ),
    (
        "022_device_last_seen",
        include_str!("../../../migrations/postgres/022_device_last_seen.sql"),
    ),
    (
        "023_console_sessions",
        include_str!("../../../migrations/postgres/023_console_sessions.sql"),
    ),
    (
        "024_offer_management",
        include_str!("../../../migrations/postgres/024_offer_management.sql"),
    ),
    (
        "025_code_refusals",
        include_str!("../../../migrations/postgres/025_code_refusals.sql"),
    ),
    (
        "026_segment_runs",
        include_str!("../../../migrations/postgres/026_segment_runs.sql"),
    ),
    (
        "027_postings_by_time",
        include_str!("../../../migrations/postgres/027_postings_by_time.sql"),
    ),
    (
        "028_watch_indexes",
        include_str!("../../../migrations/postgres/028_watch_indexes.sql"),
    ),
    (
        "029_rfm_moves",
        include_str!("../../../migrations/postgres/029_rfm_moves.sql"),
    ),
    (
        "030_tier_moves",
        include_str!("../../../migrations/postgres/030_tier_moves.sql"),
    ),
    (
        "031_document_tails",
        include_str!("../../../migrations/postgres/031_document_tails.sql"),
    ),
    (
        "032_member_document_headers",
        include_str!("../../../migrations/postgres/032_member_document_headers.sql"),
    ),
    (
        "033_ledger_revisions",
        include_str!("../../../migrations/postgres/033_ledger_revisions.sql"),
    ),
];

/// The advisory lock key the migration runner holds ("LYLS", as SQLite's application id).
const MIGRATION_LOCK: i64 = 0x4C59_4C53;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the database is at schema version {found}, newer than this program's {known}")]
    Newer { found: i64, known: i64 },
    #[error("migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the database failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// Brings the database's schema up to [`MIGRATIONS`]; returns the versions it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, SchemaError> {
    // Under the migration lock: two instances creating the table at once race in PostgreSQL's
    // catalog even with IF NOT EXISTS (a duplicate type or key error for one of them).
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    tx.commit().await?;
    let mut applied = Vec::new();
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let current = current_version(&tx).await?;
        if current > MIGRATIONS.len() as i64 {
            return Err(SchemaError::Newer {
                found: current,
                known: MIGRATIONS.len() as i64,
            });
        }
        if current >= version {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|source| SchemaError::Migration { name, source })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, name],
        )
        .await?;
        tx.commit().await?;
        applied.push(version);
    }
    Ok(applied)
}

/// The highest version applied (0 for a new database).
pub async fn version(client: &Client) -> Result<i64, SchemaError> {
    Ok(current_version(client).await?)
}

async fn current_version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?;
    row.try_get(0)
}
