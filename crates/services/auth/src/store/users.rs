//! People: accounts and registration (first person and invitations make admins).

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub city_role: CityRole,
    pub created_at: String,
}

pub(crate) fn city_role(row: &AnyRow) -> Result<CityRole, AuthError> {
    let raw: String = row.try_get("city_role")?;
    CityRole::parse(&raw).ok_or_else(|| AuthError::Corrupt(format!("city_role {raw:?}")))
}

pub(crate) fn user_from(row: &AnyRow) -> Result<User, AuthError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        city_role: city_role(row)?,
        created_at: row.try_get("created_at")?,
    })
}

const USER_FIELDS: &str = "id, username, display_name, city_role, created_at";

pub async fn user_by_username(db: &Db, username: &str) -> Result<Option<User>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {USER_FIELDS} FROM auth_users WHERE username = $1"
    )))
    .bind(username)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(user_from).transpose()
}

pub async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {USER_FIELDS} FROM auth_users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(user_from).transpose()
}

/// People by id (unknown ids are left out).
pub async fn users_by_ids(db: &Db, ids: &[String]) -> Result<Vec<User>, AuthError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let mut query = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {USER_FIELDS} FROM auth_users WHERE id IN ({})",
        placeholders.join(", ")
    )));
    for id in ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(user_from).collect()
}

/// Renames a person (their display name; the username is for good).
pub async fn set_display_name(db: &Db, id: &str, display_name: &str) -> Result<User, AuthError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "UPDATE auth_users SET display_name = $2 WHERE id = $1 RETURNING {USER_FIELDS}"
    )))
    .bind(id)
    .bind(display_name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref()
        .map(user_from)
        .transpose()?
        .ok_or_else(|| AuthError::NotFound("no such person".into()))
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

/// Whether anyone has registered yet (the first became the city admin).
pub async fn has_admin(db: &Db) -> Result<bool, AuthError> {
    let row = sql::query("SELECT user_id FROM auth_bootstrap WHERE id = 1")
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
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
