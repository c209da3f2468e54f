//! Recovery codes, hashed, each spent once.

use super::*;

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
