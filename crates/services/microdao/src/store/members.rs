//! Members: who belongs, with which role; joins, changes, removals, bans.

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use super::{Actor, Tx, dao_in, lock};
use crate::domain::{DaoError, Visibility};

/// A member, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub principal: String,
    pub handle: String,
    pub role: DaoRole,
    /// The microDAO's own role they hold, if any.
    pub custom_role: Option<String>,
    pub joined_at: String,
}

fn member_from(row: &AnyRow) -> Result<Member, DaoError> {
    let role: String = row.try_get("role")?;
    Ok(Member {
        principal: row.try_get("principal")?,
        handle: row.try_get("handle")?,
        role: DaoRole::parse(&role)
            .ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?,
        custom_role: row.try_get("custom_role")?,
        joined_at: row.try_get("joined_at")?,
    })
}

/// How a membership changed, for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Joined,
    RoleChanged,
    Left,
    Removed,
    Banned,
    /// A custom role given (in place of any other).
    Granted,
    /// A custom role taken back.
    Revoked,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Joined => "joined",
            Change::RoleChanged => "role_changed",
            Change::Left => "left",
            Change::Removed => "removed",
            Change::Banned => "banned",
            Change::Granted => "granted",
            Change::Revoked => "revoked",
        }
    }
}

/// One membership change: the member, the new role (`None`: gone).
#[derive(Debug, Clone)]
pub struct MemberChange {
    pub dao: String,
    pub principal: String,
    pub handle: String,
    pub role: Option<DaoRole>,
    pub custom_role: Option<String>,
    pub change: Change,
    pub by: String,
}

/// Members by principal name, after `after`.
pub async fn members(
    db: &Db,
    slug: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Member>, DaoError> {
    let rows = sql::query(
        "SELECT principal, handle, role, custom_role, joined_at FROM microdao_members
         WHERE dao = $1 AND principal > $2 ORDER BY principal LIMIT $3",
    )
    .bind(slug)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(member_from).collect()
}

pub(super) async fn member_in(
    tx: &mut Tx,
    slug: &str,
    principal: &str,
) -> Result<Option<Member>, DaoError> {
    let row = sql::query(
        "SELECT principal, handle, role, custom_role, joined_at FROM microdao_members
         WHERE dao = $1 AND principal = $2",
    )
    .bind(slug)
    .bind(principal)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(member_from).transpose()
}

pub(crate) async fn is_member(tx: &mut Tx, slug: &str, principal: &str) -> Result<bool, DaoError> {
    Ok(member_in(tx, slug, principal).await?.is_some())
}

pub(super) async fn insert_member(
    tx: &mut Tx,
    slug: &str,
    principal: &str,
    handle: &str,
    role: DaoRole,
) -> Result<(), DaoError> {
    let inserted = sql::query(
        "INSERT INTO microdao_members (dao, principal, handle, role, joined_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dao, principal) DO NOTHING",
    )
    .bind(slug)
    .bind(principal)
    .bind(handle)
    .bind(role.as_str())
    .bind(daarion_store::now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(DaoError::Conflict("already a member".into()));
    }
    Ok(())
}

async fn refuse_banned(tx: &mut Tx, slug: &str, principal: &str) -> Result<(), DaoError> {
    let banned =
        sql::query("SELECT 1 AS banned FROM microdao_bans WHERE dao = $1 AND principal = $2")
            .bind(slug)
            .bind(principal)
            .fetch_optional(&mut **tx)
            .await?;
    if banned.is_some() {
        return Err(DaoError::Forbidden("banned from this microDAO".into()));
    }
    Ok(())
}

async fn owners(tx: &mut Tx, slug: &str) -> Result<i64, DaoError> {
    let row =
        sql::query("SELECT COUNT(*) AS n FROM microdao_members WHERE dao = $1 AND role = 'owner'")
            .bind(slug)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row.try_get("n")?)
}

pub(super) async fn stage_change(
    tx: &mut Tx,
    outbox: &Outbox,
    change: MemberChange,
) -> Result<(MemberChange, Staged), DaoError> {
    let staged = outbox
        .stage(tx, vec![crate::events::member_changed(&change)])
        .await?;
    Ok((change, staged))
}

/// Makes `principal` (name, handle) a member with `role` on `by`'s word,
/// unless banned or already in, and stages the event. The caller holds
/// the microDAO's `lock`.
pub(super) async fn admit(
    tx: &mut Tx,
    outbox: &Outbox,
    slug: &str,
    (principal, handle): (&str, &str),
    role: DaoRole,
    by: &str,
) -> Result<(MemberChange, Staged), DaoError> {
    refuse_banned(tx, slug, principal).await?;
    let change = enter(tx, slug, (principal, handle), role, by).await?;
    stage_change(tx, outbox, change).await
}

/// Writes a new member in; the change to announce.
pub(super) async fn enter(
    tx: &mut Tx,
    slug: &str,
    (principal, handle): (&str, &str),
    role: DaoRole,
    by: &str,
) -> Result<MemberChange, DaoError> {
    insert_member(tx, slug, principal, handle, role).await?;
    Ok(MemberChange {
        dao: slug.to_owned(),
        principal: principal.to_owned(),
        handle: handle.to_owned(),
        role: Some(role),
        custom_role: None,
        change: Change::Joined,
        by: by.to_owned(),
    })
}

/// Joins a public microDAO as a member (agents as agents).
pub async fn join(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    who: &Actor,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let dao = dao_in(&mut tx, slug).await?;
    if dao.visibility != Visibility::Public {
        return Err(DaoError::Forbidden(
            "this microDAO is private: join it with an invitation".into(),
        ));
    }
    let role = default_role(&who.name);
    let out = admit(
        &mut tx,
        outbox,
        slug,
        (&who.name, &who.handle),
        role,
        &who.name,
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Adds an agent as a member (role `agent`), on behalf of `by`.
pub async fn add_agent(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    agent: &str,
    by: &Actor,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let out = admit(
        &mut tx,
        outbox,
        slug,
        (agent, agent),
        DaoRole::Agent,
        &by.name,
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

fn default_role(principal: &str) -> DaoRole {
    if principal.starts_with("agent:") {
        DaoRole::Agent
    } else {
        DaoRole::Member
    }
}

/// Gives `principal` `role`, admitting them first if they are not a
/// member (what a passed proposal does: the caller has checked that the
/// actor is the microDAO's governance).
pub async fn set_or_admit(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    actor: &Actor,
    (principal, handle): (&str, &str),
    role: DaoRole,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    if member_in(&mut tx, slug, principal).await?.is_some() {
        drop(tx);
        return change_member(db, outbox, slug, actor, principal, Some(role), false).await;
    }
    crate::domain::role_fits(principal, role)?;
    let out = admit(
        &mut tx,
        outbox,
        slug,
        (principal, handle),
        role,
        &actor.name,
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Changes a member's role, or takes them out (`role: None`, with `ban`
/// to keep them out), as `actor` may (`domain::may_change`); never the
/// last owner.
pub async fn change_member(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    actor: &Actor,
    principal: &str,
    role: Option<DaoRole>,
    ban: bool,
) -> Result<(MemberChange, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let target = member_in(&mut tx, slug, principal)
        .await?
        .ok_or_else(|| DaoError::NotFound(format!("{principal} is not a member")))?;
    let leaving = principal == actor.name && role.is_none() && !ban;
    if !leaving {
        let standing = super::standing_in(&mut tx, slug, &actor.name).await?;
        if !crate::domain::may_change(standing.as_ref(), actor.city_admin, target.role, role) {
            return Err(DaoError::Forbidden(
                "your role may not make this change".into(),
            ));
        }
    }
    if let Some(role) = role {
        crate::domain::role_fits(principal, role)?;
    }
    if target.role == DaoRole::Owner
        && role != Some(DaoRole::Owner)
        && owners(&mut tx, slug).await? <= 1
    {
        return Err(DaoError::Conflict(
            "the last owner cannot leave or step down: make someone else owner first".into(),
        ));
    }
    match role {
        Some(role) => {
            sql::query("UPDATE microdao_members SET role = $3 WHERE dao = $1 AND principal = $2")
                .bind(slug)
                .bind(principal)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        None => {
            sql::query("DELETE FROM microdao_members WHERE dao = $1 AND principal = $2")
                .bind(slug)
                .bind(principal)
                .execute(&mut *tx)
                .await?;
        }
    }
    if ban {
        sql::query(
            "INSERT INTO microdao_bans (dao, principal, banned_by, banned_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (dao, principal) DO NOTHING",
        )
        .bind(slug)
        .bind(principal)
        .bind(actor.name.as_str())
        .bind(daarion_store::now())
        .execute(&mut *tx)
        .await?;
    }
    let change = MemberChange {
        dao: slug.to_owned(),
        principal: principal.to_owned(),
        handle: target.handle,
        role,
        custom_role: role.and(target.custom_role),
        change: match (role, ban, leaving) {
            (Some(_), _, _) => Change::RoleChanged,
            (None, true, _) => Change::Banned,
            (None, false, true) => Change::Left,
            (None, false, false) => Change::Removed,
        },
        by: actor.name.clone(),
    };
    let out = stage_change(&mut tx, outbox, change).await?;
    tx.commit().await?;
    Ok(out)
}

/// Every group `principal` is in through microDAOs: `dao:<slug>:<role>`
/// for each membership, and `dao:<slug>:can:<permission>` for what their
/// custom role there grants.
pub async fn role_groups(db: &Db, principal: &str) -> Result<Vec<String>, DaoError> {
    let rows = sql::query(
        "SELECT m.dao, m.role, r.permissions FROM microdao_members m
         LEFT JOIN microdao_roles r ON r.dao = m.dao AND r.name = m.custom_role
         WHERE m.principal = $1",
    )
    .bind(principal)
    .fetch_all(db.pool())
    .await?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in &rows {
        let dao: String = row.try_get("dao")?;
        let role: String = row.try_get("role")?;
        let permissions: Option<String> = row.try_get("permissions")?;
        groups.extend(
            super::roles::parse_permissions(permissions.as_deref())
                .into_iter()
                .map(|p| p.group(&dao)),
        );
        groups.push(format!("dao:{dao}:{role}"));
    }
    Ok(groups)
}
