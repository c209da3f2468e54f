//! Who answers a message. An agent is chosen by a mention, or — for a
//! message that mentions no agent — by the city's routing rules
//! (`routing.agents` in the control plane: the first rule by priority whose
//! match holds). It answers when it is active, the person who wrote may
//! talk to it (`read` on the agent: its owner, its microDAO, the people
//! of a microDAO it orchestrates, or every citizen for a public one), and
//! it may post in the room; otherwise the
//! reason is kept. Agents do not summon agents (a loop guard until crews
//! exist).

use daarion_access::{Action, Attr, Enforcer, Kind, PrincipalKind, vocab::roles::DaoRole};
use daarion_agents::domain::Lifecycle;
use daarion_agents::runs::RunRequest;
use daarion_control::domain::RoutingRule;
use daarion_store::Db;
use serde_json::Value;

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

/// Whether `asker` may talk to `agent`: it is theirs, public, their
/// microDAO's, or orchestrates a microDAO of theirs (read only when the
/// rest says no).
async fn may_talk(
    db: &Db,
    access: &Enforcer,
    asker: &daarion_access::Principal,
    agent: &daarion_agents::store::Agent,
) -> Result<bool, RouteError> {
    let resource = daarion_agents::access::agent_resource(agent);
    if access.allows(asker, Action::Read, &resource) {
        return Ok(true);
    }
    let daos = daarion_microdao::store::orchestrated_by(db, &agent.slug)
        .await
        .map_err(unavailable)?;
    if daos.is_empty() {
        return Ok(false);
    }
    let groups = daos
        .iter()
        .map(|dao| Attr::Entity(Kind::Role, DaoRole::Guest.group(dao)))
        .collect();
    let resource = resource.attr("orchestrator_of", Attr::Set(groups));
    Ok(access.allows(asker, Action::Read, &resource))
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
    if !may_talk(db, access, &asker, &agent).await? {
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
        run_id: run_id(mention.event),
        agent: agent.slug,
        room: mention.room.to_owned(),
        topic: mention.topic.to_owned(),
        message_id: mention.message_id.map(str::to_owned),
        messages: Vec::new(),
        asker: asker.name(),
        note: None,
    }))
}

/// The run an event asks for: named by the event, so a redelivered event
/// asks for the same run.
pub fn run_id(event: &str) -> String {
    format!(
        "run_{}",
        event.trim_start_matches("evt_").replace(['-', '_'], "")
    )
}

/// The agent the first matching rule names (rules tried by priority, ties
/// in the order written). A rule's `match` holds when every key does:
/// `metadata_equals` (each field equal), `metadata_has` (each field
/// present and not empty), `text_contains` (in the message, any case), and
/// any other key as `metadata_equals` of that field. `metadata` is what a
/// message tells: `room`, `room_kind`, `room_slug`, `dao`, `topic`, `author`.
pub fn pick(rules: &[RoutingRule], metadata: &Value, text: &str) -> Option<String> {
    let mut ordered: Vec<&RoutingRule> = rules.iter().collect();
    ordered.sort_by_key(|r| r.priority);
    let text = text.to_lowercase();
    let holds = |key: &str, wanted: &Value| match key {
        "metadata_equals" => wanted
            .as_object()
            .is_some_and(|fields| fields.iter().all(|(k, v)| &metadata[k] == v)),
        "metadata_has" => wanted.as_array().is_some_and(|keys| {
            keys.iter().all(|k| {
                k.as_str()
                    .is_some_and(|k| !matches!(&metadata[k], Value::Null) && metadata[k] != "")
            })
        }),
        "text_contains" => wanted
            .as_str()
            .is_some_and(|needle| text.contains(&needle.to_lowercase())),
        field => &metadata[field] == wanted,
    };
    ordered
        .into_iter()
        .find(|rule| rule.matches.iter().all(|(k, v)| holds(k, v)))
        .map(|rule| {
            rule.target
                .strip_prefix("agent:")
                .unwrap_or(&rule.target)
                .to_owned()
        })
        .filter(|agent| daarion_kernel::names::is_slug(agent))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(value: Value) -> Vec<RoutingRule> {
        serde_json::from_value::<daarion_control::domain::Routing>(value)
            .map(|r| r.rules)
            .unwrap_or_default()
    }

    #[test]
    fn the_first_matching_rule_by_priority_names_the_agent() {
        let rules = rules(json!({"rules": [
            {"match": {}, "target": "agent:concierge", "priority": 900},
            {"match": {"metadata_equals": {"dao": "guild"}, "text_contains": "Summary"},
                "target": "agent:scribe", "priority": 10},
            {"match": {"room_kind": "dao", "metadata_has": ["topic"]}, "target": "helper"},
        ]}));
        let meta = |dao: &str, topic: &str| json!({"room_kind": "dao", "dao": dao, "topic": topic});
        assert_eq!(
            pick(&rules, &meta("guild", ""), "a summary please").as_deref(),
            Some("scribe")
        );
        assert_eq!(
            pick(&rules, &meta("guild", "plans"), "hello").as_deref(),
            Some("helper")
        );
        assert_eq!(
            pick(&rules, &meta("other", ""), "a summary").as_deref(),
            Some("concierge")
        );
        assert_eq!(
            pick(&rules[2..], &meta("guild", ""), "hi"),
            None,
            "no topic"
        );
        assert_eq!(pick(&[], &meta("guild", ""), "hi"), None);
        let bad = rules_with_target("Not A Slug");
        assert_eq!(pick(&bad, &meta("guild", ""), "hi"), None);
    }

    fn rules_with_target(target: &str) -> Vec<RoutingRule> {
        rules(json!({"rules": [{"match": {}, "target": target}]}))
    }
}
