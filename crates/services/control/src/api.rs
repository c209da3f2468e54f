//! HTTP routes.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use daarion_access::{PolicyFile, Principal};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ControlState,
    domain::{self, AgentPolicy, ControlError, DocKind, Prompt, Quota},
    store::{self, Document, Keyed},
};

pub fn router() -> OpenApiRouter<ControlState> {
    OpenApiRouter::new()
        .routes(routes!(current_prompt, create_prompt))
        .routes(routes!(prompt_versions))
        .routes(routes!(prompt_version))
        .routes(routes!(set_current_prompt))
        .routes(routes!(get_agent_policy, put_agent_policy))
        .routes(routes!(config_values))
        .routes(routes!(get_config, put_config))
        .routes(routes!(get_quota, put_quota))
        .routes(routes!(change_city_policies))
}

impl ControlState {
    async fn current(&self, kind: DocKind, key: &str) -> Result<Json<Document>, ApiError> {
        domain::validate_key(kind, key)?;
        let document = self
            .client
            .get(kind, key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no {} for {key}", kind.as_str())))?;
        Ok(Json((*document).clone()))
    }

    /// Validates, stores a new version, announces it.
    async fn change(
        &self,
        kind: DocKind,
        key: &str,
        value: Value,
        author: &Principal,
        activate: bool,
    ) -> Result<Document, ApiError> {
        let value = domain::validate(kind, key, value)?;
        let document = store::put(&self.db, kind, key, &value, &author.name(), activate).await?;
        if activate {
            self.client
                .announce(
                    self.bus.as_ref(),
                    kind,
                    key,
                    document.version,
                    &author.name(),
                )
                .await;
        }
        Ok(document)
    }
}

fn created(document: Document) -> Response {
    (StatusCode::CREATED, Json(document)).into_response()
}

/// The agent's current system prompt.
#[utoipa::path(get, path = "/prompts/{agent_id}", tag = "control", responses((status = 200, body = Document), (status = 404)))]
async fn current_prompt(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
) -> Result<Json<Document>, ApiError> {
    state.current(DocKind::Prompt, &agent_id).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrompt {
    pub text: String,
    /// Make it current at once (default true); false keeps it as a draft.
    #[serde(default)]
    pub activate: Option<bool>,
}

/// Adds a version of the agent's prompt.
#[utoipa::path(post, path = "/prompts/{agent_id}", tag = "control", request_body = NewPrompt,
    responses((status = 201, body = Document), (status = 422)))]
async fn create_prompt(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
    author: Principal,
    Json(body): Json<NewPrompt>,
) -> Result<Response, ApiError> {
    let value =
        serde_json::to_value(Prompt { text: body.text }).map_err(|e| ApiError::internal(&e))?;
    let document = state
        .change(
            DocKind::Prompt,
            &agent_id,
            value,
            &author,
            body.activate.unwrap_or(true),
        )
        .await?;
    Ok(created(document))
}

/// Every version of the agent's prompt, newest first.
#[utoipa::path(get, path = "/prompts/{agent_id}/versions", tag = "control", params(PageParams),
    responses((status = 200, body = Page<Document>)))]
async fn prompt_versions(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Document>>, ApiError> {
    let limit = page.limit()?;
    let before = page
        .after()?
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::bad_request("cursor is not valid"))
        })
        .transpose()?;
    let rows = store::versions(&state.db, DocKind::Prompt, &agent_id, before, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |d| {
        d.version.to_string()
    })))
}

/// Version N of the agent's prompt.
#[utoipa::path(get, path = "/prompts/{agent_id}/versions/{version}", tag = "control",
    responses((status = 200, body = Document), (status = 400, description = "Not a version number"),
        (status = 404)))]
async fn prompt_version(
    State(state): State<ControlState>,
    Path((agent_id, version)): Path<(String, u64)>,
) -> Result<Json<Document>, ApiError> {
    store::version(&state.db, DocKind::Prompt, &agent_id, version)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no version {version}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCurrent {
    pub version: u64,
}

/// Makes version N current: a rollback, or activating a draft.
#[utoipa::path(put, path = "/prompts/{agent_id}/current", tag = "control", request_body = SetCurrent,
    responses((status = 200, body = Document), (status = 404)))]
async fn set_current_prompt(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
    author: Principal,
    Json(body): Json<SetCurrent>,
) -> Result<Json<Document>, ApiError> {
    let document = store::set_current(&state.db, DocKind::Prompt, &agent_id, body.version).await?;
    state
        .client
        .announce(
            state.bus.as_ref(),
            DocKind::Prompt,
            &agent_id,
            document.version,
            &author.name(),
        )
        .await;
    Ok(Json(document))
}

/// The agent's entitlements and autonomy mode.
#[utoipa::path(get, path = "/policy/{agent_id}", tag = "control", responses((status = 200, body = Document), (status = 404)))]
async fn get_agent_policy(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
) -> Result<Json<Document>, ApiError> {
    state.current(DocKind::AgentPolicy, &agent_id).await
}

/// Replaces the agent's entitlements (a new version).
#[utoipa::path(put, path = "/policy/{agent_id}", tag = "control", request_body = AgentPolicy,
    responses((status = 200, body = Document), (status = 422)))]
async fn put_agent_policy(
    State(state): State<ControlState>,
    Path(agent_id): Path<String>,
    author: Principal,
    Json(body): Json<Value>,
) -> Result<Json<Document>, ApiError> {
    state
        .change(DocKind::AgentPolicy, &agent_id, body, &author, true)
        .await
        .map(Json)
}

/// Every config value set (feature flags and routing rules), in key order.
#[utoipa::path(get, path = "/config", tag = "control", params(PageParams),
    responses((status = 200, body = Page<Keyed>), (status = 400), (status = 422)))]
async fn config_values(
    State(state): State<ControlState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Keyed>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::list(&state.db, DocKind::Config, page.after()?.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |k| k.key.clone())))
}

/// A config value: `feature.<name>` (boolean) or `routing.<name>` (rules).
#[utoipa::path(get, path = "/config/{key}", tag = "control", responses((status = 200, body = Document), (status = 404)))]
async fn get_config(
    State(state): State<ControlState>,
    Path(key): Path<String>,
) -> Result<Json<Document>, ApiError> {
    state.current(DocKind::Config, &key).await
}

/// Sets a config value (validated for its key).
#[utoipa::path(put, path = "/config/{key}", tag = "control", request_body = Object,
    responses((status = 200, body = Document), (status = 422)))]
async fn put_config(
    State(state): State<ControlState>,
    Path(key): Path<String>,
    author: Principal,
    Json(body): Json<Value>,
) -> Result<Json<Document>, ApiError> {
    state
        .change(DocKind::Config, &key, body, &author, true)
        .await
        .map(Json)
}

/// The quota of `user:<id>`, `agent:<id>` or `dao:<id>`.
#[utoipa::path(get, path = "/quotas/{subject}", tag = "control", responses((status = 200, body = Document), (status = 404)))]
async fn get_quota(
    State(state): State<ControlState>,
    Path(subject): Path<String>,
) -> Result<Json<Document>, ApiError> {
    state.current(DocKind::Quota, &subject).await
}

/// Sets a quota (a new version); the usage service enforces it.
#[utoipa::path(put, path = "/quotas/{subject}", tag = "control", request_body = Quota,
    responses((status = 200, body = Document), (status = 422)))]
async fn put_quota(
    State(state): State<ControlState>,
    Path(subject): Path<String>,
    author: Principal,
    Json(body): Json<Value>,
) -> Result<Json<Document>, ApiError> {
    state
        .change(DocKind::Quota, &subject, body, &author, true)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub files: Vec<PolicyFile>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PolicyVersion {
    pub version: u64,
}

/// Replaces the PDP's policy set (validated: `422` with the engine's message).
#[utoipa::path(put, path = "/policies", tag = "control", request_body = Policies,
    responses((status = 200, body = PolicyVersion), (status = 422)))]
async fn change_city_policies(
    State(state): State<ControlState>,
    author: Principal,
    Json(body): Json<Policies>,
) -> Result<Json<PolicyVersion>, ApiError> {
    let version = daarion_pdp::change_policies(
        state.access.engine(),
        &state.db,
        state.bus.as_ref(),
        body.files,
        &author.name(),
    )
    .await
    .map_err(ControlError::from)?;
    Ok(Json(PolicyVersion { version }))
}

impl From<crate::domain::ControlError> for ApiError {
    fn from(error: crate::domain::ControlError) -> Self {
        use crate::domain::ControlError as E;
        match error {
            E::Pdp(e) => e.into(),
            E::Invalid(m) => ApiError::validation(m),
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict => ApiError::conflict("another change landed first; retry"),
            E::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            other => ApiError::internal(&other),
        }
    }
}
