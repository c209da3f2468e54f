//! Passkeys: webauthn-rs credentials and our metadata.

use super::*;

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

pub(crate) fn passkey_from(row: &AnyRow) -> Result<StoredPasskey, AuthError> {
    Ok(StoredPasskey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        passkey: row.try_get("passkey")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

pub(crate) const PASSKEY_COLUMNS: &str =
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

pub(crate) async fn insert_passkey(
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
