//! What space publishes and reads. Node changes are durable on the `SPACE`
//! stream (`space.node.<what>.<node>`: `registered`, `removed`, `online`,
//! `offline`); the living map will follow them. It reads the microDAO
//! service's `microdao.>` events, messaging's `message.received.*` and the
//! runtime's `agent.run.completed.*` into planets (`store::planets`).

use daarion_bus::{Envelope, HandlerError};

use crate::{SERVICE, SpaceState, store};

pub const NODE_CHANGED: &str = "space.node.*.*";
pub const DAOS: &str = "microdao.>";
pub const MESSAGES: &str = "message.received.*";
pub const RUNS: &str = daarion_agents::runs::COMPLETED;

pub fn node_changed(what: &str, node: &str, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("space.node.{what}.{node}"),
        serde_json::json!({ "node": node, "change": what }),
    )
    .with_actor(actor)
}

/// The planets' consumers: applies a batch, each event once.
pub async fn apply(state: SpaceState, events: Vec<Envelope>) -> Result<(), HandlerError> {
    store::planets::apply(&state.db, &events)
        .await
        .map_err(HandlerError::new)
}
