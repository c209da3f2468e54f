//! What one metered event says: who, what, how much, how it went. Records
//! travel on the bus (`usage.<kind>`) and are stored once per event id.

use daarion_access::{Credential, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Subjects;

/// What was metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    Llm,
    Embedding,
    Tool,
    AgentRun,
    Message,
}

impl UsageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Llm => "llm",
            UsageKind::Embedding => "embedding",
            UsageKind::Tool => "tool",
            UsageKind::AgentRun => "agent_run",
            UsageKind::Message => "message",
        }
    }

    /// The bus subject records of this kind are published on.
    pub fn subject(self) -> String {
        format!("usage.{}", self.as_str())
    }
}

/// How a metered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    /// The client went away before the end; what was consumed is counted.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One metered event. Ids are bare (`u1`, not `user:u1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRecord {
    pub kind: UsageKind,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub dao: Option<String>,
    pub api_key: Option<String>,
    /// The model alias the caller asked for.
    pub model: Option<String>,
    /// `provider/model` of the deployment that answered.
    pub provider: Option<String>,
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    /// Prompt tokens the provider served from its cache.
    #[serde(default)]
    pub tokens_cached: u64,
    /// The provider reported no usage: tokens were counted by DAARION.
    #[serde(default)]
    pub estimated: bool,
    pub tool: Option<String>,
    pub run_id: Option<String>,
    /// Cost in millionths of `currency` (from the configured price table).
    #[serde(default)]
    pub cost_micros: i64,
    pub currency: Option<String>,
    #[serde(default)]
    pub latency_ms: u64,
    pub outcome: Outcome,
    pub error_code: Option<String>,
}

impl UsageRecord {
    pub fn new(kind: UsageKind, outcome: Outcome) -> Self {
        Self {
            kind,
            user: None,
            agent: None,
            dao: None,
            api_key: None,
            model: None,
            provider: None,
            tokens_in: 0,
            tokens_out: 0,
            tokens_cached: 0,
            estimated: false,
            tool: None,
            run_id: None,
            cost_micros: 0,
            currency: None,
            latency_ms: 0,
            outcome,
            error_code: None,
        }
    }

    /// A record of what `principal` did, charged to `subjects`.
    pub fn by(mut self, principal: &Principal, subjects: &Subjects) -> Self {
        self.user = subjects.user.clone();
        self.agent = subjects.agent.clone();
        self.dao = subjects.dao.clone();
        self.api_key = match &principal.credential {
            Credential::ApiKey { id, .. } => Some(id.clone()),
            _ => None,
        };
        self
    }
}

/// Prices per million tokens, in units of the configured currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Prompt tokens served from the provider's cache; default: the input price.
    pub cached_input_per_million: Option<f64>,
}

impl Price {
    /// Cost in millionths of the currency unit: a price per million tokens
    /// is exactly a price per token in millionths.
    pub fn cost_micros(&self, tokens_in: u64, tokens_cached: u64, tokens_out: u64) -> i64 {
        let fresh = tokens_in.saturating_sub(tokens_cached) as f64;
        let cached = tokens_cached as f64;
        let cached_price = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        let cost = fresh * self.input_per_million
            + cached * cached_price
            + tokens_out as f64 * self.output_per_million;
        // Binary fractions (0.15 * 800 = 120.00000000000001) are rounded
        // away first; then a fraction of a millionth is still spent.
        let cost = (cost * 1000.0).round() / 1000.0;
        cost.ceil().clamp(0.0, i64::MAX as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_in_millionths() {
        let price = Price {
            input_per_million: 0.15,
            output_per_million: 0.60,
            cached_input_per_million: Some(0.075),
        };
        // 1000 in (200 cached) and 500 out: 800*0.15 + 200*0.075 + 500*0.6
        assert_eq!(price.cost_micros(1000, 200, 500), 120 + 15 + 300);
        assert_eq!(Price::default().cost_micros(10, 0, 10), 0);
        let no_cached_price = Price {
            input_per_million: 2.0,
            ..Price::default()
        };
        assert_eq!(no_cached_price.cost_micros(10, 10, 0), 20);
    }

    #[test]
    fn records_round_trip_with_defaults() {
        let json = serde_json::json!({"kind": "message", "user": "u1", "outcome": "ok"});
        let record: UsageRecord =
            serde_json::from_value(json).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(record.kind, UsageKind::Message);
        assert_eq!(record.tokens_in, 0);
        assert_eq!(UsageKind::AgentRun.subject(), "usage.agent_run");
    }
}
