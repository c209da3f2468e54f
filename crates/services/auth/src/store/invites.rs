//! One-time invitations, stored as hashes.

use super::*;

/// Stores an invitation (its token's hash); returns when it expires.
pub async fn create_invite(
    db: &Db,
    token_hash: &str,
    city_role: CityRole,
    created_by: &str,
    valid_for: std::time::Duration,
) -> Result<String, AuthError> {
    let expires = daarion_store::format_time(
        chrono::Utc::now() + chrono::Duration::from_std(valid_for).unwrap_or_default(),
    );
    sql::query(
        "INSERT INTO auth_invites (token_hash, city_role, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(city_role.as_str())
    .bind(created_by)
    .bind(daarion_store::now())
    .bind(&expires)
    .execute(db.pool())
    .await?;
    Ok(expires)
}

/// Whether an invitation can still be spent (checked when a registration
/// begins; it is spent when it finishes).
pub async fn invite_is_open(db: &Db, token_hash: &str) -> Result<bool, AuthError> {
    Ok(sql::query(
        "SELECT 1 AS one FROM auth_invites WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(daarion_store::now())
    .fetch_optional(db.pool())
    .await?
    .is_some())
}
