//! What each toolcore endpoint needs, and how a tool looks to the policies
//! (`tool.cedar`: enabled, and open or limited to agents and roles).

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::{Admin, ExecTool},
    Kind, Resource, Resources, Rule,
    Target::{City, Path},
};
use daarion_kernel::ApiError;
use daarion_store::Db;

const TOOL: daarion_access::Target = Path(Kind::Tool, "tool");

/// Everyone signed in sees what tools exist; city admins register and
/// govern them; a call is `exec_tool` on the tool (and, for an agent, the
/// tool must be among its own: `api::call_tool`).
pub static RULES: &[Rule] = &[
    Rule::new(Method::GET, "/api/toolcore/tools", SignedIn),
    Rule::new(Method::POST, "/api/toolcore/tools", Check(Admin, City)),
    Rule::new(Method::GET, "/api/toolcore/tools/{tool}", SignedIn),
    Rule::new(
        Method::PATCH,
        "/api/toolcore/tools/{tool}",
        Check(Admin, City),
    ),
    Rule::new(
        Method::DELETE,
        "/api/toolcore/tools/{tool}",
        Check(Admin, City),
    ),
    Rule::new(
        Method::POST,
        "/api/toolcore/tools/{tool}/call",
        Check(ExecTool, TOOL),
    ),
    Rule::new(Method::GET, "/api/toolcore/calls", Check(Admin, City)),
    Rule::new(Method::POST, "/api/toolcore/mcp/tools", Check(Admin, City)),
];

pub struct ToolResources {
    pub db: Db,
}

#[async_trait]
impl Resources for ToolResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        if kind != Kind::Tool || crate::domain::name(id).is_err() {
            return Ok(None);
        }
        if crate::builtins::builtin(id).is_some() {
            return Ok(Some(Resource::tool(id, true, &[], &[])));
        }
        let tool = crate::store::tool(&self.db, id).await?;
        Ok(tool.map(|t| Resource::tool(&t.name, t.enabled, &t.allowed_agents, &t.allowed_roles)))
    }
}
