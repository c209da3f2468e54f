//! Agents' presence: anyone reads it (while `city.public_read` is on);
//! each agent reports its own.

use axum::extract::{Path, State};
use daarion_access::{Principal, PrincipalKind};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    CityState,
    agents::{self, AgentPresence, AgentStatus},
    domain::CityError,
    store,
};

pub fn router() -> OpenApiRouter<CityState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(report_presence))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPresence {
    /// `online` or `busy` last `city.agent_presence_ttl_secs` unless
    /// reported again; `offline` takes effect at once.
    pub status: AgentStatus,
}

/// Agents that have ever reported, by id, with their presence now.
#[utoipa::path(get, path = "/agents", tag = "city", params(PageParams),
    responses((status = 200, body = Page<AgentPresence>),
        (status = 400, description = "A cursor this endpoint did not give"),
        (status = 422, description = "A limit out of bounds")))]
async fn list_agents(
    State(state): State<CityState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AgentPresence>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::agents::page(&state.db, page.after()?.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |a| a.agent.clone())))
}

/// One agent's presence.
#[utoipa::path(get, path = "/agents/{agent}", tag = "city",
    params(("agent" = String, Path, description = "The agent's id", max_length = 128)),
    responses((status = 200, body = AgentPresence),
        (status = 404, description = "The agent never reported")))]
async fn get_agent(
    State(state): State<CityState>,
    Path(agent): Path<String>,
) -> Result<Json<AgentPresence>, ApiError> {
    let never = || CityError::NotFound(format!("agent {agent:?} never reported its presence"));
    if agent.len() > 128 {
        return Err(never().into());
    }
    Ok(Json(
        store::agents::one(&state.db, &agent)
            .await?
            .ok_or_else(never)?,
    ))
}

/// An agent reports its own presence: online, busy or offline.
#[utoipa::path(post, path = "/agents/presence", tag = "city", request_body = ReportPresence,
    responses((status = 200, body = AgentPresence),
        (status = 403, description = "The caller is not an agent"),
        (status = 422, description = "An unknown status")))]
async fn report_presence(
    State(state): State<CityState>,
    actor: Principal,
    Json(input): Json<ReportPresence>,
) -> Result<Json<AgentPresence>, ApiError> {
    if actor.kind != PrincipalKind::Agent {
        return Err(CityError::Forbidden(
            "only an agent reports its presence (with its own API key)".into(),
        )
        .into());
    }
    Ok(Json(agents::report(&state, &actor.id, input.status).await?))
}
