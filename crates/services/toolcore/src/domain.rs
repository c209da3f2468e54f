//! Tools, independent of HTTP and SQL: what a valid tool and a valid call
//! are, and how a call can fail.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The arguments do not fit the tool's schema: nothing ran.
    #[error("invalid arguments: {0}")]
    Arguments(String),
    /// The tool ran past its timeout.
    #[error("the tool {0} did not answer within its timeout")]
    Timeout(String),
    /// The tool ran and failed (a webhook's error, a bad answer).
    #[error("the tool failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Store(daarion_store::StoreError),
    #[error(transparent)]
    Bus(#[from] daarion_bus::BusError),
}

impl From<daarion_store::StoreError> for ToolError {
    fn from(error: daarion_store::StoreError) -> Self {
        match error {
            daarion_store::StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for ToolError {
    fn from(error: daarion_store::sql::Error) -> Self {
        daarion_store::StoreError::from(error).into()
    }
}

impl ToolError {
    /// How the call log and the usage record name the outcome.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::Arguments(_) => "invalid_arguments",
            ToolError::Timeout(_) => "timeout",
            ToolError::Failed(_) => "failed",
            ToolError::Forbidden(_) => "forbidden",
            _ => "error",
        }
    }
}

/// How a registered tool runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executor {
    /// A signed POST to the tool's address.
    Webhook,
    /// The tool of this name on the MCP server at the tool's address.
    Mcp { remote_name: String },
}

impl Executor {
    pub fn as_str(&self) -> &'static str {
        match self {
            Executor::Webhook => "webhook",
            Executor::Mcp { .. } => "mcp",
        }
    }
}

/// A tool's name on an MCP server: what its `tools/list` says, 1-128 bytes
/// without control characters.
pub fn remote_name(raw: &str) -> Result<String, ToolError> {
    if (1..=128).contains(&raw.len()) && !raw.chars().any(char::is_control) {
        Ok(raw.to_owned())
    } else {
        Err(ToolError::Invalid(
            "remote_name must be 1-128 bytes without control characters".into(),
        ))
    }
}

pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The largest schema or argument document, in bytes of JSON.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// A tool's name: dotted segments of `a-z`, `0-9`, `-` and `_`
/// (`messaging.post`), 3 to 64 bytes.
pub fn name(raw: &str) -> Result<String, ToolError> {
    let segments_ok = raw.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if (3..=64).contains(&raw.len()) && segments_ok && raw.as_bytes()[0].is_ascii_lowercase() {
        Ok(raw.to_owned())
    } else {
        Err(ToolError::Invalid(
            "a tool name is 3-64 bytes of dotted a-z, 0-9, - and _ segments, starting with a letter"
                .into(),
        ))
    }
}

pub fn description(raw: &str) -> Result<String, ToolError> {
    daarion_kernel::names::description(raw, MAX_DESCRIPTION_CHARS).map_err(ToolError::Invalid)
}

pub fn timeout_ms(raw: Option<u64>) -> Result<u64, ToolError> {
    let ms = raw.unwrap_or(DEFAULT_TIMEOUT_MS);
    if (100..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ToolError::Invalid(format!(
            "timeout_ms must be between 100 and {MAX_TIMEOUT_MS}"
        )))
    }
}

/// A webhook's address: `https://`, or `http://` (a city's own hosts).
pub fn url(raw: &str) -> Result<String, ToolError> {
    let parsed = reqwest::Url::parse(raw).map_err(|e| ToolError::Invalid(format!("url: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() || raw.len() > 2048 {
        return Err(ToolError::Invalid(
            "url must be an http(s) address of at most 2048 bytes".into(),
        ));
    }
    Ok(raw.to_owned())
}

/// The arguments' schema: a valid JSON Schema for an object.
pub fn parameters(schema: &Value) -> Result<Value, ToolError> {
    if serde_json::to_vec(schema).map_or(true, |b| b.len() > MAX_DOCUMENT_BYTES) {
        return Err(ToolError::Invalid(format!(
            "parameters must be at most {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    if schema.get("type") != Some(&Value::from("object")) {
        return Err(ToolError::Invalid(
            "parameters must be a JSON Schema with \"type\": \"object\"".into(),
        ));
    }
    jsonschema::meta::validate(schema)
        .map_err(|e| ToolError::Invalid(format!("parameters is not a valid JSON Schema: {e}")))?;
    validator(schema)?;
    Ok(schema.clone())
}

/// A compiled validator for a tool's schema (references are never fetched).
pub fn validator(schema: &Value) -> Result<jsonschema::Validator, ToolError> {
    jsonschema::validator_for(schema)
        .map_err(|e| ToolError::Invalid(format!("parameters is not a usable JSON Schema: {e}")))
}

/// Checks arguments against a tool's schema: every problem, by location.
pub fn check_arguments(
    validator: &jsonschema::Validator,
    arguments: &Value,
) -> Result<(), ToolError> {
    let problems: Vec<String> = validator
        .iter_errors(arguments)
        .take(10)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ToolError::Arguments(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_dotted_lowercase_segments() {
        for good in ["time.now", "microdao.members", "weather_v2.lookup"] {
            assert!(name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Time.now",
            "time..now",
            ".time",
            "9lives",
            "with space",
        ] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemas_must_describe_objects_and_arguments_must_fit() {
        assert!(parameters(&json!({"type": "string"})).is_err());
        assert!(parameters(&json!({"type": "object", "properties": {"n": {"type": 5}}})).is_err());
        let schema = json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": false
        });
        let checked = parameters(&schema).unwrap();
        let v = validator(&checked).unwrap();
        assert!(check_arguments(&v, &json!({"city": "Kyiv"})).is_ok());
        let refused = check_arguments(&v, &json!({"city": 7, "extra": true})).unwrap_err();
        assert!(matches!(refused, ToolError::Arguments(_)));
        assert!(refused.to_string().contains("/city"), "{refused}");
        assert!(check_arguments(&v, &json!({})).is_err());
    }

    #[test]
    fn timeouts_and_urls_are_bounded() {
        assert_eq!(timeout_ms(None).unwrap(), DEFAULT_TIMEOUT_MS);
        assert!(timeout_ms(Some(50)).is_err());
        assert!(timeout_ms(Some(60_001)).is_err());
        assert!(url("https://tools.example.org/hook").is_ok());
        assert!(url("ftp://example.org").is_err());
        assert!(url("not a url").is_err());
    }
}
