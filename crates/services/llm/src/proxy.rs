//! Calling a model: deployments tried in plan order with retries and
//! backoff until one starts answering (the first token, for streams), then
//! the answer passed through — whole, or event by event as it arrives.

use std::{pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    config::{ProviderKind, Settings},
    error::LlmError,
    ollama,
    route::{Alias, Target},
};

/// What is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Chat,
    Embeddings,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

impl Tokens {
    /// Reads OpenAI's `usage` object.
    pub fn from_usage(usage: &Value) -> Option<Self> {
        let input = usage["prompt_tokens"].as_u64()?;
        Some(Self {
            input,
            output: usage["completion_tokens"].as_u64().unwrap_or(0),
            cached: usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
        })
    }
}

/// Token count for text no provider counted: about four bytes a token for
/// English text, the usual rule of thumb; records say it was estimated.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

pub type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An upstream stream, as OpenAI chunks.
pub enum Source {
    Sse(Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>),
    Ndjson {
        body: ByteStream,
        buffer: Vec<u8>,
        translator: ollama::ChunkTranslator,
    },
}

/// One piece of a stream.
#[derive(Debug)]
pub enum Piece {
    /// A chunk to send as `data: <json>`, with the usage it carried, if
    /// any, and whether usage is all it carries (OpenAI's last chunk with
    /// `include_usage`: no choices).
    Chunk {
        data: String,
        usage: Option<Tokens>,
        usage_only: bool,
    },
    /// The upstream said it is done.
    Done,
}

impl Source {
    /// The next pieces (an Ollama line can make several chunks); `None` at
    /// the end of the upstream body.
    pub async fn next(&mut self) -> Option<Result<Vec<Piece>, String>> {
        match self {
            Source::Sse(events) => {
                let event = match events.next().await? {
                    Ok(event) => event,
                    Err(e) => return Some(Err(e)),
                };
                let data = event.data.trim();
                if data == "[DONE]" {
                    return Some(Ok(vec![Piece::Done]));
                }
                let not_json = || {
                    Err(format!(
                        "the provider sent a chunk that is not JSON: {:.80}",
                        data
                    ))
                };
                // Only a chunk that mentions usage is decoded; the others
                // are checked to be JSON and passed on as they came.
                let (usage, usage_only) = if data.contains("\"usage\"") {
                    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                        return Some(not_json());
                    };
                    (
                        Tokens::from_usage(&chunk["usage"]),
                        chunk["choices"].as_array().is_some_and(Vec::is_empty),
                    )
                } else if serde_json::from_str::<serde::de::IgnoredAny>(data).is_err() {
                    return Some(not_json());
                } else {
                    (None, false)
                };
                Some(Ok(vec![Piece::Chunk {
                    data: data.to_owned(),
                    usage,
                    usage_only,
                }]))
            }
            Source::Ndjson {
                body,
                buffer,
                translator,
            } => loop {
                if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let line = line.trim_ascii();
                    if line.is_empty() {
                        continue;
                    }
                    let value: Value = match serde_json::from_slice(line) {
                        Ok(v) => v,
                        Err(e) => {
                            return Some(Err(format!(
                                "the provider sent a line that is not JSON: {e}"
                            )));
                        }
                    };
                    if let Some(error) = value["error"].as_str() {
                        return Some(Err(format!("the provider failed mid-stream: {error}")));
                    }
                    let (chunks, usage) = translator.line(&value);
                    let mut pieces: Vec<Piece> = chunks
                        .into_iter()
                        .map(|c| Piece::Chunk {
                            data: c.to_string(),
                            usage: None,
                            usage_only: false,
                        })
                        .collect();
                    if let Some(usage) = usage {
                        pieces.push(Piece::Chunk {
                            data: translator.usage_chunk(&usage).to_string(),
                            usage: Tokens::from_usage(&usage),
                            usage_only: true,
                        });
                        pieces.push(Piece::Done);
                    }
                    return Some(Ok(pieces));
                }
                match body.next().await {
                    Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                    Some(Err(e)) => {
                        // The cause may name the provider's address: logged only.
                        tracing::warn!(error = %daarion_kernel::error::ErrorChain(&e), "provider stream broke");
                        return Some(Err("the provider's stream broke".to_owned()));
                    }
                    None if buffer.trim_ascii().is_empty() => return None,
                    None => buffer.push(b'\n'),
                }
            },
        }
    }
}

/// How a started call answers.
pub enum Started {
    /// The reply, read, and the bytes to answer with (the provider's own
    /// when no translation was needed: not serialised again).
    Whole(Value, bytes::Bytes),
    /// The first pieces (already read, so the first token is known) and the rest.
    Stream(Vec<Piece>, Source),
}

/// A reply translated into OpenAI's shape, with its bytes.
fn translated(value: Value) -> (Value, bytes::Bytes) {
    let bytes = bytes::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    (value, bytes)
}

/// Why one attempt failed, and what to do next.
enum Failure {
    /// Worth retrying the same deployment (429, 5xx, connect, timeout, garbage).
    Retry(LlmError, Option<Duration>),
    /// This deployment cannot serve it (our key refused, model unknown there).
    Next(LlmError),
    /// The request itself is at fault: the client hears the provider's reason.
    Final(LlmError),
}

#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    settings: Arc<Settings>,
}

/// The provider's own error message, when its body has one.
fn provider_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .map(str::to_owned)
    });
    message.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(30.0)))
}

impl Upstreams {
    pub fn new(settings: Arc<Settings>) -> Result<Self, String> {
        let client = daarion_kernel::outbound::client_builder()?
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, settings })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Tries deployments until one starts answering; the deployment that
    /// answered comes back with the answer.
    pub async fn start(
        &self,
        op: Op,
        alias: &Alias,
        body: &Value,
        stream: bool,
        deadline: Instant,
    ) -> Result<(Arc<Target>, Started), LlmError> {
        let mut last =
            LlmError::upstream(format!("no deployment of `{}` is available", alias.name));
        let backoff = Duration::from_millis(self.settings.retry_backoff_ms);
        for target in alias.plan() {
            for attempt in 0..=self.settings.max_retries {
                if !target.breaker.acquire() {
                    last = LlmError::upstream(format!(
                        "{} is failing; its circuit is open",
                        target.name
                    ));
                    break;
                }
                let outcome = self
                    .attempt(op, &target, alias, body, stream, deadline)
                    .await;
                let (error, wait) = match outcome {
                    Ok(started) => {
                        target.breaker.success();
                        metrics::counter!("llm_upstream_attempts_total", "deployment" => target.name.clone(), "outcome" => "ok").increment(1);
                        return Ok((target, started));
                    }
                    Err(Failure::Final(e)) => {
                        target.breaker.success();
                        return Err(e);
                    }
                    Err(Failure::Next(e)) => {
                        target.breaker.failure();
                        metrics::counter!("llm_upstream_attempts_total", "deployment" => target.name.clone(), "outcome" => "next").increment(1);
                        tracing::warn!(deployment = %target.name, error = %e, "deployment cannot serve; trying the next");
                        last = e;
                        break;
                    }
                    Err(Failure::Retry(e, wait)) => {
                        target.breaker.failure();
                        metrics::counter!("llm_upstream_attempts_total", "deployment" => target.name.clone(), "outcome" => "retry").increment(1);
                        tracing::warn!(deployment = %target.name, attempt, error = %e, "upstream attempt failed");
                        (e, wait)
                    }
                };
                last = error;
                if attempt == self.settings.max_retries || Instant::now() >= deadline {
                    break;
                }
                // Exponential backoff with full jitter, or what the provider asked.
                let ceiling = backoff.saturating_mul(1 << attempt.min(10));
                let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..1.0));
                let wait = wait.unwrap_or(jittered);
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            if Instant::now() >= deadline {
                return Err(LlmError::timeout("the model did not answer in time"));
            }
        }
        Err(last)
    }

    fn request(
        &self,
        op: Op,
        target: &Target,
        body: &Value,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let (url, upstream_body) = match (target.kind, op) {
            (ProviderKind::Openai, op) => {
                let mut b = body.clone();
                b["model"] = target.model.clone().into();
                if stream && target.stream_usage {
                    b["stream_options"]["include_usage"] = true.into();
                }
                let path = match op {
                    Op::Chat => "chat/completions",
                    Op::Embeddings => "embeddings",
                };
                (format!("{}/{path}", target.base_url), b)
            }
            (ProviderKind::Ollama, Op::Chat) => (
                format!("{}/api/chat", target.base_url),
                ollama::chat_request(body, &target.model, stream),
            ),
            (ProviderKind::Ollama, Op::Embeddings) => (
                format!("{}/api/embed", target.base_url),
                ollama::embed_request(body, &target.model),
            ),
        };
        let mut request = self.client.post(url).json(&upstream_body);
        if let Some(key) = &target.api_key {
            request = request.bearer_auth(key.expose());
        }
        if let Some(ctx) = daarion_kernel::RequestContext::current() {
            request = request.header("x-request-id", ctx.request_id);
        }
        request
    }

    async fn attempt(
        &self,
        op: Op,
        target: &Target,
        alias: &Alias,
        body: &Value,
        stream: bool,
        deadline: Instant,
    ) -> Result<Started, Failure> {
        let first_token = Duration::from_millis(self.settings.first_token_timeout_ms);
        let until = deadline.min(Instant::now() + first_token);
        let timed_out = || {
            Failure::Retry(
                LlmError::timeout(format!("{} did not answer in time", target.name)),
                None,
            )
        };
        let send = self.request(op, target, body, stream).send();
        let response = match tokio::time::timeout_at(until, send).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => {
                // The cause names the provider's address: logged, not answered.
                tracing::warn!(target = %target.name, error = %daarion_kernel::error::ErrorChain(&e), "provider unreachable");
                return Err(Failure::Retry(
                    LlmError::upstream(format!("{} unreachable", target.name)),
                    None,
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            let wait = retry_after(&response);
            let body = tokio::time::timeout_at(until, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let message = provider_message(&body);
            return Err(match status {
                StatusCode::TOO_MANY_REQUESTS => Failure::Retry(
                    LlmError::new(
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_exceeded",
                        format!("{} is rate limiting: {message}", target.name),
                    ),
                    wait,
                ),
                s if s.is_server_error() => Failure::Retry(
                    LlmError::upstream(format!("{} failed ({s}): {message}", target.name)),
                    wait,
                ),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    tracing::error!(deployment = %target.name, "the provider refused DAARION's credentials");
                    Failure::Next(LlmError::upstream(format!(
                        "{} refused the proxy's credentials",
                        target.name
                    )))
                }
                StatusCode::NOT_FOUND => Failure::Next(LlmError::upstream(format!(
                    "{} does not serve this model: {message}",
                    target.name
                ))),
                s => Failure::Final(LlmError::new(
                    axum::http::StatusCode::from_u16(s.as_u16())
                        .unwrap_or(axum::http::StatusCode::BAD_REQUEST),
                    "upstream_rejected",
                    message,
                )),
            });
        }
        if !stream {
            let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
                Err(_) => return Err(timed_out()),
                Ok(Err(e)) => {
                    tracing::warn!(target = %target.name, error = %daarion_kernel::error::ErrorChain(&e), "provider broke off");
                    return Err(Failure::Retry(
                        LlmError::upstream(format!("{} broke off", target.name)),
                        None,
                    ));
                }
                Ok(Ok(b)) => b,
            };
            let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
                Failure::Retry(
                    LlmError::upstream(format!(
                        "{} answered with something that is not JSON",
                        target.name
                    )),
                    None,
                )
            })?;
            let (value, bytes) = match (target.kind, op) {
                (ProviderKind::Openai, _) => (value, bytes),
                (ProviderKind::Ollama, Op::Chat) => translated(ollama::chat_response(
                    &value,
                    &alias.name,
                    &completion_id(),
                    now_secs(),
                )),
                (ProviderKind::Ollama, Op::Embeddings) => {
                    translated(ollama::embed_response(&value, &alias.name))
                }
            };
            let well_formed = match op {
                Op::Chat => value["choices"].is_array(),
                Op::Embeddings => value["data"].is_array(),
            };
            if !well_formed {
                return Err(Failure::Retry(
                    LlmError::upstream(format!("{} answered in an unknown shape", target.name)),
                    None,
                ));
            }
            return Ok(Started::Whole(value, bytes));
        }
        let bytes: ByteStream = Box::pin(response.bytes_stream());
        let mut source = match target.kind {
            ProviderKind::Openai => Source::Sse(Box::pin(
                bytes.eventsource().map(|r| r.map_err(|e| e.to_string())),
            )),
            ProviderKind::Ollama => Source::Ndjson {
                body: bytes,
                buffer: Vec::new(),
                translator: ollama::ChunkTranslator::new(&alias.name, &completion_id(), now_secs()),
            },
        };
        match tokio::time::timeout_at(until, source.next()).await {
            Err(_) => Err(timed_out()),
            Ok(None) => Err(Failure::Retry(
                LlmError::upstream(format!("{} ended the stream before any token", target.name)),
                None,
            )),
            Ok(Some(Err(e))) => Err(Failure::Retry(LlmError::upstream(e), None)),
            Ok(Some(Ok(pieces))) => Ok(Started::Stream(pieces, source)),
        }
    }
}

pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
