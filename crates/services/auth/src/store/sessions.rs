//! Sessions: hashed tokens, idle and absolute expiry, revocation.

use super::*;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub user_agent: String,
    /// When its person last proved a passkey: sign-in or re-authentication.
    pub authenticated_at: String,
}

pub(crate) fn session_from(row: &AnyRow) -> Result<Session, AuthError> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        user_agent: row.try_get("user_agent")?,
        authenticated_at: row.try_get("authenticated_at")?,
    })
}

pub(crate) const SESSION_COLUMNS: &str = "SELECT id, user_id, created_at, last_seen_at, expires_at, user_agent, authenticated_at FROM auth_sessions";

/// Opens a session; returns it and the secret token (shown to the client
/// once, stored only hashed).
pub async fn create_session(
    db: &Db,
    user_id: &str,
    user_agent: &str,
    absolute: std::time::Duration,
) -> Result<(Session, String), AuthError> {
    let token = new_secret();
    let now = chrono::Utc::now();
    let session = Session {
        id: format!("ses_{}", uuid::Uuid::now_v7().simple()),
        user_id: user_id.to_owned(),
        created_at: daarion_store::format_time(now),
        last_seen_at: daarion_store::format_time(now),
        expires_at: daarion_store::format_time(
            now + chrono::Duration::from_std(absolute).unwrap_or_default(),
        ),
        user_agent: user_agent.chars().take(200).collect(),
        authenticated_at: daarion_store::format_time(now),
    };
    sql::query(
        "INSERT INTO auth_sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, user_agent, authenticated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&session.id)
    .bind(hash_secret(&token))
    .bind(&session.user_id)
    .bind(&session.created_at)
    .bind(&session.last_seen_at)
    .bind(&session.expires_at)
    .bind(&session.user_agent)
    .bind(&session.authenticated_at)
    .execute(db.pool())
    .await?;
    Ok((session, token))
}

/// The live (unrevoked) session a token hash names.
pub async fn session_by_hash(db: &Db, token_hash: &str) -> Result<Option<Session>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{SESSION_COLUMNS} WHERE token_hash = $1 AND revoked_at IS NULL"
    )))
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(session_from).transpose()
}

/// The live session with this id.
pub async fn session_by_id(db: &Db, id: &str) -> Result<Option<Session>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{SESSION_COLUMNS} WHERE id = $1 AND revoked_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(session_from).transpose()
}

/// Records that the session's person proved a passkey just now.
pub async fn mark_authenticated(db: &Db, id: &str) -> Result<(), AuthError> {
    sql::query("UPDATE auth_sessions SET authenticated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(daarion_store::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn touch_session(db: &Db, id: &str) -> Result<(), AuthError> {
    sql::query("UPDATE auth_sessions SET last_seen_at = $2 WHERE id = $1")
        .bind(id)
        .bind(daarion_store::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn sessions_of(db: &Db, user_id: &str) -> Result<Vec<Session>, AuthError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{SESSION_COLUMNS} WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
         ORDER BY created_at DESC"
    )))
    .bind(user_id)
    .bind(daarion_store::now())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(session_from).collect()
}

/// Revokes the person's sessions: one (`only`), or all but `keep`. Returns
/// the `(id, token hash)` of each, for the caches and open sockets.
pub async fn revoke_sessions(
    db: &Db,
    user_id: &str,
    only: Option<&str>,
    keep: Option<&str>,
) -> Result<Vec<(String, String)>, AuthError> {
    let rows = sql::query(
        "UPDATE auth_sessions SET revoked_at = $2
         WHERE user_id = $1 AND revoked_at IS NULL
           AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id <> $4)
         RETURNING id, token_hash",
    )
    .bind(user_id)
    .bind(daarion_store::now())
    .bind(only)
    .bind(keep)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("token_hash")?)))
        .collect()
}
