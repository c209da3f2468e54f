#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The store contract, run against SQLite and PostgreSQL.

use daarion_store::{
    Migration, MigrationSet, StoreError, idempotency,
    idempotency::Claim,
    migrate,
    sql::{self, Row},
};
use daarion_testkit::{SqlKind, TestDb};

const HEADER_1: &str = "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: down\n";

fn notes_v1() -> MigrationSet {
    MigrationSet {
        service: "notes",
        migrations: &[Migration {
            version: 1,
            name: "001_create_notes",
            up: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: down\n\
                 CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);\
                 CREATE INDEX notes_body ON notes (body);",
            down: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: up\n\
                   DROP TABLE notes;",
        }],
    }
}

async fn table_exists(db: &daarion_store::Db, table: &str) -> bool {
    sql::query(sql::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .execute(db.pool())
        .await
        .is_ok()
}

macro_rules! contract {
    ($($kind:ident => $module:ident),*) => {$(
        mod $module {
            use super::*;

            async fn db() -> Option<TestDb> {
                TestDb::new(SqlKind::$kind).await
            }

            /// Transactions that read, then write, in parallel: each one waits
            /// its turn instead of failing with "database is locked".
            #[tokio::test]
            async fn concurrent_read_then_write_transactions_all_commit() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                let writers = (0..8).map(|n| {
                    let db = t.db.clone();
                    tokio::spawn(async move {
                        let mut tx = db.begin().await?;
                        let count: i64 = sql::query("SELECT COUNT(*) AS n FROM notes").fetch_one(&mut *tx).await?.try_get("n")?;
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        sql::query("INSERT INTO notes (id, body) VALUES ($1, $2)")
                            .bind(format!("n{n}"))
                            .bind(count.to_string())
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        Ok::<_, StoreError>(())
                    })
                });
                for writer in writers.collect::<Vec<_>>() {
                    writer.await.unwrap().unwrap();
                }
                let n: i64 = sql::query("SELECT COUNT(*) AS n FROM notes").fetch_one(t.db.pool()).await.unwrap().try_get("n").unwrap();
                assert_eq!(n, 8);
            }

            #[tokio::test]
            async fn migrations_apply_once_and_roll_back() {
                let Some(t) = db().await else { return };
                let steps = migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                assert_eq!(steps.len(), 1);
                assert!(table_exists(&t.db, "notes").await);
                assert!(migrate::apply(&t.db, &[notes_v1()]).await.unwrap().is_empty());
                assert_eq!(migrate::applied(&t.db).await.unwrap().len(), 1);

                let undone = migrate::rollback(&t.db, &[notes_v1()], 1).await.unwrap();
                assert_eq!(undone[0].name, "001_create_notes");
                assert!(!table_exists(&t.db, "notes").await);
                assert!(migrate::applied(&t.db).await.unwrap().is_empty());
                assert_eq!(migrate::apply(&t.db, &[notes_v1()]).await.unwrap().len(), 1);
            }

            #[tokio::test]
            async fn a_changed_applied_migration_is_refused() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                let changed = MigrationSet {
                    service: "notes",
                    migrations: &[Migration {
                        version: 1,
                        name: "001_create_notes",
                        up: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: down\n\
                             CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT, extra TEXT);",
                        down: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: up\nDROP TABLE notes;",
                    }],
                };
                let error = migrate::apply(&t.db, &[changed]).await.unwrap_err();
                assert!(matches!(error, StoreError::MigrationChanged { version: 1, .. }), "{error}");
            }

            #[tokio::test]
            async fn a_failing_migration_leaves_nothing_behind() {
                let Some(t) = db().await else { return };
                let broken = MigrationSet {
                    service: "broken",
                    migrations: &[Migration {
                        version: 1,
                        name: "001_broken",
                        up: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: down\n\
                             CREATE TABLE half (id TEXT); CREATE TABLE half (id TEXT);",
                        down: "-- Migration: 001\n-- Description: notes\n-- Date: 2026-11-23\n-- Author: test\n-- Rollback: up\nDROP TABLE half;",
                    }],
                };
                let error = migrate::apply(&t.db, &[broken]).await.unwrap_err();
                assert!(matches!(error, StoreError::MigrationFailed { .. }), "{error}");
                assert!(migrate::applied(&t.db).await.unwrap().is_empty());
                if SqlKind::$kind == SqlKind::Postgres {
                    // PostgreSQL DDL is transactional: the first CREATE is undone too.
                    assert!(!table_exists(&t.db, "half").await);
                }
            }

            #[tokio::test]
            async fn migrations_without_the_header_are_refused() {
                let Some(t) = db().await else { return };
                let headless = MigrationSet {
                    service: "headless",
                    migrations: &[Migration { version: 1, name: "001_x", up: "CREATE TABLE x (id TEXT);", down: "DROP TABLE x;" }],
                };
                assert!(migrate::apply(&t.db, &[headless]).await.is_err());
                assert!(!table_exists(&t.db, "x").await);
                assert!(HEADER_1.starts_with("-- Migration: 001"));
            }

            #[tokio::test]
            async fn concurrent_replicas_apply_each_migration_once() {
                let Some(t) = db().await else { return };
                let other = t.reopen().await;
                let sets = [notes_v1()];
                let (a, b) = tokio::join!(
                    migrate::apply(&t.db, &sets),
                    migrate::apply(&other, &sets)
                );
                let applied = a.map(|s| s.len()).unwrap_or(0) + b.map(|s| s.len()).unwrap_or(0);
                assert_eq!(applied, 1);
                assert_eq!(migrate::applied(&t.db).await.unwrap().len(), 1);
            }

            #[tokio::test]
            async fn unique_violations_are_conflicts_and_rolled_back_transactions_write_nothing() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                const INSERT: &str = "INSERT INTO notes (id, body) VALUES ($1, 'b')";
                sql::query(INSERT).bind("a").execute(t.db.pool()).await.unwrap();
                let error = StoreError::from(sql::query(INSERT).bind("a").execute(t.db.pool()).await.unwrap_err());
                assert!(matches!(error, StoreError::Conflict(_)), "{error}");

                let mut tx = t.db.begin().await.unwrap();
                sql::query(INSERT).bind("b").execute(&mut *tx).await.unwrap();
                assert!(sql::query(INSERT).bind("a").execute(&mut *tx).await.is_err());
                drop(tx);
                let count: i64 = sql::query_scalar("SELECT COUNT(*) FROM notes").fetch_one(t.db.pool()).await.unwrap();
                assert_eq!(count, 1);
            }

            #[tokio::test]
            async fn idempotency_keys_replay_and_detect_misuse() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[idempotency::MIGRATIONS]).await.unwrap();
                let hash = idempotency::fingerprint(&["create", "room-a"]);
                let mut tx = t.db.begin().await.unwrap();
                assert_eq!(idempotency::claim(&mut tx, "s", "k1", &hash).await.unwrap(), Claim::Fresh);
                idempotency::complete(&mut tx, "s", "k1", "res_1").await.unwrap();
                tx.commit().await.unwrap();

                let mut tx = t.db.begin().await.unwrap();
                assert_eq!(idempotency::claim(&mut tx, "s", "k1", &hash).await.unwrap(), Claim::Replay("res_1".into()));
                let other = idempotency::fingerprint(&["create", "room-b"]);
                assert!(matches!(idempotency::claim(&mut tx, "s", "k1", &other).await, Err(StoreError::Conflict(_))));
                // Another scope may use the same key.
                assert_eq!(idempotency::claim(&mut tx, "s2", "k1", &other).await.unwrap(), Claim::Fresh);
            }

            /// A batch bound as one JSON array comes back value for value:
            /// quotes, backslashes, other scripts, NULLs and numbers.
            #[tokio::test]
            async fn json_rows_and_lists_carry_values_intact() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                let backend = t.db.backend();
                let rows = serde_json::json!([
                    ["a", "it's \"quoted\" \\ back", 7],
                    ["b", "Привіт 👋", null],
                ]);
                let text = format!(
                    "INSERT INTO notes (id, body) SELECT c0, COALESCE(c1, '') || COALESCE(CAST(c2 AS TEXT), '') \
                     FROM ({}) AS j WHERE true ON CONFLICT (id) DO NOTHING",
                    sql::json_rows(backend, 1, 3)
                );
                sql::query(sql::AssertSqlSafe(text)).bind(rows.to_string()).execute(t.db.pool()).await.unwrap();
                let text = format!(
                    "SELECT id, body FROM notes WHERE id IN ({}) ORDER BY id",
                    sql::json_texts(backend, 1)
                );
                let found: Vec<(String, String)> = sql::query(sql::AssertSqlSafe(text))
                    .bind(r#"["b", "a", "zzz"]"#)
                    .fetch_all(t.db.pool())
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| (row.try_get("id").unwrap(), row.try_get("body").unwrap()))
                    .collect();
                assert_eq!(found, [
                    ("a".to_owned(), "it's \"quoted\" \\ back7".to_owned()),
                    ("b".to_owned(), "Привіт 👋".to_owned()),
                ]);
            }

            #[tokio::test]
            async fn text_timestamps_round_trip() {
                let Some(t) = db().await else { return };
                migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
                let now = daarion_store::now();
                sql::query("INSERT INTO notes (id, body) VALUES ($1, $2)").bind("t").bind(now.as_str()).execute(t.db.pool()).await.unwrap();
                let row = sql::query("SELECT body FROM notes WHERE id = $1").bind("t").fetch_one(t.db.pool()).await.unwrap();
                let body: String = row.try_get("body").unwrap();
                assert_eq!(body, now);
            }
        }
    )*};
}

contract!(Sqlite => sqlite, Postgres => postgres);

/// A disk that fills in the middle of a transaction: SQLite rolls the
/// transaction back by itself, so the ROLLBACK sqlx sends fails and sqlx
/// would go on counting a transaction open on that connection, refusing
/// every later `begin` on it. The store replaces such a connection: it
/// works again as soon as there is room.
#[tokio::test]
async fn a_disk_full_in_a_transaction_leaves_the_store_working() {
    let t = TestDb::new(SqlKind::Sqlite).await.unwrap();
    migrate::apply(&t.db, &[notes_v1()]).await.unwrap();
    let pages: i64 = sql::query_scalar("PRAGMA page_count")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    // On the writer's connection only: the database cannot grow.
    sql::query(sql::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .execute(t.db.pool())
    .await
    .unwrap();
    let mut tx = t.db.begin().await.unwrap();
    let mut full = None;
    for n in 0..100 {
        if let Err(error) = sql::query("INSERT INTO notes (id, body) VALUES ($1, $2)")
            .bind(format!("big{n}"))
            .bind("x".repeat(64 * 1024))
            .execute(&mut *tx)
            .await
        {
            full = Some(error);
            break;
        }
    }
    let full = StoreError::from(full.expect("the database filled up"));
    assert!(full.is_retryable(), "a full disk is for later: {full:?}");
    assert!(tx.rollback().await.is_err(), "SQLite rolled back already");
    // A new connection knows no such limit: the disk has room again.
    let mut tx = t.db.begin().await.unwrap();
    sql::query("INSERT INTO notes (id, body) VALUES ('after', 'room again')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let bodies: Vec<String> = sql::query_scalar("SELECT body FROM notes")
        .fetch_all(t.db.pool())
        .await
        .unwrap();
    assert_eq!(bodies, ["room again"], "nothing of the failed transaction");
}
