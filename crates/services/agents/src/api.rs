//! HTTP routes and wire types. Handlers parse, call the domain and store,
//! relay what the store staged, and map [`AgentError`] to [`ApiError`] once.

use axum::{
    extract::{Path, State},
    response::Response,
};
use daarion_access::{Action, Facts, Principal, Resource, vocab::roles::DaoRole};
use daarion_control::domain::DocKind;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AgentState,
    domain::{self, AgentError, AgentVisibility, BLUEPRINTS, Blueprint, Crew, Lifecycle},
    store::{self, Agent, NewAgent, Patch, Version},
};

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        match &error {
            AgentError::Invalid(message) => ApiError::validation(message.clone()),
            AgentError::NotFound(message) => ApiError::not_found(message.clone()),
            AgentError::Forbidden(message) => ApiError::forbidden(message.clone()),
            AgentError::Conflict(message) => ApiError::conflict(message.clone()),
            AgentError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            AgentError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<AgentState> {
    OpenApiRouter::new()
        .routes(routes!(list_agent_definitions, create_agent))
        .routes(routes!(get_agent_definition, update_agent))
        .routes(routes!(archive_agent))
        .routes(routes!(set_crew, dissolve_crew))
        .routes(routes!(agent_versions))
        .routes(routes!(blueprints))
        .routes(routes!(crate::chat::chat_completions))
        .routes(routes!(crate::public::ask_public))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// The agent's id for good: its principal is `agent:<slug>`.
    pub slug: String,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    /// The person answerable for it (`user:<id>`).
    pub owner: String,
    /// The microDAO it serves, if any.
    pub dao: Option<String>,
    /// The LLM proxy alias it thinks with.
    pub model: String,
    pub visibility: AgentVisibility,
    pub status: Lifecycle,
    /// The blueprint it was made from.
    pub blueprint: Option<String>,
    /// The agents it works with, when it is a crew.
    pub crew: Option<Crew>,
    /// A person's own agent (their Second Me): theirs alone, private.
    pub personal: bool,
    /// The definition's version (`…/versions`).
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            slug: a.slug,
            name: a.name,
            description: a.description,
            avatar_url: a.avatar_url,
            owner: a.owner,
            dao: a.dao,
            model: a.model,
            visibility: a.visibility,
            status: a.status,
            blueprint: a.blueprint,
            crew: a.crew,
            personal: a.personal,
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An agent with what the control plane keeps for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDetailView {
    #[serde(flatten)]
    pub agent: AgentView,
    /// The current system prompt (rolled back in the control plane).
    pub prompt: Option<String>,
    pub prompt_version: Option<u64>,
    /// The tools it may use.
    pub tools: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// 2-63 of a-z, 0-9 and -: the agent's id for good.
    pub slug: String,
    /// A blueprint to start from (`GET …/blueprints`): its name,
    /// description, prompt and tools unless given here.
    #[serde(default)]
    pub blueprint: Option<String>,
    /// 1-80 characters (required without a blueprint).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// An `https://` image address.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// An LLM proxy alias (default: the city's default model).
    #[serde(default)]
    pub model: Option<String>,
    /// The system prompt, 1-32 000 characters (required without a blueprint).
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    #[schema(max_items = 64)]
    pub tools: Option<Vec<String>>,
    /// `private` (default) or `public`.
    #[serde(default)]
    pub visibility: Option<AgentVisibility>,
    /// A microDAO it serves (its admins may make one).
    #[serde(default)]
    pub dao: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// An `https://` address, or `""` to clear it.
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// A new system prompt: the control plane's next version.
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    #[schema(max_items = 64)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub visibility: Option<AgentVisibility>,
    /// `active` or `paused` (archive with `…/archive`).
    #[serde(default)]
    pub status: Option<Lifecycle>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ArchivedParam {
    /// Include archived agents.
    #[serde(default)]
    pub archived: bool,
}

/// The default model alias of a new agent.
const DEFAULT_MODEL: &str = "default";

fn dao_slugs(principal: &Principal) -> Vec<String> {
    principal
        .roles
        .iter()
        .filter_map(|r| DaoRole::of_group(r))
        .map(|(dao, _)| dao.to_owned())
        .collect()
}

/// Agents the caller may see, by slug: public ones, their own, and their
/// microDAOs'.
#[utoipa::path(get, path = "/agents", tag = "agents", params(PageParams, ArchivedParam),
    responses((status = 200, body = Page<AgentView>), (status = 400), (status = 401), (status = 422)))]
async fn list_agent_definitions(
    State(state): State<AgentState>,
    principal: Principal,
    Query(page): Query<PageParams>,
    Query(params): Query<ArchivedParam>,
) -> Result<Json<Page<AgentView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::list(
        &state.db,
        &principal.name(),
        &dao_slugs(&principal),
        params.archived,
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |a| a.slug.clone());
    Ok(Json(page.map(AgentView::from)))
}

/// Creates an agent owned by the caller, from a blueprint or from scratch:
/// its identity (it may then hold API keys), profile, prompt (version 1 in
/// the control plane) and tools. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = CreateAgent,
    params(IdempotencyKey),
    responses((status = 201, body = AgentDetailView),
        (status = 200, description = "Replay of an earlier create with the same key", body = AgentDetailView),
        (status = 401),
        (status = 403, description = "Not an admin of `dao`, or an API key or agent creating agents"),
        (status = 409, description = "The slug is taken, or the key was used with another request"),
        (status = 422, description = "Invalid fields")))]
async fn create_agent(
    State(state): State<AgentState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreateAgent>,
) -> Result<Response, ApiError> {
    if principal.kind != daarion_access::PrincipalKind::User {
        return Err(ApiError::forbidden("only people create agents"));
    }
    let slug = domain::new_slug(&input.slug)?;
    let blueprint = input
        .blueprint
        .as_deref()
        .map(domain::blueprint)
        .transpose()?;
    let name = input
        .name
        .as_deref()
        .or(blueprint.map(|b| b.name))
        .ok_or_else(|| AgentError::Invalid("name is required without a blueprint".into()))?;
    let prompt = input
        .prompt
        .as_deref()
        .or(blueprint.map(|b| b.prompt))
        .ok_or_else(|| AgentError::Invalid("prompt is required without a blueprint".into()))?;
    let tools: Vec<String> = match (&input.tools, blueprint) {
        (Some(tools), _) => tools.clone(),
        (None, Some(b)) => b.tools.iter().map(|t| (*t).to_owned()).collect(),
        (None, None) => Vec::new(),
    };
    let new = NewAgent {
        name: domain::name(name)?,
        description: domain::description(
            input
                .description
                .as_deref()
                .or(blueprint.map(|b| b.description))
                .unwrap_or(""),
        )?,
        avatar_url: input
            .avatar_url
            .as_deref()
            .map(domain::avatar_url)
            .transpose()?,
        model: domain::model(input.model.as_deref().unwrap_or(DEFAULT_MODEL))?,
        visibility: input.visibility.unwrap_or(AgentVisibility::Private),
        blueprint: blueprint.map(|b| b.id.to_owned()),
        prompt: domain::prompt(&slug, prompt)?,
        tools: domain::tools(&tools)?,
        dao: input.dao.as_deref().map(domain::slug).transpose()?,
        personal: false,
        slug,
    };
    if let Some(dao) = &new.dao {
        state
            .access
            .check(
                &principal,
                Action::Write,
                &Resource::micro_dao(dao),
                Facts::default(),
            )
            .await?;
    }
    let (agent, fresh, written, staged) = store::create(
        &state.db,
        &state.outbox,
        &new,
        &principal.name(),
        key.as_deref(),
    )
    .await?;
    state
        .settled(&agent.slug, &written, staged, &principal)
        .await;
    Ok(created(fresh, state.detail(agent).await?))
}

/// One agent, with its current prompt and tools.
#[utoipa::path(get, path = "/agents/{agent}", tag = "agents",
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = AgentDetailView), (status = 401), (status = 403), (status = 404)))]
async fn get_agent_definition(
    State(state): State<AgentState>,
    Path(slug): Path<String>,
) -> Result<Json<AgentDetailView>, ApiError> {
    let agent = store::get(&state.db, &domain::slug(&slug)?)
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("no agent {slug:?}")))?;
    Ok(Json(state.detail(agent).await?))
}

/// Changes an agent (its owner, or its microDAO's admins): the next
/// version of its definition; a new prompt or tools are the control
/// plane's next versions.
#[utoipa::path(patch, path = "/agents/{agent}", tag = "agents", request_body = UpdateAgent,
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = AgentDetailView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Archived, or another change landed first"), (status = 422)))]
async fn update_agent(
    State(state): State<AgentState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<UpdateAgent>,
) -> Result<Json<AgentDetailView>, ApiError> {
    let slug = domain::slug(&slug)?;
    if input.status == Some(Lifecycle::Archived) {
        return Err(AgentError::Invalid("archive an agent with POST …/archive".into()).into());
    }
    let patch = Patch {
        name: input.name.as_deref().map(domain::name).transpose()?,
        description: input
            .description
            .as_deref()
            .map(domain::description)
            .transpose()?,
        avatar_url: input
            .avatar_url
            .as_deref()
            .map(|raw| {
                if raw.trim().is_empty() {
                    Ok(None)
                } else {
                    domain::avatar_url(raw).map(Some)
                }
            })
            .transpose()?,
        model: input.model.as_deref().map(domain::model).transpose()?,
        visibility: input.visibility,
        status: input.status,
        prompt: input
            .prompt
            .as_deref()
            .map(|text| domain::prompt(&slug, text))
            .transpose()?,
        tools: input.tools.as_deref().map(domain::tools).transpose()?,
        crew: None,
    };
    let (agent, written, staged) =
        store::update(&state.db, &state.outbox, &slug, &patch, &principal.name()).await?;
    state
        .settled(&agent.slug, &written, staged, &principal)
        .await;
    Ok(Json(state.detail(agent).await?))
}

/// Archives an agent: it answers nobody and is read-only from then on.
#[utoipa::path(post, path = "/agents/{agent}/archive", tag = "agents",
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = AgentDetailView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Already archived")))]
async fn archive_agent(
    State(state): State<AgentState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<AgentDetailView>, ApiError> {
    let patch = Patch {
        status: Some(Lifecycle::Archived),
        ..Patch::default()
    };
    let (agent, written, staged) = store::update(
        &state.db,
        &state.outbox,
        &domain::slug(&slug)?,
        &patch,
        &principal.name(),
    )
    .await?;
    state
        .settled(&agent.slug, &written, staged, &principal)
        .await;
    Ok(Json(state.detail(agent).await?))
}

/// Makes the agent a crew (its owner, or its microDAO's admins), who must
/// also manage every member; a member is an agent that is not a crew
/// itself. The crew answers as this agent: in its rooms, to its callers,
/// on its plan; each member thinks and acts as itself.
#[utoipa::path(put, path = "/agents/{agent}/crew", tag = "agents", request_body = Crew,
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = AgentDetailView), (status = 401),
        (status = 403, description = "Not allowed to manage the agent or a member"),
        (status = 404), (status = 409, description = "Archived, or another change landed first"),
        (status = 422, description = "Not a valid crew, or a member that is a crew itself")))]
async fn set_crew(
    State(state): State<AgentState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<Crew>,
) -> Result<Json<AgentDetailView>, ApiError> {
    let slug = domain::slug(&slug)?;
    let crew = domain::crew(&slug, input)?;
    for member in &crew.members {
        let agent = store::get(&state.db, &member.agent)
            .await?
            .ok_or_else(|| AgentError::Invalid(format!("no agent {:?}", member.agent)))?;
        if !state.access.allows(
            &principal,
            Action::Manage,
            &crate::access::agent_resource(&agent),
        ) {
            return Err(AgentError::Forbidden(format!(
                "you may not enlist {:?}: it is not yours to manage",
                member.agent
            ))
            .into());
        }
        if agent.crew.is_some() {
            return Err(AgentError::Invalid(format!(
                "{:?} is a crew itself; crews do not nest",
                member.agent
            ))
            .into());
        }
    }
    change_crew(&state, &principal, &slug, Some(crew)).await
}

/// Makes the agent work alone again.
#[utoipa::path(delete, path = "/agents/{agent}/crew", tag = "agents",
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = AgentDetailView), (status = 401), (status = 403),
        (status = 404), (status = 409, description = "Archived, or another change landed first"),
        (status = 422)))]
async fn dissolve_crew(
    State(state): State<AgentState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<AgentDetailView>, ApiError> {
    change_crew(&state, &principal, &domain::slug(&slug)?, None).await
}

async fn change_crew(
    state: &AgentState,
    principal: &Principal,
    slug: &str,
    crew: Option<Crew>,
) -> Result<Json<AgentDetailView>, ApiError> {
    let patch = Patch {
        crew: Some(crew),
        ..Patch::default()
    };
    let (agent, written, staged) =
        store::update(&state.db, &state.outbox, slug, &patch, &principal.name()).await?;
    state
        .settled(&agent.slug, &written, staged, principal)
        .await;
    Ok(Json(state.detail(agent).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentVersionView {
    pub version: i64,
    /// The definition at that version, with the control plane's
    /// `prompt_version` and `agent_policy_version` it pointed to.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub changed_by: String,
    pub changed_at: String,
}

impl From<Version> for AgentVersionView {
    fn from(v: Version) -> Self {
        Self {
            version: v.version,
            definition: v.definition,
            changed_by: v.changed_by,
            changed_at: v.changed_at,
        }
    }
}

/// The versions of an agent's definition, newest first.
#[utoipa::path(get, path = "/agents/{agent}/versions", tag = "agents",
    params(("agent" = String, Path, description = "The agent's slug"), PageParams),
    responses((status = 200, body = Page<AgentVersionView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
async fn agent_versions(
    State(state): State<AgentState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AgentVersionView>>, ApiError> {
    let limit = page.limit()?;
    let before = page
        .after()?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::validation("cursor is not one this endpoint gave"))?;
    let rows = store::versions(&state.db, &domain::slug(&slug)?, before, limit).await?;
    let page = Page::from_rows(rows, limit, |v| v.version.to_string());
    Ok(Json(page.map(AgentVersionView::from)))
}

/// The blueprints agents can be made from.
#[utoipa::path(get, path = "/blueprints", tag = "agents",
    responses((status = 200, body = Vec<Blueprint>), (status = 401)))]
async fn blueprints() -> Json<&'static [Blueprint]> {
    Json(BLUEPRINTS)
}

impl AgentState {
    /// After a change commits: every replica's control-plane cache forgets
    /// the documents written, and the event goes out.
    async fn settled(
        &self,
        slug: &str,
        written: &store::Written,
        staged: daarion_bus::Staged,
        by: &Principal,
    ) {
        store::settle(
            (&self.control, self.bus.as_ref(), &self.outbox),
            slug,
            written,
            staged,
            &by.name(),
        )
        .await;
    }

    async fn detail(&self, agent: Agent) -> Result<AgentDetailView, AgentError> {
        let prompt = self.control.get(DocKind::Prompt, &agent.slug).await?;
        let policy = self.control.get(DocKind::AgentPolicy, &agent.slug).await?;
        let tools = policy
            .and_then(|doc| doc.value.get("allowed_tools").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        Ok(AgentDetailView {
            prompt: prompt
                .as_ref()
                .and_then(|doc| doc.value["text"].as_str().map(str::to_owned)),
            prompt_version: prompt.map(|doc| doc.version),
            tools,
            agent: agent.into(),
        })
    }
}
