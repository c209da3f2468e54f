//! Policy versions and audit rows.

use daarion_access::PolicyFile;
use daarion_bus::Envelope;
use daarion_store::{
    Db,
    sql::{self, Row},
};

use crate::PdpError;

/// The newest stored policy set.
pub async fn current(db: &Db) -> Result<Option<(u64, Vec<PolicyFile>)>, PdpError> {
    let row =
        sql::query("SELECT version, files FROM pdp_policy_versions ORDER BY version DESC LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else { return Ok(None) };
    let version: i64 = row.try_get("version")?;
    Ok(Some((u64::try_from(version).unwrap_or(0), files_of(&row)?)))
}

/// The policy files a version's row stores as JSON.
fn files_of(row: &sql::AnyRow) -> Result<Vec<PolicyFile>, PdpError> {
    let files: String = row.try_get("files")?;
    serde_json::from_str(&files).map_err(|e| PdpError::Corrupt(e.to_string()))
}

/// One stored policy set, without its files.
pub struct VersionRow {
    pub version: u64,
    pub author: String,
    pub created_at: String,
}

/// Stored versions, newest first, older than `before`.
pub async fn versions(
    db: &Db,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<VersionRow>, PdpError> {
    let rows = sql::query(
        "SELECT version, author, created_at FROM pdp_policy_versions
         WHERE version < $1 ORDER BY version DESC LIMIT $2",
    )
    .bind(before.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX)))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let version: i64 = r.try_get("version")?;
            Ok(VersionRow {
                version: u64::try_from(version).unwrap_or(0),
                author: r.try_get("author")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The files of one stored version.
pub async fn version(db: &Db, version: u64) -> Result<Option<Vec<PolicyFile>>, PdpError> {
    let row = sql::query("SELECT files FROM pdp_policy_versions WHERE version = $1")
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(files_of).transpose()
}

/// Stores `files` as the version after `after`; two concurrent changes
/// cannot both land on the same version.
pub async fn save(
    db: &Db,
    after: u64,
    files: &[PolicyFile],
    author: &str,
) -> Result<u64, PdpError> {
    let version = after + 1;
    let inserted = sql::query(
        "INSERT INTO pdp_policy_versions (version, files, author, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (version) DO NOTHING",
    )
    .bind(i64::try_from(version).unwrap_or(i64::MAX))
    .bind(serde_json::to_string(files).map_err(|e| PdpError::Corrupt(e.to_string()))?)
    .bind(author)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(PdpError::Conflict);
    }
    Ok(version)
}

/// Records `AUDIT` events in one statement (the rows bound as one JSON
/// array); a redelivered event is stored once.
pub async fn record_audit(db: &Db, events: &[Envelope]) -> Result<(), PdpError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            serde_json::json!([
                event.id,
                event.time,
                event.subject,
                event.source,
                event.actor.as_deref().unwrap_or(""),
                event.request_id,
                event.payload.to_string(),
            ])
        })
        .collect();
    let text = format!(
        "INSERT INTO pdp_audit (event_id, time, subject, service, actor, request_id, record)
         SELECT c0, c1, c2, c3, c4, c5, c6 FROM ({}) AS j WHERE true
         ON CONFLICT (event_id) DO NOTHING",
        sql::json_rows(db.backend(), 1, 7)
    );
    sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(db.pool())
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub event_id: String,
    pub time: String,
    pub subject: String,
    pub service: String,
    pub actor: String,
    pub request_id: String,
    pub record: String,
}

/// Audit rows, newest first, after the cursor position `(time, id)`.
pub async fn audit(db: &Db, before: Option<&str>, limit: u32) -> Result<Vec<AuditRow>, PdpError> {
    let rows = sql::query(
        "SELECT event_id, time, subject, service, actor, request_id, record FROM pdp_audit
         WHERE ($1 IS NULL OR time || '|' || event_id < $1)
         ORDER BY time DESC, event_id DESC LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                event_id: r.try_get("event_id")?,
                time: r.try_get("time")?,
                subject: r.try_get("subject")?,
                service: r.try_get("service")?,
                actor: r.try_get("actor")?,
                request_id: r.try_get("request_id")?,
                record: r.try_get("record")?,
            })
        })
        .collect()
}

/// Deletes audit rows older than `before` (RFC 3339); returns how many.
pub async fn prune_audit(db: &Db, before: &str) -> Result<u64, PdpError> {
    let done = sql::query("DELETE FROM pdp_audit WHERE time < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pruning_removes_only_rows_older_than_the_retention() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            let mut old = Envelope::new("auth", "audit.error", serde_json::json!({}));
            old.time = "2026-01-01T00:00:00.000000Z".into();
            let recent = Envelope::new("auth", "audit.error", serde_json::json!({}));
            record_audit(db, &[old, recent.clone()]).await.unwrap();
            assert_eq!(
                prune_audit(db, "2026-06-01T00:00:00.000000Z")
                    .await
                    .unwrap(),
                1
            );
            let left = audit(db, None, 10).await.unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].event_id, recent.id);
        }
    }
}
