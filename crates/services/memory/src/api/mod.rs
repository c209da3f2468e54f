//! HTTP routes and wire types. [`MemoryError`] maps to [`ApiError`] here,
//! once. Documents and search here; facts and the graph in `facts`.

mod facts;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::{Principal, PrincipalKind};
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    Knowledge,
    chunk::DocumentFormat,
    domain::{Exported, Hit, KnowledgeDocument, MemoryError, NewDocument, Within},
    store,
    summaries::ConversationSummary,
};

impl From<MemoryError> for ApiError {
    fn from(error: MemoryError) -> Self {
        match &error {
            MemoryError::Invalid(message) => ApiError::validation(message.clone()),
            MemoryError::NotFound(_) => ApiError::not_found(error.to_string()),
            MemoryError::Conflict(message) => ApiError::conflict(message.clone()),
            MemoryError::Store(daarion_store::StoreError::Conflict(message)) => {
                ApiError::conflict(message.clone())
            }
            MemoryError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            MemoryError::Embedding(_) => ApiError::unavailable(&error),
            MemoryError::Store(_) | MemoryError::Bus(_) => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<Knowledge> {
    OpenApiRouter::new()
        .routes(routes!(create_document, list_documents))
        .routes(routes!(search_knowledge))
        .routes(routes!(get_document, delete_document))
        .routes(routes!(export_me))
        .routes(routes!(erase_me))
        .routes(routes!(create_own_document, list_own_documents))
        .routes(routes!(search_own))
        .routes(routes!(facts::remember_dao_fact, facts::list_dao_facts))
        .routes(routes!(facts::remember_own_fact, facts::list_own_facts))
        .routes(routes!(facts::get_fact, facts::delete_fact))
        .routes(routes!(facts::neighbours))
        .routes(routes!(facts::path))
        .routes(routes!(agent_summaries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// One conversation's versions (`room:<id>`, or `room:<id>#<topic>`);
    /// without it, the latest version of each conversation.
    #[param(min_length = 1, max_length = 200)]
    pub conversation: Option<String>,
}

/// An agent's rolling summaries of its conversations: what has left the
/// window of messages it reads, folded in each time the window moves far
/// enough. One conversation's versions, newest first; or the latest of
/// each conversation.
#[utoipa::path(get, path = "/agents/{agent}/summaries", tag = "memory",
    params(("agent" = String, Path, description = "The agent's slug"), SummaryParams, PageParams),
    responses((status = 200, body = Page<ConversationSummary>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"),
        (status = 403, description = "Not one who manages this agent"),
        (status = 404, description = "No such agent"),
        (status = 422, description = "An empty or too long conversation")))]
async fn agent_summaries(
    State(state): State<Knowledge>,
    Path(agent): Path<String>,
    Query(params): Query<SummaryParams>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ConversationSummary>>, ApiError> {
    let limit = page.limit()?;
    let after = page.after()?;
    let Some(conversation) = params.conversation else {
        let rows = crate::summaries::latest_of_each(
            &state.db,
            &agent,
            after.as_deref().unwrap_or(""),
            limit,
        )
        .await?;
        return Ok(Json(Page::from_rows(rows, limit, |s| {
            s.conversation.clone()
        })));
    };
    if conversation.is_empty() || conversation.chars().count() > 200 {
        return Err(ApiError::validation(
            "conversation must be 1 to 200 characters",
        ));
    }
    let before = after
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::validation("cursor is not one this endpoint gave"))?;
    let rows = crate::summaries::versions(
        &state.db,
        &agent,
        &conversation,
        before.unwrap_or(i64::MAX),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |s| {
        s.version.to_string()
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// `text` (the default) or `markdown`: markdown headings make sections.
    pub format: Option<DocumentFormat>,
    /// At most `memory.max_document_bytes` (1 MiB by default).
    #[schema(min_length = 1)]
    pub body: String,
    /// A room of the microDAO it is for (its id): searches may keep to one
    /// room's documents.
    #[schema(max_length = 64)]
    pub room: Option<String>,
}

/// Add a document to a microDAO's knowledge. It is answered at once and
/// indexed soon after (`indexed_at` is set then). Send `Idempotency-Key`
/// to make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/documents", tag = "memory", request_body = CreateDocument,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, description = "Added; waiting for the indexer", body = KnowledgeDocument),
        (status = 200, description = "Replay of an earlier create with the same key", body = KnowledgeDocument),
        (status = 403, description = "Not a member of this microDAO"),
        (status = 404, description = "No such microDAO"),
        (status = 409, description = "This Idempotency-Key was used with a different request"),
        (status = 422, description = "Invalid fields, or a room that is not this microDAO's")))]
async fn create_document(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreateDocument>,
) -> Result<Response, ApiError> {
    add(&state, &dao, &actor, key.as_deref(), input).await
}

async fn add(
    state: &Knowledge,
    scope: &str,
    actor: &Principal,
    key: Option<&str>,
    input: CreateDocument,
) -> Result<Response, ApiError> {
    let mut new = NewDocument::parse(
        &input.title,
        input.format,
        &input.body,
        state.max_document_bytes(),
    )?;
    new.room = input.room;
    let (document, fresh) = state
        .add(scope, &new, (&actor.name(), &actor.handle), key)
        .await?;
    Ok(created(fresh, document))
}

/// Only people have memory of their own here.
fn own_scope(actor: &Principal) -> Result<String, ApiError> {
    if actor.kind != PrincipalKind::User {
        return Err(ApiError::forbidden(
            "only a person has memory of their own here",
        ));
    }
    Ok(actor.name())
}

/// Add a document to your own memory, which no one else reads (its
/// `dao` is `user:<your id>`). Indexed just after, like a community's.
#[utoipa::path(post, path = "/me/documents", tag = "memory", request_body = CreateDocument,
    params(IdempotencyKey),
    responses((status = 201, description = "Added; waiting for the indexer", body = KnowledgeDocument),
        (status = 200, description = "Replay of an earlier create with the same key", body = KnowledgeDocument),
        (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 409, description = "This Idempotency-Key was used with a different request"),
        (status = 422, description = "Invalid fields")))]
async fn create_own_document(
    State(state): State<Knowledge>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreateDocument>,
) -> Result<Response, ApiError> {
    let scope = own_scope(&actor)?;
    add(&state, &scope, &actor, key.as_deref(), input).await
}

/// Your own documents, newest first.
#[utoipa::path(get, path = "/me/documents", tag = "memory",
    params(PageParams),
    responses((status = 200, body = Page<KnowledgeDocument>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not a person")))]
async fn list_own_documents(
    State(state): State<Knowledge>,
    actor: Principal,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<KnowledgeDocument>>, ApiError> {
    let scope = own_scope(&actor)?;
    list(&state, &scope, &page).await
}

async fn list(
    state: &Knowledge,
    scope: &str,
    page: &PageParams,
) -> Result<Json<Page<KnowledgeDocument>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::documents(&state.db, scope, page.after()?.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |d| d.id.clone())))
}

/// A microDAO's documents, newest first.
#[utoipa::path(get, path = "/daos/{dao}/documents", tag = "memory",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<KnowledgeDocument>), (status = 400, description = "Bad cursor or limit"),
        (status = 403, description = "Not a member of this microDAO"), (status = 404, description = "No such microDAO")))]
async fn list_documents(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<KnowledgeDocument>>, ApiError> {
    list(&state, &dao, &page).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The question or words to look for.
    #[param(min_length = 1, max_length = 1000)]
    pub q: String,
    /// How many chunks to return (10 by default).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<usize>,
    /// The weight of meaning against words: 0 is full-text alone, 1 vector
    /// similarity alone (`memory.hybrid_alpha` by default).
    #[param(minimum = 0.0, maximum = 1.0)]
    pub alpha: Option<f64>,
    /// Only what this person (`user:<id>`) or agent (`agent:<id>`) wrote.
    #[param(max_length = 120, pattern = "^(user|agent):[A-Za-z0-9_-]+$")]
    pub author: Option<String>,
    /// Only the documents added for this room (its id).
    #[param(max_length = 64)]
    pub room: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    /// Whether vectors took part: `false` when the model is not available
    /// (the hits are full-text matches alone then).
    pub semantic: bool,
}

/// Search a microDAO's knowledge: full-text (BM25) and vector
/// similarity, fused by reciprocal rank.
#[utoipa::path(get, path = "/daos/{dao}/search", tag = "memory",
    params(("dao" = String, Path, description = "The microDAO's slug"), SearchParams),
    responses((status = 200, body = SearchResults), (status = 403, description = "Not a member of this microDAO"),
        (status = 404, description = "No such microDAO"), (status = 422, description = "Empty or too long a question, a limit or alpha out of bounds, or an author not user:<id> or agent:<id>")))]
async fn search_knowledge(
    State(state): State<Knowledge>,
    Path(dao): Path<String>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    search(&state, &dao, &params).await
}

/// Search your own memory, as a community's is searched.
#[utoipa::path(get, path = "/me/search", tag = "memory",
    params(SearchParams),
    responses((status = 200, body = SearchResults), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 422, description = "Empty or too long a question, a limit or alpha out of bounds, or an author not user:<id> or agent:<id>")))]
async fn search_own(
    State(state): State<Knowledge>,
    actor: Principal,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let scope = own_scope(&actor)?;
    search(&state, &scope, &params).await
}

async fn search(
    state: &Knowledge,
    scope: &str,
    params: &SearchParams,
) -> Result<Json<SearchResults>, ApiError> {
    let q = params.q.trim();
    if q.is_empty() || q.chars().count() > 1000 {
        return Err(ApiError::validation("q must be 1 to 1000 characters"));
    }
    let limit = params.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::validation("limit must be between 1 and 50"));
    }
    if params.alpha.is_some_and(|a| !(0.0..=1.0).contains(&a)) {
        return Err(ApiError::validation("alpha must be between 0 and 1"));
    }
    let author = params.author.as_deref();
    let named = |who: &str| {
        who.split_once(':').is_some_and(|(kind, id)| {
            ["user", "agent"].contains(&kind)
                && (1..=100).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    };
    if author.is_some_and(|a| !named(a)) {
        return Err(ApiError::validation(
            "author must be user:<id> or agent:<id>",
        ));
    }
    if params
        .room
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 64)
    {
        return Err(ApiError::validation("room must be 1 to 64 characters"));
    }
    let within = Within {
        author,
        room: params.room.as_deref(),
    };
    let (hits, semantic) = state
        .search_within(scope, within, q, (limit, params.alpha))
        .await?;
    Ok(Json(SearchResults { hits, semantic }))
}

/// One document, with its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    pub document: KnowledgeDocument,
    pub body: String,
}

#[utoipa::path(get, path = "/documents/{document}", tag = "memory",
    params(("document" = String, Path, description = "The document's id")),
    responses((status = 200, body = DocumentView), (status = 403, description = "Not a member of its microDAO"),
        (status = 404, description = "No such document")))]
async fn get_document(
    State(state): State<Knowledge>,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let (document, body) = store::with_body(&state.db, &id)
        .await?
        .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
    Ok(Json(DocumentView { document, body }))
}

/// Remove a document: it is gone from full-text and vector search at once.
#[utoipa::path(delete, path = "/documents/{document}", tag = "memory",
    params(("document" = String, Path, description = "The document's id")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Neither its author nor an admin of its microDAO"),
        (status = 404, description = "No such document")))]
async fn delete_document(
    State(state): State<Knowledge>,
    Path(id): Path<String>,
    actor: Principal,
) -> Result<StatusCode, ApiError> {
    if !state.remove(&id, &actor.name()).await? {
        return Err(MemoryError::NotFound(id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Everything remembered about the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    /// `user:<id>` (or `agent:<id>`).
    pub subject: String,
    pub exported_at: String,
    /// The documents they wrote, with bodies and chunks.
    pub documents: Vec<Exported>,
    /// The facts they wrote, that are about them, or that are their own,
    /// history included.
    pub facts: Vec<crate::facts::Fact>,
}

/// Everything memory holds about you, as JSON: the documents you wrote,
/// with their bodies and the chunks searched, and every fact you wrote,
/// that is about you, or that is your own.
#[utoipa::path(get, path = "/me/export", tag = "memory",
    responses((status = 200, body = Export), (status = 401, description = "Not signed in")))]
async fn export_me(
    State(state): State<Knowledge>,
    actor: Principal,
) -> Result<Json<Export>, ApiError> {
    let subject = actor.name();
    let documents = state.export(&subject).await?;
    let facts = crate::facts::of_person(&state.db, &subject).await?;
    Ok(Json(Export {
        subject,
        exported_at: daarion_store::now(),
        documents,
        facts,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// How many documents were removed.
    pub removed: usize,
    /// How many facts (history included) were removed.
    pub facts_removed: u64,
}

/// Erase everything memory holds about you: every document you wrote goes,
/// from full-text and vector search too, and every fact you wrote, that is
/// about you, or that is your own.
#[utoipa::path(delete, path = "/me", tag = "memory",
    responses((status = 200, body = Erased), (status = 401, description = "Not signed in")))]
async fn erase_me(
    State(state): State<Knowledge>,
    actor: Principal,
) -> Result<Json<Erased>, ApiError> {
    let (removed, facts_removed) = state.erase(&actor.name()).await?;
    Ok(Json(Erased {
        removed,
        facts_removed,
    }))
}
