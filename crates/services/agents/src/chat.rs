//! `POST /api/agents/v1/chat/completions`: any OpenAI client talks to an
//! agent (`model` = its slug). The caller's conversation becomes a run like
//! any other (prompt, tools, policy, budget, the runtime's checkpoints):
//! published on `AGENT_RUNS`, and answered from the run's live events —
//! streamed as `chat.completion.chunk`s, or whole. An `Idempotency-Key`
//! names the run, so a retry gets the same run's answer (the runtime
//! tells a finished run's end again when asked twice).

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, Sse},
    },
};
use daarion_access::{Action, Principal, PrincipalKind};
use daarion_bus::{Bus, Envelope};
use daarion_kernel::{
    ApiError, ErrorCode,
    http::{IdempotencyKey, Json},
};
use futures::{Stream, StreamExt, stream::BoxStream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{
    AgentState, SERVICE,
    domain::Lifecycle,
    runs::{self, RunEvent, RunRequest},
};

/// The longest a caller waits for an agent's answer.
const WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentChatRequest {
    /// The agent's slug.
    #[schema(max_length = 63)]
    pub model: String,
    /// The conversation: `system`, `user` and `assistant` turns with text
    /// content (at most 100). The agent's own prompt comes first.
    #[schema(value_type = Vec<Object>, max_items = 100)]
    pub messages: Vec<Value>,
    /// Stream the answer as server-sent `chat.completion.chunk`s.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}`: a last chunk with the tokens used.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentChatCompletion {
    /// `chatcmpl-<run id>`.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<Value>,
    #[schema(value_type = Object)]
    pub usage: Value,
}

/// Runs an agent on a conversation, OpenAI-style. The caller must be a
/// person who may talk to the agent (`read` on it); the run is charged as
/// any of the agent's runs (its model calls to the agent and its owner,
/// the run to the caller).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "agents",
    operation_id = "agent_chat_completions",
    request_body = AgentChatRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Names the run: a retry gets its answer")),
    responses((status = 200, body = AgentChatCompletion,
            description = "`chat.completion`, or `text/event-stream` of `chat.completion.chunk`s"),
        (status = 400), (status = 401),
        (status = 403, description = "Not a person, or not allowed to talk to this agent"),
        (status = 404, description = "No such agent"),
        (status = 409, description = "The agent is paused or archived"),
        (status = 422, description = "Messages that are not a conversation"),
        (status = 502, description = "The run failed"),
        (status = 504, description = "No answer in time; the run goes on")))]
pub async fn chat_completions(
    State(state): State<AgentState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<AgentChatRequest>,
) -> Result<Response, ApiError> {
    if principal.kind != PrincipalKind::User {
        return Err(ApiError::forbidden(
            "agents are talked to by people (agents do not summon agents)",
        ));
    }
    runs::conversation(&input.messages).map_err(|e| ApiError::validation(e.0))?;
    if !input.messages.iter().any(|m| m["role"] == "user") {
        return Err(ApiError::validation("the conversation has no user turn"));
    }
    let agent = crate::store::get(&state.db, &input.model)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {:?}", input.model)))?;
    state
        .access
        .check(
            &principal,
            Action::Read,
            &crate::access::agent_resource(&agent),
            Default::default(),
        )
        .await?;
    if agent.status != Lifecycle::Active {
        return Err(ApiError::conflict("the agent is paused or archived"));
    }
    let request = RunRequest {
        run_id: run_id(&principal.name(), key.as_deref()),
        agent: agent.slug.clone(),
        room: String::new(),
        topic: String::new(),
        message_id: None,
        messages: input.messages,
        asker: principal.name(),
        note: None,
    };
    let events = ask(state.bus.as_ref(), &request).await?;
    let id = format!("chatcmpl-{}", request.run_id);
    if input.stream {
        let usage = input
            .stream_options
            .as_ref()
            .is_some_and(|o| o["include_usage"] == true);
        return Ok(stream(id, agent.slug, usage, events).into_response());
    }
    let (answer, tokens_in, tokens_out) = answer_of(events, &request.run_id).await?;
    Ok(Json(AgentChatCompletion {
        id,
        object: "chat.completion".into(),
        created: now_secs(),
        model: agent.slug,
        choices: vec![json!({"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer}})],
        usage: usage(tokens_in, tokens_out),
    })
    .into_response())
}

/// Asks for a run and follows its events (listening before asking, so
/// none can pass unheard). `bus` must be allowed to publish
/// [`runs::REQUESTED`].
pub async fn ask(
    bus: &dyn Bus,
    request: &RunRequest,
) -> Result<BoxStream<'static, RunEvent>, ApiError> {
    let run_id = request.run_id.clone();
    let events = bus
        .subscribe(&runs::live_subject(&request.agent))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .filter_map(move |envelope| {
            let event = serde_json::from_value::<RunEvent>(envelope.payload).ok();
            std::future::ready(event.filter(|e| e.run() == run_id))
        })
        .boxed();
    let payload = serde_json::to_value(request).map_err(|e| ApiError::internal(&e))?;
    let asked = Envelope::new(SERVICE, runs::requested_subject(&request.agent), payload)
        .with_actor(request.asker.clone());
    bus.publish(&asked)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok(events)
}

/// The run's answer and tokens (in, out), once it ends.
pub async fn answer_of(
    mut events: BoxStream<'static, RunEvent>,
    run: &str,
) -> Result<(String, i64, i64), ApiError> {
    let end = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if matches!(event, RunEvent::Completed { .. } | RunEvent::Failed { .. }) {
                return Some(event);
            }
        }
        None
    })
    .await;
    match end {
        Ok(Some(RunEvent::Completed {
            answer,
            tokens_in,
            tokens_out,
            ..
        })) => Ok((answer, tokens_in, tokens_out)),
        Ok(Some(RunEvent::Failed { error, .. })) => Err(ApiError::new(
            ErrorCode::BadGateway,
            format!("the agent's run failed: {error}"),
        )),
        _ => Err(ApiError::new(
            ErrorCode::Timeout,
            format!(
                "no answer within {} s; the run {run} goes on",
                WAIT.as_secs()
            ),
        )),
    }
}

/// The run's id: from the caller's `Idempotency-Key` within `scope` (the
/// caller, and whatever else keeps its keys apart), so a retry is the same
/// run; or new.
pub fn run_id(scope: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => {
            let digest = Sha256::digest(format!("{scope}\n{key}"));
            format!("run_{}", &hex::encode(digest)[..32])
        }
        None => format!("run_{}", uuid::Uuid::now_v7().simple()),
    }
}

fn usage(tokens_in: i64, tokens_out: i64) -> Value {
    json!({"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out})
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The run's events as `chat.completion.chunk`s, ending with `[DONE]`.
fn stream(
    id: String,
    model: String,
    with_usage: bool,
    events: impl Stream<Item = RunEvent> + Send + 'static,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let created = now_secs();
    let chunk = move |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    // Ends with the run's end, without waiting for anything after it.
    let events = Box::pin(events.take_until(tokio::time::sleep(WAIT)));
    let body = futures::stream::unfold((events, false), move |(mut events, ended)| {
        let chunk = chunk.clone();
        async move {
            if ended {
                return None;
            }
            let event = events.next().await?;
            let (out, ended): (Vec<Value>, bool) = match event {
                RunEvent::Token { text, .. } => {
                    (vec![chunk(json!({"content": text}), Value::Null)], false)
                }
                RunEvent::Completed {
                    tokens_in,
                    tokens_out,
                    ..
                } => {
                    let mut last = vec![chunk(json!({}), json!("stop"))];
                    if with_usage {
                        let mut u = chunk(json!({}), Value::Null);
                        u["choices"] = json!([]);
                        u["usage"] = usage(tokens_in, tokens_out);
                        last.push(u);
                    }
                    (last, true)
                }
                RunEvent::Failed { error, .. } => (
                    vec![
                        json!({"error": {"message": format!("the agent's run failed: {error}"),
                        "type": "server_error", "code": "bad_gateway"}}),
                    ],
                    true,
                ),
                _ => (Vec::new(), false),
            };
            Some((out, (events, ended)))
        }
    })
    .flat_map(futures::stream::iter);
    let events = futures::stream::once(std::future::ready(first))
        .chain(body)
        .map(|chunk| SseEvent::default().data(chunk.to_string()))
        .chain(futures::stream::once(std::future::ready(
            SseEvent::default().data("[DONE]"),
        )))
        .map(Ok);
    Sse::new(events)
}
