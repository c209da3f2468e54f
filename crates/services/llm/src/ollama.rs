//! Ollama's native API (`/api/chat`, `/api/embed`) translated to and from
//! OpenAI's chat completions and embeddings, streaming included.

use serde_json::{Map, Value, json};

/// An OpenAI chat request as Ollama's `/api/chat` body.
pub fn chat_request(openai: &Value, model: &str, stream: bool) -> Value {
    let messages: Vec<Value> = openai["messages"]
        .as_array()
        .map(|m| m.iter().map(message).collect())
        .unwrap_or_default();
    let mut options = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
    ] {
        if let Some(v) = openai.get(from).filter(|v| !v.is_null()) {
            options.insert(to.into(), v.clone());
        }
    }
    let mut body = json!({ "model": model, "messages": messages, "stream": stream });
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    if let Some(tools) = openai.get("tools").filter(|t| t.is_array()) {
        body["tools"] = tools.clone();
    }
    match openai["response_format"]["type"].as_str() {
        Some("json_object") => body["format"] = "json".into(),
        Some("json_schema") => {
            body["format"] = openai["response_format"]["json_schema"]["schema"].clone()
        }
        _ => {}
    }
    body
}

/// One message: text parts joined, data-URL images as base64, tool calls
/// with parsed arguments.
fn message(m: &Value) -> Value {
    let mut out = json!({ "role": m["role"].clone() });
    let mut images = Vec::new();
    out["content"] = match &m["content"] {
        Value::String(s) => s.clone().into(),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                    Some("image_url") => {
                        let url = part["image_url"]["url"].as_str().unwrap_or_default();
                        if let Some((_, data)) = url.split_once(";base64,") {
                            images.push(Value::from(data));
                        }
                    }
                    _ => {}
                }
            }
            text.into()
        }
        _ => "".into(),
    };
    if !images.is_empty() {
        out["images"] = images.into();
    }
    if let Some(calls) = m["tool_calls"].as_array() {
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| {
                let args = c["function"]["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_else(|| json!({}));
                json!({ "function": { "name": c["function"]["name"].clone(), "arguments": args } })
            })
            .collect();
        out["tool_calls"] = calls.into();
    }
    if let Some(name) = m["name"].as_str() {
        out["tool_name"] = name.into();
    }
    out
}

fn finish_reason(reply: &Value, has_tool_calls: bool) -> &'static str {
    if has_tool_calls {
        "tool_calls"
    } else if reply["done_reason"] == "length" {
        "length"
    } else {
        "stop"
    }
}

/// Ollama's tool calls as OpenAI's (arguments as a JSON string, ids made up).
fn tool_calls(message: &Value) -> Option<Vec<Value>> {
    let calls = message["tool_calls"].as_array()?;
    Some(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "index": i,
                    "id": format!("call_{}", uuid::Uuid::new_v4().simple()),
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"].clone(),
                        "arguments": c["function"]["arguments"].to_string(),
                    }
                })
            })
            .collect(),
    )
}

fn usage(reply: &Value) -> Value {
    let prompt = reply["prompt_eval_count"].as_u64().unwrap_or(0);
    let completion = reply["eval_count"].as_u64().unwrap_or(0);
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

/// A whole `/api/chat` reply as a `chat.completion`.
pub fn chat_response(reply: &Value, alias: &str, id: &str, created: i64) -> Value {
    let calls = tool_calls(&reply["message"]);
    let mut message = json!({
        "role": "assistant",
        "content": reply["message"]["content"].as_str().unwrap_or_default(),
    });
    if let Some(calls) = &calls {
        message["tool_calls"] = calls.clone().into();
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": alias,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(reply, calls.is_some()),
        }],
        "usage": usage(reply),
    })
}

/// Turns `/api/chat` stream lines into `chat.completion.chunk`s.
pub struct ChunkTranslator {
    id: String,
    alias: String,
    created: i64,
    started: bool,
    saw_tool_calls: bool,
}

impl ChunkTranslator {
    pub fn new(alias: &str, id: &str, created: i64) -> Self {
        Self {
            id: id.to_owned(),
            alias: alias.to_owned(),
            created,
            started: false,
            saw_tool_calls: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.alias,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    }

    /// The chunks for one line, and the usage when the line is the last.
    pub fn line(&mut self, line: &Value) -> (Vec<Value>, Option<Value>) {
        let mut out = Vec::new();
        let mut delta = Map::new();
        if !self.started {
            delta.insert("role".into(), "assistant".into());
            self.started = true;
        }
        if let Some(text) = line["message"]["content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            delta.insert("content".into(), text.into());
        }
        if let Some(calls) = tool_calls(&line["message"]) {
            self.saw_tool_calls = true;
            delta.insert("tool_calls".into(), calls.into());
        }
        if !delta.is_empty() {
            out.push(self.chunk(Value::Object(delta), None));
        }
        if line["done"] == true {
            let finish = finish_reason(line, self.saw_tool_calls);
            out.push(self.chunk(json!({}), Some(finish)));
            return (out, Some(usage(line)));
        }
        (out, None)
    }

    /// The usage-only chunk OpenAI sends last with `include_usage`.
    pub fn usage_chunk(&self, usage: &Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.alias,
            "choices": [],
            "usage": usage,
        })
    }
}

/// An OpenAI embeddings request as Ollama's `/api/embed` body.
pub fn embed_request(openai: &Value, model: &str) -> Value {
    json!({ "model": model, "input": openai["input"].clone() })
}

/// An `/api/embed` reply as OpenAI's embedding list.
pub fn embed_response(reply: &Value, alias: &str) -> Value {
    let data: Vec<Value> = reply["embeddings"]
        .as_array()
        .map(|e| {
            e.iter()
                .enumerate()
                .map(|(i, v)| json!({ "object": "embedding", "index": i, "embedding": v }))
                .collect()
        })
        .unwrap_or_default();
    let prompt = reply["prompt_eval_count"].as_u64().unwrap_or(0);
    json!({
        "object": "list",
        "data": data,
        "model": alias,
        "usage": { "prompt_tokens": prompt, "total_tokens": prompt },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_translate_with_options_tools_and_images() {
        let req = json!({
            "model": "chat",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "max_tokens": 10, "temperature": 0.2,
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "response_format": {"type": "json_object"}
        });
        let out = chat_request(&req, "llama3", true);
        assert_eq!(out["model"], "llama3");
        assert_eq!(out["options"]["num_predict"], 10);
        assert_eq!(out["options"]["temperature"], 0.2);
        assert_eq!(out["messages"][1]["content"], "What is this?");
        assert_eq!(out["messages"][1]["images"][0], "AAAA");
        assert_eq!(
            out["messages"][2]["tool_calls"][0]["function"]["arguments"]["q"],
            1
        );
        assert_eq!(out["tools"][0]["function"]["name"], "lookup");
        assert_eq!(out["format"], "json");
    }

    #[test]
    fn replies_and_streams_translate_back() {
        let reply = json!({
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "lookup", "arguments": {"q": 1}}}
            ]},
            "done": true, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3
        });
        let out = chat_response(&reply, "chat", "chatcmpl-1", 1);
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":1}"
        );
        assert_eq!(out["usage"]["total_tokens"], 10);

        let mut t = ChunkTranslator::new("chat", "chatcmpl-2", 1);
        let (chunks, usage) = t.line(&json!({"message": {"content": "Hel"}, "done": false}));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hel");
        assert!(usage.is_none());
        let (chunks, usage) = t.line(&json!({"message": {"content": ""}, "done": true, "done_reason": "length", "prompt_eval_count": 2, "eval_count": 5}));
        assert_eq!(
            chunks
                .last()
                .map(|c| c["choices"][0]["finish_reason"].clone()),
            Some("length".into())
        );
        assert_eq!(
            usage.map(|u| u["completion_tokens"].clone()),
            Some(5.into())
        );
    }

    #[test]
    fn embeddings_translate() {
        let out = embed_response(
            &json!({"embeddings": [[0.1, 0.2], [0.3, 0.4]], "prompt_eval_count": 4}),
            "emb",
        );
        assert_eq!(out["data"][1]["index"], 1);
        assert_eq!(out["usage"]["prompt_tokens"], 4);
        assert_eq!(
            embed_request(&json!({"input": ["a", "b"]}), "m")["input"][1],
            "b"
        );
    }
}
