//! MicroDAO queries. Every change to a microDAO's membership first touches
//! its row (`lock`), which serialises changes per microDAO on PostgreSQL as
//! SQLite does for all writes: "never the last owner" holds under
//! concurrency. Events are staged in the same transaction (the outbox).

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row, Transaction},
};

use crate::domain::{DaoError, Visibility};

type Tx = Transaction<'static, sql::Any>;

/// A microDAO.
#[derive(Debug, Clone, PartialEq)]
pub struct Dao {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub visibility: Visibility,
    pub district: Option<String>,
    pub parent: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    pub members: i64,
}

const DAO_COLUMNS: &str =
    "SELECT d.slug, d.name, d.description, d.avatar_url, d.visibility, d.district,
    d.parent, d.created_by, d.created_at, d.updated_at, d.archived_at,
    (SELECT COUNT(*) FROM microdao_members m WHERE m.dao = d.slug) AS members
    FROM microdao_daos d";

fn dao_from(row: &AnyRow) -> Result<Dao, DaoError> {
    let visibility: String = row.try_get("visibility")?;
    Ok(Dao {
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        avatar_url: row.try_get("avatar_url")?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| DaoError::Invalid(format!("stored visibility {visibility:?}")))?,
        district: row.try_get("district")?,
        parent: row.try_get("parent")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        archived_at: row.try_get("archived_at")?,
        members: row.try_get("members")?,
    })
}

/// A microDAO to create, checked.
#[derive(Debug, Clone)]
pub struct NewDao {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub visibility: Visibility,
    pub district: Option<String>,
    pub parent: Option<String>,
}

/// Who acts: a principal name (`user:<id>`) and how they are shown.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub handle: String,
    /// City admins may do what an owner may.
    pub city_admin: bool,
}

/// A member, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub principal: String,
    pub handle: String,
    pub role: DaoRole,
    pub joined_at: String,
}

fn member_from(row: &AnyRow) -> Result<Member, DaoError> {
    let role: String = row.try_get("role")?;
    Ok(Member {
        principal: row.try_get("principal")?,
        handle: row.try_get("handle")?,
        role: crate::domain::role(&role)
            .ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?,
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
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Joined => "joined",
            Change::RoleChanged => "role_changed",
            Change::Left => "left",
            Change::Removed => "removed",
            Change::Banned => "banned",
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
    pub change: Change,
    pub by: String,
}

pub async fn create(
    db: &Db,
    outbox: &Outbox,
    new: &NewDao,
    creator: &Actor,
    idempotency_key: Option<&str>,
) -> Result<(Dao, bool, Staged), DaoError> {
    let mut tx = db.begin().await?;
    let scope = format!("microdao.daos:{}", creator.name);
    if let Some(key) = idempotency_key {
        let hash = idempotency::fingerprint(&[
            &new.slug,
            &new.name,
            &new.description,
            new.avatar_url.as_deref().unwrap_or(""),
            new.visibility.as_str(),
            new.district.as_deref().unwrap_or(""),
            new.parent.as_deref().unwrap_or(""),
        ]);
        if let Claim::Replay(slug) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let dao = dao_in(&mut tx, &slug).await?;
            return Ok((dao, false, Staged::none()));
        }
    }
    if let Some(parent) = &new.parent {
        lock(&mut tx, parent).await?;
    }
    let now = daarion_store::now();
    let inserted = sql::query(
        "INSERT INTO microdao_daos (slug, name, description, avatar_url, visibility, district, parent,
            created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (slug) DO NOTHING",
    )
    .bind(new.slug.as_str())
    .bind(new.name.as_str())
    .bind(new.description.as_str())
    .bind(new.avatar_url.as_deref())
    .bind(new.visibility.as_str())
    .bind(new.district.as_deref())
    .bind(new.parent.as_deref())
    .bind(creator.name.as_str())
    .bind(now.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(DaoError::Conflict(format!(
            "microDAO {:?} already exists",
            new.slug
        )));
    }
    insert_member(
        &mut tx,
        &new.slug,
        &creator.name,
        &creator.handle,
        DaoRole::Owner,
    )
    .await?;
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &new.slug).await?;
    }
    let dao = dao_in(&mut tx, &new.slug).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![crate::events::dao_changed("created", &dao, &creator.name)],
        )
        .await?;
    tx.commit().await?;
    Ok((dao, true, staged))
}

async fn dao_in(tx: &mut Tx, slug: &str) -> Result<Dao, DaoError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{DAO_COLUMNS} WHERE d.slug = $1"
    )))
    .bind(slug)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| not_found(slug))?;
    dao_from(&row)
}

fn not_found(slug: &str) -> DaoError {
    DaoError::NotFound(format!("no microDAO {slug:?}"))
}

pub async fn dao(db: &Db, slug: &str) -> Result<Option<Dao>, DaoError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{DAO_COLUMNS} WHERE d.slug = $1"
    )))
    .bind(slug)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(dao_from).transpose()
}

/// What `viewer` may see, by slug after `after`: public microDAOs and those
/// they belong to (every one for a city admin); archived ones only with
/// `archived`.
pub async fn list(
    db: &Db,
    viewer: &Actor,
    archived: bool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Dao>, DaoError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{DAO_COLUMNS} WHERE d.slug > $1
           AND (d.archived_at IS NULL OR $2 = 1)
           AND ($3 = 1 OR d.visibility = 'public'
                OR d.slug IN (SELECT dao FROM microdao_members WHERE principal = $4))
         ORDER BY d.slug LIMIT $5"
    )))
    .bind(after.unwrap_or(""))
    .bind(i64::from(archived))
    .bind(i64::from(viewer.city_admin))
    .bind(viewer.name.as_str())
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(dao_from).collect()
}

/// Takes the microDAO's row for this transaction (see the module note);
/// refuses an archived microDAO, which is read-only.
pub(crate) async fn lock(tx: &mut Tx, slug: &str) -> Result<(), DaoError> {
    let row = sql::query(
        "UPDATE microdao_daos SET updated_at = updated_at WHERE slug = $1 RETURNING archived_at",
    )
    .bind(slug)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| not_found(slug))?;
    let archived: Option<String> = row.try_get("archived_at")?;
    if archived.is_some() {
        return Err(DaoError::Conflict(format!(
            "microDAO {slug:?} is archived and read-only"
        )));
    }
    Ok(())
}

/// The fields an update sets (`None`: unchanged; `Some(None)`: cleared).
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub visibility: Option<Visibility>,
    pub district: Option<Option<String>>,
}

pub async fn update(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    patch: &Patch,
    actor: &Actor,
) -> Result<(Dao, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    let current = dao_in(&mut tx, slug).await?;
    sql::query(
        "UPDATE microdao_daos SET name = $2, description = $3, avatar_url = $4, visibility = $5,
            district = $6, updated_at = $7 WHERE slug = $1",
    )
    .bind(slug)
    .bind(patch.name.as_deref().unwrap_or(&current.name))
    .bind(patch.description.as_deref().unwrap_or(&current.description))
    .bind(patch.avatar_url.clone().unwrap_or(current.avatar_url))
    .bind(patch.visibility.unwrap_or(current.visibility).as_str())
    .bind(patch.district.clone().unwrap_or(current.district))
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?;
    let dao = dao_in(&mut tx, slug).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![crate::events::dao_changed("updated", &dao, &actor.name)],
        )
        .await?;
    tx.commit().await?;
    Ok((dao, staged))
}

/// Archives a microDAO: read-only from now on, out of the default lists.
pub async fn archive(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    actor: &Actor,
) -> Result<(Dao, Staged), DaoError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, slug).await?;
    sql::query("UPDATE microdao_daos SET archived_at = $2, updated_at = $2 WHERE slug = $1")
        .bind(slug)
        .bind(daarion_store::now())
        .execute(&mut *tx)
        .await?;
    let dao = dao_in(&mut tx, slug).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![crate::events::dao_changed("archived", &dao, &actor.name)],
        )
        .await?;
    tx.commit().await?;
    Ok((dao, staged))
}

/// Members by principal name, after `after`.
pub async fn members(
    db: &Db,
    slug: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Member>, DaoError> {
    let rows = sql::query(
        "SELECT principal, handle, role, joined_at FROM microdao_members
         WHERE dao = $1 AND principal > $2 ORDER BY principal LIMIT $3",
    )
    .bind(slug)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(member_from).collect()
}

async fn member_in(tx: &mut Tx, slug: &str, principal: &str) -> Result<Option<Member>, DaoError> {
    let row = sql::query(
        "SELECT principal, handle, role, joined_at FROM microdao_members WHERE dao = $1 AND principal = $2",
    )
    .bind(slug)
    .bind(principal)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(member_from).transpose()
}

/// The role `principal` holds in `slug`, if a member.
pub(crate) async fn role_in(
    tx: &mut Tx,
    slug: &str,
    principal: &str,
) -> Result<Option<DaoRole>, DaoError> {
    Ok(member_in(tx, slug, principal).await?.map(|m| m.role))
}

pub(crate) async fn is_member(tx: &mut Tx, slug: &str, principal: &str) -> Result<bool, DaoError> {
    Ok(member_in(tx, slug, principal).await?.is_some())
}

async fn insert_member(
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

async fn stage_change(
    tx: &mut Tx,
    outbox: &Outbox,
    change: MemberChange,
) -> Result<(MemberChange, Staged), DaoError> {
    let staged = outbox
        .stage(tx, vec![crate::events::member_changed(&change)])
        .await?;
    Ok((change, staged))
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
    refuse_banned(&mut tx, slug, &who.name).await?;
    let role = default_role(&who.name);
    insert_member(&mut tx, slug, &who.name, &who.handle, role).await?;
    let change = MemberChange {
        dao: slug.to_owned(),
        principal: who.name.clone(),
        handle: who.handle.clone(),
        role: Some(role),
        change: Change::Joined,
        by: who.name.clone(),
    };
    let out = stage_change(&mut tx, outbox, change).await?;
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
    refuse_banned(&mut tx, slug, agent).await?;
    insert_member(&mut tx, slug, agent, agent, DaoRole::Agent).await?;
    let change = MemberChange {
        dao: slug.to_owned(),
        principal: agent.to_owned(),
        handle: agent.to_owned(),
        role: Some(DaoRole::Agent),
        change: Change::Joined,
        by: by.name.clone(),
    };
    let out = stage_change(&mut tx, outbox, change).await?;
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
        let actor_role = member_in(&mut tx, slug, &actor.name).await?.map(|m| m.role);
        if !crate::domain::may_change(actor_role, actor.city_admin, target.role, role) {
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
        role: crate::domain::role(&role)
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
    let actor_role = member_in(&mut tx, slug, &actor.name).await?.map(|m| m.role);
    if !crate::domain::may_change(actor_role, actor.city_admin, DaoRole::Guest, Some(role)) {
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
    let invited = crate::domain::role(&role)
        .ok_or_else(|| DaoError::Invalid(format!("stored role {role:?}")))?;
    // An agent joins as an agent whatever the invitation says.
    let role = if who.name.starts_with("agent:") {
        DaoRole::Agent
    } else if invited == DaoRole::Agent {
        DaoRole::Member
    } else {
        invited
    };
    lock(&mut tx, &slug).await?;
    refuse_banned(&mut tx, &slug, &who.name).await?;
    insert_member(&mut tx, &slug, &who.name, &who.handle, role).await?;
    let change = MemberChange {
        dao: slug,
        principal: who.name.clone(),
        handle: who.handle.clone(),
        role: Some(role),
        change: Change::Joined,
        by: who.name.clone(),
    };
    let out = stage_change(&mut tx, outbox, change).await?;
    tx.commit().await?;
    Ok(out)
}

/// Every role group `principal` holds in microDAOs: `dao:<slug>:<role>`.
pub async fn role_groups(db: &Db, principal: &str) -> Result<Vec<String>, DaoError> {
    let rows = sql::query("SELECT dao, role FROM microdao_members WHERE principal = $1")
        .bind(principal)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            let dao: String = row.try_get("dao")?;
            let role: String = row.try_get("role")?;
            Ok(format!("dao:{dao}:{role}"))
        })
        .collect()
}
