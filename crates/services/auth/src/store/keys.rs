//! API keys and the agent identities they are bound to.

use super::*;

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub agent_id: Option<String>,
    pub name: String,
    pub scopes: Vec<daarion_access::Scope>,
    pub limits: daarion_access::KeyLimits,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// Decodes a JSON column; a value that does not decode is an error, never
/// an empty default (corrupt scopes must not read as "none").
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, AuthError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| AuthError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn api_key_from(row: &AnyRow) -> Result<ApiKey, AuthError> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        agent_id: row.try_get("agent_id")?,
        name: row.try_get("name")?,
        scopes: json_column(row, "scopes")?,
        limits: json_column(row, "limits")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

pub(crate) const API_KEY_COLUMNS: &str = "SELECT id, user_id, agent_id, name, scopes, limits, created_at, expires_at, last_used_at FROM auth_api_keys";

/// Creates a key. A key for an agent claims the agent's identity for its
/// owner on first use; another person's agent is refused.
pub async fn create_api_key(db: &Db, key: &ApiKey, token_hash: &str) -> Result<(), AuthError> {
    let mut tx = db.begin().await?;
    if let Some(agent) = &key.agent_id {
        claim_agent(&mut tx, agent, &key.user_id).await?;
    }
    sql::query(
        "INSERT INTO auth_api_keys (id, token_hash, user_id, agent_id, name, scopes, limits, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&key.id)
    .bind(token_hash)
    .bind(&key.user_id)
    .bind(&key.agent_id)
    .bind(&key.name)
    .bind(serde_json::to_string(&key.scopes).map_err(|e| AuthError::Corrupt(e.to_string()))?)
    .bind(serde_json::to_string(&key.limits).map_err(|e| AuthError::Corrupt(e.to_string()))?)
    .bind(&key.created_at)
    .bind(&key.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes `agent` an identity of `user_id`'s, unless it is someone else's
/// already (then `Forbidden`); the agent hub and API keys for agents both
/// claim through here.
pub async fn claim_agent(
    tx: &mut sql::Transaction<'static, sql::Any>,
    agent: &str,
    user_id: &str,
) -> Result<(), AuthError> {
    sql::query("INSERT INTO auth_agents (id, owner_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
        .bind(agent)
        .bind(user_id)
        .bind(daarion_store::now())
        .execute(&mut **tx)
        .await?;
    let owner: String = sql::query("SELECT owner_id FROM auth_agents WHERE id = $1")
        .bind(agent)
        .fetch_one(&mut **tx)
        .await?
        .try_get("owner_id")?;
    if owner != user_id {
        return Err(AuthError::Forbidden(format!(
            "agent {agent:?} belongs to someone else"
        )));
    }
    Ok(())
}

/// The person an agent identity belongs to.
pub async fn agent_owner(db: &Db, agent_id: &str) -> Result<Option<String>, AuthError> {
    let row = sql::query("SELECT owner_id FROM auth_agents WHERE id = $1")
        .bind(agent_id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| r.try_get("owner_id").map_err(AuthError::from))
        .transpose()
}

pub async fn api_keys_of(db: &Db, user_id: &str) -> Result<Vec<ApiKey>, AuthError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{API_KEY_COLUMNS} WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC"
    )))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(api_key_from).collect()
}

/// The live key a token hash names (expiry is checked by the caller).
pub async fn api_key_by_hash(db: &Db, token_hash: &str) -> Result<Option<ApiKey>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{API_KEY_COLUMNS} WHERE token_hash = $1 AND revoked_at IS NULL"
    )))
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(api_key_from).transpose()
}

/// The live (unrevoked) key with this id.
pub async fn api_key_by_id(db: &Db, id: &str) -> Result<Option<ApiKey>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{API_KEY_COLUMNS} WHERE id = $1 AND revoked_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(api_key_from).transpose()
}

pub async fn touch_api_key(db: &Db, id: &str) -> Result<(), AuthError> {
    sql::query("UPDATE auth_api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(daarion_store::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Revokes a key; returns its token hash for the caches.
pub async fn revoke_api_key(db: &Db, user_id: &str, id: &str) -> Result<String, AuthError> {
    let row = sql::query(
        "UPDATE auth_api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
         RETURNING token_hash",
    )
    .bind(id)
    .bind(user_id)
    .bind(daarion_store::now())
    .fetch_optional(db.pool())
    .await?;
    let row = row.ok_or_else(|| AuthError::NotFound("no such API key".into()))?;
    Ok(row.try_get("token_hash")?)
}
