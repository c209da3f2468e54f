//! The city's own APIs, called as the run's agent: the LLM proxy (which
//! decides, routes, limits and meters as for that agent and its owner)
//! and toolcore (which checks the agent's tools and the person it acts
//! for). Each call carries a short service token whose subject is the
//! agent and whose actor is this service, and the run's request and
//! trace ids.

use std::time::Duration;

use daarion_access::token::ServiceTokens;
use daarion_kernel::RequestContext;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{SERVICE, domain::RunError};

const TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// A model's answer.
pub struct Completion {
    /// `choices[0].message`.
    pub message: Value,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

/// What a tool answered, or why it did not: told to the model either way.
pub struct ToolAnswer {
    pub ok: bool,
    pub output: Value,
}

#[derive(Clone)]
pub struct City {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    tokens: ServiceTokens,
}

impl City {
    pub fn new(http: reqwest::Client, base: &str, tokens: ServiceTokens) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        agent: &str,
        audience: &str,
    ) -> Result<reqwest::RequestBuilder, RunError> {
        let token = self
            .tokens
            .issue_as_agent(SERVICE, agent, audience, TOKEN_LIFETIME)
            .map_err(|e| RunError::Permanent(e.to_string()))?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(ctx) = RequestContext::current() {
            request = request.header("x-request-id", ctx.request_id).header(
                "traceparent",
                format!(
                    "00-{}-{}-01",
                    ctx.trace_id,
                    daarion_kernel::context::new_span_id()
                ),
            );
        }
        Ok(request)
    }

    /// A tool as toolcore describes it (`None`: no such tool).
    pub async fn tool(&self, agent: &str, name: &str) -> Result<Option<Value>, RunError> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/api/toolcore/tools/{name}"),
                agent,
                "toolcore",
            )?
            .send()
            .await
            .map_err(unreachable_city)?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(body(response).await?)),
            status => Err(refusal(status, &body(response).await.unwrap_or_default())),
        }
    }

    /// One model call through the LLM proxy.
    pub async fn complete(
        &self,
        agent: &str,
        request: &Value,
        timeout: Duration,
    ) -> Result<Completion, RunError> {
        let response = self
            .request(
                reqwest::Method::POST,
                "/api/llm/v1/chat/completions",
                agent,
                "llm",
            )?
            .timeout(timeout)
            .json(request)
            .send()
            .await
            .map_err(unreachable_city)?;
        let status = response.status();
        let answer = body(response).await?;
        if !status.is_success() {
            return Err(refusal(status, &answer));
        }
        let message = answer["choices"][0]["message"].clone();
        if !message.is_object() {
            return Err(RunError::Transient(
                "the model's answer held no message".into(),
            ));
        }
        let tokens = |key: &str| answer["usage"][key].as_i64().unwrap_or(0);
        Ok(Completion {
            message,
            tokens_in: tokens("prompt_tokens"),
            tokens_out: tokens("completion_tokens"),
        })
    }

    /// One tool call through toolcore, for `acting_for`.
    pub async fn call_tool(
        &self,
        agent: &str,
        tool: &str,
        arguments: &Value,
        acting_for: &str,
        timeout: Duration,
    ) -> Result<ToolAnswer, RunError> {
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/api/toolcore/tools/{tool}/call"),
                agent,
                "toolcore",
            )?
            .timeout(timeout)
            .json(&json!({ "arguments": arguments, "acting_for": acting_for }))
            .send()
            .await
            .map_err(unreachable_city)?;
        let status = response.status();
        let answer = body(response).await?;
        match status {
            s if s.is_success() => Ok(ToolAnswer {
                ok: true,
                output: answer["result"].clone(),
            }),
            // What the model can learn from: not allowed, no such tool,
            // wrong arguments, the tool failing or running late.
            StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::BAD_REQUEST
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => Ok(ToolAnswer {
                ok: false,
                output: json!({ "error": message_of(&answer).unwrap_or_else(|| status.to_string()) }),
            }),
            s => Err(refusal(s, &answer)),
        }
    }
}

async fn body(response: reqwest::Response) -> Result<Value, RunError> {
    let bytes = response.bytes().await.map_err(unreachable_city)?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn message_of(answer: &Value) -> Option<String> {
    answer["error"]["message"].as_str().map(str::to_owned)
}

/// A refused call: worth retrying when the refusal is about load or a
/// passing failure, final otherwise (not allowed, no budget, no model).
fn refusal(status: StatusCode, answer: &Value) -> RunError {
    let message = format!(
        "{status}: {}",
        message_of(answer).unwrap_or_else(|| "no message".into())
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::REQUEST_TIMEOUT
        | StatusCode::INTERNAL_SERVER_ERROR
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => RunError::Transient(message),
        _ => RunError::Permanent(message),
    }
}

fn unreachable_city(error: reqwest::Error) -> RunError {
    RunError::Transient(format!("the city did not answer: {error}"))
}
