//! What the agent hub publishes (stream `AGENTS`): every definition change,
//! staged with it and relayed by the outbox.

use daarion_bus::Envelope;
use serde_json::json;

use crate::{SERVICE, store::Agent};

pub const AGENT_CHANGED: &str = "agents.agent.*.*";

/// `created`, `updated` or `archived`.
pub fn agent_changed(what: &str, agent: &Agent, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("agents.agent.{what}.{}", agent.slug),
        json!({
            "slug": agent.slug,
            "name": agent.name,
            "owner": agent.owner,
            "dao": agent.dao,
            "model": agent.model,
            "visibility": agent.visibility.as_str(),
            "status": agent.status.as_str(),
            "version": agent.version,
        }),
    )
    .with_actor(actor)
}
