//! The PostgreSQL backend against a real PostgreSQL 15 server (`loyalty_tests::postgres`): its
//! schema is SQLite's, table for table and column for column; instances starting together migrate
//! once; a database from a newer program is refused.

use std::collections::BTreeSet;

use loyalty_server::storage::postgres::schema::{MIGRATIONS, SchemaError};
use loyalty_server::storage::postgres::{PgError, PgStorage};
use loyalty_server::storage::sqlite::SqliteStorage;
use loyalty_tests::postgres::{Postgres, psql};
use loyalty_tests::*;

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
