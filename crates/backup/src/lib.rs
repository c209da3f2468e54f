//! Backups of a city's database and their restore, for both shapes.
//!
//! - The embedded SQLite file is copied online with `VACUUM INTO`: one
//!   read transaction, so the copy is consistent while `daarion up` keeps
//!   writing and holds everything committed before it began; it is then
//!   gzip-compressed.
//! - PostgreSQL is dumped by `pg_dump` in its custom format (compressed by
//!   PostgreSQL) and restored by `pg_restore` into an empty database.
//!
//! Beside each backup lies its manifest (`<name>.json`: format, time,
//! size, SHA-256, the version that made it), written last, so a listed
//! backup is a whole one. A restore checks the checksum first and, for
//! SQLite, the database's own integrity after unpacking it, and refuses a
//! damaged backup with a message saying which and why; it never writes
//! over an existing database.
//!
//! Each backup made is recorded in the database it copies
//! (`backup_history`, after the copy, so not in it): every process reads
//! the newest from there for `backup_last_success_timestamp_seconds`,
//! whether `daarion up` made it or a CronJob or timer elsewhere.
//!
//! `retention` decides which backups a schedule keeps (7 daily and 4
//! weekly by default), `schedule` when the next one is due.

pub mod retention;
pub mod schedule;

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use daarion_store::{Db, sql};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use schedule::Settings;

pub const MIGRATIONS: daarion_store::MigrationSet = daarion_store::MigrationSet {
    service: "backup",
    migrations: &[daarion_store::migration!(1, "001_create_backup_history")],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A gzip-compressed SQLite database file.
    Sqlite,
    /// `pg_dump`'s custom format.
    Postgres,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sqlite => "sqlite",
            Format::Postgres => "postgres",
        }
    }
}

/// What is known of a backup, kept beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: Format,
    /// The backup's file, in the manifest's directory.
    pub file: String,
    pub created_at: DateTime<Utc>,
    /// Bytes of the file.
    pub size: u64,
    /// SHA-256 of the file, in hex.
    pub sha256: String,
    /// The DAARION version that made it.
    pub version: String,
}

/// A backup on disk: its manifest and where its file is.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    pub manifest: Manifest,
    pub path: PathBuf,
}

impl Backup {
    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.path
            .with_file_name(format!("{}.json", stem(&self.path)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error(transparent)]
    Sql(#[from] sql::Error),
    /// `pg_dump` or `pg_restore` failed or is missing.
    #[error("{0}")]
    Tool(String),
    /// The backup is damaged or not one.
    #[error("{0}")]
    Corrupt(String),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(path.display().to_string(), e)
}

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Sqlite(PathBuf),
    Postgres(String),
}

fn source(database: &str) -> Result<Source, BackupError> {
    if let Some(rest) = database.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or(path);
        return Ok(Source::Sqlite(PathBuf::from(path)));
    }
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return Ok(Source::Postgres(database.to_owned()));
    }
    Err(BackupError::Refused(
        "the database is sqlite://PATH or postgres://…".into(),
    ))
}

/// A backup's name without its extensions.
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    name.split('.').next().unwrap_or_default().to_owned()
}

fn sha256_of(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = fs::File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn gzip(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut input = fs::File::open(from).map_err(io_at(from))?;
    let output = fs::File::create(to).map_err(io_at(to))?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder).map_err(io_at(to))?;
    let output = encoder.finish().map_err(io_at(to))?;
    output.sync_all().map_err(io_at(to))
}

fn gunzip(from: &Path, to: &Path) -> Result<(), BackupError> {
    let input = fs::File::open(from).map_err(io_at(from))?;
    let mut decoder = flate2::read::GzDecoder::new(input);
    let mut output = fs::File::create(to).map_err(io_at(to))?;
    io::copy(&mut decoder, &mut output).map_err(|e| {
        BackupError::Corrupt(format!("backup {} cannot be unpacked: {e}", from.display()))
    })?;
    output.flush().map_err(io_at(to))?;
    output.sync_all().map_err(io_at(to))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::Io("a backup task".into(), io::Error::other(e)))?
}

async fn tool(program: &str, args: &[&str]) -> Result<(), BackupError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| {
            BackupError::Tool(format!(
                "{program} could not run: {e} (is PostgreSQL's client installed?)"
            ))
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BackupError::Tool(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Backs up `database` into `dir` (created if missing): a consistent copy
/// of everything committed before it began, compressed, checksummed,
/// with its manifest.
pub async fn create(database: &str, dir: &Path) -> Result<Backup, BackupError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let now = Utc::now();
    let name = format!("daarion-{}", now.format("%Y%m%dT%H%M%S%3fZ"));
    let (format, file) = match source(database)? {
        Source::Sqlite(path) => {
            if !path.is_file() {
                return Err(BackupError::Refused(format!(
                    "there is no database at {}",
                    path.display()
                )));
            }
            let raw = dir.join(format!("{name}.sqlite.partial"));
            let db = Db::connect(database).await?;
            // Its own connection, not a query-only reader (SQLite counts
            // `VACUUM INTO` as a write); the copy is one read transaction
            // of the source, which writers in WAL mode do not wait for.
            let copied = sql::query("VACUUM INTO $1")
                .bind(raw.to_string_lossy().into_owned())
                .execute(db.pool())
                .await;
            db.close().await;
            copied?;
            let file = dir.join(format!("{name}.sqlite.gz"));
            let (from, to) = (raw.clone(), file.clone());
            let packed = blocking(move || gzip(&from, &to)).await;
            fs::remove_file(&raw).map_err(io_at(&raw))?;
            packed?;
            (Format::Sqlite, file)
        }
        Source::Postgres(url) => {
            let partial = dir.join(format!("{name}.pgdump.partial"));
            let path = partial.to_string_lossy().into_owned();
            tool(
                "pg_dump",
                &[
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    &path,
                    "--dbname",
                    &url,
                ],
            )
            .await?;
            let file = dir.join(format!("{name}.pgdump"));
            fs::rename(&partial, &file).map_err(io_at(&file))?;
            (Format::Postgres, file)
        }
    };
    let hashed = file.clone();
    let (size, sha256) = blocking(move || sha256_of(&hashed)).await?;
    let backup = Backup {
        manifest: Manifest {
            format,
            file: file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            created_at: now,
            size,
            sha256,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        path: file,
    };
    let manifest = backup.manifest_path();
    let partial = manifest.with_extension("json.partial");
    let text = serde_json::to_vec_pretty(&backup.manifest)
        .map_err(|e| BackupError::Io(manifest.display().to_string(), e.into()))?;
    fs::write(&partial, text).map_err(io_at(&partial))?;
    fs::rename(&partial, &manifest).map_err(io_at(&manifest))?;
    if let Err(error) = record(database, &backup.manifest).await {
        // The backup is whole; only its age is not reported (an alert
        // says so in a day).
        tracing::warn!(%error, "the backup was not recorded in the database's backup history");
    }
    Ok(backup)
}

/// Adds `made` to the backup history of `database`.
async fn record(database: &str, made: &Manifest) -> Result<(), BackupError> {
    let db = Db::connect(database).await?;
    let recorded = sql::query(
        "INSERT INTO backup_history (file, format, created_at, size, sha256)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&made.file)
    .bind(made.format.as_str())
    .bind(daarion_store::format_time(made.created_at))
    .bind(i64::try_from(made.size).unwrap_or(i64::MAX))
    .bind(&made.sha256)
    .execute(db.pool())
    .await;
    db.close().await;
    recorded?;
    Ok(())
}

/// When the newest backup recorded in `db` was made.
pub async fn newest(db: &Db) -> Result<Option<DateTime<Utc>>, BackupError> {
    let newest: Option<String> = sql::query_scalar("SELECT max(created_at) FROM backup_history")
        .fetch_one(db.reader())
        .await?;
    Ok(newest.as_deref().and_then(daarion_store::parse_time))
}

/// Sets `backup_last_success_timestamp_seconds` from the backup history
/// every `period` until `shutdown` fires (the "backup too old" alert).
pub async fn report_newest(
    db: Db,
    period: std::time::Duration,
    shutdown: daarion_kernel::shutdown::CancellationToken,
) {
    daarion_kernel::shutdown::every(period, shutdown, || async {
        match newest(&db).await {
            Ok(Some(at)) => {
                metrics::gauge!("backup_last_success_timestamp_seconds").set(at.timestamp() as f64);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the backup history"),
        }
    })
    .await;
}

/// The backup whose file or manifest is at `path`.
pub fn open(path: &Path) -> Result<Backup, BackupError> {
    let manifest = path.with_file_name(format!("{}.json", stem(path)));
    let text = fs::read(&manifest).map_err(|e| {
        BackupError::Refused(format!(
            "{} is not a backup: its manifest {} cannot be read ({e})",
            path.display(),
            manifest.display()
        ))
    })?;
    let manifest_read: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BackupError::Corrupt(format!(
            "{} is not a backup manifest: {e}",
            manifest.display()
        ))
    })?;
    if manifest_read.file.contains('/') || manifest_read.file.contains('\\') {
        return Err(BackupError::Corrupt(format!(
            "{} names a file outside its directory",
            manifest.display()
        )));
    }
    Ok(Backup {
        path: manifest.with_file_name(&manifest_read.file),
        manifest: manifest_read,
    })
}

/// The backups in `dir`, newest first (none when it does not exist).
pub fn list(dir: &Path) -> Result<Vec<Backup>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(dir))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            match open(&path) {
                Ok(backup) => found.push(backup),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "not a backup; left alone");
                }
            }
        }
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.manifest.created_at));
    Ok(found)
}

/// Checks a backup's file against its manifest.
pub async fn verify(backup: &Backup) -> Result<(), BackupError> {
    let path = backup.path.clone();
    let found = blocking(move || match sha256_of(&path) {
        Ok(found) => Ok(Some(found)),
        Err(BackupError::Io(_, e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let name = backup.path.display();
    match found {
        None => Err(BackupError::Corrupt(format!("backup {name} is missing"))),
        Some((size, sha256))
            if size != backup.manifest.size || sha256 != backup.manifest.sha256 =>
        {
            Err(BackupError::Corrupt(format!(
                "backup {name} is damaged: {size} bytes with SHA-256 {sha256}, where its manifest says {} bytes with {}; it is not restored",
                backup.manifest.size, backup.manifest.sha256
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Restores `backup` into `database`, which must not hold a city yet: a
/// SQLite file that does not exist, or an empty PostgreSQL database.
pub async fn restore(backup: &Backup, database: &str) -> Result<(), BackupError> {
    verify(backup).await?;
    match (backup.manifest.format, source(database)?) {
        (Format::Sqlite, Source::Sqlite(target)) => {
            if target.exists() {
                return Err(BackupError::Refused(format!(
                    "{} already exists: restore into a fresh data directory, or move it away first",
                    target.display()
                )));
            }
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            let partial = PathBuf::from(format!("{}.restoring", target.display()));
            let (from, to) = (backup.path.clone(), partial.clone());
            let unpacked = blocking(move || gunzip(&from, &to)).await;
            let checked = match unpacked {
                Ok(()) => integrity(&partial).await,
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
            fs::rename(&partial, &target).map_err(io_at(&target))
        }
        (Format::Postgres, Source::Postgres(url)) => {
            let path = backup.path.to_string_lossy().into_owned();
            tool(
                "pg_restore",
                &["--no-owner", "--exit-on-error", "--dbname", &url, &path],
            )
            .await
            .map_err(|e| BackupError::Tool(format!("{e} (restore into an empty database)")))
        }
        (format, _) => Err(BackupError::Refused(format!(
            "a {} backup restores into a {} database, and the database named is not one",
            format.as_str(),
            format.as_str()
        ))),
    }
}

/// SQLite's own check of an unpacked database.
async fn integrity(path: &Path) -> Result<(), BackupError> {
    let db = Db::connect(&format!("sqlite://{}", path.display())).await?;
    let checked = sql::query("PRAGMA integrity_check")
        .fetch_all(db.pool())
        .await;
    db.close().await;
    let said: Vec<String> = checked
        .map_err(|e| BackupError::Corrupt(format!("the backup is not a database: {e}")))?
        .iter()
        .filter_map(|row| sql::Row::try_get::<String, _>(row, 0).ok())
        .collect();
    if said == ["ok"] {
        Ok(())
    } else {
        Err(BackupError::Corrupt(format!(
            "the backup's database is damaged: {}",
            said.join("; ")
        )))
    }
}

/// Removes what `retention::keep` does not keep; what it removed.
pub fn prune(
    dir: &Path,
    keep_daily: usize,
    keep_weekly: usize,
) -> Result<Vec<Backup>, BackupError> {
    let backups = list(dir)?;
    let times: Vec<DateTime<Utc>> = backups.iter().map(|b| b.manifest.created_at).collect();
    let kept = retention::keep(&times, keep_daily, keep_weekly);
    let mut removed = Vec::new();
    for (i, backup) in backups.into_iter().enumerate() {
        if kept.contains(&i) {
            continue;
        }
        for path in [backup.manifest_path(), backup.path.clone()] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        removed.push(backup);
    }
    Ok(removed)
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[(
    "backup_last_success_timestamp_seconds",
    "When the newest backup was made (Unix time).",
)];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn database_urls_name_their_files() {
        assert_eq!(
            source("sqlite:///var/lib/daarion/daarion.db?mode=rwc").unwrap(),
            Source::Sqlite("/var/lib/daarion/daarion.db".into())
        );
        assert_eq!(
            source("sqlite://data/daarion.db").unwrap(),
            Source::Sqlite("data/daarion.db".into())
        );
        assert!(matches!(
            source("postgres://u@h/db").unwrap(),
            Source::Postgres(_)
        ));
        assert!(source("mysql://x").is_err());
        assert_eq!(
            stem(Path::new("/b/daarion-20261206T030000000Z.sqlite.gz")),
            "daarion-20261206T030000000Z"
        );
    }
}
