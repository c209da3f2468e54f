//! `/ws/agents/events/{agent}`: an agent's runs as they happen — started,
//! the answer's words as they stream, each tool call and its result, the
//! end — for those who manage the agent (tool arguments are theirs to
//! see). The socket only listens; the kit's session loop (limits,
//! heartbeats, revocations) does the rest.

use std::time::Duration;

use async_trait::async_trait;
use axum::{
    Router,
    extract::{Path, State, ws::WebSocketUpgrade},
    response::Response,
    routing::get,
};
use daarion_access::{Action, Facts, Principal};
use daarion_bus::Envelope;
use daarion_kernel::ApiError;
use daarion_service::live::{Flow, Handler, Limits, Outbound};
use serde::Deserialize;
use serde_json::Value;

use crate::{AgentState, runs};

const LIMITS: Limits = Limits {
    max_message_bytes: 4096,
    messages_per_second: 5.0,
    burst: 10,
    ping_interval: Duration::from_secs(30),
    recheck: Duration::from_secs(60),
    max_lifetime: Duration::from_secs(24 * 3600),
};

pub fn router() -> Router<AgentState> {
    Router::new().route("/events/{agent}", get(events_socket))
}

/// What a client may send: nothing but heartbeats.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Heartbeat,
}

async fn events_socket(
    State(state): State<AgentState>,
    Path(agent): Path<String>,
    actor: Principal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let feed = state
        .live
        .watch(&runs::live_subject(&agent), render)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let live = state.live.clone();
    let watcher = Watcher {
        state,
        actor: actor.clone(),
        agent,
    };
    Ok(live.serve(upgrade, &actor, LIMITS, feed, watcher))
}

/// A run event as its frame: the event itself (`type` says which).
fn render(event: Envelope) -> Value {
    event.payload
}

struct Watcher {
    state: AgentState,
    actor: Principal,
    agent: String,
}

#[async_trait]
impl Handler for Watcher {
    type Frame = ClientFrame;

    async fn received(&mut self, _out: &mut Outbound, _frame: ClientFrame) -> Flow {
        Flow::Continue
    }

    async fn still_allowed(&mut self, _out: &mut Outbound) -> bool {
        let Ok(Some(agent)) = crate::store::get(&self.state.db, &self.agent).await else {
            return false;
        };
        self.state
            .access
            .check(
                &self.actor,
                Action::Manage,
                &crate::access::agent_resource(&agent),
                Facts::default(),
            )
            .await
            .is_ok()
    }
}
