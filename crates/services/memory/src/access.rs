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
    // What is remembered about oneself: one's own, always.
    Rule::new(Method::GET, "/api/memory/me/export", SignedIn),
    Rule::new(Method::DELETE, "/api/memory/me", SignedIn),
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
            _ => Ok(None),
        }
    }
}

/// A microDAO's knowledge as the policies see it.
pub fn knowledge_resource(dao: &str) -> Resource {
    Resource::new(Kind::Knowledge, dao).in_dao(dao)
}

/// A document as the policies see it: its microDAO and its author (a
/// person's `author`, an agent's `agent_author`).
pub fn document_resource(id: &str, dao: &str, author: &str) -> Resource {
    let resource = Resource::new(Kind::Document, id).in_dao(dao);
    match author.split_once(':') {
        Some(("user", user)) => resource.attr("author", Attr::Entity(Kind::User, user.to_owned())),
        Some(("agent", agent)) => {
            resource.attr("agent_author", Attr::Entity(Kind::Agent, agent.to_owned()))
        }
        _ => resource,
    }
}
