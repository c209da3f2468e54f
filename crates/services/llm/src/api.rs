//! HTTP routes (OpenAI's), request checks, and the accounting of each call.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use daarion_access::{
    Access::SignedIn, Action, Attr, Credential, Kind, Principal, PrincipalKind, Resource, Rule,
};
use daarion_usage::{Admission, ExtraLimit, Outcome, Subjects, UsageKind, UsageRecord};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, time::Instant};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    LlmState, SERVICE,
    error::LlmError,
    proxy::{Op, Piece, Source, Started, Tokens, estimate_tokens},
    route::{Alias, Target},
};

/// Anyone signed in reaches the routes; each call is then decided on its
/// model alias (`exec_tool` on `Tool` `llm:<alias>`, within the API key's
/// scopes and model list).
pub static RULES: &[Rule] = &[
    Rule::new(Method::POST, "/api/llm/v1/chat/completions", SignedIn),
    Rule::new(Method::POST, "/api/llm/v1/embeddings", SignedIn),
    Rule::new(Method::GET, "/api/llm/v1/models", SignedIn),
    Rule::new(Method::GET, "/api/llm/v1/models/{model}", SignedIn),
];

pub fn router() -> OpenApiRouter<LlmState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(embeddings))
        .routes(routes!(list_models))
        .routes(routes!(get_model))
}

/// Header naming the microDAO a call is charged to (its members only).
const DAO_HEADER: &str = "x-daarion-dao";

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

fn parse_body(body: &Bytes) -> Result<Value, LlmError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| LlmError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(LlmError::invalid("body", "the body must be a JSON object"));
    }
    if value["model"].as_str().is_none_or(str::is_empty) {
        return Err(LlmError::invalid(
            "model",
            "`model` must be a non-empty string",
        ));
    }
    Ok(value)
}

fn positive_int(body: &Value, field: &'static str) -> Result<Option<u64>, LlmError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            LlmError::invalid(field, format!("`{field}` must be a positive integer"))
        }),
    }
}

/// Checks what the proxy itself relies on; everything else passes through
/// for the provider to judge.
fn check_chat(body: &Value) -> Result<(), LlmError> {
    let messages = body["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| LlmError::invalid("messages", "`messages` must be a non-empty array"))?;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(LlmError::invalid(
                "messages",
                format!("messages[{i}].role must be one of {}", ROLES.join(", ")),
            ));
        }
        let content_ok = match &m["content"] {
            Value::String(_) => true,
            Value::Array(parts) => parts.iter().all(|p| p["type"].is_string()),
            Value::Null => role == "assistant" && m["tool_calls"].is_array(),
            _ => false,
        };
        if !content_ok {
            return Err(LlmError::invalid(
                "messages",
                format!("messages[{i}].content must be a string or an array of typed parts"),
            ));
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().filter(|t| t.len() <= 128).ok_or_else(|| {
            LlmError::invalid("tools", "`tools` must be an array of at most 128 tools")
        })?;
        for (i, tool) in tools.iter().enumerate() {
            let name_ok = tool["function"]["name"].as_str().is_some_and(|n| {
                (1..=64).contains(&n.len())
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            let params = &tool["function"]["parameters"];
            let params_ok = params.is_null() || params.is_object();
            if tool["type"] != "function" || !name_ok || !params_ok {
                return Err(LlmError::invalid(
                    "tools",
                    format!(
                        "tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": 1-64 of letters, digits, '_', '-', \"parameters\": a JSON Schema object}}}}"
                    ),
                ));
            }
        }
    }
    if body
        .get("stream")
        .is_some_and(|s| !s.is_boolean() && !s.is_null())
    {
        return Err(LlmError::invalid(
            "stream",
            "`stream` must be true or false",
        ));
    }
    positive_int(body, "max_tokens")?;
    positive_int(body, "max_completion_tokens")?;
    Ok(())
}

fn check_embeddings(body: &Value) -> Result<(), LlmError> {
    let ok = match &body["input"] {
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => {
            (1..=2048).contains(&items.len())
                && (items.iter().all(Value::is_string)
                    || items.iter().all(Value::is_u64)
                    || items.iter().all(Value::is_array))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LlmError::invalid(
            "input",
            "`input` must be a string or an array of 1-2048 strings (or token arrays)",
        ))
    }
}

/// The alias, if it exists and this caller may use it.
async fn authorize(
    state: &LlmState,
    principal: &Principal,
    model: &str,
) -> Result<Arc<Alias>, LlmError> {
    let alias = state
        .catalog
        .aliases
        .get(model)
        .cloned()
        .ok_or_else(|| LlmError::model_not_found(model))?;
    if let Credential::ApiKey { limits, .. } = &principal.credential
        && !limits.allows_model(model)
    {
        return Err(LlmError {
            param: Some("model"),
            ..LlmError::new(
                StatusCode::FORBIDDEN,
                "model_not_allowed",
                format!("this API key may not use the model `{model}`"),
            )
        });
    }
    let resource = Resource::new(Kind::Tool, format!("llm:{model}"))
        .attr("enabled", Attr::Bool(true))
        .attr("allowed_agents", Attr::Set(Vec::new()))
        .attr("allowed_roles", Attr::Set(Vec::new()));
    state
        .access
        .check(principal, Action::ExecTool, &resource, Default::default())
        .await?;
    Ok(alias)
}

/// Who pays: the person (an agent's owner), the agent, and the microDAO
/// the caller names, if it belongs to it.
fn subjects(principal: &Principal, headers: &HeaderMap) -> Result<Subjects, LlmError> {
    let mut s = Subjects::of(principal);
    if let Some(dao) = headers.get(DAO_HEADER) {
        let dao = dao.to_str().unwrap_or_default();
        let prefix = format!("dao:{dao}:");
        let member = principal.kind == PrincipalKind::Service
            || principal.roles.iter().any(|r| r.starts_with(&prefix));
        if dao.is_empty() || !member {
            return Err(LlmError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{} cannot charge microDAO {dao:?}", principal.handle),
            ));
        }
        s.dao = Some(dao.to_owned());
    }
    Ok(s)
}

fn extra_limits(principal: &Principal, alias: &Alias) -> Vec<ExtraLimit> {
    let mut extra = Vec::new();
    if let Credential::ApiKey { id, limits } = &principal.credential
        && (limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some())
    {
        extra.push(ExtraLimit {
            name: format!("API key {id}"),
            key: format!("key:{id}"),
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
        });
    }
    if alias.model.requests_per_minute.is_some() || alias.model.tokens_per_minute.is_some() {
        extra.push(ExtraLimit {
            name: format!("model {}", alias.name),
            key: format!("model:{}", alias.name),
            requests_per_minute: alias.model.requests_per_minute,
            tokens_per_minute: alias.model.tokens_per_minute,
        });
    }
    extra
}

/// What one call owes, settled exactly once: when the call ends, or — if
/// the client went away first and the handler was dropped — from `Drop`.
/// The meter settles before the reply ends, so a caller's next call sees
/// this one's real cost (not its reservation); the usage record is queued
/// for publishing in a batch, off the reply's path.
struct Ledger {
    pending: Option<Pending>,
}

struct Pending {
    state: LlmState,
    admission: Admission,
    record: UsageRecord,
    price: daarion_usage::Price,
    prompt_bytes: usize,
    started: Instant,
}

/// How a call ended, for its record.
struct Ending<'a> {
    /// The deployment that answered.
    target: Option<&'a str>,
    tokens: Option<Tokens>,
    output_bytes: usize,
    outcome: Outcome,
    error: Option<&'static str>,
    /// Served from the response cache: nothing was spent upstream.
    cached: bool,
}

impl Ending<'_> {
    fn failed(error: &LlmError) -> Ending<'static> {
        Ending {
            target: None,
            tokens: None,
            output_bytes: 0,
            outcome: Outcome::Error,
            error: Some(error.code),
            cached: false,
        }
    }
}

impl Pending {
    async fn account(mut self, end: Ending<'_>) {
        let (tokens, estimated) = match end.tokens {
            Some(t) => (t, false),
            None if end.outcome == Outcome::Error && end.output_bytes == 0 => {
                (Tokens::default(), false)
            }
            None => (
                Tokens {
                    input: estimate_tokens(self.prompt_bytes),
                    output: estimate_tokens(end.output_bytes),
                    cached: 0,
                },
                true,
            ),
        };
        let cost = if end.cached {
            0
        } else {
            self.price
                .cost_micros(tokens.input, tokens.cached, tokens.output)
        };
        let r = &mut self.record;
        r.provider = end.target.map(str::to_owned);
        r.tokens_in = tokens.input;
        r.tokens_out = tokens.output;
        r.tokens_cached = tokens.cached;
        r.estimated = estimated;
        r.cost_micros = cost;
        r.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        r.outcome = end.outcome;
        r.error_code = end.error.map(str::to_owned);
        let model = r.model.clone().unwrap_or_default();
        metrics::counter!("llm_requests_total", "model" => model.clone(), "outcome" => end.outcome.as_str()).increment(1);
        metrics::counter!("llm_tokens_total", "model" => model.clone(), "direction" => "in")
            .increment(tokens.input);
        metrics::counter!("llm_tokens_total", "model" => model, "direction" => "out")
            .increment(tokens.output);
        self.state
            .meter
            .settle(self.admission, tokens.input + tokens.output, cost)
            .await;
        self.state
            .records
            .publish(daarion_usage::event(SERVICE, &self.record))
            .await;
    }
}

impl Ledger {
    async fn close(mut self, end: Ending<'_>) {
        if let Some(pending) = self.pending.take() {
            pending.account(end).await;
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            let tasks = pending.state.tasks.clone();
            tasks.spawn(pending.account(Ending {
                target: None,
                tokens: None,
                output_bytes: 0,
                outcome: Outcome::Cancelled,
                error: Some("client_disconnected"),
                cached: false,
            }));
        }
    }
}

/// Everything up to the upstream call: checks, authorization, admission.
async fn admit(
    state: &LlmState,
    principal: &Principal,
    headers: &HeaderMap,
    body: &Bytes,
    op: Op,
) -> Result<(Value, Arc<Alias>, Ledger), LlmError> {
    let value = parse_body(body)?;
    match op {
        Op::Chat => check_chat(&value)?,
        Op::Embeddings => check_embeddings(&value)?,
    }
    let model = value["model"].as_str().unwrap_or_default();
    let alias = authorize(state, principal, model).await?;
    let subjects = subjects(principal, headers)?;
    let prompt_tokens = estimate_tokens(body.len());
    let output_tokens = match op {
        Op::Chat => positive_int(&value, "max_completion_tokens")?
            .or(positive_int(&value, "max_tokens")?)
            .unwrap_or(alias.model.max_output_tokens),
        Op::Embeddings => 0,
    };
    let estimate = alias
        .model
        .price
        .cost_micros(prompt_tokens, 0, output_tokens);
    let admission = state
        .meter
        .admit(&subjects, &extra_limits(principal, &alias), estimate)
        .await?;
    let mut record = UsageRecord::new(
        match op {
            Op::Chat => UsageKind::Llm,
            Op::Embeddings => UsageKind::Embedding,
        },
        Outcome::Ok,
    )
    .by(principal, &subjects);
    record.model = Some(alias.name.clone());
    record.currency = Some(state.currency.to_string());
    let ledger = Ledger {
        pending: Some(Pending {
            state: state.clone(),
            admission,
            record,
            price: alias.model.price,
            prompt_bytes: body.len(),
            started: Instant::now(),
        }),
    };
    Ok((value, alias, ledger))
}

/// A cached reply; a cache that fails is a miss (logged), not an error.
async fn cached_reply(cache: &dyn daarion_cache::Cache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "response cache unavailable");
        None
    })
}

/// A digest of the whole request: equal keys mean equal requests.
fn cache_key(op: Op, body: &Bytes) -> String {
    let mut digest = Sha256::new();
    digest.update([op as u8]);
    digest.update(body);
    format!("llm:reply:{:x}", digest.finalize())
}

async fn call(
    state: LlmState,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
    op: Op,
) -> Result<Response, LlmError> {
    let (value, alias, ledger) = admit(&state, &principal, &headers, &body, op).await?;
    let stream = op == Op::Chat && value["stream"] == true;
    let cache = state
        .cache
        .as_ref()
        .filter(|_| !stream)
        .map(|(cache, ttl)| (cache, *ttl, cache_key(op, &body)));
    if let Some((c, _, key)) = &cache
        && let Some(reply) = cached_reply(c.as_ref(), key).await
    {
        let reply = Bytes::from(reply);
        let tokens = serde_json::from_slice::<Value>(&reply)
            .ok()
            .and_then(|v| Tokens::from_usage(&v["usage"]));
        ledger
            .close(Ending {
                target: Some("cache"),
                tokens,
                output_bytes: reply.len(),
                outcome: Outcome::Ok,
                error: None,
                cached: true,
            })
            .await;
        return Ok((
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("x-daarion-cache"), "hit"),
            ],
            reply,
        )
            .into_response());
    }
    let settings = state.upstreams.settings();
    let deadline = Instant::now() + Duration::from_millis(settings.total_timeout_ms);
    let started = state
        .upstreams
        .start(op, &alias, &value, stream, deadline)
        .await;
    let (target, started) = match started {
        Ok(s) => s,
        Err(e) => {
            ledger.close(Ending::failed(&e)).await;
            return Err(e);
        }
    };
    match started {
        Started::Whole(reply) => {
            let bytes = Bytes::from(serde_json::to_vec(&reply).unwrap_or_default());
            let tokens = Tokens::from_usage(&reply["usage"]);
            if let Some((c, ttl, key)) = &cache
                && let Err(error) = c.set(key, &bytes, Some(*ttl)).await
            {
                tracing::warn!(%error, "reply not cached");
            }
            ledger
                .close(Ending {
                    target: Some(&target.name),
                    tokens,
                    output_bytes: content_bytes(&reply),
                    outcome: Outcome::Ok,
                    error: None,
                    cached: false,
                })
                .await;
            Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
        }
        Started::Stream(first, source) => {
            let wants_usage = value["stream_options"]["include_usage"] == true;
            let (tx, mut rx) = mpsc::channel::<Bytes>(32);
            tokio::spawn(pump(
                first,
                source,
                tx,
                ledger,
                target,
                wants_usage,
                deadline,
            ));
            let body = futures::stream::poll_fn(move |cx| {
                rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>))
            });
            Ok((
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                Body::from_stream(body),
            )
                .into_response())
        }
    }
}

/// Bytes of generated text in a whole reply (for estimates).
fn content_bytes(reply: &Value) -> usize {
    reply["choices"]
        .as_array()
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    c["message"]["content"].as_str().map_or(0, str::len)
                        + c["message"]["tool_calls"].to_string().len()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes of generated text in one chunk (for estimates).
fn chunk_content_bytes(chunk: &str) -> usize {
    serde_json::from_str::<Value>(chunk).map_or(0, |v| {
        v["choices"].as_array().map_or(0, |choices| {
            choices
                .iter()
                .map(|c| {
                    c["delta"]["content"].as_str().map_or(0, str::len)
                        + c["delta"]["tool_calls"].as_array().map_or(0, |t| {
                            t.iter()
                                .map(|t| t["function"]["arguments"].as_str().map_or(0, str::len))
                                .sum()
                        })
                })
                .sum()
        })
    })
}

/// Moves a stream from the provider to the client event by event, until
/// the provider is done, the client leaves (the upstream request is then
/// dropped, which closes it), or the total timeout; then settles the call.
async fn pump(
    first: Vec<Piece>,
    mut source: Source,
    tx: mpsc::Sender<Bytes>,
    ledger: Ledger,
    target: Arc<Target>,
    wants_usage: bool,
    deadline: Instant,
) {
    let mut tokens = None;
    let mut output_bytes = 0;
    let mut outcome = Outcome::Error;
    let mut error: Option<LlmError> = None;
    let mut pieces = first;
    'stream: loop {
        for piece in pieces.drain(..) {
            match piece {
                Piece::Chunk {
                    data,
                    usage,
                    usage_only,
                } => {
                    if usage.is_some() {
                        tokens = usage;
                        if usage_only && !wants_usage {
                            continue;
                        }
                    } else if tokens.is_none() {
                        output_bytes += chunk_content_bytes(&data);
                    }
                    if tx
                        .send(Bytes::from(format!("data: {data}\n\n")))
                        .await
                        .is_err()
                    {
                        outcome = Outcome::Cancelled;
                        break 'stream;
                    }
                }
                Piece::Done => {
                    outcome = if tx
                        .send(Bytes::from_static(b"data: [DONE]\n\n"))
                        .await
                        .is_ok()
                    {
                        Outcome::Ok
                    } else {
                        Outcome::Cancelled
                    };
                    break 'stream;
                }
            }
        }
        tokio::select! {
            _ = tx.closed() => {
                outcome = Outcome::Cancelled;
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                error = Some(LlmError::timeout("the stream did not finish in time"));
                break;
            }
            next = source.next() => match next {
                Some(Ok(next)) => pieces = next,
                Some(Err(e)) => {
                    error = Some(LlmError::upstream(e));
                    break;
                }
                None => {
                    error = Some(LlmError::upstream(format!("{} closed the stream before it was done", target.name)));
                    break;
                }
            },
        }
    }
    drop(source);
    if let Some(e) = &error {
        tracing::warn!(deployment = %target.name, error = %e, "stream failed midway");
        let _ = tx
            .send(Bytes::from(format!("data: {}\n\n", e.body())))
            .await;
    }
    if outcome == Outcome::Cancelled {
        metrics::counter!("llm_streams_cancelled_total").increment(1);
    }
    ledger
        .close(Ending {
            target: Some(&target.name),
            tokens,
            output_bytes,
            outcome,
            error: error
                .as_ref()
                .map(|e| e.code)
                .or((outcome == Outcome::Cancelled).then_some("client_disconnected")),
            cached: false,
        })
        .await;
}

/// Creates a chat completion (OpenAI's API; `stream: true` answers with
/// server-sent events).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "llm",
    request_body(content = Object, description = "OpenAI chat completion request"),
    responses((status = 200, description = "`chat.completion`, or `text/event-stream` of `chat.completion.chunk`"),
        (status = 400, description = "Malformed request"), (status = 404, description = "Unknown model"),
        (status = 429, description = "A quota, budget or rate limit; the message says which and when it resets"),
        (status = 502, description = "Every deployment failed")))]
async fn chat_completions(
    State(state): State<LlmState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(state, principal, headers, body, Op::Chat)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Creates embeddings (OpenAI's API).
#[utoipa::path(post, path = "/v1/embeddings", tag = "llm",
    request_body(content = Object, description = "OpenAI embeddings request"),
    responses((status = 200, description = "A list of embeddings")))]
async fn embeddings(
    State(state): State<LlmState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(state, principal, headers, body, Op::Embeddings)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelView>,
}

fn model_view(alias: &str) -> ModelView {
    ModelView {
        id: alias.to_owned(),
        object: "model",
        created: 0,
        owned_by: "daarion",
    }
}

fn visible(principal: &Principal, alias: &str) -> bool {
    match &principal.credential {
        Credential::ApiKey { limits, .. } => limits.allows_model(alias),
        _ => true,
    }
}

/// The model aliases this caller may use.
#[utoipa::path(get, path = "/v1/models", tag = "llm", responses((status = 200, body = ModelList)))]
async fn list_models(State(state): State<LlmState>, principal: Principal) -> axum::Json<ModelList> {
    axum::Json(ModelList {
        object: "list",
        data: state
            .catalog
            .aliases
            .keys()
            .filter(|a| visible(&principal, a))
            .map(|a| model_view(a))
            .collect(),
    })
}

/// One model alias.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "llm",
    params(("model" = String, Path, description = "Model alias")),
    responses((status = 200, body = ModelView), (status = 404, description = "Unknown model")))]
async fn get_model(
    State(state): State<LlmState>,
    principal: Principal,
    Path(model): Path<String>,
) -> Result<axum::Json<ModelView>, LlmError> {
    if state.catalog.aliases.contains_key(&model) && visible(&principal, &model) {
        Ok(axum::Json(model_view(&model)))
    } else {
        Err(LlmError::model_not_found(&model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_requests_are_checked_where_the_proxy_relies_on_them() {
        let ok = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert!(check_chat(&ok).is_ok());
        let cases = [
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "tools",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "ok", "parameters": "nope"}}]}),
                "tools",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
                "stream",
            ),
        ];
        for (body, param) in cases {
            assert_eq!(
                check_chat(&body).map_err(|e| e.param),
                Err(Some(param)),
                "{body}"
            );
        }
        assert!(parse_body(&Bytes::from_static(b"[1]")).is_err());
        assert!(parse_body(&Bytes::from_static(b"{\"model\": 3}")).is_err());
        assert!(check_embeddings(&json!({"input": []})).is_err());
        assert!(check_embeddings(&json!({"input": ["a", 1]})).is_err());
        assert!(check_embeddings(&json!({"input": "a"})).is_ok());
    }

    #[test]
    fn generated_text_is_measured_in_replies_and_chunks() {
        let reply = json!({"choices": [{"message": {"content": "hello"}}]});
        assert_eq!(content_bytes(&reply), 5 + 4); // + "null" tool calls
        assert_eq!(
            chunk_content_bytes(r#"{"choices":[{"delta":{"content":"abc"}}]}"#),
            3
        );
        assert_eq!(chunk_content_bytes("not json"), 0);
    }
}
