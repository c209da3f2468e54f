//! HTTP routes and wire types. [`FilterError`] maps to [`ApiError`] here, once.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use daarion_store::Db;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{FilterError, Rules},
    store::{self, Acted, Stored},
};

impl From<FilterError> for ApiError {
    fn from(error: FilterError) -> Self {
        match &error {
            FilterError::Invalid(message) => ApiError::validation(message.clone()),
            FilterError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            FilterError::Store(_) => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<Db> {
    OpenApiRouter::new()
        .routes(routes!(agent_rules, put_agent_rules, delete_agent_rules))
        .routes(routes!(agent_events))
        .routes(routes!(dao_rules, put_dao_rules, delete_dao_rules))
        .routes(routes!(dao_events))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleSetView {
    /// `agent:<slug>` or `dao:<slug>`.
    pub scope: String,
    pub rules: Rules,
    pub updated_by: String,
    pub updated_at: String,
}

impl From<Stored> for RuleSetView {
    fn from(s: Stored) -> Self {
        Self {
            scope: s.scope,
            rules: s.rules,
            updated_by: s.updated_by,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilterEventView {
    pub id: String,
    pub scope: String,
    /// `input`, `output` or `tool`.
    pub direction: String,
    /// `blocked` or `redacted`.
    pub action: String,
    /// Which rule, in words.
    pub rule: String,
    pub agent: String,
    pub run_id: Option<String>,
    pub created_at: String,
}

impl From<Acted> for FilterEventView {
    fn from(a: Acted) -> Self {
        Self {
            id: a.id,
            scope: a.scope,
            direction: a.direction,
            action: a.action,
            rule: a.rule,
            agent: a.agent,
            run_id: a.run_id,
            created_at: a.created_at,
        }
    }
}

async fn read(db: &Db, scope: &str) -> Result<Json<RuleSetView>, ApiError> {
    let stored = store::get(db, scope)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{scope} has no rule set")))?;
    Ok(Json(stored.into()))
}

async fn write(
    db: &Db,
    scope: &str,
    rules: Rules,
    by: &Principal,
) -> Result<Json<RuleSetView>, ApiError> {
    let checked = rules.compile()?;
    Ok(Json(
        store::put(db, scope, &checked.rules, &by.name())
            .await?
            .into(),
    ))
}

async fn remove(db: &Db, scope: &str) -> Result<StatusCode, ApiError> {
    if store::delete(db, scope).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{scope} has no rule set")))
    }
}

async fn log(
    db: &Db,
    scope: &str,
    page: PageParams,
) -> Result<Json<Page<FilterEventView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::events(db, scope, page.after()?.as_deref(), limit).await?;
    Ok(Json(
        Page::from_rows(rows, limit, |a| a.id.clone()).map(FilterEventView::from),
    ))
}

/// An agent's rule set.
#[utoipa::path(get, path = "/agents/{agent}/rules", tag = "filter",
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = RuleSetView), (status = 401), (status = 403),
        (status = 404, description = "No such agent, or no rule set")))]
async fn agent_rules(
    State(db): State<Db>,
    Path(agent): Path<String>,
) -> Result<Json<RuleSetView>, ApiError> {
    read(&db, &format!("agent:{agent}")).await
}

/// Sets an agent's rule set (whole).
#[utoipa::path(put, path = "/agents/{agent}/rules", tag = "filter", request_body = Rules,
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 200, body = RuleSetView), (status = 400), (status = 401), (status = 403),
        (status = 404), (status = 422, description = "A bound out of range or a pattern that does not compile")))]
async fn put_agent_rules(
    State(db): State<Db>,
    principal: Principal,
    Path(agent): Path<String>,
    Json(rules): Json<Rules>,
) -> Result<Json<RuleSetView>, ApiError> {
    write(&db, &format!("agent:{agent}"), rules, &principal).await
}

/// Removes an agent's rule set.
#[utoipa::path(delete, path = "/agents/{agent}/rules", tag = "filter",
    params(("agent" = String, Path, description = "The agent's slug")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_agent_rules(
    State(db): State<Db>,
    Path(agent): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&db, &format!("agent:{agent}")).await
}

/// What an agent's rule set blocked and redacted, newest first.
#[utoipa::path(get, path = "/agents/{agent}/events", tag = "filter",
    params(("agent" = String, Path, description = "The agent's slug"), PageParams),
    responses((status = 200, body = Page<FilterEventView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
async fn agent_events(
    State(db): State<Db>,
    Path(agent): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<FilterEventView>>, ApiError> {
    log(&db, &format!("agent:{agent}"), page).await
}

/// A microDAO's rule set (for all the runs of its agents and in its rooms).
#[utoipa::path(get, path = "/daos/{dao}/rules", tag = "filter",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = RuleSetView), (status = 401), (status = 403),
        (status = 404, description = "No such microDAO, or no rule set")))]
async fn dao_rules(
    State(db): State<Db>,
    Path(dao): Path<String>,
) -> Result<Json<RuleSetView>, ApiError> {
    read(&db, &format!("dao:{dao}")).await
}

/// Sets a microDAO's rule set (whole).
#[utoipa::path(put, path = "/daos/{dao}/rules", tag = "filter", request_body = Rules,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = RuleSetView), (status = 400), (status = 401), (status = 403),
        (status = 404), (status = 422, description = "A bound out of range or a pattern that does not compile")))]
async fn put_dao_rules(
    State(db): State<Db>,
    principal: Principal,
    Path(dao): Path<String>,
    Json(rules): Json<Rules>,
) -> Result<Json<RuleSetView>, ApiError> {
    write(&db, &format!("dao:{dao}"), rules, &principal).await
}

/// Removes a microDAO's rule set.
#[utoipa::path(delete, path = "/daos/{dao}/rules", tag = "filter",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_dao_rules(
    State(db): State<Db>,
    Path(dao): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&db, &format!("dao:{dao}")).await
}

/// What a microDAO's rule set blocked and redacted, newest first.
#[utoipa::path(get, path = "/daos/{dao}/events", tag = "filter",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<FilterEventView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
async fn dao_events(
    State(db): State<Db>,
    Path(dao): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<FilterEventView>>, ApiError> {
    log(&db, &format!("dao:{dao}"), page).await
}
