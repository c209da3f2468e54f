//! Fake model providers that speak the real protocols over real HTTP: an
//! OpenAI-compatible server (`/v1/chat/completions` with SSE streaming,
//! `/v1/embeddings`, `/v1/models`) and an Ollama server (`/api/chat` with
//! NDJSON streaming, `/api/embed`). Replies echo the last user message
//! word by word; tests script failures, delays and garbage per request.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Ollama,
}

/// What the next request gets instead of a normal reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An error status (with `Retry-After` seconds, if set).
    Status(u16, Option<u64>),
    /// `200` with a body that is not JSON.
    Garbage,
    /// Wait this long before answering at all.
    Delay(Duration),
    /// Stream this many chunks, then drop the connection.
    CloseAfter(usize),
    /// Answer as usual (a place in the script).
    Answer,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Step>>,
    requests: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    /// Streams whose client went away before the end.
    cancelled: AtomicUsize,
    completed: AtomicUsize,
    chunk_delay_ms: AtomicU64,
    /// Report token usage (OpenAI: only when asked with `include_usage`).
    no_usage: AtomicBool,
    /// Keep no request bodies (long benchmark runs).
    no_bodies: AtomicBool,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    pub flavor: Flavor,
    shared: Arc<Shared>,
}

impl FakeLlm {
    pub async fn start(flavor: Flavor) -> Self {
        Self::start_on(flavor, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(flavor: Flavor, addr: SocketAddr) -> Self {
        let shared = Arc::new(Shared::default());
        let router = match flavor {
            Flavor::OpenAi => Router::new()
                .route("/v1/chat/completions", post(openai_chat))
                .route("/v1/embeddings", post(openai_embeddings))
                .route("/v1/models", get(openai_models)),
            Flavor::Ollama => Router::new()
                .route("/api/chat", post(ollama_chat))
                .route("/api/embed", post(ollama_embed)),
        }
        .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("fake provider cannot listen: {e}"));
        let addr = listener.local_addr().unwrap_or(addr);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            flavor,
            shared,
        }
    }

    /// The `base_url` a provider setting should use.
    pub fn base_url(&self) -> String {
        match self.flavor {
            Flavor::OpenAi => format!("http://{}/v1", self.addr),
            Flavor::Ollama => format!("http://{}", self.addr),
        }
    }

    /// Scripts the next requests, in order.
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        let mut script = self.shared.script.lock().unwrap_or_else(|p| p.into_inner());
        script.extend(steps);
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The request bodies received, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.chunk_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Stops keeping request bodies, so a long run does not grow.
    pub fn forget_bodies(&self) {
        self.shared.no_bodies.store(true, Ordering::SeqCst);
    }

    /// Like providers that never report usage.
    pub fn without_usage(&self) {
        self.shared.no_usage.store(true, Ordering::SeqCst);
    }
}

fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// The reply's words, and a tool call when a tool is offered and asked
/// for: "use the tool" calls the first with `{"query": …}`, "call <name>
/// {json}" calls the one named with those arguments. After a tool's
/// answer, the reply tells what the tool said, as a model would.
fn reply_for(body: &Value) -> (Vec<String>, Option<(String, Value)>) {
    let last = body["messages"].as_array().and_then(|m| m.last());
    if let Some(answer) = last.filter(|m| m["role"] == "tool") {
        let said = answer["content"].as_str().unwrap_or("");
        let words = format!("tool said {said}")
            .split(' ')
            .map(str::to_owned)
            .collect();
        return (words, None);
    }
    let text = last_user_text(body);
    if let Some(call) = named_call(body, &text) {
        return (Vec::new(), Some(call));
    }
    let tool = body["tools"][0]["function"]["name"].as_str();
    if let Some(tool) = tool.filter(|_| text.contains("use the tool")) {
        return (
            Vec::new(),
            Some((tool.to_owned(), json!({ "query": text }))),
        );
    }
    let words = format!("echo: {text}")
        .split(' ')
        .map(str::to_owned)
        .collect();
    (words, None)
}

/// "call <name> {json}" with `<name>` among the offered tools.
fn named_call(body: &Value, text: &str) -> Option<(String, Value)> {
    let rest = &text[text.find("call ")? + 5..];
    let name = rest.split_whitespace().next()?;
    let offered = body["tools"]
        .as_array()?
        .iter()
        .any(|t| t["function"]["name"] == name);
    let arguments = rest
        .find('{')
        .zip(rest.rfind('}'))
        .and_then(|(start, end)| serde_json::from_str(&rest[start..=end]).ok())
        .unwrap_or_else(|| json!({}));
    offered.then(|| (name.to_owned(), arguments))
}

fn prompt_tokens(body: &Value) -> u64 {
    body["messages"].to_string().len().div_ceil(4) as u64
}

/// Takes the next scripted step; waits out delays first.
async fn next_step(shared: &Shared, body: &Value) -> Option<Step> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if !shared.no_bodies.load(Ordering::Relaxed) {
        shared
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(body.clone());
    }
    loop {
        let step = shared
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        match step {
            Some(Step::Delay(d)) => tokio::time::sleep(d).await,
            other => return other,
        }
    }
}

/// Reads a request and takes its scripted step: the response to give
/// instead of a normal reply, or the body and where to cut a stream.
async fn begin(shared: &Shared, body: &Bytes) -> Result<(Value, Option<usize>), Response> {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err(status_response(400, None));
    };
    match next_step(shared, &body).await {
        Some(Step::Status(s, after)) => Err(status_response(s, after)),
        Some(Step::Garbage) => Err("<html>oops</html>".into_response()),
        Some(Step::CloseAfter(n)) => Ok((body, Some(n))),
        _ => Ok((body, None)),
    }
}

fn status_response(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        Json(json!({"error": {"message": format!("scripted {status}"), "type": "server_error"}})),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// Counts a stream as cancelled if dropped before it was done.
struct StreamGuard {
    shared: Arc<Shared>,
    done: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.shared.completed
        } else {
            &self.shared.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// A body of `pieces`, one per `delay`, that ends early after
/// `close_after` pieces (dropping the connection) when set.
fn paced_body(
    shared: Arc<Shared>,
    pieces: Vec<String>,
    close_after: Option<usize>,
    content_type: &'static str,
) -> Response {
    let delay = Duration::from_millis(shared.chunk_delay_ms.load(Ordering::SeqCst));
    let guard = StreamGuard {
        shared,
        done: false,
    };
    let stream = futures::stream::unfold(
        (pieces.into_iter().enumerate(), guard),
        move |(mut pieces, mut guard)| async move {
            let (i, piece) = pieces.next()?;
            if close_after == Some(i) {
                // Let what was sent reach the client before the cut.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some((
                    Err(std::io::Error::other("scripted close")),
                    (pieces, guard),
                ));
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if pieces.len() == 0 {
                guard.done = true;
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(piece)), (pieces, guard)))
        },
    );
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn openai_chat(
    State(shared): State<Arc<Shared>>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, close_after) = match begin(&shared, &body).await {
        Ok(begun) => begun,
        Err(scripted) => return scripted,
    };
    let model = body["model"].clone();
    let (words, tool) = reply_for(&body);
    let completion = words.join(" ").len().div_ceil(4) as u64;
    let prompt = prompt_tokens(&body);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let reports_usage = !shared.no_usage.load(Ordering::SeqCst);
    if body["stream"] != true {
        let message = match &tool {
            Some((name, args)) => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args.to_string()}}
            ]}),
            None => json!({"role": "assistant", "content": words.join(" ")}),
        };
        let mut reply = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message,
                "finish_reason": if tool.is_some() { "tool_calls" } else { "stop" }}],
        });
        if reports_usage {
            reply["usage"] = usage;
        }
        return Json(reply).into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut pieces = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    match &tool {
        Some((name, args)) => pieces.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": name, "arguments": args.to_string()}}]}),
            Value::Null,
        )),
        None => {
            for (i, w) in words.iter().enumerate() {
                let text = if i == 0 { w.clone() } else { format!(" {w}") };
                pieces.push(chunk(json!({"content": text}), Value::Null));
            }
        }
    }
    pieces.push(chunk(
        json!({}),
        if tool.is_some() { "tool_calls" } else { "stop" }.into(),
    ));
    if reports_usage && body["stream_options"]["include_usage"] == true {
        let c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [], "usage": usage});
        pieces.push(format!("data: {c}\n\n"));
    }
    pieces.push("data: [DONE]\n\n".into());
    paced_body(shared, pieces, close_after, "text/event-stream")
}

fn vector(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; 8];
    for (i, b) in text.bytes().enumerate() {
        v[i % 8] += f64::from(b) / 255.0;
    }
    v
}

fn inputs(body: &Value) -> Vec<String> {
    match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    }
}

async fn openai_embeddings(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = match begin(&shared, &body).await {
        Ok((body, _)) => body,
        Err(scripted) => return scripted,
    };
    let inputs = inputs(&body);
    let tokens: u64 = inputs.iter().map(|i| i.len().div_ceil(4) as u64).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(t)}))
        .collect();
    Json(
        json!({"object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
    .into_response()
}

async fn openai_models() -> Json<Value> {
    Json(
        json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 1, "owned_by": "fake"}]}),
    )
}

async fn ollama_chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let (body, close_after) = match begin(&shared, &body).await {
        Ok(begun) => begun,
        Err(scripted) => return scripted,
    };
    let (words, tool) = reply_for(&body);
    let prompt = prompt_tokens(&body);
    let completion = words.join(" ").len().div_ceil(4) as u64;
    let tool_calls = tool
        .as_ref()
        .map(|(name, args)| json!([{"function": {"name": name, "arguments": args}}]));
    // Ollama streams unless told not to.
    if body["stream"] == false {
        let mut message = json!({"role": "assistant", "content": words.join(" ")});
        if let Some(calls) = tool_calls {
            message["tool_calls"] = calls;
        }
        return Json(
            json!({"model": body["model"], "created_at": "2026-11-23T00:00:00Z",
            "message": message, "done": true, "done_reason": "stop",
            "prompt_eval_count": prompt, "eval_count": completion}),
        )
        .into_response();
    }
    let mut pieces = Vec::new();
    if let Some(calls) = tool_calls {
        pieces.push(format!("{}\n", json!({"message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": false})));
    }
    for (i, w) in words.iter().enumerate() {
        let text = if i == 0 { w.clone() } else { format!(" {w}") };
        pieces.push(format!("{}\n", json!({"model": body["model"], "message": {"role": "assistant", "content": text}, "done": false})));
    }
    pieces.push(format!(
        "{}\n",
        json!({"model": body["model"], "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": "stop", "prompt_eval_count": prompt, "eval_count": completion})
    ));
    paced_body(shared, pieces, close_after, "application/x-ndjson")
}

async fn ollama_embed(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = match begin(&shared, &body).await {
        Ok((body, _)) => body,
        Err(scripted) => return scripted,
    };
    let inputs = inputs(&body);
    let tokens: u64 = inputs.iter().map(|i| i.len().div_ceil(4) as u64).sum();
    let embeddings: Vec<Vec<f64>> = inputs.iter().map(|t| vector(t)).collect();
    Json(json!({"model": body["model"], "embeddings": embeddings, "prompt_eval_count": tokens}))
        .into_response()
}
