//! What each LLM endpoint needs.

use axum::http::Method;
use daarion_access::{Access::SignedIn, Rule};

/// Anyone signed in reaches the routes; each call is then decided on its
/// model alias (`exec_tool` on `Tool` `llm:<alias>`, within the API key's
/// scopes and model list).
pub static RULES: &[Rule] = &[
    Rule::new(Method::POST, "/api/llm/v1/chat/completions", SignedIn),
    Rule::new(Method::POST, "/api/llm/v1/embeddings", SignedIn),
    Rule::new(Method::GET, "/api/llm/v1/models", SignedIn),
    Rule::new(Method::GET, "/api/llm/v1/models/{model}", SignedIn),
];
