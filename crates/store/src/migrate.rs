//! Numbered migrations per service (STANDARDS.md, "Database migrations").
//!
//! Each service ships `migrations/NNN_description.sql` with a rollback
//! `NNN_description.down.sql`, embedded with [`migration!`](crate::migration).
//! Applied migrations are recorded in `daarion_migrations` with a SHA-256 of
//! their text; a changed applied migration stops start-up. Each migration runs
//! in its own transaction. On PostgreSQL an advisory lock makes concurrent
//! replicas apply them once.
//!
//! Most SQL is portable; what is not (a full-text index, say) goes between
//! `-- if sqlite` or `-- if postgres` and `-- end if` lines, and only the
//! running backend sees it. The checksum covers the whole file.

use sha2::{Digest, Sha256};
use sqlx::{Acquire, Row};

use crate::{Backend, Db, StoreError};

/// One migration with its rollback.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.up.as_bytes()))
    }

    /// `text` (`up` or `down`) as `backend` runs it: the sections meant
    /// for the other backend left out.
    pub fn for_backend(text: &str, backend: Backend) -> String {
        let mut keep = true;
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            match line.trim() {
                "-- if sqlite" => keep = backend == Backend::Sqlite,
                "-- if postgres" => keep = backend == Backend::Postgres,
                "-- end if" => keep = true,
                _ if keep => {
                    out.push_str(line);
                    out.push('\n');
                }
                _ => {}
            }
        }
        out
    }

    /// Every file opens with the standard header naming its number.
    pub fn check_header(&self) -> Result<(), String> {
        for (kind, text) in [("up", self.up), ("down", self.down)] {
            let expected = format!("-- Migration: {:03}", self.version);
            let header: Vec<&str> = text.lines().take(5).collect();
            let has = |prefix: &str| header.iter().any(|l| l.starts_with(prefix));
            if !has(&expected)
                || !has("-- Description: ")
                || !has("-- Date: ")
                || !has("-- Author: ")
                || !has("-- Rollback: ")
            {
                return Err(format!(
                    "{} ({kind}) lacks the standard header (Migration/Description/Date/Author/Rollback)",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// The migrations of one service, in version order.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    pub service: &'static str,
    pub migrations: &'static [Migration],
}

impl MigrationSet {
    pub fn check_headers(&self) -> Result<(), String> {
        let mut last = 0;
        for m in self.migrations {
            if m.version <= last {
                return Err(format!(
                    "{}: versions must increase ({})",
                    self.service, m.name
                ));
            }
            last = m.version;
            m.check_header()?;
        }
        Ok(())
    }
}

/// Embeds `migrations/<file>.sql` and `migrations/<file>.down.sql` of the
/// calling crate.
#[macro_export]
macro_rules! migration {
    ($version:literal, $file:literal) => {
        $crate::Migration {
            version: $version,
            name: $file,
            up: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $file,
                ".sql"
            )),
            down: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $file,
                ".down.sql"
            )),
        }
    };
}

/// A migration that was applied or rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub service: String,
    pub version: u32,
    pub name: String,
}

const LOCK_KEY: i64 = 0x0da0_7001;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS daarion_migrations (
    service TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (service, version)
)";

/// Applies every pending migration of `sets`, after checking that the applied
/// ones are unchanged.
pub async fn apply(db: &Db, sets: &[MigrationSet]) -> Result<Vec<Step>, StoreError> {
    let mut conn = db.pool().acquire().await?;
    lock(db, &mut conn).await?;
    let result = apply_locked(&mut conn, db.backend(), sets).await;
    unlock(db, &mut conn).await;
    result
}

async fn apply_locked(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    backend: Backend,
    sets: &[MigrationSet],
) -> Result<Vec<Step>, StoreError> {
    sqlx::query(CREATE_TABLE).execute(&mut **conn).await?;
    let mut steps = Vec::new();
    for set in sets {
        set.check_headers().map_err(StoreError::Conflict)?;
        let applied = applied_checksums(conn, set.service).await?;
        for (version, checksum) in &applied {
            let known = set.migrations.iter().find(|m| m.version == *version);
            match known {
                None => {
                    return Err(StoreError::MigrationUnknown {
                        service: set.service.into(),
                        version: *version,
                    });
                }
                Some(m) if m.checksum() != *checksum => {
                    return Err(StoreError::MigrationChanged {
                        service: set.service.into(),
                        version: *version,
                        applied: checksum.clone(),
                        current: m.checksum(),
                    });
                }
                Some(_) => {}
            }
        }
        for m in set.migrations {
            if applied.iter().any(|(v, _)| *v == m.version) {
                continue;
            }
            let failed = |source| StoreError::MigrationFailed {
                service: set.service.into(),
                version: m.version,
                source,
            };
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(Migration::for_backend(m.up, backend)))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            sqlx::query(
                "INSERT INTO daarion_migrations (service, version, name, checksum, applied_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(set.service)
            .bind(i64::from(m.version))
            .bind(m.name)
            .bind(m.checksum())
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(
                migration_set = set.service,
                version = m.version,
                name = m.name,
                "migration applied"
            );
            steps.push(Step {
                service: set.service.into(),
                version: m.version,
                name: m.name.into(),
            });
        }
    }
    Ok(steps)
}

/// Rolls back the `count` most recently applied migrations, newest first.
pub async fn rollback(
    db: &Db,
    sets: &[MigrationSet],
    count: usize,
) -> Result<Vec<Step>, StoreError> {
    let mut conn = db.pool().acquire().await?;
    lock(db, &mut conn).await?;
    let result = rollback_locked(&mut conn, db.backend(), sets, count).await;
    unlock(db, &mut conn).await;
    result
}

async fn rollback_locked(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    backend: Backend,
    sets: &[MigrationSet],
    count: usize,
) -> Result<Vec<Step>, StoreError> {
    sqlx::query(CREATE_TABLE).execute(&mut **conn).await?;
    let rows = sqlx::query(
        "SELECT service, version FROM daarion_migrations ORDER BY applied_at DESC, version DESC",
    )
    .fetch_all(&mut **conn)
    .await?;
    let mut steps = Vec::new();
    for row in rows.into_iter().take(count) {
        let service: String = row.try_get("service")?;
        let version = u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0);
        let migration = sets
            .iter()
            .filter(|s| s.service == service)
            .flat_map(|s| s.migrations.iter())
            .find(|m| m.version == version)
            .ok_or_else(|| StoreError::MigrationUnknown {
                service: service.clone(),
                version,
            })?;
        let failed = |source| StoreError::MigrationFailed {
            service: service.clone(),
            version,
            source,
        };
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(Migration::for_backend(
            migration.down,
            backend,
        )))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        sqlx::query("DELETE FROM daarion_migrations WHERE service = $1 AND version = $2")
            .bind(service.as_str())
            .bind(i64::from(version))
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(migration_set = %service, version, name = migration.name, "migration rolled back");
        steps.push(Step {
            service,
            version,
            name: migration.name.into(),
        });
    }
    Ok(steps)
}

/// The applied migrations, oldest first.
pub async fn applied(db: &Db) -> Result<Vec<Step>, StoreError> {
    sqlx::query(CREATE_TABLE).execute(db.pool()).await?;
    let rows = sqlx::query(
        "SELECT service, version, name FROM daarion_migrations ORDER BY applied_at, version",
    )
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Step {
                service: row.try_get("service")?,
                version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
                name: row.try_get("name")?,
            })
        })
        .collect()
}

async fn applied_checksums(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    service: &str,
) -> Result<Vec<(u32, String)>, StoreError> {
    let rows = sqlx::query("SELECT version, checksum FROM daarion_migrations WHERE service = $1")
        .bind(service)
        .fetch_all(&mut **conn)
        .await?;
    rows.into_iter()
        .map(|row| {
            let version = u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0);
            Ok((version, row.try_get("checksum")?))
        })
        .collect()
}

async fn lock(db: &Db, conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<(), StoreError> {
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut **conn)
            .await?;
    }
    Ok(())
}

async fn unlock(db: &Db, conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) {
    if db.backend() == Backend::Postgres {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut **conn)
            .await;
        if unlocked.is_err() {
            // A connection that may still hold the lock must not go back to the pool.
            conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_sees_only_its_own_sections() {
        let text = "CREATE TABLE t (x TEXT);\n-- if sqlite\nSQLITE ONLY;\n-- end if\n-- if postgres\nPG ONLY;\n-- end if\nBOTH;\n";
        let sqlite = Migration::for_backend(text, Backend::Sqlite);
        let postgres = Migration::for_backend(text, Backend::Postgres);
        assert_eq!(sqlite, "CREATE TABLE t (x TEXT);\nSQLITE ONLY;\nBOTH;\n");
        assert_eq!(postgres, "CREATE TABLE t (x TEXT);\nPG ONLY;\nBOTH;\n");
    }
}
