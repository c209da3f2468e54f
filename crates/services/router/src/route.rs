//! Who answers a message. A mention of an agent becomes a run when the
//! agent is active, the person who wrote may talk to it (`read` on the
//! agent: its owner, its microDAO, or every citizen for a public one), and
//! the agent may post in the room; otherwise the reason is kept. Agents
//! do not summon agents (a loop guard until crews exist).

use daarion_access::{Action, Enforcer, PrincipalKind};
use daarion_agents::domain::Lifecycle;
use daarion_agents::runs::RunRequest;
use daarion_store::Db;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Worth asking again later (a store or the directory unreachable).
    #[error("{0}")]
    Unavailable(String),
}

/// What the router decided for one mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Run(RunRequest),
    /// Nobody answers, and why.
    Skip(String),
}

/// A mention of `agent` by `author` (`user:<id>` / `agent:<id>`) in
/// `room`, in message `message_id` of `topic`; `event` (the mention's
/// event id) names the run, so a repeated mention is the same run.
pub struct Mention<'a> {
    pub event: &'a str,
    pub agent: &'a str,
    pub author: &'a str,
    pub room: &'a str,
    pub topic: &'a str,
    pub message_id: Option<&'a str>,
}

fn unavailable(error: impl std::fmt::Display) -> RouteError {
    RouteError::Unavailable(error.to_string())
}

pub async fn decide(
    db: &Db,
    access: &Enforcer,
    mention: &Mention<'_>,
) -> Result<Route, RouteError> {
    let skip = |why: &str| Ok(Route::Skip(why.to_owned()));
    let Some(person) = mention.author.strip_prefix("user:") else {
        return skip("agents do not summon agents");
    };
    let Some(agent) = daarion_agents::store::get(db, mention.agent)
        .await
        .map_err(unavailable)?
    else {
        return skip("no such agent in the hub");
    };
    if agent.status != Lifecycle::Active {
        return skip("the agent is paused or archived");
    }
    let directory = access.directory();
    let Some(asker) = directory
        .principal(PrincipalKind::User, person)
        .await
        .map_err(unavailable)?
    else {
        return skip("the author is unknown");
    };
    if !access.allows(
        &asker,
        Action::Read,
        &daarion_agents::access::agent_resource(&agent),
    ) {
        return skip("the author may not talk to this agent");
    }
    let Some(room) = daarion_messaging::store::room(db, mention.room)
        .await
        .map_err(unavailable)?
    else {
        return skip("no such room");
    };
    let Some(me) = directory
        .principal(PrincipalKind::Agent, &agent.slug)
        .await
        .map_err(unavailable)?
    else {
        return skip("the agent has no identity");
    };
    let room = daarion_messaging::access::room_of(db, &room)
        .await
        .map_err(unavailable)?;
    if !access.allows(&me, Action::SendMessage, &room) {
        return skip("the agent may not post in this room");
    }
    Ok(Route::Run(RunRequest {
        run_id: format!(
            "run_{}",
            mention
                .event
                .trim_start_matches("evt_")
                .replace(['-', '_'], "")
        ),
        agent: agent.slug,
        room: mention.room.to_owned(),
        topic: mention.topic.to_owned(),
        message_id: mention.message_id.map(str::to_owned),
        messages: Vec::new(),
        asker: asker.name(),
    }))
}
