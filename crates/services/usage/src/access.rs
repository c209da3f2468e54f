//! What each usage endpoint needs, and how a subject's usage looks to the
//! policies.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::ViewUsage,
    Attr, Authenticate, Kind, PrincipalKind, Resource, Resources, Rule, Subject,
    Target::{City, Path as P},
};
use daarion_kernel::ApiError;

use crate::api;

const SUBJECT: daarion_access::Target = P(Kind::Usage, "subject");

/// City-wide usage is for city admins; one person's, agent's or microDAO's
/// for that person, the agent's owner, the microDAO's admins (and city
/// admins); plans are public to anyone signed in.
pub static RULES: &[Rule] = &[
    Rule::new(Method::GET, "/api/usage/summary", Check(ViewUsage, City)),
    Rule::new(
        Method::GET,
        "/api/usage/subjects/{subject}/summary",
        Check(ViewUsage, SUBJECT),
    ),
    Rule::new(
        Method::GET,
        "/api/usage/subjects/{subject}/quota",
        Check(ViewUsage, SUBJECT),
    ),
    Rule::new(Method::GET, "/api/usage/plans", SignedIn),
];

/// Usage of one person, agent or microDAO, as the policies see it; an
/// agent's comes with the agent and its owner (`usage-agent-owner` reads
/// it), and an agent without one does not exist.
pub(crate) struct UsageResources {
    pub(crate) directory: Arc<dyn Authenticate>,
}

#[async_trait]
impl Resources for UsageResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        if kind != Kind::Usage {
            return Ok(None);
        }
        let subject = api::parse_subject(id)?;
        let resource = Resource::about(Kind::Usage, &subject);
        let Subject::Agent(agent) = &subject else {
            return Ok(Some(resource));
        };
        let owner = self
            .directory
            .principal(PrincipalKind::Agent, agent)
            .await
            .map_err(|e| ApiError::unavailable(&e))?
            .and_then(|a| a.owner);
        // An agent nobody owns is an agent that does not exist.
        Ok(owner.map(|owner| {
            resource.related(
                Resource::new(Kind::Agent, agent.as_str())
                    .attr("owner", Attr::Entity(Kind::User, owner)),
            )
        }))
    }
}
