//! `[llm]` settings: providers, model aliases and their deployments, prices,
//! limits, timeouts, retries, circuit breakers, the response cache.
//!
//! ```toml
//! [llm.providers.openai]
//! kind = "openai"                        # any OpenAI-compatible API
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"
//!
//! [llm.providers.local]
//! kind = "ollama"
//! base_url = "http://127.0.0.1:11434"
//!
//! [llm.models.chat]                      # what clients send as `model`
//! deployments = [
//!   { provider = "openai", model = "gpt-4o-mini" },
//!   { provider = "local", model = "llama3.2", priority = 1 },
//! ]
//! price = { input_per_million = 0.15, output_per_million = 0.60 }
//! ```

use std::collections::BTreeMap;

use daarion_usage::Price;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's API and every server that speaks it (DeepSeek, Mistral,
    /// Grok, vLLM, LM Studio…): requests pass through.
    Openai,
    /// Ollama's native API: requests and replies are translated.
    Ollama,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// `https://api.openai.com/v1` (OpenAI-compatible: up to `/v1`);
    /// `http://127.0.0.1:11434` (Ollama).
    pub base_url: String,
    /// The key, inline (prefer `api_key_env`); never printed.
    #[serde(default)]
    pub api_key: Option<daarion_kernel::Secret>,
    /// The environment variable holding the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whether streaming requests may ask for `stream_options.include_usage`
    /// (older OpenAI-compatible servers refuse it; tokens are then counted).
    #[serde(default = "yes")]
    pub stream_usage: bool,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// One place a model alias can be served from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub provider: String,
    /// The provider's own model name.
    pub model: String,
    /// Share of traffic among deployments of the same priority.
    #[serde(default = "one")]
    pub weight: u32,
    /// Lower is tried first; higher ones are fallbacks.
    #[serde(default)]
    pub priority: u32,
    /// Overrides the provider's key for this deployment.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub deployments: Vec<Deployment>,
    #[serde(default)]
    pub price: Price,
    /// Limits across every caller of this alias.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Output tokens assumed when a request sets no `max_tokens` (for the
    /// budget reservation before the call).
    #[serde(default = "default_max_output")]
    pub max_output_tokens: u64,
    /// Off: listed nowhere, refused to everyone.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// With the response cache on: whether one caller's cached reply may
    /// answer another's identical request (prompts with nothing personal).
    /// Off, each caller (person, agent or service) has entries of their own.
    #[serde(default)]
    pub shared_cache: bool,
}

fn default_max_output() -> u64 {
    4096
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub providers: BTreeMap<String, Provider>,
    pub models: BTreeMap<String, Model>,
    pub connect_timeout_ms: u64,
    /// Until the first token (streaming) or the whole reply (not streaming) starts.
    pub first_token_timeout_ms: u64,
    /// The whole call, streaming included.
    pub total_timeout_ms: u64,
    /// Retries of one deployment on 429, 5xx or a connect error, before
    /// the first token; then the next deployment.
    pub max_retries: u32,
    pub retry_backoff_ms: u64,
    /// Consecutive failures that open a deployment's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit stays open before one trial request.
    pub breaker_cooldown_ms: u64,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Exact-match response cache for non-streaming calls, in the
    /// process's cache (Redis when configured, so replicas share it);
    /// 0 = off.
    pub cache_ttl_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            connect_timeout_ms: 5_000,
            first_token_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            max_retries: 2,
            retry_backoff_ms: 200,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            max_request_bytes: 8 * 1024 * 1024,
            cache_ttl_secs: 0,
        }
    }
}

impl daarion_service::ServiceSettings for Settings {
    /// Checks references and values, so a bad table fails at start-up with
    /// the setting named.
    fn validate(&self) -> Result<(), String> {
        for (name, provider) in &self.providers {
            let url = reqwest::Url::parse(&provider.base_url)
                .map_err(|e| format!("llm.providers.{name}.base_url: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("llm.providers.{name}.base_url must be http(s)"));
            }
        }
        for (alias, model) in &self.models {
            let valid_alias = (1..=128).contains(&alias.len())
                && alias
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
            if !valid_alias {
                return Err(format!(
                    "llm.models.{alias}: aliases are 1-128 of letters, digits, '-', '_', '.', ':', '/'"
                ));
            }
            if model.deployments.is_empty() {
                return Err(format!("llm.models.{alias} has no deployments"));
            }
            for d in &model.deployments {
                if !self.providers.contains_key(&d.provider) {
                    return Err(format!(
                        "llm.models.{alias}: unknown provider {:?}",
                        d.provider
                    ));
                }
                if d.weight == 0 {
                    return Err(format!("llm.models.{alias}: weights are at least 1"));
                }
            }
        }
        if self.connect_timeout_ms == 0
            || self.first_token_timeout_ms == 0
            || self.total_timeout_ms == 0
        {
            return Err("llm timeouts must be positive".into());
        }
        Ok(())
    }
}
