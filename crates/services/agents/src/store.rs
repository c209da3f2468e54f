//! Agent queries. A definition and its control-plane documents (prompt,
//! entitlements) change in one transaction, with a version row and the
//! event staged in it (the outbox).

use daarion_bus::{Outbox, Staged};
use daarion_control::{
    ControlClient,
    domain::{AgentPolicy, DocKind},
};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row, Transaction},
};
use serde_json::{Value, json};

use crate::domain::{AgentError, AgentVisibility, Crew, Lifecycle};

type Tx = Transaction<'static, sql::Any>;

/// An agent's profile, as stored here (its prompt and tools live in the
/// control plane).
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub slug: String,
    /// `user:<id>`.
    pub owner: String,
    pub dao: Option<String>,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub model: String,
    pub visibility: AgentVisibility,
    pub status: Lifecycle,
    pub blueprint: Option<String>,
    /// The agents it works with, when it is a crew.
    pub crew: Option<Crew>,
    /// A person's own agent (their Second Me): theirs alone, private.
    pub personal: bool,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

const AGENT_COLUMNS: &str = "SELECT slug, owner, dao, name, description, avatar_url, model,
    visibility, status, blueprint, crew, personal, version, created_at, updated_at FROM agents_agents";

fn agent_from(row: &AnyRow) -> Result<Agent, AgentError> {
    let visibility: String = row.try_get("visibility")?;
    let status: String = row.try_get("status")?;
    let corrupt = |what: &str, raw: &str| AgentError::Invalid(format!("stored {what} {raw:?}"));
    Ok(Agent {
        slug: row.try_get("slug")?,
        owner: row.try_get("owner")?,
        dao: row.try_get("dao")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        avatar_url: row.try_get("avatar_url")?,
        model: row.try_get("model")?,
        visibility: AgentVisibility::parse(&visibility)
            .ok_or_else(|| corrupt("visibility", &visibility))?,
        status: Lifecycle::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        blueprint: row.try_get("blueprint")?,
        crew: row
            .try_get::<Option<String>, _>("crew")?
            .map(|raw| serde_json::from_str(&raw).map_err(|_| corrupt("crew", &raw)))
            .transpose()?,
        personal: row.try_get::<i64, _>("personal")? != 0,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A new agent, checked; `prompt` is the control plane's document.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub slug: String,
    pub dao: Option<String>,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub model: String,
    pub visibility: AgentVisibility,
    pub blueprint: Option<String>,
    pub prompt: Value,
    pub tools: Vec<String>,
    /// A person's own agent (their Second Me).
    pub personal: bool,
}

/// What an update changes (`None`: unchanged; `Some(None)`: cleared).
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub model: Option<String>,
    pub visibility: Option<AgentVisibility>,
    pub status: Option<Lifecycle>,
    pub prompt: Option<Value>,
    pub tools: Option<Vec<String>>,
    /// A crew to work as, or `Some(None)`: alone again.
    pub crew: Option<Option<Crew>>,
}

/// The control-plane documents a change wrote, to announce after commit.
pub type Written = Vec<(DocKind, u64)>;

/// One version of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub version: i64,
    pub definition: Value,
    pub changed_by: String,
    pub changed_at: String,
}

pub async fn get(db: &Db, slug: &str) -> Result<Option<Agent>, AgentError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{AGENT_COLUMNS} WHERE slug = $1"
    )))
    .bind(slug)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(agent_from).transpose()
}

async fn get_in(tx: &mut Tx, slug: &str) -> Result<Agent, AgentError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{AGENT_COLUMNS} WHERE slug = $1"
    )))
    .bind(slug)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref()
        .map(agent_from)
        .transpose()?
        .ok_or_else(|| AgentError::NotFound(format!("no agent {slug:?}")))
}

/// Agents `viewer` may see, by slug: public ones, their own, and those of
/// the microDAOs in `daos`; archived ones only with `archived`.
pub async fn list(
    db: &Db,
    viewer: &str,
    daos: &[String],
    archived: bool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Agent>, AgentError> {
    let daos = serde_json::to_string(daos).map_err(|e| AgentError::Invalid(e.to_string()))?;
    let text = format!(
        "{AGENT_COLUMNS} WHERE slug > $1 AND (status <> 'archived' OR $2 = 1)
           AND (visibility = 'public' OR owner = $3 OR dao IN ({}))
         ORDER BY slug LIMIT $5",
        sql::json_texts(db.backend(), 4)
    );
    let rows = sql::query(sql::AssertSqlSafe(text))
        .bind(after.unwrap_or(""))
        .bind(i64::from(archived))
        .bind(viewer)
        .bind(daos)
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(agent_from).collect()
}

/// Writes the agent's prompt and entitlements as new current versions of
/// the control plane's documents.
async fn write_documents(
    tx: &mut Tx,
    slug: &str,
    prompt: Option<&Value>,
    tools: Option<&[String]>,
    by: &str,
) -> Result<Written, AgentError> {
    let mut written = Vec::new();
    if let Some(prompt) = prompt {
        let doc =
            daarion_control::store::put_in(tx, DocKind::Prompt, slug, prompt, by, true).await?;
        written.push((DocKind::Prompt, doc.version));
    }
    if let Some(tools) = tools {
        let current = current_policy(tx, slug).await?;
        let policy = crate::domain::policy(slug, tools, current)?;
        let doc = daarion_control::store::put_in(tx, DocKind::AgentPolicy, slug, &policy, by, true)
            .await?;
        written.push((DocKind::AgentPolicy, doc.version));
    }
    Ok(written)
}

async fn current_policy(tx: &mut Tx, slug: &str) -> Result<Option<AgentPolicy>, AgentError> {
    let Some(doc) = daarion_control::store::current_in(tx, DocKind::AgentPolicy, slug).await?
    else {
        return Ok(None);
    };
    serde_json::from_value(doc.value)
        .map(Some)
        .map_err(|e| AgentError::Invalid(format!("stored agent policy: {e}")))
}

/// Records the definition as it now stands (with the control plane's
/// current prompt and policy versions) as version `agent.version`.
async fn record_version(tx: &mut Tx, agent: &Agent, by: &str) -> Result<(), AgentError> {
    let mut documents = serde_json::Map::new();
    for kind in [DocKind::Prompt, DocKind::AgentPolicy] {
        if let Some(doc) = daarion_control::store::current_in(tx, kind, &agent.slug).await? {
            documents.insert(format!("{}_version", kind.as_str()), json!(doc.version));
        }
    }
    let definition = json!({
        "name": agent.name,
        "description": agent.description,
        "avatar_url": agent.avatar_url,
        "model": agent.model,
        "visibility": agent.visibility.as_str(),
        "status": agent.status.as_str(),
        "crew": agent.crew,
        "control": documents,
    });
    sql::query(
        "INSERT INTO agents_versions (agent, version, definition, changed_by, changed_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(agent.slug.as_str())
    .bind(agent.version)
    .bind(definition.to_string())
    .bind(by)
    .bind(agent.updated_at.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn stage(
    tx: &mut Tx,
    outbox: &Outbox,
    what: &str,
    agent: &Agent,
    by: &str,
) -> Result<Staged, AgentError> {
    Ok(outbox
        .stage(tx, vec![crate::events::agent_changed(what, agent, by)])
        .await?)
}

/// Creates an agent owned by `owner` (`user:<id>`): its identity (an
/// `auth` agent, so it can hold API keys), profile, prompt and tools.
pub async fn create(
    db: &Db,
    outbox: &Outbox,
    new: &NewAgent,
    owner: &str,
    idempotency_key: Option<&str>,
) -> Result<(Agent, bool, Written, Staged), AgentError> {
    let mut tx = db.begin().await?;
    if let Some(key) = idempotency_key {
        let tools = new.tools.join(" ");
        let prompt = new.prompt.to_string();
        let hash = idempotency::fingerprint(&[
            &new.slug,
            new.dao.as_deref().unwrap_or(""),
            &new.name,
            &new.description,
            new.avatar_url.as_deref().unwrap_or(""),
            &new.model,
            new.visibility.as_str(),
            new.blueprint.as_deref().unwrap_or(""),
            &prompt,
            &tools,
        ]);
        let scope = format!("agents.create:{owner}");
        if let Claim::Replay(slug) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let agent = get_in(&mut tx, &slug).await?;
            return Ok((agent, false, Vec::new(), Staged::none()));
        }
        idempotency::complete(&mut tx, &scope, key, &new.slug).await?;
    }
    let user_id = owner.strip_prefix("user:").unwrap_or(owner);
    daarion_auth::store::claim_agent(&mut tx, &new.slug, user_id)
        .await
        .map_err(|_| AgentError::Conflict(format!("the agent id {:?} is taken", new.slug)))?;
    let now = daarion_store::now();
    let inserted = sql::query(
        "INSERT INTO agents_agents (slug, owner, dao, name, description, avatar_url, model,
             visibility, status, blueprint, personal, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $11, 1, $10, $10)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(new.slug.as_str())
    .bind(owner)
    .bind(new.dao.as_deref())
    .bind(new.name.as_str())
    .bind(new.description.as_str())
    .bind(new.avatar_url.as_deref())
    .bind(new.model.as_str())
    .bind(new.visibility.as_str())
    .bind(new.blueprint.as_deref())
    .bind(now.as_str())
    .bind(i64::from(new.personal))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AgentError::Conflict(format!(
            "the agent id {:?} is taken",
            new.slug
        )));
    }
    let written = write_documents(
        &mut tx,
        &new.slug,
        Some(&new.prompt),
        Some(&new.tools),
        owner,
    )
    .await?;
    let agent = get_in(&mut tx, &new.slug).await?;
    record_version(&mut tx, &agent, owner).await?;
    let staged = stage(&mut tx, outbox, "created", &agent, owner).await?;
    tx.commit().await?;
    Ok((agent, true, written, staged))
}

/// After a change commits: every replica's control-plane cache forgets
/// the documents written (`by` wrote them), and the staged event goes out.
pub async fn settle(
    (control, bus, outbox): (&ControlClient, &dyn daarion_bus::Bus, &Outbox),
    slug: &str,
    written: &Written,
    staged: Staged,
    by: &str,
) {
    for (kind, version) in written {
        control.announce(bus, *kind, slug, *version, by).await;
    }
    outbox.relay(staged).await;
}

/// Applies `patch` as the next version; an archived agent is read-only.
pub async fn update(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    patch: &Patch,
    by: &str,
) -> Result<(Agent, Written, Staged), AgentError> {
    let mut tx = db.begin().await?;
    let before = get_in(&mut tx, slug).await?;
    if before.status == Lifecycle::Archived {
        return Err(AgentError::Conflict(format!(
            "agent {slug:?} is archived and read-only"
        )));
    }
    if before.personal && patch.visibility == Some(AgentVisibility::Public) {
        return Err(AgentError::Invalid(
            "a person's own agent stays private".into(),
        ));
    }
    let avatar = match &patch.avatar_url {
        Some(value) => value.clone(),
        None => before.avatar_url.clone(),
    };
    let crew = match &patch.crew {
        Some(crew) => crew.as_ref(),
        None => before.crew.as_ref(),
    };
    let crew = crew
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| AgentError::Invalid(e.to_string()))?;
    let now = daarion_store::now();
    let updated = sql::query(
        "UPDATE agents_agents SET name = $2, description = $3, avatar_url = $4, model = $5,
             visibility = $6, status = $7, version = version + 1, updated_at = $8, crew = $10
         WHERE slug = $1 AND version = $9",
    )
    .bind(slug)
    .bind(patch.name.as_deref().unwrap_or(&before.name))
    .bind(patch.description.as_deref().unwrap_or(&before.description))
    .bind(avatar.as_deref())
    .bind(patch.model.as_deref().unwrap_or(&before.model))
    .bind(patch.visibility.unwrap_or(before.visibility).as_str())
    .bind(patch.status.unwrap_or(before.status).as_str())
    .bind(now.as_str())
    .bind(before.version)
    .bind(crew)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(AgentError::Conflict(
            "another change landed first; retry".into(),
        ));
    }
    let written = write_documents(
        &mut tx,
        slug,
        patch.prompt.as_ref(),
        patch.tools.as_deref(),
        by,
    )
    .await?;
    let agent = get_in(&mut tx, slug).await?;
    record_version(&mut tx, &agent, by).await?;
    let what = if patch.status == Some(Lifecycle::Archived) {
        "archived"
    } else {
        "updated"
    };
    let staged = stage(&mut tx, outbox, what, &agent, by).await?;
    tx.commit().await?;
    Ok((agent, written, staged))
}

/// Versions of an agent's definition, newest first, before `before`.
pub async fn versions(
    db: &Db,
    slug: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Version>, AgentError> {
    let rows = sql::query(
        "SELECT version, definition, changed_by, changed_at FROM agents_versions
         WHERE agent = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
    )
    .bind(slug)
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let definition: String = row.try_get("definition")?;
            Ok(Version {
                version: row.try_get("version")?,
                definition: serde_json::from_str(&definition)
                    .map_err(|e| AgentError::Invalid(format!("stored definition: {e}")))?,
                changed_by: row.try_get("changed_by")?,
                changed_at: row.try_get("changed_at")?,
            })
        })
        .collect()
}
