//! What each runtime endpoint needs. A run is seen and cancelled by those
//! who manage its agent (its owner, its microDAO's admins, city admins):
//! a run's path names the agent through the run (`RunResources`).

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::Check, Action::Manage, Kind, Resource, Resources, Rule, Target::Path,
};
use daarion_kernel::ApiError;
use daarion_store::Db;

pub static RULES: &[Rule] = &[
    Rule::new(
        Method::GET,
        "/api/runtime/agents/{agent}/runs",
        Check(Manage, Path(Kind::Agent, "agent")),
    ),
    Rule::new(
        Method::GET,
        "/api/runtime/runs/{run}",
        Check(Manage, Path(Kind::Agent, "run")),
    ),
    Rule::new(
        Method::POST,
        "/api/runtime/runs/{run}/cancel",
        Check(Manage, Path(Kind::Agent, "run")),
    ),
];

/// Agents by slug, and by the id of one of their runs (`run_…`: slugs
/// never hold `_`).
pub struct RunResources {
    pub db: Db,
}

#[async_trait]
impl Resources for RunResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        if kind != Kind::Agent {
            return Ok(None);
        }
        let slug = if id.starts_with("run_") {
            match crate::store::get(&self.db, id).await? {
                Some(run) => run.agent,
                None => return Ok(None),
            }
        } else if daarion_kernel::names::is_slug(id) {
            id.to_owned()
        } else {
            return Ok(None);
        };
        let agent = daarion_agents::store::get(&self.db, &slug)
            .await
            .map_err(|e| ApiError::unavailable(&e))?;
        Ok(agent.as_ref().map(daarion_agents::access::agent_resource))
    }
}
