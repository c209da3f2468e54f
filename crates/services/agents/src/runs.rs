//! The contract of agent runs, shared by whoever asks for one (the router
//! for mentions, the hub's OpenAI-compatible endpoint) and the runtime
//! that runs them: the request on `AGENT_RUNS`, and the live events of a
//! run in progress (`runs.<agent>`, outside every stream: tokens as they
//! stream, tool calls and results, the end).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every run request, whichever agent.
pub const REQUESTED: &str = "agent.run.requested.*";
/// Every run's end.
pub const COMPLETED: &str = "agent.run.completed.*";
pub const FAILED: &str = "agent.run.failed.*";
/// Every agent's live run events.
pub const LIVE: &str = "runs.*";

/// The subject a run request for `agent` is published on.
pub fn requested_subject(agent: &str) -> String {
    format!("agent.run.requested.{agent}")
}

/// The live events of `agent`'s runs.
pub fn live_subject(agent: &str) -> String {
    format!("runs.{agent}")
}

/// The longest note a run is given.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Most messages a caller may hand a run.
pub const MAX_INPUT_MESSAGES: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// `agent.run.requested.<agent>`: an agent asked to answer, either a
/// message in a room (`room`; the answer is posted there) or a caller's
/// conversation (`messages`; the answer is the run's result).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRequest {
    /// `run_…`: the same request always names the same run.
    pub run_id: String,
    pub agent: String,
    /// The room answered in (empty for a caller's conversation).
    #[serde(default)]
    pub room: String,
    /// The topic the answer goes to.
    #[serde(default)]
    pub topic: String,
    /// The message answered.
    #[serde(default)]
    pub message_id: Option<String>,
    /// A caller's conversation (`{"role","content"}` objects), when the
    /// run answers a caller rather than a room.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Who asked: `user:<id>`, or `visitor:<hash>` for a stranger asking
    /// a public agent (such runs get no tools: nobody to act for).
    pub asker: String,
    /// What the agent is asked to do beyond answering the conversation
    /// (an orchestrator greeting a newcomer), at most 2 000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RunRequest {
    pub fn check(&self) -> Result<(), InvalidRequest> {
        let id_ok = self.run_id.len() <= 64
            && self.run_id.strip_prefix("run_").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !id_ok {
            return Err(InvalidRequest(format!("bad run id {:?}", self.run_id)));
        }
        if !daarion_kernel::names::is_slug(&self.agent) {
            return Err(InvalidRequest(format!("bad agent {:?}", self.agent)));
        }
        if !(self.asker.starts_with("user:") || self.asker.starts_with("visitor:")) {
            return Err(InvalidRequest("a run is asked for by a person".into()));
        }
        if self.room.is_empty() == self.messages.is_empty() {
            return Err(InvalidRequest(
                "a run answers a room or a conversation, one of them".into(),
            ));
        }
        conversation(&self.messages)?;
        if self
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(InvalidRequest(format!(
                "a note is at most {MAX_NOTE_CHARS} characters"
            )));
        }
        Ok(())
    }
}

/// A caller's conversation as a model reads it: `system`, `user` and
/// `assistant` turns with text content, at most [`MAX_INPUT_MESSAGES`].
pub fn conversation(messages: &[Value]) -> Result<(), InvalidRequest> {
    if messages.len() > MAX_INPUT_MESSAGES {
        return Err(InvalidRequest(format!(
            "at most {MAX_INPUT_MESSAGES} messages"
        )));
    }
    for (i, m) in messages.iter().enumerate() {
        let role_ok = matches!(m["role"].as_str(), Some("system" | "user" | "assistant"));
        if !role_ok || !m["content"].is_string() {
            return Err(InvalidRequest(format!(
                "messages[{i}]: a role of system, user or assistant, and text content"
            )));
        }
    }
    Ok(())
}

/// What happens in a run, as it happens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Started {
        run: String,
        agent: String,
    },
    /// Words of the answer as they stream (in order, for one model call).
    Token {
        run: String,
        agent: String,
        text: String,
    },
    ToolCall {
        run: String,
        agent: String,
        tool: String,
        arguments: Value,
    },
    ToolResult {
        run: String,
        agent: String,
        tool: String,
        ok: bool,
    },
    Completed {
        run: String,
        agent: String,
        answer: String,
        tokens_in: i64,
        tokens_out: i64,
    },
    Failed {
        run: String,
        agent: String,
        error: String,
    },
}

impl RunEvent {
    /// The run's id and its agent.
    fn ids(&self) -> (&str, &str) {
        match self {
            Self::Started { run, agent }
            | Self::Token { run, agent, .. }
            | Self::ToolCall { run, agent, .. }
            | Self::ToolResult { run, agent, .. }
            | Self::Completed { run, agent, .. }
            | Self::Failed { run, agent, .. } => (run, agent),
        }
    }

    pub fn run(&self) -> &str {
        self.ids().0
    }

    pub fn agent(&self) -> &str {
        self.ids().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_requests_are_checked() {
        let ok = RunRequest {
            run_id: "run_0191abc".into(),
            agent: "helper".into(),
            room: "r".into(),
            topic: String::new(),
            message_id: None,
            messages: Vec::new(),
            asker: "user:1".into(),
            note: None,
        };
        assert!(ok.check().is_ok());
        let chat = RunRequest {
            room: String::new(),
            messages: vec![json!({"role": "user", "content": "hi"})],
            ..ok.clone()
        };
        assert!(chat.check().is_ok());
        for bad in [
            RunRequest {
                run_id: "evt_1".into(),
                ..ok.clone()
            },
            RunRequest {
                run_id: "run_a/b".into(),
                ..ok.clone()
            },
            RunRequest {
                agent: "Not A Slug".into(),
                ..ok.clone()
            },
            RunRequest {
                asker: "agent:x".into(),
                ..ok.clone()
            },
            RunRequest {
                room: String::new(),
                ..ok.clone()
            },
            RunRequest {
                messages: chat.messages.clone(),
                ..ok.clone()
            },
            RunRequest {
                messages: vec![json!({"role": "tool", "content": "x"})],
                ..chat.clone()
            },
            RunRequest {
                messages: vec![json!({"role": "user", "content": 3})],
                ..chat.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_events_read_as_tagged_json() {
        let event = RunEvent::Token {
            run: "run_1".into(),
            agent: "a".into(),
            text: "Hi".into(),
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(
            wire,
            json!({"type": "token", "run": "run_1", "agent": "a", "text": "Hi"})
        );
        assert_eq!(
            serde_json::from_value::<RunEvent>(wire).unwrap().run(),
            "run_1"
        );
    }
}
