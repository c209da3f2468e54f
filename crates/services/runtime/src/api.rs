//! HTTP routes and wire types. [`RunError`] maps to [`ApiError`] here, once.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    RuntimeState,
    domain::{RunError, RunStatus},
    events,
    store::{self, Ending, Run, Step},
};

impl From<RunError> for ApiError {
    fn from(error: RunError) -> Self {
        match &error {
            RunError::Invalid(message) => ApiError::validation(message.clone()),
            RunError::NotFound(message) => ApiError::not_found(message.clone()),
            RunError::Conflict(message) => ApiError::conflict(message.clone()),
            RunError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            RunError::Bus(daarion_bus::BusError::Unavailable(_)) | RunError::Transient(_) => {
                ApiError::unavailable(&error)
            }
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<RuntimeState> {
    OpenApiRouter::new()
        .routes(routes!(agent_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub agent: String,
    /// The room answered in (empty: a caller's conversation).
    pub room: String,
    pub topic: String,
    /// The message the run answers.
    pub message_id: Option<String>,
    /// `user:<id>` of the person who asked.
    pub asker: String,
    pub status: RunStatus,
    /// Deliveries that worked on it.
    pub attempts: i64,
    /// The agent's answer in the room.
    pub reply_message_id: Option<String>,
    /// The final words, once completed.
    pub answer: Option<String>,
    pub error: Option<String>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<Run> for RunView {
    fn from(r: Run) -> Self {
        Self {
            id: r.id,
            agent: r.agent,
            room: r.room,
            topic: r.topic,
            message_id: r.message_id,
            asker: r.asker,
            status: r.status,
            attempts: r.attempts,
            reply_message_id: r.reply_message_id,
            answer: r.answer,
            error: r.error,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStepView {
    pub n: i64,
    /// Whose step: the run's agent, or a member of its crew.
    pub agent: String,
    /// `model` or `tool`.
    pub kind: String,
    /// The model alias or the tool.
    pub name: String,
    /// A tool's arguments.
    #[schema(value_type = Object)]
    pub input: Value,
    /// The model's message, or the tool's answer.
    #[schema(value_type = Object)]
    pub output: Value,
    pub ok: bool,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub latency_ms: i64,
    pub created_at: String,
}

impl From<Step> for RunStepView {
    fn from(s: Step) -> Self {
        Self {
            n: s.n,
            agent: s.agent,
            kind: s.kind,
            name: s.name,
            input: s.input,
            output: s.output,
            ok: s.ok,
            tokens_in: s.tokens_in,
            tokens_out: s.tokens_out,
            latency_ms: s.latency_ms,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetailView {
    #[serde(flatten)]
    pub run: RunView,
    /// Its finished steps, in order.
    pub steps: Vec<RunStepView>,
}

/// An agent's runs, newest first.
#[utoipa::path(get, path = "/agents/{agent}/runs", tag = "runtime",
    params(("agent" = String, Path, description = "The agent's slug"), PageParams),
    responses((status = 200, body = Page<RunView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
async fn agent_runs(
    State(state): State<RuntimeState>,
    Path(agent): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<RunView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::list(&state.db, &agent, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |r| r.id.clone());
    Ok(Json(page.map(RunView::from)))
}

/// Longest a reader may wait for a run to finish.
const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Deserialize, IntoParams)]
pub struct WaitParams {
    /// Wait up to this many seconds (at most 60) for the run to finish.
    #[serde(default)]
    #[param(maximum = 60)]
    pub wait: Option<u64>,
}

/// A run and its steps; with `wait`, answered once it finished (or when
/// the wait is over).
#[utoipa::path(get, path = "/runs/{run}", tag = "runtime",
    params(("run" = String, Path, description = "The run's id (`run_…`)"), WaitParams),
    responses((status = 200, body = RunDetailView), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
async fn get_run(
    State(state): State<RuntimeState>,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
) -> Result<Json<RunDetailView>, ApiError> {
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::validation(format!(
            "wait is at most {MAX_WAIT_SECS} seconds"
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let run = loop {
        let run = store::get(&state.db, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))?;
        if run.status.is_finished() || Instant::now() >= deadline {
            break run;
        }
        // Polling the store finds the end whichever replica ran it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let steps = store::steps(&state.db, &id).await?;
    Ok(Json(RunDetailView {
        run: run.into(),
        steps: steps.into_iter().map(RunStepView::from).collect(),
    }))
}

/// Stops a run that has not finished: the worker holding it stops at its
/// next heartbeat, and it never answers.
#[utoipa::path(post, path = "/runs/{run}/cancel", tag = "runtime",
    params(("run" = String, Path, description = "The run's id (`run_…`)")),
    responses((status = 200, body = RunView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "The run has finished already")))]
async fn cancel_run(
    State(state): State<RuntimeState>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let ending = Ending {
        status: RunStatus::Cancelled,
        reply_message_id: None,
        answer: None,
        error: Some("cancelled"),
    };
    let finished = store::finish(&state.db, &state.outbox, &id, None, ending, |run| {
        vec![events::finished(run)]
    })
    .await?;
    let Some((run, staged)) = finished else {
        return match store::get(&state.db, &id).await? {
            Some(_) => Err(ApiError::conflict("the run has finished already")),
            None => Err(ApiError::not_found(format!("no run {id:?}"))),
        };
    };
    state.outbox.relay(staged).await;
    // Whoever awaits the run (a chat caller, `/ws/agents/events`) hears
    // its end now, not when the worker's next heartbeat notices.
    events::live(&*state.bus, events::ended(run.clone())).await;
    Ok(Json(run.into()))
}
