//! HTTP routes and wire types. [`ToolError`] maps to [`ApiError`] here, once.

use std::time::{Duration, Instant};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::{Action, Principal, PrincipalKind, Resource};
use daarion_control::domain::DocKind;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use daarion_usage::{Outcome, Subjects, UsageKind, UsageRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    SERVICE, ToolState,
    builtins::{self, BUILTINS},
    domain::{self, Executor, ToolError},
    mcp,
    store::{self, Call, Registered},
    webhook,
};

impl From<ToolError> for ApiError {
    fn from(error: ToolError) -> Self {
        match &error {
            ToolError::Invalid(message) => ApiError::validation(message.clone()),
            ToolError::Arguments(_) => ApiError::validation(error.to_string()),
            ToolError::NotFound(message) => ApiError::not_found(message.clone()),
            ToolError::Forbidden(message) => ApiError::forbidden(message.clone()),
            ToolError::Conflict(message) => ApiError::conflict(message.clone()),
            ToolError::Timeout(_) => {
                ApiError::new(daarion_kernel::ErrorCode::Timeout, error.to_string())
            }
            ToolError::Failed(_) => {
                ApiError::new(daarion_kernel::ErrorCode::BadGateway, error.to_string())
            }
            ToolError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            ToolError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<ToolState> {
    OpenApiRouter::new()
        .routes(routes!(list_tools, register_tool))
        .routes(routes!(get_tool, update_tool, delete_tool))
        .routes(routes!(call_tool))
        .routes(routes!(tool_calls))
        .routes(routes!(mcp_tools))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolView {
    pub name: String,
    pub description: String,
    /// The JSON Schema of the arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// `builtin`, `webhook` or `mcp`.
    pub executor: String,
    /// A webhook's address, or the MCP server's endpoint.
    pub url: Option<String>,
    /// The tool's name on its MCP server.
    pub remote_name: Option<String>,
    pub timeout_ms: u64,
    pub enabled: bool,
    /// Agent ids that may call it; empty: every agent whose own tools list it.
    pub allowed_agents: Vec<String>,
    /// Role groups whose holders may call it.
    pub allowed_roles: Vec<String>,
}

impl ToolView {
    fn builtin(b: &builtins::Builtin) -> Self {
        Self {
            name: b.name.to_owned(),
            description: b.description.to_owned(),
            parameters: (b.parameters)(),
            executor: "builtin".into(),
            url: None,
            remote_name: None,
            timeout_ms: domain::DEFAULT_TIMEOUT_MS,
            enabled: true,
            allowed_agents: Vec::new(),
            allowed_roles: Vec::new(),
        }
    }
}

impl From<Registered> for ToolView {
    fn from(t: Registered) -> Self {
        Self {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
            executor: t.executor.as_str().into(),
            remote_name: match t.executor {
                Executor::Mcp { remote_name } => Some(remote_name),
                Executor::Webhook => None,
            },
            url: Some(t.url),
            timeout_ms: t.timeout_ms,
            enabled: t.enabled,
            allowed_agents: t.allowed_agents,
            allowed_roles: t.allowed_roles,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredToolView {
    #[serde(flatten)]
    pub tool: ToolView,
    /// Signs every request to the webhook (`X-Daarion-Signature`); shown
    /// only now. (An MCP server's token is never shown.)
    pub secret: Option<String>,
}

/// How a registered tool runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// A signed POST to `url`.
    #[default]
    Webhook,
    /// A tool of the MCP server at `url` (streamable HTTP).
    Mcp,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTool {
    /// Dotted a-z, 0-9, - and _ segments (`weather.lookup`), 3-64 bytes.
    pub name: String,
    /// `webhook` (the default) or `mcp`.
    #[serde(default)]
    pub kind: ToolKind,
    /// An MCP tool takes the server's description when this is not given.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// A JSON Schema with `"type": "object"`: required for a webhook; an
    /// MCP tool takes the server's when this is not given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// The webhook's http(s) address, or the MCP server's endpoint.
    pub url: String,
    /// The tool's name on the MCP server (default: the last segment of
    /// `name`); it must be among the tools the server lists.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub remote_name: Option<String>,
    /// A bearer token for the MCP server; kept, never shown.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
    #[serde(default)]
    #[schema(minimum = 100, maximum = 60000)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub allowed_agents: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTool {
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub url: Option<String>,
    /// An MCP tool's name on its server.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub remote_name: Option<String>,
    /// An MCP server's bearer token (empty: none).
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
    #[serde(default)]
    #[schema(minimum = 100, maximum = 60000)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub allowed_agents: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_roles: Option<Vec<String>>,
}

const MAX_ALLOWED: usize = 256;

fn agent_ids(raw: Option<Vec<String>>) -> Result<Vec<String>, ToolError> {
    let ids = raw.unwrap_or_default();
    if ids.len() > MAX_ALLOWED || !ids.iter().all(|id| daarion_kernel::names::is_slug(id)) {
        return Err(ToolError::Invalid(format!(
            "allowed_agents: at most {MAX_ALLOWED} agent ids (slugs)"
        )));
    }
    Ok(ids)
}

fn role_groups(raw: Option<Vec<String>>) -> Result<Vec<String>, ToolError> {
    let groups = raw.unwrap_or_default();
    let ok = groups.len() <= MAX_ALLOWED
        && groups.iter().all(|g| {
            (3..=128).contains(&g.len())
                && (g.starts_with("city:") || g.starts_with("dao:"))
                && !g.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if !ok {
        return Err(ToolError::Invalid(format!(
            "allowed_roles: at most {MAX_ALLOWED} role groups (`city:<role>`, `dao:<slug>:<role>`)"
        )));
    }
    Ok(groups)
}

/// Every tool: the built-in ones, then those registered, by name.
#[utoipa::path(get, path = "/tools", tag = "toolcore", params(PageParams),
    responses((status = 200, body = Page<ToolView>), (status = 400), (status = 401), (status = 422)))]
async fn list_tools(
    State(state): State<ToolState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ToolView>>, ApiError> {
    let limit = page.limit()?;
    let after = page.after()?;
    // Built-ins come first (on the first page): their names are fixed and few.
    let mut views: Vec<ToolView> = if after.is_none() {
        BUILTINS.iter().map(ToolView::builtin).collect()
    } else {
        Vec::new()
    };
    let rows = store::tools(&state.db, after.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |t| t.name.clone());
    let next_cursor = page.next_cursor;
    views.extend(page.items.into_iter().map(ToolView::from));
    Ok(Json(Page {
        items: views,
        next_cursor,
    }))
}

fn token(raw: Option<String>) -> Result<String, ToolError> {
    let token = raw.unwrap_or_default();
    if token.len() > 4096 || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ToolError::Invalid(
            "token must be at most 4096 bytes without spaces or control characters".into(),
        ));
    }
    Ok(token)
}

/// Registers a tool (city admins): a webhook — its signing secret is in
/// the answer, and only there — or a tool of an MCP server, which must
/// list it (its description and schema are taken from there unless given).
#[utoipa::path(post, path = "/tools", tag = "toolcore", request_body = RegisterTool,
    responses((status = 201, body = RegisteredToolView), (status = 401), (status = 403),
        (status = 409, description = "The name is taken (a built-in's too)"), (status = 422),
        (status = 502, description = "The MCP server failed or does not offer the tool"),
        (status = 504, description = "The MCP server did not answer in time")))]
async fn register_tool(
    State(state): State<ToolState>,
    principal: Principal,
    Json(input): Json<RegisterTool>,
) -> Result<Response, ApiError> {
    let name = domain::name(&input.name)?;
    if builtins::builtin(&name).is_some() {
        return Err(ToolError::Conflict(format!("{name:?} is a built-in tool")).into());
    }
    let url = domain::url(&input.url)?;
    let timeout_ms = domain::timeout_ms(input.timeout_ms)?;
    let (executor, secret, description, parameters) = match input.kind {
        ToolKind::Webhook => {
            let parameters = input.parameters.ok_or_else(|| {
                ToolError::Invalid("a webhook tool needs its parameters' JSON Schema".into())
            })?;
            if input.remote_name.is_some() || input.token.is_some() {
                return Err(
                    ToolError::Invalid("remote_name and token are for MCP tools".into()).into(),
                );
            }
            (
                Executor::Webhook,
                daarion_kernel::secret::new_secret(),
                input.description.unwrap_or_default(),
                parameters,
            )
        }
        ToolKind::Mcp => {
            let remote_name = domain::remote_name(
                input
                    .remote_name
                    .as_deref()
                    .unwrap_or_else(|| name.rsplit('.').next().unwrap_or(&name)),
            )?;
            let token = token(input.token)?;
            let server = mcp::Server {
                http: &state.http,
                url: &url,
                token: &token,
                timeout: Duration::from_millis(timeout_ms),
            };
            let offered = server
                .tools()
                .await?
                .into_iter()
                .find(|t| t.name == remote_name)
                .ok_or_else(|| {
                    ToolError::Failed(format!("the MCP server offers no tool {remote_name:?}"))
                })?;
            let description = input.description.unwrap_or(offered.description);
            let parameters = input.parameters.unwrap_or(offered.parameters);
            let description: String = description
                .chars()
                .take(domain::MAX_DESCRIPTION_CHARS)
                .collect();
            (
                Executor::Mcp { remote_name },
                token,
                description,
                parameters,
            )
        }
    };
    let now = daarion_store::now();
    let tool = Registered {
        description: domain::description(&description)?,
        parameters: domain::parameters(&parameters)?,
        executor,
        url,
        secret,
        timeout_ms,
        enabled: input.enabled.unwrap_or(true),
        allowed_agents: agent_ids(input.allowed_agents)?,
        allowed_roles: role_groups(input.allowed_roles)?,
        created_by: principal.name(),
        created_at: now.clone(),
        updated_at: now,
        name,
    };
    store::register(&state.db, &tool).await?;
    let secret = (tool.executor == Executor::Webhook).then(|| tool.secret.clone());
    Ok(created(
        true,
        RegisteredToolView {
            tool: tool.into(),
            secret,
        },
    ))
}

async fn find(state: &ToolState, name: &str) -> Result<ToolView, ToolError> {
    let name = domain::name(name)?;
    if let Some(b) = builtins::builtin(&name) {
        return Ok(ToolView::builtin(b));
    }
    store::tool(&state.db, &name)
        .await?
        .map(ToolView::from)
        .ok_or_else(|| ToolError::NotFound(format!("no tool {name:?}")))
}

/// One tool.
#[utoipa::path(get, path = "/tools/{tool}", tag = "toolcore",
    params(("tool" = String, Path, description = "The tool's name")),
    responses((status = 200, body = ToolView), (status = 401), (status = 404), (status = 422)))]
async fn get_tool(
    State(state): State<ToolState>,
    Path(name): Path<String>,
) -> Result<Json<ToolView>, ApiError> {
    Ok(Json(find(&state, &name).await?))
}

fn registered(state_tool: Option<Registered>, name: &str) -> Result<Registered, ToolError> {
    state_tool.ok_or_else(|| {
        if builtins::builtin(name).is_some() {
            ToolError::Conflict(format!("{name:?} is a built-in tool and cannot be changed"))
        } else {
            ToolError::NotFound(format!("no tool {name:?}"))
        }
    })
}

/// Changes a registered tool (city admins).
#[utoipa::path(patch, path = "/tools/{tool}", tag = "toolcore", request_body = UpdateTool,
    params(("tool" = String, Path, description = "The tool's name")),
    responses((status = 200, body = ToolView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "A built-in tool"), (status = 422)))]
async fn update_tool(
    State(state): State<ToolState>,
    Path(name): Path<String>,
    Json(input): Json<UpdateTool>,
) -> Result<Json<ToolView>, ApiError> {
    let name = domain::name(&name)?;
    let mut tool = registered(store::tool(&state.db, &name).await?, &name)?;
    if let Some(description) = input.description {
        tool.description = domain::description(&description)?;
    }
    if let Some(parameters) = input.parameters {
        tool.parameters = domain::parameters(&parameters)?;
    }
    if let Some(url) = input.url {
        tool.url = domain::url(&url)?;
    }
    match (&mut tool.executor, input.remote_name, input.token) {
        (Executor::Mcp { remote_name }, name, token) => {
            if let Some(name) = name {
                *remote_name = domain::remote_name(&name)?;
            }
            if token.is_some() {
                tool.secret = self::token(token)?;
            }
        }
        (Executor::Webhook, None, None) => {}
        (Executor::Webhook, _, _) => {
            return Err(
                ToolError::Invalid("remote_name and token are for MCP tools".into()).into(),
            );
        }
    }
    if input.timeout_ms.is_some() {
        tool.timeout_ms = domain::timeout_ms(input.timeout_ms)?;
    }
    if let Some(enabled) = input.enabled {
        tool.enabled = enabled;
    }
    if input.allowed_agents.is_some() {
        tool.allowed_agents = agent_ids(input.allowed_agents)?;
    }
    if input.allowed_roles.is_some() {
        tool.allowed_roles = role_groups(input.allowed_roles)?;
    }
    store::update(&state.db, &tool).await?;
    Ok(Json(tool.into()))
}

/// Removes a registered tool (city admins).
#[utoipa::path(delete, path = "/tools/{tool}", tag = "toolcore",
    params(("tool" = String, Path, description = "The tool's name")),
    responses((status = 204), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "A built-in tool"), (status = 422)))]
async fn delete_tool(
    State(state): State<ToolState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = domain::name(&name)?;
    if builtins::builtin(&name).is_some() {
        return Err(ToolError::Conflict(format!("{name:?} is a built-in tool")).into());
    }
    store::delete(&state.db, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallTool {
    /// The arguments, checked against the tool's schema before it runs.
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// The person an agent calls for (`user:<id>`): the policies must
    /// allow them the tool too, and built-ins read only what they may.
    #[serde(default)]
    pub acting_for: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallResultView {
    pub call_id: String,
    pub tool: String,
    /// What the tool answered.
    #[schema(value_type = Object)]
    pub result: Value,
    pub latency_ms: u64,
}

/// Runs a tool. An agent may run only the tools its own entitlements list
/// (the control plane's `agent_policy`); with `acting_for`, the person must
/// be allowed the tool too; arguments that do not fit the schema are
/// refused before anything runs. Every call is logged and metered. A call
/// repeated with its `Idempotency-Key` after it succeeded is answered with
/// its first result, without running the tool again (a webhook sees the
/// same `call_id` for every try under one key).
#[utoipa::path(post, path = "/tools/{tool}/call", tag = "toolcore", request_body = CallTool,
    params(("tool" = String, Path, description = "The tool's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Names the call: once it succeeded, a repeat gets its result")),
    responses((status = 200, body = CallResultView), (status = 401),
        (status = 403, description = "Not allowed this tool (the caller or the person acted for)"),
        (status = 404, description = "No such tool, or nothing the caller may read"),
        (status = 422, description = "Arguments that do not fit the schema"),
        (status = 502, description = "The tool failed"),
        (status = 504, description = "The tool ran past its timeout")))]
async fn call_tool(
    State(state): State<ToolState>,
    principal: Principal,
    Path(name): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<CallTool>,
) -> Result<Json<CallResultView>, ApiError> {
    let tool = find(&state, &name).await?;
    let caller = principal.name();
    if let Some(key) = key.as_deref()
        && let Some((call_id, result)) = store::answered(&state.db, &caller, key).await?
    {
        return Ok(Json(CallResultView {
            call_id,
            tool: tool.name,
            result,
            latency_ms: 0,
        }));
    }
    let call_id = format!("call_{}", uuid::Uuid::now_v7().simple());
    // Under a key every try is the same call to a webhook, which may dedupe.
    let webhook_call_id = match key.as_deref() {
        Some(key) => format!(
            "call_{}",
            &hex::encode(Sha256::digest(format!("{caller}\n{key}")))[..32]
        ),
        None => call_id.clone(),
    };
    let started = Instant::now();
    let acting_for = input.acting_for.clone();
    let outcome = run(&state, &principal, &tool, &webhook_call_id, input).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let call = Call {
        id: call_id.clone(),
        tool: tool.name.clone(),
        caller: principal.name(),
        acting_for,
        outcome: outcome
            .as_ref()
            .map_or_else(|e| e.code().to_owned(), |_| "ok".into()),
        error: outcome.as_ref().err().map(ToString::to_string),
        latency_ms,
        created_at: daarion_store::now(),
        keyed: key
            .as_deref()
            .zip(outcome.as_ref().ok())
            .map(|(key, result)| (key.to_owned(), result.clone())),
    };
    let mut record = UsageRecord::new(
        UsageKind::Tool,
        if outcome.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        },
    )
    .by(&principal, &Subjects::of(&principal));
    record.tool = Some(tool.name.clone());
    record.latency_ms = latency_ms;
    record.error_code = outcome.as_ref().err().map(|e| e.code().to_owned());
    let staged = store::log_call(
        &state.db,
        &state.outbox,
        &call,
        daarion_usage::event(SERVICE, &record),
    )
    .await?;
    state.outbox.relay(staged).await;
    let result = outcome?;
    Ok(Json(CallResultView {
        call_id,
        tool: tool.name,
        result,
        latency_ms,
    }))
}

/// Who the call is for, the checks, then the tool itself.
async fn run(
    state: &ToolState,
    principal: &Principal,
    tool: &ToolView,
    call_id: &str,
    input: CallTool,
) -> Result<Value, ToolError> {
    if principal.kind == PrincipalKind::Agent {
        // An agent defined in the hub acts only while active (agents that
        // only hold keys have no definition to pause).
        let defined = daarion_agents::store::get(&state.db, &principal.id)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        if defined.is_some_and(|a| a.status != daarion_agents::domain::Lifecycle::Active) {
            return Err(ToolError::Forbidden(
                "this agent is paused or archived".into(),
            ));
        }
        let policy = state
            .control
            .get(DocKind::AgentPolicy, &principal.id)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let own = policy.is_some_and(|doc| {
            doc.value["allowed_tools"]
                .as_array()
                .is_some_and(|tools| tools.iter().any(|t| t.as_str() == Some(tool.name.as_str())))
        });
        if !own {
            return Err(ToolError::Forbidden(format!(
                "{} is not among this agent's tools",
                tool.name
            )));
        }
    }
    let mut callers = vec![principal.clone()];
    if let Some(person) = &input.acting_for {
        let id = person
            .strip_prefix("user:")
            .ok_or_else(|| ToolError::Invalid("acting_for is `user:<id>`".into()))?;
        let person = state
            .access
            .directory()
            .principal(PrincipalKind::User, id)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?
            .ok_or_else(|| ToolError::Invalid(format!("no person {id:?} to act for")))?;
        let resource = Resource::tool(
            &tool.name,
            tool.enabled,
            &tool.allowed_agents,
            &tool.allowed_roles,
        );
        if !state.access.allows(&person, Action::ExecTool, &resource) {
            return Err(ToolError::Forbidden(format!(
                "the person acted for may not use {}",
                tool.name
            )));
        }
        callers.push(person);
    }
    if !input.arguments.is_object()
        || serde_json::to_vec(&input.arguments)
            .map_or(true, |b| b.len() > domain::MAX_DOCUMENT_BYTES)
    {
        return Err(ToolError::Arguments(format!(
            "arguments must be a JSON object of at most {} bytes",
            domain::MAX_DOCUMENT_BYTES
        )));
    }
    domain::check_arguments(&domain::validator(&tool.parameters)?, &input.arguments)?;
    let timeout = Duration::from_millis(tool.timeout_ms);
    let Some(url) = &tool.url else {
        let ctx = builtins::Context {
            db: &state.db,
            access: &state.access,
            callers: &callers,
            poster: &state.poster,
            outbox: &state.outbox,
            knowledge: &state.knowledge,
            settings: &state.settings,
            timeout,
        };
        return tokio::time::timeout(timeout, builtins::run(&tool.name, &ctx, &input.arguments))
            .await
            .map_err(|_| ToolError::Timeout(tool.name.clone()))?;
    };
    let registered = store::tool(&state.db, &tool.name)
        .await?
        .ok_or_else(|| ToolError::NotFound(format!("no tool {:?}", tool.name)))?;
    match &registered.executor {
        Executor::Webhook => {
            let request = webhook::Request {
                tool: &tool.name,
                call_id,
                caller: &principal.name(),
                acting_for: input.acting_for.as_deref(),
                arguments: &input.arguments,
            };
            webhook::call(&state.http, url, &registered.secret, timeout, &request).await
        }
        Executor::Mcp { remote_name } => {
            let server = mcp::Server {
                http: &state.http,
                url,
                token: &registered.secret,
                timeout,
            };
            server.call(&tool.name, remote_name, &input.arguments).await
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallsParams {
    /// Only the calls of this tool.
    #[serde(default)]
    pub tool: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCallView {
    pub id: String,
    pub tool: String,
    pub caller: String,
    pub acting_for: Option<String>,
    /// `ok`, `invalid_arguments`, `forbidden`, `timeout`, `failed` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub created_at: String,
}

impl From<Call> for ToolCallView {
    fn from(c: Call) -> Self {
        Self {
            id: c.id,
            tool: c.tool,
            caller: c.caller,
            acting_for: c.acting_for,
            outcome: c.outcome,
            error: c.error,
            latency_ms: c.latency_ms,
            created_at: c.created_at,
        }
    }
}

/// The call log, newest first (city admins).
#[utoipa::path(get, path = "/calls", tag = "toolcore", params(PageParams, CallsParams),
    responses((status = 200, body = Page<ToolCallView>), (status = 400), (status = 401),
        (status = 403), (status = 422)))]
async fn tool_calls(
    State(state): State<ToolState>,
    Query(page): Query<PageParams>,
    Query(params): Query<CallsParams>,
) -> Result<Json<Page<ToolCallView>>, ApiError> {
    let limit = page.limit()?;
    let tool = params.tool.as_deref().map(domain::name).transpose()?;
    let rows = store::calls(&state.db, tool.as_deref(), page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |c| c.id.clone());
    Ok(Json(page.map(ToolCallView::from)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerQuery {
    /// The MCP server's streamable HTTP endpoint.
    pub url: String,
    /// A bearer token for it.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct McpToolView {
    /// Its name on the server (`remote_name` when registering it).
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub parameters: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct McpToolsView {
    pub items: Vec<McpToolView>,
}

/// The tools an MCP server offers, to choose which to register (city
/// admins).
#[utoipa::path(post, path = "/mcp/tools", tag = "toolcore", request_body = McpServerQuery,
    responses((status = 200, body = McpToolsView), (status = 401), (status = 403), (status = 422),
        (status = 502, description = "The server could not be reached or failed"),
        (status = 504, description = "The server did not answer in time")))]
async fn mcp_tools(
    State(state): State<ToolState>,
    Json(input): Json<McpServerQuery>,
) -> Result<Json<McpToolsView>, ApiError> {
    let url = domain::url(&input.url)?;
    let token = token(input.token)?;
    let server = mcp::Server {
        http: &state.http,
        url: &url,
        token: &token,
        timeout: Duration::from_millis(domain::DEFAULT_TIMEOUT_MS),
    };
    let items = server
        .tools()
        .await?
        .into_iter()
        .map(|t| McpToolView {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
        })
        .collect();
    Ok(Json(McpToolsView { items }))
}
