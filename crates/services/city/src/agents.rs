//! Agents' presence: online, busy or offline. An agent reports its status
//! (`POST /api/city/agents/presence`) and the report lasts
//! `city.agent_presence_ttl_secs`: an agent that stops reporting goes
//! offline then (the original kept a silent agent online for ever). A
//! change of status goes out live on `presence.agent.<status>`; a sweeper
//! on every replica turns lapsed reports into offline, each announced
//! once.

use std::time::Duration;

use daarion_bus::Envelope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CityState, SERVICE, domain::CityError, store};

pub const LIVE: &str = "presence.agent.*";

daarion_kernel::named_enum!(AgentStatus {
    Online => "online",
    Busy => "busy",
    Offline => "offline",
});

/// An agent's presence, as its readers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentPresence {
    /// The agent's id (its handle is `agent:<id>`).
    pub agent: String,
    pub status: AgentStatus,
    /// When this status began (RFC 3339 UTC).
    pub since: String,
    /// Its last report (RFC 3339 UTC).
    pub last_seen: String,
}

fn announce_event(agent: &str, status: AgentStatus) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("presence.agent.{}", status.as_str()),
        serde_json::json!({ "agent": agent, "status": status.as_str() }),
    )
    .with_actor(format!("agent:{agent}"))
}

/// Records `agent`'s report and announces a change of status.
pub async fn report(
    state: &CityState,
    agent: &str,
    status: AgentStatus,
) -> Result<AgentPresence, CityError> {
    let now = chrono::Utc::now();
    let lasts = match status {
        AgentStatus::Offline => chrono::Duration::zero(),
        _ => chrono::Duration::seconds(
            i64::try_from(state.settings.agent_presence_ttl_secs).unwrap_or(i64::MAX / 1000),
        ),
    };
    let (now, expires_at) = (
        daarion_store::format_time(now),
        daarion_store::format_time(now + lasts),
    );
    let (presence, changed) =
        store::agents::report(&state.db, agent, status, &now, &expires_at).await?;
    if changed {
        state.publish(&announce_event(agent, status)).await;
    }
    Ok(presence)
}

/// Announces agents whose reports lapsed, until shutdown.
pub async fn sweep(state: CityState) {
    let period =
        Duration::from_secs(state.settings.agent_presence_ttl_secs / 3).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match store::agents::expire(&state.db, &daarion_store::now()).await {
            Ok(agents) => {
                for agent in agents {
                    state
                        .publish(&announce_event(&agent, AgentStatus::Offline))
                        .await;
                }
            }
            Err(error) => tracing::warn!(%error, "agent presence sweep failed"),
        }
    }
}
