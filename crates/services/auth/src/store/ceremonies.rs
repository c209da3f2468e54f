//! Pending WebAuthn ceremonies, each taken once.

use super::*;

/// A pending WebAuthn ceremony.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub kind: String,
    pub user_id: Option<String>,
    pub state: String,
    pub extra: String,
}

pub async fn put_ceremony(
    db: &Db,
    ceremony: &Ceremony,
    ttl: std::time::Duration,
) -> Result<String, AuthError> {
    let id = new_secret();
    let expires = chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    sql::query(
        "INSERT INTO auth_ceremonies (id, kind, user_id, state, extra, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&ceremony.kind)
    .bind(&ceremony.user_id)
    .bind(&ceremony.state)
    .bind(&ceremony.extra)
    .bind(daarion_store::format_time(expires))
    .execute(db.pool())
    .await?;
    // Abandoned ceremonies are swept on the way.
    sql::query("DELETE FROM auth_ceremonies WHERE expires_at < $1")
        .bind(daarion_store::now())
        .execute(db.pool())
        .await?;
    Ok(id)
}

/// Takes a ceremony: it can be finished once, before it expires, and only
/// by the step it was started for.
pub async fn take_ceremony(db: &Db, id: &str, kinds: &[&str]) -> Result<Ceremony, AuthError> {
    let row = sql::query(
        "DELETE FROM auth_ceremonies WHERE id = $1
         RETURNING kind, user_id, state, extra, expires_at",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let missing =
        || AuthError::Unauthorized("unknown, used or expired ceremony: start again".into());
    let row = row.ok_or_else(missing)?;
    let kind: String = row.try_get("kind")?;
    let expires_at: String = row.try_get("expires_at")?;
    if expires_at < daarion_store::now() || !kinds.contains(&kind.as_str()) {
        return Err(missing());
    }
    Ok(Ceremony {
        kind,
        user_id: row.try_get("user_id")?,
        state: row.try_get("state")?,
        extra: row.try_get("extra")?,
    })
}
