//! One SQL store over SQLite (the embedded default) and PostgreSQL.
//!
//! Services write portable SQL (`$1` placeholders, `TEXT`/`BIGINT` columns,
//! `ON CONFLICT`, `RETURNING`) and run it through [`Db`]; the URL picks the
//! backend. Timestamps are RFC 3339 UTC text with fixed precision, so they
//! sort as text in both databases.
//!
//! Layout:
//! - [`Db`]: the pool, backend detection, health, time helper.
//! - `migrate`: numbered, checksummed migrations per service, with rollback.
//! - `idempotency`: remembering `Idempotency-Key`s of creates.
//! - [`sql`]: the query API services use (re-exported so that service crates
//!   do not name the driver).

pub mod idempotency;
pub mod migrate;

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use daarion_kernel::{DependencyCheck, DependencyStatus};
use sqlx::{Executor, any::AnyPoolOptions};

pub use migrate::{Migration, MigrationSet};

/// The query API for service crates.
pub mod sql {
    pub use sqlx::{
        Any, AnyPool, AssertSqlSafe, Error, Executor, Row, Transaction, any::AnyRow, query,
        query_as, query_scalar, raw_sql,
    };

    /// The text values of a JSON array bound (as text) at `$param`, as a
    /// subquery: `IN (…)` a list of any length with one placeholder and one
    /// statement text (prepared once), on either backend.
    pub fn json_texts(backend: crate::Backend, param: usize) -> String {
        match backend {
            crate::Backend::Sqlite => format!("SELECT value FROM json_each(${param})"),
            crate::Backend::Postgres => {
                format!("SELECT jsonb_array_elements_text(${param}::jsonb)")
            }
        }
    }

    /// The rows of a JSON array of arrays of texts bound at `$param`, as a
    /// subquery with columns `c0`, `c1`...: a batch of rows written by one
    /// statement of one shape, whatever its size (`INSERT … SELECT`; end
    /// it with `WHERE true` before an `ON CONFLICT`, which SQLite needs).
    pub fn json_rows(backend: crate::Backend, param: usize, columns: usize) -> String {
        let column = |i: usize| match backend {
            crate::Backend::Sqlite => format!("json_extract(value, '$[{i}]') AS c{i}"),
            crate::Backend::Postgres => format!("e->>{i} AS c{i}"),
        };
        let columns: Vec<String> = (0..columns).map(column).collect();
        match backend {
            crate::Backend::Sqlite => {
                format!("SELECT {} FROM json_each(${param})", columns.join(", "))
            }
            crate::Backend::Postgres => format!(
                "SELECT {} FROM jsonb_array_elements(${param}::jsonb) AS e",
                columns.join(", ")
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error(
        "migration {service}/{version:03} was changed after it was applied (checksum {applied} in the database, {current} in this build)"
    )]
    MigrationChanged {
        service: String,
        version: u32,
        applied: String,
        current: String,
    },
    #[error("migration {service}/{version:03} failed")]
    MigrationFailed {
        service: String,
        version: u32,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "database applied migration {service}/{version:03}, unknown to this build (is this build older than the database?)"
    )]
    MigrationUnknown { service: String, version: u32 },
    #[error("unexpected database error")]
    Unexpected(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether retrying the same operation later could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if out_of_service(db.code().as_deref()) => {
                Self::Unavailable(error)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => Self::Unavailable(error),
            _ => Self::Unexpected(error),
        }
    }
}

/// Whether a database error says the database cannot serve for now, and
/// may later: out of room (SQLite's SQLITE_FULL, 13, a full disk;
/// PostgreSQL's class 53, insufficient resources: disk full, out of
/// memory, too many connections), shutting down or starting up (57P01 to
/// 57P03), or the connection lost (class 08).
fn out_of_service(code: Option<&str>) -> bool {
    match code {
        Some(sqlstate) if sqlstate.len() == 5 => {
            sqlstate.starts_with("53") || sqlstate.starts_with("57P0") || sqlstate.starts_with("08")
        }
        Some(sqlite) => sqlite.parse::<i32>().is_ok_and(|code| code & 0xff == 13),
        None => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of an open connection (a transaction's, say).
    pub fn of(connection: &sqlx::AnyConnection) -> Self {
        if connection.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }

    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }
}

/// A connection pool to the configured database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: sqlx::AnyPool,
    /// SQLite's read-only connections beside the one writer (WAL readers
    /// never wait for it); none for PostgreSQL or an in-memory database.
    readers: Option<sqlx::AnyPool>,
    backend: Backend,
}

/// SQLite's read-only connections: reads off the writer's queue, one per
/// core here.
const SQLITE_READERS: u32 = 2;

impl Db {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        // SQLite: the file is created if missing.
        let rwc = if url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let pool = match backend {
            Backend::Sqlite => {
                // One connection: SQLite has one writer anyway, and writers on
                // several connections conflict for the lock, where SQLite's
                // busy handler sleeps a millisecond or more per conflict;
                // queued on the pool they take turns without sleeping
                // (measured: fan-out p99 60 → 23 ms). Statements take
                // microseconds, so readers lose little. Never hold a
                // transaction while awaiting another query on the pool.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .before_acquire(not_in_transaction)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; the
                            // busy timeout makes writers queue instead of failing.
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                 PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; \
                                 PRAGMA cache_size=-16384;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&rwc)
                    .await
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .before_acquire(not_in_transaction)
                    .connect(url)
                    .await
            }
        }
        .map_err(StoreError::from)?;
        let readers = match backend {
            // After the writer: it made the file and set WAL.
            Backend::Sqlite if !url.contains(":memory:") && !url.contains("mode=memory") => Some(
                AnyPoolOptions::new()
                    .max_connections(SQLITE_READERS)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // A write here fails at once instead of waiting
                            // on the writer's lock.
                            conn.execute(
                                "PRAGMA query_only=ON; PRAGMA busy_timeout=10000; \
                                 PRAGMA cache_size=-16384;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&rwc)
                    .map_err(StoreError::from)?,
            ),
            _ => None,
        };
        Ok(Self {
            pool,
            readers,
            backend,
        })
    }

    /// The pool for writes, transactions and reads that must see them
    /// before they commit.
    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }

    /// The pool for a read on its own (outside a transaction), of what is
    /// committed: on SQLite, beside the one writer instead of queued
    /// behind it; elsewhere the same pool.
    pub fn reader(&self) -> &sqlx::AnyPool {
        self.readers.as_ref().unwrap_or(&self.pool)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`): a deferred transaction that reads before
    /// it writes fails with "database is locked" when another writer commits
    /// in between, whereas an immediate one waits its turn (busy timeout).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
        self.pool.close().await;
    }
}

/// Whether a pooled connection may be handed out: not when sqlx still
/// counts a transaction open on it. That happens when the database ended
/// the transaction by itself — SQLite does on a full disk — so the
/// ROLLBACK sqlx sent failed: every later `begin` on that connection would
/// be refused. Such a connection is closed and replaced. (By the time a
/// released connection is acquired again, the pool's ping on release has
/// flushed any rollback still queued, so the count is settled.)
fn not_in_transaction(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    use sqlx::Connection as _;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection left in a transaction is replaced");
    }
    Box::pin(std::future::ready(Ok(clean)))
}

#[async_trait]
impl DependencyCheck for Db {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> DependencyStatus {
        match tokio::time::timeout(Duration::from_secs(2), self.ping()).await {
            Ok(Ok(())) if self.backend == Backend::Sqlite => DependencyStatus::Embedded,
            Ok(Ok(())) => DependencyStatus::Connected,
            _ => DependencyStatus::Disconnected,
        }
    }
}

/// Now, as stored: RFC 3339 UTC with microseconds, so text order is time order.
pub fn now() -> String {
    format_time(chrono::Utc::now())
}

/// `span` before now, as stored: the cutoff of a retention or a timeout.
pub fn ago(span: std::time::Duration) -> String {
    let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    format_time(chrono::Utc::now() - span)
}

pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::<chrono::FixedOffset>::from_str(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_a_backend() {
        assert_eq!(
            Backend::from_url("sqlite://x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }

    #[test]
    fn a_full_disk_or_a_server_going_away_is_unavailable_not_a_bug() {
        for code in ["13", "53100", "53300", "57P01", "57P03", "08006"] {
            assert!(out_of_service(Some(code)), "{code}");
        }
        for code in ["19", "2067", "23505", "42P01", "57014"] {
            assert!(!out_of_service(Some(code)), "{code}");
        }
        assert!(!out_of_service(None));
    }

    #[test]
    fn stored_times_sort_as_text() {
        let a = chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap_or_default();
        let b = chrono::DateTime::from_timestamp(1_700_000_000, 50_000).unwrap_or_default();
        assert!(format_time(a) < format_time(b));
        assert_eq!(parse_time(&format_time(a)), Some(a));
    }
}
