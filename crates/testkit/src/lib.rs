//! Test helpers: each test gets backends of its own, so tests run in parallel
//! and in any order.
//!
//! - SQL: a new SQLite file in a temporary directory, or a new PostgreSQL
//!   database created through `DATABASE_URL`.
//! - Bus: the embedded bus on that database, or JetStream at `NATS_URL` under
//!   a fresh namespace (subjects and stream names).
//! - Cache: a fresh in-process cache, or Redis at `REDIS_URL` under a fresh
//!   key prefix.
//!
//! A real backend whose variable is unset is skipped with a loud message,
//! except under `CI=true`, where that is a failure.

#![allow(clippy::panic, clippy::expect_used, clippy::print_stdout)]

pub mod llm;
pub mod mcp;
pub mod otlp;
pub mod passkey;
pub mod stall;

use std::sync::Arc;

use daarion_bus::{NatsBus, subject::Streams};
use daarion_cache::{Cache, MemoryCache, RedisCache};
use daarion_store::Db;

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The backend variable's value; `None` (skip) locally when unset, a failure under CI.
pub fn require_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if under_ci() => {
            panic!("{var} is not set, and CI=true requires every real backend")
        }
        _ => {
            eprintln!(
                "!!! SKIPPED: {var} is not set; this test needs a real backend (scripts/test.sh sets it)"
            );
            None
        }
    }
}

/// Where Debian and others install nginx.
pub const NGINX: &[&str] = &["/usr/sbin/nginx", "/usr/bin/nginx"];

/// The first of `paths` that exists: a program the test runs (nginx...);
/// `None` (skip) locally when none does, a failure under CI, where
/// `scripts/test.sh` installs it.
pub fn require_program(paths: &[&str]) -> Option<std::path::PathBuf> {
    let found = paths
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            !under_ci(),
            "none of {paths:?} exists, and CI=true requires it (scripts/test.sh installs it)"
        );
        eprintln!("!!! SKIPPED: none of {paths:?} exists; scripts/test.sh installs it");
    }
    found
}

/// Where `scripts/test.sh` installs the local models (`DAARION_MODELS_DIR`
/// names another place).
pub fn models_dir() -> std::path::PathBuf {
    std::env::var_os("DAARION_MODELS_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/daarion/models")
        })
}

/// The models directory's `file` (`daarion models install` put it there);
/// `None` (skip) locally when it is missing, a failure under CI, where
/// `scripts/test.sh` installs it.
pub fn require_model(file: &str) -> Option<std::path::PathBuf> {
    let path = models_dir().join(file);
    if path.exists() {
        return Some(path);
    }
    assert!(
        !under_ci(),
        "CI needs {} (scripts/test.sh installs it)",
        path.display()
    );
    eprintln!(
        "!!! SKIPPED: no {} (scripts/test.sh installs it)",
        path.display()
    );
    None
}

/// A unique lowercase name for this test's resources.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    Sqlite,
    Postgres,
}

/// A database of this test's own; the SQLite file lives as long as this value.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// `None` when the backend is not configured (local runs only).
    pub async fn new(kind: SqlKind) -> Option<Self> {
        match kind {
            SqlKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let db = Db::connect(&url).await.expect("open sqlite");
                Some(Self {
                    db,
                    url,
                    _dir: Some(dir),
                })
            }
            SqlKind::Postgres => Some(Self::on_server(&require_env("DATABASE_URL")?).await),
        }
    }

    /// A fresh database on the PostgreSQL server `admin_url` names.
    pub async fn on_server(admin_url: &str) -> Self {
        let url = fresh_postgres_database(admin_url).await;
        let db = Db::connect(&url)
            .await
            .expect("connect to the test database");
        Self {
            db,
            url,
            _dir: None,
        }
    }

    /// Opens the same database again (a second replica, or a restart).
    pub async fn reopen(&self) -> Db {
        Db::connect(&self.url).await.expect("reopen database")
    }
}

/// Creates an empty database next to the one `admin_url` names, returning its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = unique("t_");
    let admin = Db::connect(admin_url)
        .await
        .expect("connect to DATABASE_URL");
    daarion_store::sql::query(daarion_store::sql::AssertSqlSafe(format!(
        "CREATE DATABASE {name}"
    )))
    .execute(admin.pool())
    .await
    .expect("create test database");
    admin.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}{query}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Embedded,
    Nats,
}

pub async fn nats_bus(url: &str, namespace: &str, streams: Streams) -> NatsBus {
    NatsBus::connect(url, namespace, streams)
        .await
        .expect("connect to NATS")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    Memory,
    Redis,
}

pub async fn fresh_cache(kind: CacheKind) -> Option<Arc<dyn Cache>> {
    match kind {
        CacheKind::Memory => Some(Arc::new(MemoryCache::default())),
        CacheKind::Redis => {
            let url = require_env("REDIS_URL")?;
            let cache = RedisCache::connect(&url, &format!("{}:", unique("t")))
                .await
                .expect("connect to Redis");
            Some(Arc::new(cache))
        }
    }
}

/// Applies the given migration sets to a fresh database.
pub async fn migrated_db(kind: SqlKind, sets: &[daarion_store::MigrationSet]) -> Option<TestDb> {
    let test_db = TestDb::new(kind).await?;
    daarion_store::migrate::apply(&test_db.db, sets)
        .await
        .expect("apply migrations");
    Some(test_db)
}

/// A fresh database on the PostgreSQL server with pgvector
/// (`DAARION_PGVECTOR_URL`, which `scripts/test.sh` starts), with the given
/// migration sets applied.
pub async fn migrated_pgvector_db(sets: &[daarion_store::MigrationSet]) -> Option<TestDb> {
    let test_db = TestDb::on_server(&require_env("DAARION_PGVECTOR_URL")?).await;
    daarion_store::migrate::apply(&test_db.db, sets)
        .await
        .expect("apply migrations");
    Some(test_db)
}

/// A fresh database on each SQL backend (SQLite, and PostgreSQL when
/// `DATABASE_URL` is set), with the given migration sets applied.
pub async fn migrated_dbs(sets: &[daarion_store::MigrationSet]) -> Vec<TestDb> {
    let mut dbs = Vec::new();
    for kind in [SqlKind::Sqlite, SqlKind::Postgres] {
        dbs.extend(migrated_db(kind, sets).await);
    }
    dbs
}

/// A port free on `host` right now, for a process the test starts (the OS
/// may hand it out again, but not within a test's few seconds in practice).
pub fn free_port(host: &str) -> u16 {
    let probe = std::net::TcpListener::bind((host, 0)).expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

/// Polls `check` every 50 ms until it gives `Some`, for at most `within`;
/// fails the test naming `what` otherwise. For what other tasks or
/// processes settle in their own time (consumers, replicas, sweepers).
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {within:?}: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One `#[tokio::test]` per function on SQLite and one on PostgreSQL
/// (modules `sqlite` and `postgres`); each function takes the [`SqlKind`].
#[macro_export]
macro_rules! on_both_sql {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::SqlKind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::SqlKind::Postgres).await })*
        }
    };
}
