//! HTTP routes (OpenAI's) and each call from admission to reply; one file
//! per concern: `validate` (request checks), `accounting` (authorization,
//! who pays, the ledger), `cache` (exact-match replies), `stream` (SSE pump
//! and estimates).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use daarion_access::{Action, Credential, Principal, PrincipalKind, Resource};
use daarion_usage::{Admission, ExtraLimit, Outcome, Subjects, UsageKind, UsageRecord};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, time::Instant};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

mod accounting;
mod cache;
mod stream;
mod validate;

use accounting::*;
use cache::*;
use stream::*;
use validate::*;

use crate::{
    LlmState, SERVICE,
    error::LlmError,
    proxy::{Op, Piece, Source, Started, Tokens, estimate_tokens},
    route::{Alias, Target},
};

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

async fn call(
    state: LlmState,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
    op: Op,
) -> Result<Response, LlmError> {
    if !daarion_kernel::http::has_json_content_type(&headers) {
        return Err(LlmError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the request as JSON (Content-Type: application/json)",
        ));
    }
    let (value, alias, ledger) = admit(&state, &principal, &headers, &body, op).await?;
    let stream = op == Op::Chat && value["stream"] == true;
    let cache = state
        .cache
        .as_ref()
        .filter(|_| !stream)
        .map(|(cache, ttl)| {
            let caller = (!alias.model.shared_cache).then(|| principal.name());
            (cache, *ttl, cache_key(op, &body, caller.as_deref()))
        });
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
        Started::Whole(reply, bytes) => {
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

/// Creates a chat completion (OpenAI's API; `stream: true` answers with
/// server-sent events).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "llm",
    request_body(content = Object, description = "OpenAI chat completion request"),
    responses((status = 200, description = "`chat.completion`, or `text/event-stream` of `chat.completion.chunk`"),
        (status = 400, description = "Malformed request"), (status = 404, description = "Unknown model"),
        (status = 415, description = "The body is not sent as JSON"),
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
    responses((status = 200, description = "A list of embeddings"),
        (status = 400, description = "Malformed request"), (status = 404, description = "Unknown model"),
        (status = 415, description = "The body is not sent as JSON"),
        (status = 429, description = "A quota, budget or rate limit; the message says which and when it resets"),
        (status = 502, description = "Every deployment failed")))]
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
    /// What a call costs, per million tokens (a DAARION extension, as
    /// OpenRouter's `pricing`): the same prices the meter charges.
    pub pricing: Pricing,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pricing {
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Prompt tokens served from the provider's cache.
    pub cached_input_per_million: f64,
    /// ISO 4217, the city's accounting currency.
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelView>,
}

fn model_view(state: &LlmState, alias: &crate::route::Alias) -> ModelView {
    let price = alias.model.price;
    ModelView {
        id: alias.name.clone(),
        object: "model",
        created: 0,
        owned_by: "daarion",
        pricing: Pricing {
            input_per_million: price.input_per_million,
            output_per_million: price.output_per_million,
            cached_input_per_million: price
                .cached_input_per_million
                .unwrap_or(price.input_per_million),
            currency: state.currency.to_string(),
        },
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
            .values()
            .filter(|a| visible(&principal, &a.name))
            .map(|a| model_view(&state, a))
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
    match state.catalog.aliases.get(&model) {
        Some(alias) if visible(&principal, &model) => Ok(axum::Json(model_view(&state, alias))),
        _ => Err(LlmError::model_not_found(&model)),
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
