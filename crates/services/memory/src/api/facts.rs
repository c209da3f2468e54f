//! Facts and the relations graph over them: a microDAO's
//! (`/daos/{dao}/facts`, `/daos/{dao}/graph/…`), one fact with its history
//! (`/facts/{fact}`), and a person's own (`/me/facts`), which no one else
//! reads.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::own_scope;
use crate::{
    Knowledge,
    domain::MemoryError,
    facts::{self, Cardinality, Fact, Filter, MAX_TERM_CHARS, NewFact, Outcome},
    graph::{self, Neighbourhood},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberFact {
    #[schema(min_length = 1, max_length = 300)]
    pub subject: String,
    #[schema(min_length = 1, max_length = 300)]
    pub predicate: String,
    #[schema(min_length = 1, max_length = 300)]
    pub object: String,
    /// `one` (the default): a different object supersedes the current
    /// one; `many`: the predicate holds several objects.
    pub cardinality: Option<Cardinality>,
    /// How sure the writer is, 0 to 1 (1 by default).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f64>,
    /// Where it came from (a conversation, a document…).
    #[schema(max_length = 500)]
    pub source: Option<String>,
    /// `user:<id>` when the fact is about a person.
    pub about: Option<String>,
    /// Since when it holds (RFC 3339); now by default.
    pub valid_from: Option<String>,
}

impl RememberFact {
    fn into_new(self) -> NewFact {
        NewFact {
            subject: self.subject,
            predicate: self.predicate,
            object: self.object,
            cardinality: self.cardinality.unwrap_or(Cardinality::One),
            confidence: self.confidence.unwrap_or(1.0),
            source: self.source.unwrap_or_default(),
            about: self.about,
            valid_from: self.valid_from,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Remembered {
    pub fact: Fact,
    /// `stored` (now current), `known` (the same fact was: that one is
    /// answered) or `history` (older than the current fact).
    pub outcome: Outcome,
    /// The fact this one superseded.
    pub superseded: Option<String>,
}

async fn remember(
    state: &Knowledge,
    scope: &str,
    actor: &Principal,
    key: Option<&str>,
    input: RememberFact,
) -> Result<Response, ApiError> {
    let (fact, outcome, superseded) = state
        .remember_fact(scope, input.into_new(), (&actor.name(), &actor.handle), key)
        .await?;
    let status = if outcome == Outcome::Known {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = Remembered {
        fact,
        outcome,
        superseded,
    };
    Ok((status, Json(body)).into_response())
}

/// Remember a fact in a microDAO's memory. A different object for the same
/// subject and predicate supersedes the current fact (kept as history);
/// the same one answers the fact already known. Send `Idempotency-Key`
/// to make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/facts", tag = "memory", request_body = RememberFact,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, description = "Remembered (current, or history when older than the current fact)", body = Remembered),
        (status = 200, description = "Already known, or a replay of an earlier write with the same key", body = Remembered),
        (status = 403, description = "Not a member of this microDAO"),
        (status = 404, description = "No such microDAO"),
        (status = 409, description = "This Idempotency-Key was used with a different request"),
        (status = 422, description = "Invalid fields")))]
pub(super) async fn remember_dao_fact(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<RememberFact>,
) -> Result<Response, ApiError> {
    remember(&state, &format!("dao:{dao}"), &actor, key.as_deref(), input).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FactFilter {
    /// Facts about this subject.
    #[param(max_length = 300)]
    pub subject: Option<String>,
    #[param(max_length = 300)]
    pub predicate: Option<String>,
    /// Facts about this person (`user:<id>`).
    pub about: Option<String>,
    /// Superseded facts too (false by default).
    pub history: Option<bool>,
}

impl FactFilter {
    fn into_filter(self) -> Filter {
        Filter {
            subject: self.subject,
            predicate: self.predicate,
            about: self.about,
            history: self.history.unwrap_or(false),
        }
    }
}

async fn list(
    state: &Knowledge,
    scope: &str,
    page: &PageParams,
    filter: FactFilter,
) -> Result<Json<Page<Fact>>, ApiError> {
    let limit = page.limit()?;
    let rows = facts::list(
        &state.db,
        scope,
        &filter.into_filter(),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |f| f.id.clone())))
}

/// A microDAO's facts, newest first: those that hold now, or all with
/// `history`.
#[utoipa::path(get, path = "/daos/{dao}/facts", tag = "memory",
    params(("dao" = String, Path, description = "The microDAO's slug"), FactFilter, PageParams),
    responses((status = 200, body = Page<Fact>), (status = 400, description = "Bad cursor or limit"),
        (status = 403, description = "Not a member of this microDAO"), (status = 404, description = "No such microDAO")))]
pub(super) async fn list_dao_facts(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    Query(page): Query<PageParams>,
    Query(filter): Query<FactFilter>,
) -> Result<Json<Page<Fact>>, ApiError> {
    list(&state, &format!("dao:{dao}"), &page, filter).await
}

/// Remember a fact in your own memory, which no one else reads.
#[utoipa::path(post, path = "/me/facts", tag = "memory", request_body = RememberFact,
    params(IdempotencyKey),
    responses((status = 201, description = "Remembered", body = Remembered),
        (status = 200, description = "Already known, or a replay", body = Remembered),
        (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 409, description = "This Idempotency-Key was used with a different request"),
        (status = 422, description = "Invalid fields")))]
pub(super) async fn remember_own_fact(
    State(state): State<Knowledge>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<RememberFact>,
) -> Result<Response, ApiError> {
    let scope = own_scope(&actor)?;
    remember(&state, &scope, &actor, key.as_deref(), input).await
}

/// Your own facts, newest first.
#[utoipa::path(get, path = "/me/facts", tag = "memory",
    params(FactFilter, PageParams),
    responses((status = 200, body = Page<Fact>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not a person")))]
pub(super) async fn list_own_facts(
    State(state): State<Knowledge>,
    actor: Principal,
    Query(page): Query<PageParams>,
    Query(filter): Query<FactFilter>,
) -> Result<Json<Page<Fact>>, ApiError> {
    let scope = own_scope(&actor)?;
    list(&state, &scope, &page, filter).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FactView {
    pub fact: Fact,
    /// Every version of its subject and predicate, the one holding latest
    /// first (this one among them).
    pub history: Vec<Fact>,
}

/// One fact, with its history.
#[utoipa::path(get, path = "/facts/{fact}", tag = "memory",
    params(("fact" = String, Path, description = "The fact's id")),
    responses((status = 200, body = FactView), (status = 403, description = "Not yours, nor of a microDAO you are in"),
        (status = 404, description = "No such fact")))]
pub(super) async fn get_fact(
    State(state): State<Knowledge>,
    Path(id): Path<String>,
) -> Result<Json<FactView>, ApiError> {
    let fact = facts::fact(&state.db, &id)
        .await?
        .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
    let history = facts::history(&state.db, &fact).await?;
    Ok(Json(FactView { fact, history }))
}

/// Forget a fact. When it held, the newest fact it had superseded holds
/// again.
#[utoipa::path(delete, path = "/facts/{fact}", tag = "memory",
    params(("fact" = String, Path, description = "The fact's id")),
    responses((status = 204, description = "Forgotten"),
        (status = 403, description = "Neither its author, its owner nor an admin of its microDAO"),
        (status = 404, description = "No such fact")))]
pub(super) async fn delete_fact(
    State(state): State<Knowledge>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !facts::delete(&state.db, &state.outbox, &id).await? {
        return Err(MemoryError::NotFound(id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

fn entity_checked(name: &str, value: &str) -> Result<(), ApiError> {
    let length = value.trim().chars().count();
    if length == 0 || length > MAX_TERM_CHARS {
        return Err(ApiError::validation(format!(
            "{name} must be 1 to {MAX_TERM_CHARS} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NeighbourhoodParams {
    /// The entity (a subject or object of facts), as written.
    #[param(min_length = 1, max_length = 300)]
    pub entity: String,
    /// Steps from it (1 by default).
    #[param(minimum = 1, maximum = 3)]
    pub depth: Option<usize>,
}

/// The facts that hold within a few steps of an entity.
#[utoipa::path(get, path = "/daos/{dao}/graph/neighbours", tag = "memory",
    params(("dao" = String, Path, description = "The microDAO's slug"), NeighbourhoodParams),
    responses((status = 200, body = Neighbourhood), (status = 403, description = "Not a member of this microDAO"),
        (status = 404, description = "No such microDAO"), (status = 422, description = "No entity, or a depth out of bounds")))]
pub(super) async fn neighbours(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    Query(params): Query<NeighbourhoodParams>,
) -> Result<Json<Neighbourhood>, ApiError> {
    entity_checked("entity", &params.entity)?;
    let depth = params.depth.unwrap_or(1);
    if !(1..=3).contains(&depth) {
        return Err(ApiError::validation("depth must be between 1 and 3"));
    }
    let scope = format!("dao:{dao}");
    Ok(Json(
        state.neighbourhood(&scope, &params.entity, depth).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathParams {
    #[param(min_length = 1, max_length = 300)]
    pub from: String,
    #[param(min_length = 1, max_length = 300)]
    pub to: String,
    /// Most facts on the path (4 by default).
    #[param(minimum = 1, maximum = 6)]
    pub max_depth: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphPath {
    /// Whether the two are linked within `max_depth` facts.
    pub found: bool,
    /// The facts from `from` to `to`, in order (each read either way).
    pub edges: Vec<Fact>,
}

/// The fewest facts that link two entities.
#[utoipa::path(get, path = "/daos/{dao}/graph/path", tag = "memory",
    params(("dao" = String, Path, description = "The microDAO's slug"), PathParams),
    responses((status = 200, body = GraphPath), (status = 403, description = "Not a member of this microDAO"),
        (status = 404, description = "No such microDAO"), (status = 422, description = "No entity, or max_depth out of bounds")))]
pub(super) async fn path(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    Query(params): Query<PathParams>,
) -> Result<Json<GraphPath>, ApiError> {
    entity_checked("from", &params.from)?;
    entity_checked("to", &params.to)?;
    let max_depth = params.max_depth.unwrap_or(4);
    if !(1..=6).contains(&max_depth) {
        return Err(ApiError::validation("max_depth must be between 1 and 6"));
    }
    let scope = format!("dao:{dao}");
    let found = graph::path(&state.db, &scope, (&params.from, &params.to), max_depth).await?;
    Ok(Json(GraphPath {
        found: found.is_some(),
        edges: found.unwrap_or_default(),
    }))
}
