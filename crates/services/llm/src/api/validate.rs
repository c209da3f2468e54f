//! What the proxy checks of a request itself; everything else passes
//! through for the provider to judge.

use super::*;

pub(super) fn parse_body(body: &Bytes) -> Result<Value, LlmError> {
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

pub(super) fn positive_int(body: &Value, field: &'static str) -> Result<Option<u64>, LlmError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            LlmError::invalid(field, format!("`{field}` must be a positive integer"))
        }),
    }
}

/// Checks what the proxy itself relies on; everything else passes through
/// for the provider to judge.
pub(super) fn check_chat(body: &Value) -> Result<(), LlmError> {
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

pub(super) fn check_embeddings(body: &Value) -> Result<(), LlmError> {
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
