//! What each hub endpoint needs (`agent.cedar`) and how an agent looks to
//! the policies: its owner, its microDAO, whether it is public.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, Public, SignedIn},
    Action::{Manage, Read},
    Attr, Kind, Resource, Resources, Rule,
    Target::Path,
};
use daarion_kernel::ApiError;
use daarion_store::Db;

use crate::{domain::AgentVisibility, store::Agent};

const AGENT: daarion_access::Target = Path(Kind::Agent, "agent");

pub static RULES: &[Rule] = &[
    // Lists only what the caller may see; creating checks the microDAO
    // an agent is made for (`api::create_agent`).
    Rule::new(Method::GET, "/api/agents/agents", SignedIn),
    Rule::new(Method::POST, "/api/agents/agents", SignedIn),
    Rule::new(Method::GET, "/api/agents/blueprints", SignedIn),
    // Strangers ask public agents: limited per client (`public::ask_public`).
    Rule::new(Method::POST, "/api/agents/public/{agent}/ask", Public),
    // Runs' live events, tool arguments included: for those who manage it.
    Rule::new(
        Method::GET,
        "/ws/agents/events/{agent}",
        Check(Manage, AGENT),
    ),
    // The agent is named in the body: `chat::chat_completions` asks the
    // policies about it.
    Rule::new(Method::POST, "/api/agents/v1/chat/completions", SignedIn),
    Rule::new(
        Method::GET,
        "/api/agents/agents/{agent}",
        Check(Read, AGENT),
    ),
    Rule::new(
        Method::PATCH,
        "/api/agents/agents/{agent}",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::POST,
        "/api/agents/agents/{agent}/archive",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/agents/agents/{agent}/versions",
        Check(Read, AGENT),
    ),
    // Enlisting members needs `manage` on each too (`api::set_crew`).
    Rule::new(
        Method::PUT,
        "/api/agents/agents/{agent}/crew",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::DELETE,
        "/api/agents/agents/{agent}/crew",
        Check(Manage, AGENT),
    ),
];

/// An agent as the policies see it.
pub fn agent_resource(agent: &Agent) -> Resource {
    let owner = agent.owner.strip_prefix("user:").unwrap_or(&agent.owner);
    let resource = Resource::new(Kind::Agent, agent.slug.as_str())
        .attr("owner", Attr::Entity(Kind::User, owner.to_owned()))
        .attr(
            "public",
            Attr::Bool(agent.visibility == AgentVisibility::Public),
        )
        .attr("personal", Attr::Bool(agent.personal));
    match &agent.dao {
        Some(dao) => resource.in_dao(dao),
        None => resource,
    }
}

pub struct AgentResources {
    pub db: Db,
}

#[async_trait]
impl Resources for AgentResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        if kind != Kind::Agent || !daarion_kernel::names::is_slug(id) {
            return Ok(None);
        }
        let agent = crate::store::get(&self.db, id).await?;
        Ok(agent.as_ref().map(agent_resource))
    }
}
