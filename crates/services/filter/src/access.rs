//! What each filter endpoint needs: an agent's rule set is for those who
//! manage the agent; a microDAO's for those who write it (its admins).

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::Check,
    Action::{Manage, Write},
    Kind, Resource, Resources, Rule,
    Target::Path,
};
use daarion_kernel::ApiError;
use daarion_store::Db;

const AGENT: daarion_access::Target = Path(Kind::Agent, "agent");
const DAO: daarion_access::Target = Path(Kind::MicroDao, "dao");

pub static RULES: &[Rule] = &[
    Rule::new(
        Method::GET,
        "/api/filter/agents/{agent}/rules",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::PUT,
        "/api/filter/agents/{agent}/rules",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::DELETE,
        "/api/filter/agents/{agent}/rules",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/filter/agents/{agent}/events",
        Check(Manage, AGENT),
    ),
    Rule::new(
        Method::GET,
        "/api/filter/daos/{dao}/rules",
        Check(Write, DAO),
    ),
    Rule::new(
        Method::PUT,
        "/api/filter/daos/{dao}/rules",
        Check(Write, DAO),
    ),
    Rule::new(
        Method::DELETE,
        "/api/filter/daos/{dao}/rules",
        Check(Write, DAO),
    ),
    Rule::new(
        Method::GET,
        "/api/filter/daos/{dao}/events",
        Check(Write, DAO),
    ),
];

/// Agents and microDAOs, as their own services show them to the policies.
pub struct FilterResources {
    pub db: Db,
}

#[async_trait]
impl Resources for FilterResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Agent => {
                daarion_agents::access::AgentResources {
                    db: self.db.clone(),
                }
                .load(kind, id)
                .await
            }
            Kind::MicroDao => {
                daarion_microdao::access::DaoResources {
                    db: self.db.clone(),
                }
                .load(kind, id)
                .await
            }
            _ => Ok(None),
        }
    }
}
