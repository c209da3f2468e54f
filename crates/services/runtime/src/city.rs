//! The city's own APIs, called as the run's agent: the LLM proxy (which
//! decides, routes, limits and meters as for that agent and its owner)
//! and toolcore (which checks the agent's tools and the person it acts
//! for). Each call carries a short service token whose subject is the
//! agent and whose actor is this service, and the run's request and
//! trace ids.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use eventsource_stream::Eventsource;
use futures::StreamExt;

use daarion_access::token::ServiceTokens;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{SERVICE, domain::RunError};

const TOKEN_LIFETIME: Duration = Duration::from_secs(120);
/// Streamed words go out at least this often (or every 48 bytes).
const WORDS_EVERY: Duration = Duration::from_millis(100);

/// A model's answer.
pub struct Completion {
    /// `choices[0].message`.
    pub message: Value,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

/// An answer as its chunks arrive: the words, the tool calls (their
/// names and arguments come in pieces, by index), the usage at the end.
#[derive(Default)]
struct Reply {
    content: String,
    calls: Vec<(String, String, String)>,
    tokens_in: i64,
    tokens_out: i64,
}

impl Reply {
    /// Takes one chunk in; answers its words, if any.
    fn add(&mut self, chunk: &Value) -> Option<String> {
        if chunk["usage"].is_object() {
            self.tokens_in = chunk["usage"]["prompt_tokens"].as_i64().unwrap_or(0);
            self.tokens_out = chunk["usage"]["completion_tokens"].as_i64().unwrap_or(0);
        }
        let delta = &chunk["choices"][0]["delta"];
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"]
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(self.calls.len());
            if index >= self.calls.len() {
                self.calls.resize(index + 1, Default::default());
            }
            let (id, name, arguments) = &mut self.calls[index];
            if let Some(part) = call["id"].as_str() {
                id.push_str(part);
            }
            if let Some(part) = call["function"]["name"].as_str() {
                name.push_str(part);
            }
            if let Some(part) = call["function"]["arguments"].as_str() {
                arguments.push_str(part);
            }
        }
        let text = delta["content"].as_str().filter(|t| !t.is_empty())?;
        self.content.push_str(text);
        Some(text.to_owned())
    }

    fn into_completion(self) -> Completion {
        let mut message = json!({ "role": "assistant", "content": self.content });
        if !self.calls.is_empty() {
            message["content"] = Value::Null;
            message["tool_calls"] = self
                .calls
                .into_iter()
                .map(|(id, name, arguments)| {
                    json!({"id": id, "type": "function",
                        "function": {"name": name, "arguments": arguments}})
                })
                .collect();
        }
        Completion {
            message,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
        }
    }
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
    reports: Arc<Reports>,
}

/// A report that repeats an agent's last one goes out at most this often:
/// the city keeps a report for `city.agent_presence_ttl_secs` (90 s by
/// default; set it above this, or a busy agent blinks offline).
const REPEAT_AFTER: Duration = Duration::from_secs(15);

/// The presence this process last reported for each agent, and when: an
/// agent answering many runs a second reports once in a while, not twice
/// per run.
#[derive(Default)]
struct Reports(Mutex<HashMap<String, (&'static str, Instant)>>);

impl Reports {
    /// Whether `status` is news for `agent` at `now` (then noted).
    fn due(&self, agent: &str, status: &'static str, now: Instant) -> bool {
        let Ok(mut last) = self.0.lock() else {
            return true;
        };
        if let Some((said, at)) = last.get(agent)
            && *said == status
            && now.duration_since(*at) < REPEAT_AFTER
        {
            return false;
        }
        if last.len() >= 10_000 {
            last.retain(|_, (_, at)| now.duration_since(*at) < REPEAT_AFTER);
        }
        last.insert(agent.to_owned(), (status, now));
        true
    }
}

impl City {
    pub fn new(http: reqwest::Client, base: &str, tokens: ServiceTokens) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            reports: Arc::default(),
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
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        Ok(daarion_kernel::context::propagate(request))
    }

    /// Reports the agent's presence to the city (`busy` while a long run
    /// goes, `online` after), so the map and its rooms show it at work; a
    /// report that repeats the last within [`REPEAT_AFTER`] is not sent. A
    /// presence that does not get through is only logged: the run goes on.
    pub async fn presence(&self, agent: &str, status: &'static str) {
        if !self.reports.due(agent, status, Instant::now()) {
            return;
        }
        let sent = match self.request(
            reqwest::Method::POST,
            "/api/city/agents/presence",
            agent,
            "city",
        ) {
            Ok(request) => request.json(&json!({ "status": status })).send().await,
            Err(error) => {
                tracing::debug!(%error, "no presence token");
                return;
            }
        };
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::debug!(status = %response.status(), agent, "presence refused"),
            Err(error) => tracing::debug!(%error, agent, "presence not reported"),
        }
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
            status if status.is_success() => Ok(Some(body_of(response).await?)),
            status => Err(refusal(
                status,
                &body_of(response).await.unwrap_or_default(),
            )),
        }
    }

    /// One model call through the LLM proxy, streamed: `heard` gets the
    /// answer's words as they come (a few at a time), and the whole
    /// message is returned at the end.
    pub async fn complete(
        &self,
        agent: &str,
        request: &Value,
        timeout: Duration,
        mut heard: impl FnMut(String),
    ) -> Result<Completion, RunError> {
        let mut body = request.clone();
        body["stream"] = Value::Bool(true);
        body["stream_options"] = json!({ "include_usage": true });
        let response = self
            .request(
                reqwest::Method::POST,
                "/api/llm/v1/chat/completions",
                agent,
                "llm",
            )?
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(unreachable_city)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(status, &body_of(response).await?));
        }
        let mut events = response.bytes_stream().eventsource();
        let mut reply = Reply::default();
        let mut pending = String::new();
        let mut last = Instant::now();
        while let Some(event) = events.next().await {
            let event = event
                .map_err(|e| RunError::Transient(format!("the model's stream broke off: {e}")))?;
            if event.data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(&event.data).map_err(|_| {
                RunError::Transient("the model's stream held something not JSON".into())
            })?;
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(RunError::Transient(format!("the model failed: {message}")));
            }
            if let Some(text) = reply.add(&chunk) {
                pending.push_str(&text);
            }
            if !pending.is_empty() && (pending.len() >= 48 || last.elapsed() >= WORDS_EVERY) {
                heard(std::mem::take(&mut pending));
                last = Instant::now();
            }
        }
        if !pending.is_empty() {
            heard(pending);
        }
        Ok(reply.into_completion())
    }

    /// One tool call through toolcore, for `acting_for`, under `key` (a
    /// repeat after a crash gets the first result instead of a second run).
    pub async fn call_tool(
        &self,
        agent: &str,
        tool: &str,
        arguments: &Value,
        acting_for: &str,
        key: &str,
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
            .header("idempotency-key", key)
            .json(&json!({ "arguments": arguments, "acting_for": acting_for }))
            .send()
            .await
            .map_err(unreachable_city)?;
        let status = response.status();
        let answer = body_of(response).await?;
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

async fn body_of(response: reqwest::Response) -> Result<Value, RunError> {
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
    // A spent budget does not come back by retrying this month.
    if answer["error"]["code"] == "insufficient_quota" {
        return RunError::Permanent(message);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_presence_goes_out_once_in_a_while() {
        let reports = Reports::default();
        let t0 = Instant::now();
        assert!(reports.due("helper", "online", t0));
        assert!(!reports.due("helper", "online", t0 + Duration::from_secs(1)));
        assert!(reports.due("scribe", "online", t0), "another agent");
        assert!(reports.due("helper", "busy", t0 + Duration::from_secs(2)));
        assert!(
            reports.due("helper", "online", t0 + Duration::from_secs(3)),
            "a change"
        );
        assert!(reports.due(
            "helper",
            "online",
            t0 + REPEAT_AFTER + Duration::from_secs(3)
        ));
    }

    #[test]
    fn streamed_chunks_make_one_message() {
        let mut reply = Reply::default();
        let chunks = [
            json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"delta": {"content": "Hel"}}]}),
            json!({"choices": [{"delta": {"content": "lo"}}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
        ];
        let words: Vec<String> = chunks.iter().filter_map(|c| reply.add(c)).collect();
        assert_eq!(words, ["Hel", "lo"]);
        let done = reply.into_completion();
        assert_eq!(
            done.message,
            json!({"role": "assistant", "content": "Hello"})
        );
        assert_eq!((done.tokens_in, done.tokens_out), (7, 2));

        let mut calls = Reply::default();
        for chunk in [
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                "function": {"name": "math__evaluate", "arguments": "{\"expr"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "ession\": \"1\"}"}}]}}]}),
        ] {
            calls.add(&chunk);
        }
        let done = calls.into_completion();
        assert_eq!(done.message["content"], Value::Null);
        assert_eq!(
            done.message["tool_calls"][0]["function"]["name"],
            "math__evaluate"
        );
        assert_eq!(
            done.message["tool_calls"][0]["function"]["arguments"],
            "{\"expression\": \"1\"}"
        );
    }
}
