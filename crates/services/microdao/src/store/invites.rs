//! Invitations: codes stored as hashes, spent by one conditional update.

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use super::{Actor, MemberChange, admit, lock};
use crate::domain::DaoError;

/// An invitation, as listed (its code is shown once, at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: String,
    pub dao: String,
    pub role: DaoRole,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

const INVITE_COLUMNS: &str = "SELECT id, dao, role, max_uses, uses, expires_at, created_by, created_at, revoked_at FROM microdao_invites";

fn invite_from(row: &AnyRow) -> Result<Invite, DaoError> {
    let role: String = row.try_get("role")?;
    Ok(Invite {
        id: row.try_get("id")?,
        dao: row.try_get("dao")?,
        role: DaoRole::parse(&role)
            .ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        expires_at: row.try_get("expires_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A new invitation; its code (returned once) is stored only as a hash.
pub async fn create_invite(
    db: &Db,
    slug: &str,
    role: DaoRole,
    max_uses: u32,
    days: u32,
    actor: &Actor,
) -> Result<(Invite, String), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let standing = super::standing_in(&mut tx, slug, &actor.name).await?;
    if !crate::domain::may_invite(standing.as_ref(), actor.city_admin, role) {
        return Err(DaoError::Forbidden(format!(
            "your role may not invite as {}",
            role.as_str()
        )));
    }
    let code = format!(
        "{}{}",
        crate::domain::INVITE_PREFIX,
        daarion_kernel::secret::new_secret()
    );
    let now = chrono::Utc::now();
    let id = format!("mdinv_{}", uuid::Uuid::now_v7().simple());
    sql::query(
        "INSERT INTO microdao_invites (id, dao, code_hash, role, max_uses, uses, expires_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(slug)
    .bind(daarion_kernel::secret::hash_secret(&code))
    .bind(role.as_str())
    .bind(i64::from(max_uses))
    .bind(daarion_store::format_time(now + chrono::Duration::days(i64::from(days))))
    .bind(actor.name.as_str())
    .bind(daarion_store::format_time(now))
    .execute(&mut *tx)
    .await?;
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{INVITE_COLUMNS} WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let invite = invite_from(&row)?;
    tx.commit().await?;
    Ok((invite, code))
}

pub async fn invites(
    db: &Db,
    slug: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Invite>, DaoError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{INVITE_COLUMNS} WHERE dao = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    )))
    .bind(slug)
    .bind(after.unwrap_or("~"))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(invite_from).collect()
}

pub async fn revoke_invite(db: &Db, slug: &str, id: &str) -> Result<(), DaoError> {
    let n = sql::query(
        "UPDATE microdao_invites SET revoked_at = $3 WHERE dao = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(slug)
    .bind(id)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(DaoError::NotFound("no such open invitation".into()));
    }
    Ok(())
}

/// Spends one use of an invitation and makes `who` a member. The use is
/// counted by one conditional update, so concurrent accepts never exceed
/// `max_uses`; everything rolls back if `who` cannot join.
pub async fn accept(
    db: &Db,
    outbox: &Outbox,
    code: &str,
    who: &Actor,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    let row = sql::query(
        "UPDATE microdao_invites SET uses = uses + 1
         WHERE code_hash = $1 AND revoked_at IS NULL AND uses < max_uses AND expires_at > $2
         RETURNING dao, role",
    )
    .bind(daarion_kernel::secret::hash_secret(code))
    .bind(daarion_store::now())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(DaoError::InviteGone)?;
    let slug: String = row.try_get("dao")?;
    let role: String = row.try_get("role")?;
    let invited =
        DaoRole::parse(&role).ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?;
    // An agent joins as an agent whatever the invitation says.
    let role = if who.name.starts_with("agent:") {
        DaoRole::Agent
    } else if invited == DaoRole::Agent {
        DaoRole::Member
    } else {
        invited
    };
    lock(&mut tx, &slug).await?;
    let out = admit(
        &mut tx,
        outbox,
        &slug,
        (&who.name, &who.handle),
        role,
        &who.name,
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}
