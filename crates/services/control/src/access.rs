//! What each control-plane endpoint needs, and how agents and quota
//! subjects look to the policies.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::Check,
    Action::{Admin, Manage, Read},
    Attr, Authenticate, Kind, PrincipalKind, Resource, Resources, Rule, Subject,
    Target::{City, Named, Path as P},
};
use daarion_kernel::ApiError;

use crate::domain;

const AGENT: daarion_access::Target = P(Kind::Agent, "agent_id");
const QUOTA: daarion_access::Target = P(Kind::Quota, "subject");

/// An agent's owner (or its microDAO's admins, or city admins) manage its
/// prompt and entitlements and the agent reads them; config is read by
/// everyone signed in and set by city admins; quotas are read by whom they
/// limit and set by city admins.
pub static RULES: &[Rule] = &[
    Rule::new(
        Method::GET,
        "/api/control/prompts/{agent_id}",
        Check(Read, AGENT),
    ),
    Rule::new(
        Method::POST,
        "/api/control/prompts/{agent_id}",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/control/prompts/{agent_id}/versions",
        Check(Read, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/control/prompts/{agent_id}/versions/{version}",
        Check(Read, AGENT),
    ),
    Rule::new(
        Method::PUT,
        "/api/control/prompts/{agent_id}/current",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/control/policy/{agent_id}",
        Check(Read, AGENT),
    ),
    Rule::new(
        Method::PUT,
        "/api/control/policy/{agent_id}",
        Check(Manage, AGENT),
    ),
    Rule::new(Method::GET, "/api/control/config", Check(Read, City)),
    Rule::new(Method::GET, "/api/control/config/{key}", Check(Read, City)),
    Rule::new(Method::PUT, "/api/control/config/{key}", Check(Admin, City)),
    Rule::new(
        Method::GET,
        "/api/control/quotas/{subject}",
        Check(Read, QUOTA),
    ),
    Rule::new(
        Method::PUT,
        "/api/control/quotas/{subject}",
        Check(Admin, QUOTA),
    ),
    Rule::new(
        Method::PUT,
        "/api/control/policies",
        Check(Admin, Named(Kind::Policy, "city")),
    ),
];

/// Agents and quota subjects, as the policies see them.
pub(crate) struct ControlResources {
    pub(crate) directory: Arc<dyn Authenticate>,
}

#[async_trait]
impl Resources for ControlResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Agent => {
                domain::validate_key(domain::DocKind::Prompt, id)?;
                let agent = self
                    .directory
                    .principal(PrincipalKind::Agent, id)
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?;
                Ok(agent.and_then(|a| a.owner).map(|owner| {
                    Resource::new(Kind::Agent, id).attr("owner", Attr::Entity(Kind::User, owner))
                }))
            }
            Kind::Quota => {
                let subject =
                    Subject::parse(id).map_err(|e| ApiError::validation(e.to_string()))?;
                Ok(Some(Resource::about(Kind::Quota, &subject)))
            }
            _ => Ok(None),
        }
    }
}
