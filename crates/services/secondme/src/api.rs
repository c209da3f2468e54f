//! HTTP routes and wire types. [`SecondMeError`] maps to [`ApiError`] here,
//! once.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use daarion_access::{Principal, PrincipalKind};
use daarion_agents::domain::Lifecycle;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    SecondMeState, converse,
    domain::{Conversation, MAX_MESSAGE_CHARS, SecondMeError, Turn},
    store,
};

impl From<SecondMeError> for ApiError {
    fn from(error: SecondMeError) -> Self {
        match error {
            SecondMeError::Invalid(message) => ApiError::validation(message),
            SecondMeError::NotFound(message) => ApiError::not_found(message),
            SecondMeError::Conflict(message) => ApiError::conflict(message),
            SecondMeError::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            SecondMeError::Store(e) => ApiError::internal(&e),
            SecondMeError::Agent(e) => e.into(),
            SecondMeError::Memory(e) => e.into(),
        }
    }
}

pub fn router() -> OpenApiRouter<SecondMeState> {
    OpenApiRouter::new()
        .routes(routes!(invoke_second_me))
        .routes(routes!(get_second_me))
        .routes(routes!(
            list_second_me_conversations,
            erase_second_me_conversations
        ))
        .routes(routes!(
            get_second_me_conversation,
            delete_second_me_conversation
        ))
        .routes(routes!(list_second_me_turns))
}

/// Second Me is a person's own: agents and services have none.
fn person(principal: &Principal) -> Result<String, ApiError> {
    if principal.kind != PrincipalKind::User {
        return Err(ApiError::forbidden("Second Me is a person's own agent"));
    }
    Ok(principal.name())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invoke {
    /// What you say to your Second Me.
    #[schema(min_length = 1, max_length = 4000)]
    pub message: String,
    /// The conversation to go on with (`smc_…`); a new one without.
    #[schema(max_length = 64)]
    pub conversation: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invoked {
    pub conversation: Conversation,
    /// Your turn, as stored.
    pub said: Turn,
    /// Its answer (`recalled`: what you told it before went into it).
    pub answer: Turn,
    /// Your Second Me's agent (`me-…`), whose page in the hub sets its
    /// model, prompt and the tools it may use for you.
    pub agent: String,
}

/// Talk to your Second Me: your own agent, made at your first message,
/// which answers only you. What you say is kept in your own memory (which
/// no one else reads) and recalled in later conversations. The run is
/// metered to you.
#[utoipa::path(post, path = "/invoke", tag = "secondme", request_body = Invoke,
    params(IdempotencyKey),
    responses((status = 200, body = Invoked),
        (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 404, description = "No such conversation of yours"),
        (status = 409, description = "Your Second Me is paused or archived, or this Idempotency-Key was used with a different request"),
        (status = 422, description = "An empty or too long message"),
        (status = 502, description = "The run failed (your plan's runs or budget spent, the model unreachable…)"),
        (status = 503, description = "Memory or the bus are unavailable"),
        (status = 504, description = "No answer in time; the run goes on, and a retry with the same Idempotency-Key gets its answer")))]
async fn invoke_second_me(
    State(state): State<SecondMeState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<Invoke>,
) -> Result<Json<Invoked>, ApiError> {
    person(&principal)?;
    if input.message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::validation(format!(
            "message must be 1 to {MAX_MESSAGE_CHARS} characters"
        )));
    }
    let invoked = converse::invoke(
        &state,
        &principal,
        (&input.message, input.conversation.as_deref()),
        key.as_deref(),
    )
    .await?;
    Ok(Json(Invoked {
        agent: daarion_agents::domain::personal_slug(&principal.id),
        conversation: invoked.conversation,
        said: invoked.said,
        answer: invoked.answer,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecondMe {
    /// Your Second Me's agent (`me-…`), or none before your first message.
    pub agent: Option<String>,
    pub status: Option<Lifecycle>,
    /// The LLM alias it thinks with.
    pub model: Option<String>,
}

/// Your Second Me, if made yet.
#[utoipa::path(get, path = "/me", tag = "secondme",
    responses((status = 200, body = SecondMe), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person")))]
async fn get_second_me(
    State(state): State<SecondMeState>,
    principal: Principal,
) -> Result<Json<SecondMe>, ApiError> {
    person(&principal)?;
    let agent = converse::agent(&state, &principal).await?;
    Ok(Json(SecondMe {
        status: agent.as_ref().map(|a| a.status),
        model: agent.as_ref().map(|a| a.model.clone()),
        agent: agent.map(|a| a.slug),
    }))
}

/// Your conversations with your Second Me, the latest spoken in first.
#[utoipa::path(get, path = "/conversations", tag = "secondme",
    params(PageParams),
    responses((status = 200, body = Page<Conversation>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not a person")))]
async fn list_second_me_conversations(
    State(state): State<SecondMeState>,
    principal: Principal,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Conversation>>, ApiError> {
    let me = person(&principal)?;
    let limit = page.limit()?;
    let after = page.after()?;
    let after = match after.as_deref().map(|c| c.split_once('\n')) {
        None => None,
        Some(Some(position)) => Some(position),
        Some(None) => return Err(ApiError::validation("cursor is not one this endpoint gave")),
    };
    let rows = store::conversations(&state.db, &me, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |c| {
        format!("{}\n{}", c.updated_at, c.id)
    })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedConversations {
    /// How many conversations were deleted.
    pub removed: u64,
}

/// Delete all your conversations with your Second Me (what you told it
/// stays in your own memory until you erase that too).
#[utoipa::path(delete, path = "/conversations", tag = "secondme",
    responses((status = 200, body = ErasedConversations), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person")))]
async fn erase_second_me_conversations(
    State(state): State<SecondMeState>,
    principal: Principal,
) -> Result<Json<ErasedConversations>, ApiError> {
    let me = person(&principal)?;
    let gone = store::erase(&state.db, &me).await?;
    let agent = daarion_agents::domain::personal_slug(&principal.id);
    for id in &gone {
        forget(&state, &agent, id).await?;
    }
    Ok(Json(ErasedConversations {
        removed: gone.len() as u64,
    }))
}

/// A deleted conversation's summaries go with it.
async fn forget(state: &SecondMeState, agent: &str, conversation: &str) -> Result<(), ApiError> {
    daarion_memory::summaries::forget(&state.db, agent, &crate::fold::key(conversation)).await?;
    Ok(())
}

async fn conversation(
    state: &SecondMeState,
    principal: &Principal,
    id: &str,
) -> Result<Conversation, ApiError> {
    let me = person(principal)?;
    store::conversation(&state.db, &me, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conversation {id:?} of yours")))
}

/// One of your conversations.
#[utoipa::path(get, path = "/conversations/{conversation}", tag = "secondme",
    params(("conversation" = String, Path, description = "The conversation's id (`smc_…`)")),
    responses((status = 200, body = Conversation), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 404, description = "No such conversation of yours")))]
async fn get_second_me_conversation(
    State(state): State<SecondMeState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(conversation(&state, &principal, &id).await?))
}

/// Delete one of your conversations.
#[utoipa::path(delete, path = "/conversations/{conversation}", tag = "secondme",
    params(("conversation" = String, Path, description = "The conversation's id (`smc_…`)")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a person"),
        (status = 404, description = "No such conversation of yours")))]
async fn delete_second_me_conversation(
    State(state): State<SecondMeState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = person(&principal)?;
    if store::delete(&state.db, &me, &id).await? {
        let agent = daarion_agents::domain::personal_slug(&principal.id);
        forget(&state, &agent, &id).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no conversation {id:?} of yours"
        )))
    }
}

/// A conversation's turns, in order.
#[utoipa::path(get, path = "/conversations/{conversation}/turns", tag = "secondme",
    params(("conversation" = String, Path, description = "The conversation's id (`smc_…`)"), PageParams),
    responses((status = 200, body = Page<Turn>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not a person"),
        (status = 404, description = "No such conversation of yours")))]
async fn list_second_me_turns(
    State(state): State<SecondMeState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Turn>>, ApiError> {
    let conversation = conversation(&state, &principal, &id).await?;
    let limit = page.limit()?;
    let after = page
        .after()?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::validation("cursor is not one this endpoint gave"))?;
    let rows = store::turns(&state.db, &conversation.id, after.unwrap_or(0), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.seq.to_string())))
}
