//! `Idempotency-Key` support for creates: the first request with a key
//! creates the resource; a retry with the same key and the same body gets the
//! same resource back; the same key with a different body is a conflict.
//!
//! The key is claimed inside the caller's transaction, so a create and its
//! key are committed together or not at all.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{MigrationSet, StoreError, migration};

pub const MIGRATIONS: MigrationSet = MigrationSet {
    service: "idempotency",
    migrations: &[migration!(1, "001_create_idempotency_keys")],
};

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: create the resource and call [`complete`].
    Fresh,
    /// The key was used before with the same request: return this resource.
    Replay(String),
}

/// A fingerprint of the request, so a reused key with another body is caught.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Claims `key` in `scope` (e.g. `city.rooms:alice`) inside `tx`.
pub async fn claim(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<Claim, StoreError> {
    if key.is_empty() || key.len() > 255 {
        return Err(StoreError::Conflict(
            "Idempotency-Key must be 1 to 255 characters".into(),
        ));
    }
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at)
         VALUES ($1, $2, $3, '', $4) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(crate::now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query(
        "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    let resource: String = row.try_get("resource_id")?;
    if stored_hash != request_hash {
        return Err(StoreError::Conflict(
            "this Idempotency-Key was used with a different request".into(),
        ));
    }
    Ok(Claim::Replay(resource))
}

/// Records the resource a fresh claim created.
pub async fn complete(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    scope: &str,
    key: &str,
    resource_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_keys SET resource_id = $1 WHERE scope = $2 AND key = $3")
        .bind(resource_id)
        .bind(scope)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
