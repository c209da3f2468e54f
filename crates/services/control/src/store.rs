//! Versioned documents: every change is a new version; a pointer says which
//! version is current (the newest, unless rolled back).

use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};
use serde_json::Value;

use crate::domain::{ControlError, DocKind};

/// One version of a document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Document {
    pub version: u64,
    #[schema(value_type = Object)]
    pub value: Value,
    /// Who made this version (`user:<id>`, ...).
    pub author: String,
    pub created_at: String,
}

fn document_from(row: &AnyRow) -> Result<Document, ControlError> {
    let version: i64 = row.try_get("version")?;
    let value: String = row.try_get("value")?;
    Ok(Document {
        version: u64::try_from(version).unwrap_or(0),
        value: serde_json::from_str(&value).map_err(|e| ControlError::Corrupt(e.to_string()))?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
    })
}

fn db_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// Stores `value` as the next version; with `activate`, it becomes current.
pub async fn put(
    db: &Db,
    kind: DocKind,
    key: &str,
    value: &Value,
    author: &str,
    activate: bool,
) -> Result<Document, ControlError> {
    let mut tx = db.begin().await?;
    let document = put_in(&mut tx, kind, key, value, author, activate).await?;
    tx.commit().await?;
    Ok(document)
}

/// [`put`] within a caller's transaction (another service writing an
/// agent's documents with the agent itself); the caller announces the
/// change once it commits ([`crate::ControlClient::announce`]).
pub async fn put_in(
    tx: &mut sql::Transaction<'static, sql::Any>,
    kind: DocKind,
    key: &str,
    value: &Value,
    author: &str,
    activate: bool,
) -> Result<Document, ControlError> {
    let latest: i64 = sql::query("SELECT COALESCE(MAX(version), 0) AS v FROM control_versions WHERE kind = $1 AND doc_key = $2")
        .bind(kind.as_str())
        .bind(key)
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
    let document = Document {
        version: u64::try_from(latest).unwrap_or(0) + 1,
        value: value.clone(),
        author: author.to_owned(),
        created_at: daarion_store::now(),
    };
    let inserted = sql::query(
        "INSERT INTO control_versions (kind, doc_key, version, value, author, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, doc_key, version) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(db_version(document.version))
    .bind(value.to_string())
    .bind(author)
    .bind(&document.created_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ControlError::Conflict);
    }
    if activate {
        point(tx, kind, key, document.version).await?;
    }
    Ok(document)
}

async fn point(
    tx: &mut sql::Transaction<'static, sql::Any>,
    kind: DocKind,
    key: &str,
    version: u64,
) -> Result<(), ControlError> {
    sql::query(
        "INSERT INTO control_current (kind, doc_key, version) VALUES ($1, $2, $3)
         ON CONFLICT (kind, doc_key) DO UPDATE SET version = excluded.version",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(db_version(version))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes an existing version current (a rollback, or activating a draft).
pub async fn set_current(
    db: &Db,
    kind: DocKind,
    key: &str,
    version: u64,
) -> Result<Document, ControlError> {
    let mut tx = db.begin().await?;
    let document = sql::query(
        "SELECT version, value, author, created_at FROM control_versions WHERE kind = $1 AND doc_key = $2 AND version = $3",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(db_version(version))
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(document_from)
    .transpose()?
    .ok_or_else(|| ControlError::NotFound(format!("no version {version} of {} {key}", kind.as_str())))?;
    point(&mut tx, kind, key, version).await?;
    tx.commit().await?;
    Ok(document)
}

const CURRENT: &str = "SELECT v.version, v.value, v.author, v.created_at FROM control_current c
    JOIN control_versions v ON v.kind = c.kind AND v.doc_key = c.doc_key AND v.version = c.version
    WHERE c.kind = $1 AND c.doc_key = $2";

pub async fn current(db: &Db, kind: DocKind, key: &str) -> Result<Option<Document>, ControlError> {
    let row = sql::query(CURRENT)
        .bind(kind.as_str())
        .bind(key)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(document_from).transpose()
}

/// [`current`] within a caller's transaction.
pub async fn current_in(
    tx: &mut sql::Transaction<'static, sql::Any>,
    kind: DocKind,
    key: &str,
) -> Result<Option<Document>, ControlError> {
    let row = sql::query(CURRENT)
        .bind(kind.as_str())
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(document_from).transpose()
}

pub async fn version(
    db: &Db,
    kind: DocKind,
    key: &str,
    version: u64,
) -> Result<Option<Document>, ControlError> {
    let row = sql::query(
        "SELECT version, value, author, created_at FROM control_versions WHERE kind = $1 AND doc_key = $2 AND version = $3",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(db_version(version))
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(document_from).transpose()
}

/// Versions, newest first, below `before` (a version number).
pub async fn versions(
    db: &Db,
    kind: DocKind,
    key: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<Document>, ControlError> {
    let rows = sql::query(
        "SELECT version, value, author, created_at FROM control_versions
         WHERE kind = $1 AND doc_key = $2 AND version < $3 ORDER BY version DESC LIMIT $4",
    )
    .bind(kind.as_str())
    .bind(key)
    .bind(before.map_or(i64::MAX, db_version))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(document_from).collect()
}

/// A key and its current version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Keyed {
    pub key: String,
    pub current: Document,
}

/// Keys of `kind` with their current versions, in key order, after `after`.
pub async fn list(
    db: &Db,
    kind: DocKind,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Keyed>, ControlError> {
    let rows = sql::query(
        "SELECT c.doc_key, v.version, v.value, v.author, v.created_at FROM control_current c
         JOIN control_versions v ON v.kind = c.kind AND v.doc_key = c.doc_key AND v.version = c.version
         WHERE c.kind = $1 AND c.doc_key > $2 ORDER BY c.doc_key LIMIT $3",
    )
    .bind(kind.as_str())
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Keyed {
                key: row.try_get("doc_key")?,
                current: document_from(row)?,
            })
        })
        .collect()
}
