//! A microDAO's own roles: defined by its owners, each granting permissions
//! the policies know; a member holds at most one, besides their base role.

use daarion_access::vocab::roles::{DaoPermission, DaoRole};
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use super::{Actor, Change, MemberChange, Tx, lock, member_in, stage_change};
use crate::domain::{DaoError, MAX_CUSTOM_ROLES, Standing};

/// A custom role, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomRole {
    pub dao: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<DaoPermission>,
    /// How many members hold it.
    pub holders: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A custom role to define or redefine, checked.
#[derive(Debug, Clone)]
pub struct RoleDefinition {
    pub name: String,
    pub description: String,
    pub permissions: Vec<DaoPermission>,
}

const ROLE_COLUMNS: &str = "SELECT r.dao, r.name, r.description, r.permissions, r.created_by,
    r.created_at, r.updated_at,
    (SELECT COUNT(*) FROM microdao_members m WHERE m.dao = r.dao AND m.custom_role = r.name) AS holders
    FROM microdao_roles r";

/// Stored permissions: names separated by spaces.
pub(super) fn parse_permissions(stored: Option<&str>) -> Vec<DaoPermission> {
    stored
        .unwrap_or("")
        .split_whitespace()
        .filter_map(DaoPermission::parse)
        .collect()
}

fn stored_permissions(permissions: &[DaoPermission]) -> String {
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    names.join(" ")
}

fn role_from(row: &AnyRow) -> Result<CustomRole, DaoError> {
    let permissions: String = row.try_get("permissions")?;
    Ok(CustomRole {
        dao: row.try_get("dao")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        permissions: parse_permissions(Some(&permissions)),
        holders: row.try_get("holders")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Custom roles by name, after `after`.
pub async fn roles(
    db: &Db,
    slug: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<CustomRole>, DaoError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{ROLE_COLUMNS} WHERE r.dao = $1 AND r.name > $2 ORDER BY r.name LIMIT $3"
    )))
    .bind(slug)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(role_from).collect()
}

async fn role_in(tx: &mut Tx, slug: &str, name: &str) -> Result<Option<CustomRole>, DaoError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{ROLE_COLUMNS} WHERE r.dao = $1 AND r.name = $2"
    )))
    .bind(slug)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(role_from).transpose()
}

async fn stage_role(
    tx: &mut Tx,
    outbox: &Outbox,
    what: &str,
    role: &CustomRole,
    by: &str,
) -> Result<Staged, DaoError> {
    Ok(outbox
        .stage(tx, vec![crate::events::role_changed(what, role, by)])
        .await?)
}

/// Defines a custom role, or redefines it (its holders get the new
/// permissions at once). `true` when it is new.
pub async fn define(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    definition: &RoleDefinition,
    by: &Actor,
) -> Result<(CustomRole, bool, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let now = daarion_store::now();
    let permissions = stored_permissions(&definition.permissions);
    let updated = sql::query(
        "UPDATE microdao_roles SET description = $3, permissions = $4, updated_at = $5
         WHERE dao = $1 AND name = $2",
    )
    .bind(slug)
    .bind(definition.name.as_str())
    .bind(definition.description.as_str())
    .bind(permissions.as_str())
    .bind(now.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let created = updated == 0;
    if created {
        let count: i64 = sql::query("SELECT COUNT(*) AS n FROM microdao_roles WHERE dao = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if count >= MAX_CUSTOM_ROLES {
            return Err(DaoError::Conflict(format!(
                "a microDAO has at most {MAX_CUSTOM_ROLES} custom roles"
            )));
        }
        sql::query(
            "INSERT INTO microdao_roles (dao, name, description, permissions, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(slug)
        .bind(definition.name.as_str())
        .bind(definition.description.as_str())
        .bind(permissions.as_str())
        .bind(by.name.as_str())
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?;
    }
    let role = role_in(&mut tx, slug, &definition.name)
        .await?
        .ok_or_else(|| DaoError::NotFound(format!("no role {:?}", definition.name)))?;
    let what = if created { "defined" } else { "changed" };
    let staged = stage_role(&mut tx, outbox, what, &role, &by.name).await?;
    tx.commit().await?;
    Ok((role, created, staged))
}

/// Deletes a custom role; its holders keep their base role only.
pub async fn delete(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    name: &str,
    by: &Actor,
) -> Result<Staged, DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let role = role_in(&mut tx, slug, name)
        .await?
        .ok_or_else(|| DaoError::NotFound(format!("no role {name:?}")))?;
    sql::query(
        "UPDATE microdao_members SET custom_role = NULL WHERE dao = $1 AND custom_role = $2",
    )
    .bind(slug)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    sql::query("DELETE FROM microdao_roles WHERE dao = $1 AND name = $2")
        .bind(slug)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let staged = stage_role(&mut tx, outbox, "deleted", &role, &by.name).await?;
    tx.commit().await?;
    Ok(staged)
}

/// Gives `principal` the custom role `name` (in place of any other they
/// hold), or, with `grant: false`, takes it back.
pub async fn assign(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    name: &str,
    principal: &str,
    grant: bool,
    by: &Actor,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    if role_in(&mut tx, slug, name).await?.is_none() {
        return Err(DaoError::NotFound(format!("no role {name:?}")));
    }
    let member = member_in(&mut tx, slug, principal)
        .await?
        .ok_or_else(|| DaoError::NotFound(format!("{principal} is not a member")))?;
    if !grant && member.custom_role.as_deref() != Some(name) {
        return Err(DaoError::NotFound(format!(
            "{principal} does not hold the role {name:?}"
        )));
    }
    let custom_role = grant.then(|| name.to_owned());
    sql::query("UPDATE microdao_members SET custom_role = $3 WHERE dao = $1 AND principal = $2")
        .bind(slug)
        .bind(principal)
        .bind(custom_role.as_deref())
        .execute(&mut *tx)
        .await?;
    let change = MemberChange {
        dao: slug.to_owned(),
        principal: principal.to_owned(),
        handle: member.handle,
        role: Some(member.role),
        custom_role,
        change: if grant {
            Change::Granted
        } else {
            Change::Revoked
        },
        by: by.name.clone(),
    };
    let out = stage_change(&mut tx, outbox, change).await?;
    tx.commit().await?;
    Ok(out)
}

/// What `principal` may do in `slug`, if a member: their base role and
/// their custom role's permissions.
pub(crate) async fn standing_in(
    tx: &mut Tx,
    slug: &str,
    principal: &str,
) -> Result<Option<Standing>, DaoError> {
    // The microDAO's own governance (a passed proposal) stands as its
    // owners do.
    if principal == daarion_access::governance_name(slug) {
        return Ok(Some(Standing {
            role: DaoRole::Owner,
            permissions: DaoPermission::ALL.to_vec(),
        }));
    }
    let row = sql::query(
        "SELECT m.role, r.permissions FROM microdao_members m
         LEFT JOIN microdao_roles r ON r.dao = m.dao AND r.name = m.custom_role
         WHERE m.dao = $1 AND m.principal = $2",
    )
    .bind(slug)
    .bind(principal)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.try_get("role")?;
    let permissions: Option<String> = row.try_get("permissions")?;
    Ok(Some(Standing {
        role: DaoRole::parse(&role)
            .ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?,
        permissions: parse_permissions(permissions.as_deref()),
    }))
}
