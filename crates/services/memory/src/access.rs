//! What each memory endpoint needs (policies in `memory.cedar`): a
//! microDAO's knowledge is read and added to by its members; a document is
//! removed by its author or the microDAO's admins; what a person wrote
//! they export and erase themselves.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::{Manage, Read, Write},
    Attr, Kind, Resource, Resources, Rule,
    Target::Path,
};
use daarion_kernel::ApiError;
use daarion_store::Db;

use crate::store;

const KNOWLEDGE: daarion_access::Target = Path(Kind::Knowledge, "dao");
const DOCUMENT: daarion_access::Target = Path(Kind::Document, "document");
const FACT: daarion_access::Target = Path(Kind::Fact, "fact");

pub static RULES: &[Rule] = &[
    Rule::new(
        Method::POST,
        "/api/memory/daos/{dao}/documents",
        Check(Write, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/daos/{dao}/documents",
        Check(Read, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/daos/{dao}/search",
        Check(Read, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/documents/{document}",
        Check(Read, DOCUMENT),
    ),
    Rule::new(
        Method::DELETE,
        "/api/memory/documents/{document}",
        Check(Manage, DOCUMENT),
    ),
    Rule::new(
        Method::POST,
        "/api/memory/daos/{dao}/facts",
        Check(Write, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/daos/{dao}/facts",
        Check(Read, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/daos/{dao}/graph/neighbours",
        Check(Read, KNOWLEDGE),
    ),
    Rule::new(
        Method::GET,
        "/api/memory/daos/{dao}/graph/path",
        Check(Read, KNOWLEDGE),
    ),
    Rule::new(Method::GET, "/api/memory/facts/{fact}", Check(Read, FACT)),
    Rule::new(
        Method::DELETE,
        "/api/memory/facts/{fact}",
        Check(Manage, FACT),
    ),
    // What is remembered about oneself, and one's own memory: one's own,
    // always.
    Rule::new(Method::GET, "/api/memory/me/export", SignedIn),
    Rule::new(Method::DELETE, "/api/memory/me", SignedIn),
    Rule::new(Method::POST, "/api/memory/me/facts", SignedIn),
    Rule::new(Method::POST, "/api/memory/me/documents", SignedIn),
    Rule::new(Method::GET, "/api/memory/me/documents", SignedIn),
    Rule::new(Method::GET, "/api/memory/me/search", SignedIn),
    Rule::new(Method::GET, "/api/memory/me/facts", SignedIn),
    // An agent's summaries of its conversations: for those who manage it,
    // as its runs are.
    Rule::new(
        Method::GET,
        "/api/memory/agents/{agent}/summaries",
        Check(Manage, Path(Kind::Agent, "agent")),
    ),
];

/// A microDAO's knowledge (when the microDAO exists) and its documents.
pub struct MemoryResources {
    pub db: Db,
}

#[async_trait]
impl Resources for MemoryResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Knowledge => {
                let dao = daarion_microdao::access::DaoResources {
                    db: self.db.clone(),
                }
                .load(Kind::MicroDao, id)
                .await?;
                Ok(dao.map(|_| knowledge_resource(id)))
            }
            Kind::Document => {
                let Some((dao, author)) =
                    store::owner(&self.db, id).await.map_err(ApiError::from)?
                else {
                    return Ok(None);
                };
                Ok(Some(document_resource(id, &dao, &author)))
            }
            Kind::Fact => {
                let Some((scope, author)) = crate::facts::owner(&self.db, id)
                    .await
                    .map_err(ApiError::from)?
                else {
                    return Ok(None);
                };
                Ok(Some(fact_resource(id, &scope, &author)))
            }
            Kind::Agent if daarion_kernel::names::is_slug(id) => {
                let agent = daarion_agents::store::get(&self.db, id)
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?;
                Ok(agent.as_ref().map(daarion_agents::access::agent_resource))
            }
            _ => Ok(None),
        }
    }
}

/// A fact as the policies see it: a microDAO's, with who wrote it, or a
/// person's own (`owner`).
pub fn fact_resource(id: &str, scope: &str, author: &str) -> Resource {
    let resource = Resource::new(Kind::Fact, id);
    match scope.split_once(':') {
        Some(("dao", dao)) => with_author(resource.in_dao(dao), author),
        Some(("user", user)) => resource.attr("owner", Attr::Entity(Kind::User, user.to_owned())),
        _ => resource,
    }
}

/// `resource` with its writer: a person's `author`, an agent's
/// `agent_author`.
fn with_author(resource: Resource, author: &str) -> Resource {
    match author.split_once(':') {
        Some(("user", user)) => resource.attr("author", Attr::Entity(Kind::User, user.to_owned())),
        Some(("agent", agent)) => {
            resource.attr("agent_author", Attr::Entity(Kind::Agent, agent.to_owned()))
        }
        _ => resource,
    }
}

/// A microDAO's knowledge as the policies see it.
pub fn knowledge_resource(dao: &str) -> Resource {
    Resource::new(Kind::Knowledge, dao).in_dao(dao)
}

/// A document as the policies see it: a microDAO's, with its author (a
/// person's `author`, an agent's `agent_author`), or a person's own
/// (`owner`: `scope` is `user:<id>`).
pub fn document_resource(id: &str, scope: &str, author: &str) -> Resource {
    let resource = Resource::new(Kind::Document, id);
    match scope.strip_prefix("user:") {
        Some(user) => resource.attr("owner", Attr::Entity(Kind::User, user.to_owned())),
        None => with_author(resource.in_dao(scope), author),
    }
}
