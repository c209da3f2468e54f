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

mod invites;
mod members;
mod roles;

pub use invites::*;
pub use members::*;
pub use roles::*;

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
    /// The agent that speaks for it (a member), if any.
    pub orchestrator: Option<String>,
}

const DAO_COLUMNS: &str =
    "SELECT d.slug, d.name, d.description, d.avatar_url, d.visibility, d.district,
    d.parent, d.created_by, d.created_at, d.updated_at, d.archived_at, d.orchestrator,
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
        orchestrator: row.try_get("orchestrator")?,
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
    /// An agent (slug) its creator may bring in, to speak for it.
    pub orchestrator: Option<String>,
}

/// Who acts: a principal name (`user:<id>`) and how they are shown.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub handle: String,
    /// City admins may do what an owner may.
    pub city_admin: bool,
}

impl Actor {
    pub fn of(principal: &daarion_access::Principal) -> Self {
        Self {
            name: principal.name(),
            handle: principal.handle.clone(),
            city_admin: principal
                .roles
                .iter()
                .any(|r| r == daarion_access::vocab::roles::CITY_ADMIN),
        }
    }
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
            new.orchestrator.as_deref().unwrap_or(""),
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
            created_by, created_at, updated_at, orchestrator)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) ON CONFLICT (slug) DO NOTHING",
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
    .bind(new.orchestrator.as_deref())
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
    let mut events = Vec::with_capacity(2);
    if let Some(agent) = &new.orchestrator {
        let name = format!("agent:{agent}");
        let change = members::enter(
            &mut tx,
            &new.slug,
            (&name, &name),
            DaoRole::Agent,
            &creator.name,
        )
        .await?;
        events.push(crate::events::member_changed(&change));
    }
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &new.slug).await?;
    }
    let dao = dao_in(&mut tx, &new.slug).await?;
    // The microDAO first: its rooms exist before its orchestrator is seen joining.
    events.insert(
        0,
        crate::events::dao_changed("created", &dao, &creator.name),
    );
    let staged = outbox.stage(&mut tx, events).await?;
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
    // A read on its own (every request that names a microDAO loads it for
    // the policies): beside the writer on SQLite, not queued behind it.
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{DAO_COLUMNS} WHERE d.slug = $1"
    )))
    .bind(slug)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(dao_from).transpose()
}

/// The microDAOs (not archived) whose orchestrator `agent` is.
pub async fn orchestrated_by(db: &Db, agent: &str) -> Result<Vec<String>, DaoError> {
    let rows = sql::query(
        "SELECT slug FROM microdao_daos WHERE orchestrator = $1 AND archived_at IS NULL ORDER BY slug",
    )
    .bind(agent)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get("slug"))
        .collect::<Result<_, _>>()?)
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
    /// An agent already a member here, or `Some(None)`: none.
    pub orchestrator: Option<Option<String>>,
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
    if let Some(Some(agent)) = &patch.orchestrator {
        let member = members::member_in(&mut tx, slug, &format!("agent:{agent}")).await?;
        if member.is_none_or(|m| m.role != DaoRole::Agent) {
            return Err(DaoError::Invalid(format!(
                "agent:{agent} is not one of this microDAO's agents: add it first"
            )));
        }
    }
    sql::query(
        "UPDATE microdao_daos SET name = $2, description = $3, avatar_url = $4, visibility = $5,
            district = $6, updated_at = $7, orchestrator = $8 WHERE slug = $1",
    )
    .bind(slug)
    .bind(patch.name.as_deref().unwrap_or(&current.name))
    .bind(patch.description.as_deref().unwrap_or(&current.description))
    .bind(patch.avatar_url.clone().unwrap_or(current.avatar_url))
    .bind(patch.visibility.unwrap_or(current.visibility).as_str())
    .bind(patch.district.clone().unwrap_or(current.district))
    .bind(daarion_store::now())
    .bind(patch.orchestrator.clone().unwrap_or(current.orchestrator))
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
