//! Secrets the city makes once and keeps: every replica, and every restart,
//! reads the same value.

use super::*;

/// The secret named `name`, made on first use. Two replicas asking at once
/// both read the one that was inserted first.
pub async fn kept_secret(db: &Db, name: &str) -> Result<String, AuthError> {
    sql::query(
        "INSERT INTO auth_secrets (name, value, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(new_secret())
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    let row = sql::query("SELECT value FROM auth_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("value")?)
}
