//! Auth queries. Every write is one transaction; single-use things
//! (ceremonies, recovery codes) are consumed by one conditional statement,
//! so two replicas can never both accept the same one.

use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use daarion_access::vocab::roles::CityRole;

use crate::domain::{AuthError, hash_secret, new_secret};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub city_role: CityRole,
    pub created_at: String,
}

fn city_role(row: &AnyRow) -> Result<CityRole, AuthError> {
    let raw: String = row.try_get("city_role")?;
    CityRole::parse(&raw).ok_or_else(|| AuthError::Corrupt(format!("city_role {raw:?}")))
}

fn user_from(row: &AnyRow) -> Result<User, AuthError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        city_role: city_role(row)?,
        created_at: row.try_get("created_at")?,
    })
}

const USER_COLUMNS: &str =
    "SELECT id, username, display_name, city_role, created_at FROM auth_users";

pub async fn user_by_username(db: &Db, username: &str) -> Result<Option<User>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{USER_COLUMNS} WHERE username = $1"
    )))
    .bind(username)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(user_from).transpose()
}

pub async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{USER_COLUMNS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(user_from).transpose()
}

/// A stored passkey: webauthn-rs's credential as JSON, plus our metadata.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

fn passkey_from(row: &AnyRow) -> Result<StoredPasskey, AuthError> {
    Ok(StoredPasskey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        passkey: row.try_get("passkey")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

const PASSKEY_COLUMNS: &str =
    "SELECT id, user_id, name, passkey, created_at, last_used_at FROM auth_passkeys";

pub async fn passkeys_of(db: &Db, user_id: &str) -> Result<Vec<StoredPasskey>, AuthError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{PASSKEY_COLUMNS} WHERE user_id = $1 ORDER BY created_at, id"
    )))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(passkey_from).collect()
}

pub async fn passkey_by_id(db: &Db, id: &str) -> Result<Option<StoredPasskey>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{PASSKEY_COLUMNS} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(passkey_from).transpose()
}

/// Everything a registration stores.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub passkey_id: &'a str,
    pub passkey_name: &'a str,
    pub passkey_json: &'a str,
    /// The invitation being spent, if any (hash of its token).
    pub invite_hash: Option<&'a str>,
}

/// A new person with their first passkey, in one transaction. The first
/// person ever becomes the city admin (the bootstrap row can be inserted
/// once), as does whoever spends an admin invitation; an invitation is spent
/// here, once.
pub async fn create_user(db: &Db, new: &NewUser<'_>) -> Result<User, AuthError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let mut role = CityRole::Citizen;
    if let Some(hash) = new.invite_hash {
        let spent = sql::query(
            "UPDATE auth_invites SET used_at = $2, used_by = $3
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING city_role",
        )
        .bind(hash)
        .bind(&now)
        .bind(new.id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| AuthError::Unauthorized("invitation is unknown, used or expired".into()))?;
        role = city_role(&spent)?;
    }
    let first = sql::query(
        "INSERT INTO auth_bootstrap (id, user_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(new.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if first {
        role = CityRole::Admin;
    }
    let inserted = sql::query(
        "INSERT INTO auth_users (id, username, display_name, city_role, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
    )
    .bind(new.id)
    .bind(new.username)
    .bind(new.display_name)
    .bind(role.as_str())
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AuthError::Conflict(format!(
            "username {:?} is taken",
            new.username
        )));
    }
    insert_passkey(
        &mut tx,
        new.passkey_id,
        new.id,
        new.passkey_name,
        new.passkey_json,
        &now,
    )
    .await?;
    tx.commit().await?;
    Ok(User {
        id: new.id.to_owned(),
        username: new.username.to_owned(),
        display_name: new.display_name.to_owned(),
        city_role: role,
        created_at: now,
    })
}

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

async fn insert_passkey(
    tx: &mut sql::Transaction<'static, sql::Any>,
    id: &str,
    user_id: &str,
    name: &str,
    passkey_json: &str,
    now: &str,
) -> Result<(), AuthError> {
    let inserted = sql::query(
        "INSERT INTO auth_passkeys (id, user_id, name, passkey, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(passkey_json)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AuthError::Conflict(
            "this passkey is already registered".into(),
        ));
    }
    Ok(())
}

pub async fn add_passkey(
    db: &Db,
    id: &str,
    user_id: &str,
    name: &str,
    passkey_json: &str,
) -> Result<(), AuthError> {
    let mut tx = db.begin().await?;
    insert_passkey(
        &mut tx,
        id,
        user_id,
        name,
        passkey_json,
        &daarion_store::now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores the credential after a login (new sign counter, backup state).
pub async fn record_passkey_use(
    db: &Db,
    id: &str,
    passkey_json: Option<&str>,
) -> Result<(), AuthError> {
    sql::query(
        "UPDATE auth_passkeys SET passkey = COALESCE($2, passkey), last_used_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(passkey_json)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn rename_passkey(db: &Db, user_id: &str, id: &str, name: &str) -> Result<(), AuthError> {
    let n = sql::query("UPDATE auth_passkeys SET name = $3 WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .bind(name)
        .execute(db.pool())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(AuthError::NotFound("no such passkey".into()));
    }
    Ok(())
}

/// Deletes a passkey unless it is the person's last one (they could never
/// sign in again).
pub async fn delete_passkey(db: &Db, user_id: &str, id: &str) -> Result<(), AuthError> {
    let mut tx = db.begin().await?;
    let n = sql::query(
        "DELETE FROM auth_passkeys WHERE id = $1 AND user_id = $2
         AND (SELECT COUNT(*) FROM auth_passkeys WHERE user_id = $2) > 1",
    )
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        let exists =
            sql::query("SELECT 1 AS one FROM auth_passkeys WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        return Err(if exists {
            AuthError::Conflict("this is your last passkey: add another before deleting it".into())
        } else {
            AuthError::NotFound("no such passkey".into())
        });
    }
    tx.commit().await?;
    Ok(())
}

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

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub user_agent: String,
}

fn session_from(row: &AnyRow) -> Result<Session, AuthError> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        user_agent: row.try_get("user_agent")?,
    })
}

const SESSION_COLUMNS: &str =
    "SELECT id, user_id, created_at, last_seen_at, expires_at, user_agent FROM auth_sessions";

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
    };
    sql::query(
        "INSERT INTO auth_sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&session.id)
    .bind(hash_secret(&token))
    .bind(&session.user_id)
    .bind(&session.created_at)
    .bind(&session.last_seen_at)
    .bind(&session.expires_at)
    .bind(&session.user_agent)
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
/// the token hashes revoked, for the caches.
pub async fn revoke_sessions(
    db: &Db,
    user_id: &str,
    only: Option<&str>,
    keep: Option<&str>,
) -> Result<Vec<String>, AuthError> {
    let rows = sql::query(
        "UPDATE auth_sessions SET revoked_at = $2
         WHERE user_id = $1 AND revoked_at IS NULL
           AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id <> $4)
         RETURNING token_hash",
    )
    .bind(user_id)
    .bind(daarion_store::now())
    .bind(only)
    .bind(keep)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get("token_hash").map_err(AuthError::from))
        .collect()
}

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
fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, AuthError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| AuthError::Corrupt(format!("{column}: {e}")))
}

fn api_key_from(row: &AnyRow) -> Result<ApiKey, AuthError> {
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

const API_KEY_COLUMNS: &str = "SELECT id, user_id, agent_id, name, scopes, limits, created_at, expires_at, last_used_at FROM auth_api_keys";

/// Creates a key. A key for an agent claims the agent's identity for its
/// owner on first use; another person's agent is refused.
pub async fn create_api_key(db: &Db, key: &ApiKey, token_hash: &str) -> Result<(), AuthError> {
    let mut tx = db.begin().await?;
    if let Some(agent) = &key.agent_id {
        sql::query("INSERT INTO auth_agents (id, owner_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(agent)
            .bind(&key.user_id)
            .bind(&key.created_at)
            .execute(&mut *tx)
            .await?;
        let owner: String = sql::query("SELECT owner_id FROM auth_agents WHERE id = $1")
            .bind(agent)
            .fetch_one(&mut *tx)
            .await?
            .try_get("owner_id")?;
        if owner != key.user_id {
            return Err(AuthError::Forbidden(format!(
                "agent {agent:?} belongs to someone else"
            )));
        }
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

/// The person an agent identity belongs to.
pub async fn agent_owner(db: &Db, agent_id: &str) -> Result<Option<String>, AuthError> {
    let row = sql::query("SELECT owner_id FROM auth_agents WHERE id = $1")
        .bind(agent_id)
        .fetch_optional(db.pool())
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

/// Replaces the person's recovery codes with new ones (hashes given).
pub async fn replace_recovery_codes(
    db: &Db,
    user_id: &str,
    hashes: &[String],
) -> Result<(), AuthError> {
    let mut tx = db.begin().await?;
    sql::query("DELETE FROM auth_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let now = daarion_store::now();
    for hash in hashes {
        sql::query(
            "INSERT INTO auth_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Spends a recovery code: true once, false ever after (or if unknown).
pub async fn use_recovery_code(db: &Db, user_id: &str, hash: &str) -> Result<bool, AuthError> {
    let n = sql::query(
        "UPDATE auth_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn unused_recovery_codes(db: &Db, user_id: &str) -> Result<i64, AuthError> {
    let row = sql::query(
        "SELECT COUNT(*) AS n FROM auth_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("n")?)
}
