//! Runs, independent of HTTP and SQL: what a run is asked to do, its
//! states, how a room's conversation becomes a model's transcript, and
//! what a model's answer asks for next.

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Worth another delivery later (a provider busy, a service restarting).
    #[error("{0}")]
    Transient(String),
    /// Retrying would not help (refused, misconfigured, out of steps).
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error(transparent)]
    Bus(#[from] daarion_bus::BusError),
}

impl From<daarion_agents::runs::InvalidRequest> for RunError {
    fn from(error: daarion_agents::runs::InvalidRequest) -> Self {
        Self::Invalid(error.0)
    }
}

impl From<daarion_store::sql::Error> for RunError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

impl RunError {
    /// Whether another delivery might succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transient(_) => true,
            Self::Store(e) => e.is_retryable(),
            Self::Bus(_) => true,
            _ => false,
        }
    }
}

daarion_kernel::named_enum!(
    /// Where a run is.
    RunStatus {
        /// Asked for, not started.
        Queued => "queued",
        /// Held by a worker's lease.
        Running => "running",
        /// Answered in the room.
        Completed => "completed",
        /// Gave up (its error says why).
        Failed => "failed",
        /// Stopped by someone who manages the agent.
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Why an agent's plan refuses a run that has not started yet (`None`: it
/// may start): its day's runs, or its day's askers, spent. (Runs at once
/// are the lease's to count: `store::lease`.)
pub fn refused_today(limits: &daarion_usage::RunLimits, day: &crate::store::Day) -> Option<String> {
    let over = |limit: Option<u32>, n: i64| limit.is_some_and(|l| n >= i64::from(l));
    if over(limits.runs_per_day, day.started) {
        return Some(format!(
            "the agent's plan allows at most {} runs a day",
            limits.runs_per_day.unwrap_or(0)
        ));
    }
    if over(limits.distinct_users_per_day, day.other_askers) {
        return Some(format!(
            "the agent's plan allows at most {} askers a day",
            limits.distinct_users_per_day.unwrap_or(0)
        ));
    }
    None
}

/// One message of the room, as the agent reads it.
pub struct Said<'a> {
    /// `user:<id>` or `agent:<id>`.
    pub author: &'a str,
    pub handle: &'a str,
    pub body: &'a str,
}

/// The transcript a run starts from: the agent's prompt, then the room's
/// recent messages, oldest first — the agent's own as its turns, everyone
/// else's as the user's, named, since a room has many speakers.
pub fn transcript(agent: &str, prompt: Option<&str>, window: &[Said<'_>]) -> Vec<Value> {
    let mut messages = Vec::with_capacity(window.len() + 1);
    let me = format!("agent:{agent}");
    let system = prompt.filter(|p| !p.trim().is_empty()).map_or_else(
        || format!("You are {me}, an agent in a DAARION room. Answer the people who mention you."),
        str::to_owned,
    );
    messages.push(json!({ "role": "system", "content": system }));
    for said in window {
        if said.author == me {
            messages.push(json!({ "role": "assistant", "content": said.body }));
        } else {
            messages.push(
                json!({ "role": "user", "content": format!("{}: {}", said.handle, said.body) }),
            );
        }
    }
    messages
}

/// A tool name as a model function name (`^[a-zA-Z0-9_-]{1,64}$` for
/// OpenAI-compatible providers: no dots).
pub fn function_name(tool: &str) -> String {
    tool.replace('.', "__")
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    /// The function name as the model wrote it.
    pub function: String,
    pub arguments: Value,
}

/// What a model's message asks: tools to call, or the final words.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Tools(Vec<ToolCall>),
    Answer(String),
}

/// Reads an assistant message (`choices[0].message`). Arguments that are
/// not a JSON object become `{}` with the raw text kept aside, so the
/// tool's schema check tells the model what was wrong.
pub fn next(message: &Value) -> Next {
    let calls: Vec<ToolCall> = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let raw = call["function"]["arguments"].as_str().unwrap_or("{}");
                    ToolCall {
                        id: call["id"]
                            .as_str()
                            .map_or_else(|| format!("call_{i}"), str::to_owned),
                        function: call["function"]["name"].as_str().unwrap_or("").to_owned(),
                        arguments: serde_json::from_str::<Value>(raw)
                            .ok()
                            .filter(Value::is_object)
                            .unwrap_or_else(|| json!({})),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        Next::Answer(message["content"].as_str().unwrap_or("").trim().to_owned())
    } else {
        Next::Tools(calls)
    }
}

/// The model's words as a message: control characters out (a body may
/// not hold them), cut to `max_chars` with an ellipsis.
pub fn reply_body(text: &str, max_chars: usize) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect();
    if clean.chars().count() <= max_chars {
        return clean;
    }
    let mut cut: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_becomes_a_transcript_with_named_speakers() {
        let window = [
            Said {
                author: "user:1",
                handle: "olena",
                body: "@agent:helper what time is it?",
            },
            Said {
                author: "agent:helper",
                handle: "agent:helper",
                body: "Noon.",
            },
            Said {
                author: "user:2",
                handle: "taras",
                body: "thanks",
            },
        ];
        let t = transcript("helper", Some("Be brief."), &window);
        assert_eq!(t[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(t[1]["content"], "olena: @agent:helper what time is it?");
        assert_eq!(t[2], json!({"role": "assistant", "content": "Noon."}));
        assert_eq!(t[3]["role"], "user");
        assert!(
            transcript("helper", None, &[])[0]["content"]
                .as_str()
                .unwrap()
                .contains("agent:helper")
        );
    }

    #[test]
    fn a_model_message_asks_for_tools_or_answers() {
        let call = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "math__evaluate", "arguments": "{\"expression\":\"2+2\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "time__now", "arguments": "not json"}}
        ]});
        match next(&call) {
            Next::Tools(calls) => {
                assert_eq!(calls[0].function, "math__evaluate");
                assert_eq!(calls[0].arguments, json!({"expression": "2+2"}));
                assert_eq!(calls[1].arguments, json!({}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            next(&json!({"role": "assistant", "content": " 4 "})),
            Next::Answer("4".into())
        );
        assert_eq!(function_name("math.evaluate"), "math__evaluate");
    }

    #[test]
    fn plans_limit_runs_and_askers_a_day() {
        use crate::store::Day;
        let limits = daarion_usage::RunLimits {
            runs_per_day: Some(3),
            distinct_users_per_day: Some(2),
            concurrent_runs: Some(1),
        };
        let day = |started, other_askers| Day {
            started,
            other_askers,
        };
        assert_eq!(refused_today(&limits, &day(2, 1)), None);
        assert!(refused_today(&limits, &day(3, 0)).is_some_and(|why| why.contains("3 runs")));
        assert!(refused_today(&limits, &day(0, 2)).is_some_and(|why| why.contains("2 askers")));
        assert_eq!(
            refused_today(&Default::default(), &day(9, 9)),
            None,
            "no plan"
        );
    }

    #[test]
    fn replies_are_clean_and_bounded() {
        assert_eq!(reply_body("a\u{7}b\nc", 10), "ab\nc");
        let long = reply_body(&"я".repeat(20), 5);
        assert_eq!(long.chars().count(), 5);
        assert!(long.ends_with('…'));
    }
}
