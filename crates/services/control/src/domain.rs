//! The documents the control plane keeps, and their validation: a value
//! that does not fit its kind is refused before anything is stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("another change landed first; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error(transparent)]
    Pdp(#[from] daarion_pdp::PdpError),
    #[error("stored document is unreadable: {0}")]
    Corrupt(String),
}

impl From<daarion_store::sql::Error> for ControlError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// What a document is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// An agent's system prompt (key: agent id).
    Prompt,
    /// An agent's entitlements and mode (key: agent id).
    AgentPolicy,
    /// A routing rule or feature flag (key: `feature.<name>` / `routing.<name>`).
    Config,
    /// Limits and budget (key: `user:<id>`, `agent:<id>`, `dao:<id>`).
    Quota,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Prompt => "prompt",
            DocKind::AgentPolicy => "agent_policy",
            DocKind::Config => "config",
            DocKind::Quota => "quota",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// The system prompt, 1 to 32 000 characters.
    pub text: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Autonomy {
    /// Answers only when addressed.
    Manual,
    /// Proposes; a person confirms tool calls.
    Assisted,
    /// Acts within its entitlements on its own.
    Autonomous,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Room slugs the agent may act in.
    #[serde(default)]
    pub allowed_rooms: Vec<String>,
    pub autonomy: Autonomy,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

/// Limits and budgets (the usage service enforces them). Absent = unlimited.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default)]
    pub plan: Option<Plan>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub runs_per_day: Option<u32>,
    #[serde(default)]
    pub distinct_users_per_day: Option<u32>,
    #[serde(default)]
    pub concurrent_runs: Option<u32>,
    /// Money per calendar month, in cents of `currency`.
    #[serde(default)]
    pub budget_cents_per_month: Option<u64>,
    #[serde(default)]
    pub currency: Option<String>,
}

fn identifier(raw: &str, what: &str) -> Result<(), ControlError> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "{what} must be 1-64 of letters, digits, '-', '_', '.', ':'"
        )))
    }
}

/// Checks a document key for its kind.
pub fn validate_key(kind: DocKind, key: &str) -> Result<(), ControlError> {
    identifier(key, "key")?;
    match kind {
        DocKind::Prompt | DocKind::AgentPolicy => identifier(key, "agent id"),
        DocKind::Config if key.starts_with("feature.") || key.starts_with("routing.") => Ok(()),
        DocKind::Config => Err(ControlError::Invalid(
            "config keys are `feature.<name>` (a boolean) or `routing.<name>` (routing rules)"
                .into(),
        )),
        DocKind::Quota => daarion_access::Subject::parse(key)
            .map(|_| ())
            .map_err(|e| ControlError::Invalid(e.to_string())),
    }
}

/// One routing rule of a `routing.<name>` document: what it matches (its
/// reader says which keys it knows: `routing.agents` is the router's), where
/// it sends, and its place (lower priorities are tried first; equal ones
/// in the order written).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Which calls the rule applies to (e.g. `{"model": "gpt-4o"}`).
    #[serde(rename = "match", default)]
    pub matches: serde_json::Map<String, Value>,
    /// Where they go (a model alias, a deployment, an agent).
    pub target: String,
    #[serde(default = "default_priority")]
    pub priority: i64,
}

fn default_priority() -> i64 {
    100
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub rules: Vec<RoutingRule>,
}

fn typed<T: for<'de> Deserialize<'de> + Serialize>(
    value: Value,
    what: &str,
) -> Result<Value, ControlError> {
    let parsed: T =
        serde_json::from_value(value).map_err(|e| ControlError::Invalid(format!("{what}: {e}")))?;
    serde_json::to_value(parsed).map_err(|e| ControlError::Invalid(e.to_string()))
}

/// Validates `value` for `kind`/`key` and returns its normalized form.
pub fn validate(kind: DocKind, key: &str, value: Value) -> Result<Value, ControlError> {
    validate_key(kind, key)?;
    match kind {
        DocKind::Prompt => {
            let value = typed::<Prompt>(value, "prompt")?;
            let chars = value["text"].as_str().map_or(0, |t| t.chars().count());
            if !(1..=32_000).contains(&chars) {
                return Err(ControlError::Invalid(
                    "prompt text must be 1 to 32000 characters".into(),
                ));
            }
            Ok(value)
        }
        DocKind::AgentPolicy => {
            let value = typed::<AgentPolicy>(value, "agent policy")?;
            for list in ["allowed_tools", "allowed_rooms"] {
                let items = value[list].as_array().map_or(0, Vec::len);
                if items > 256 {
                    return Err(ControlError::Invalid(format!(
                        "{list} holds at most 256 entries"
                    )));
                }
            }
            Ok(value)
        }
        DocKind::Config if key.starts_with("feature.") => match value {
            Value::Bool(_) => Ok(value),
            _ => Err(ControlError::Invalid(format!(
                "{key} is a feature flag: true or false"
            ))),
        },
        DocKind::Config => {
            let value = typed::<Routing>(value, "routing rules")?;
            if value["rules"].as_array().is_some_and(|r| r.len() > 256) {
                return Err(ControlError::Invalid("at most 256 routing rules".into()));
            }
            Ok(value)
        }
        DocKind::Quota => {
            let value = typed::<Quota>(value, "quota")?;
            if value["currency"]
                .as_str()
                .is_some_and(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(ControlError::Invalid(
                    "currency is an ISO 4217 code like EUR".into(),
                ));
            }
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_checked_against_their_kind() {
        assert!(validate(DocKind::Prompt, "bot", json!({"text": "Be kind."})).is_ok());
        assert!(validate(DocKind::Prompt, "bot", json!({"text": ""})).is_err());
        assert!(validate(DocKind::Prompt, "bot", json!({"text": "x", "extra": 1})).is_err());
        assert!(
            validate(
                DocKind::AgentPolicy,
                "bot",
                json!({"autonomy": "assisted", "allowed_tools": ["search"]})
            )
            .is_ok()
        );
        assert!(validate(DocKind::AgentPolicy, "bot", json!({"autonomy": "reckless"})).is_err());
        assert!(validate(DocKind::Config, "feature.map", json!(true)).is_ok());
        assert!(validate(DocKind::Config, "feature.map", json!("yes")).is_err());
        assert!(
            validate(
                DocKind::Config,
                "routing.llm",
                json!({"rules": [{"match": {"model": "fast"}, "target": "mistral"}]})
            )
            .is_ok()
        );
        assert!(
            validate(
                DocKind::Config,
                "routing.llm",
                json!({"rules": [{"to": "x"}]})
            )
            .is_err()
        );
        assert!(validate(DocKind::Config, "colour", json!(true)).is_err());
        assert!(
            validate(
                DocKind::Quota,
                "user:u1",
                json!({"plan": "pro", "tokens_per_minute": 10000, "currency": "EUR"})
            )
            .is_ok()
        );
        assert!(validate(DocKind::Quota, "user:u1", json!({"tokens_per_minute": -1})).is_err());
        assert!(validate(DocKind::Quota, "user:u1", json!({"currency": "euro"})).is_err());
        assert!(validate(DocKind::Quota, "team:x", json!({})).is_err());
        assert!(validate(DocKind::Prompt, "bad id!", json!({"text": "x"})).is_err());
    }
}
