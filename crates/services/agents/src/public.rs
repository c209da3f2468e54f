//! `POST /api/agents/public/{agent}/ask`: a public agent answers strangers
//! (the original's `POST /public/citizens/{slug}/ask`). Nobody signs in;
//! each client address (an IPv6 /64) gets a few questions a minute per
//! agent; the run is the agent's like any other (its model calls charged
//! to the agent and its owner, its plan's runs and askers a day counted,
//! the stranger as a `visitor:` asker), without tools, since it acts for
//! nobody; and it is refused at once when the owner's budget for the month
//! is spent.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, State},
    http::HeaderMap,
};
use daarion_access::Subject;
use daarion_cache::RateLimit;
use daarion_kernel::{ApiError, ErrorCode, http::Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{
    AgentState,
    domain::{AgentVisibility, Lifecycle},
    runs::RunRequest,
};

pub const MAX_QUESTION_CHARS: usize = 2000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicQuestion {
    /// 1-2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub question: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicAnswer {
    pub run_id: String,
    pub answer: String,
}

/// Asks a public agent a question, without signing in.
#[utoipa::path(post, path = "/public/{agent}/ask", tag = "agents",
    params(("agent" = String, Path, description = "The agent's slug")),
    request_body = PublicQuestion,
    responses((status = 200, body = PublicAnswer), (status = 400),
        (status = 404, description = "No public agent by this name"),
        (status = 409, description = "The agent is paused"),
        (status = 422, description = "An empty or too long question"),
        (status = 429, description = "Too many questions from this client, or the owner's budget is spent"),
        (status = 502, description = "The run failed"),
        (status = 504, description = "No answer in time")))]
pub async fn ask_public(
    State(state): State<AgentState>,
    Path(slug): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(input): Json<PublicQuestion>,
) -> Result<Json<PublicAnswer>, ApiError> {
    let question = input.question.trim();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::validation(format!(
            "question must be 1-{MAX_QUESTION_CHARS} characters"
        )));
    }
    let agent = crate::store::get(&state.db, &slug)
        .await?
        .filter(|a| a.visibility == AgentVisibility::Public && a.status != Lifecycle::Archived)
        .ok_or_else(|| ApiError::not_found(format!("no public agent {slug:?}")))?;
    if agent.status != Lifecycle::Active {
        return Err(ApiError::conflict("the agent is paused"));
    }
    let owner = agent.owner.strip_prefix("user:").unwrap_or(&agent.owner);
    let budget = state
        .meter
        .status(&Subject::User(owner.to_owned()))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    if budget
        .budget_micros_per_month
        .is_some_and(|b| budget.spent_micros + budget.reserved_micros >= b)
    {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "this agent's owner has spent the month's budget",
        )
        .with_retry_after(Duration::from_secs(budget.month_resets_in_secs)));
    }
    let ip = daarion_kernel::http::client_ip(peer, &headers, &state.trusted_proxies).to_string();
    let client = daarion_kernel::http::client_bucket(&ip);
    let limit = RateLimit {
        per_second: f64::from(state.settings.public_asks_per_minute) / 60.0,
        burst: state.settings.public_ask_burst,
    };
    let decision = state
        .cache
        .rate_limit(&format!("agents:ask:{slug}:{client}"), limit)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    if !decision.allowed {
        return Err(ApiError::rate_limited(decision.retry_after));
    }
    let visitor = hex::encode(&Sha256::digest(client.as_bytes())[..8]);
    let request = RunRequest {
        run_id: format!("run_{}", uuid::Uuid::now_v7().simple()),
        agent: agent.slug,
        room: String::new(),
        topic: String::new(),
        message_id: None,
        messages: vec![json!({"role": "user", "content": question})],
        asker: format!("visitor:{visitor}"),
        note: None,
    };
    let events = crate::chat::ask(state.bus.as_ref(), &request).await?;
    let (answer, _, _) = crate::chat::answer_of(events, &request.run_id).await?;
    Ok(Json(PublicAnswer {
        run_id: request.run_id,
        answer,
    }))
}
