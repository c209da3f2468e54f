//! What each governance endpoint needs (`microdao.cedar`): a microDAO's
//! members read and write its proposals (writing one is proposing and
//! voting), everyone reads a public microDAO's, its agents take part only
//! where its settings let them, and its owners set those settings.
//! Whose draft it is, and who was in the electorate at the snapshot, the
//! store decides on top.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::Check,
    Action::{Admin, Manage, Read, Write},
    Attr, Kind, Resource, Resources, Rule,
    Target::Path,
};
use daarion_kernel::ApiError;
use daarion_microdao::domain::Visibility;
use daarion_store::Db;

use crate::store;

/// A microDAO's proposals as a whole (`{dao}` is its slug).
const PROPOSALS: daarion_access::Target = Path(Kind::Proposal, "dao");
const PROPOSAL: daarion_access::Target = Path(Kind::Proposal, "proposal");
const DAO: daarion_access::Target = Path(Kind::MicroDao, "dao");

pub static RULES: &[Rule] = &[
    Rule::new(
        Method::GET,
        "/api/dao/daos/{dao}/proposals",
        Check(Read, PROPOSALS),
    ),
    Rule::new(
        Method::POST,
        "/api/dao/daos/{dao}/proposals",
        Check(Write, PROPOSALS),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/daos/{dao}/delegation",
        Check(Read, PROPOSALS),
    ),
    Rule::new(
        Method::PUT,
        "/api/dao/daos/{dao}/delegation",
        Check(Write, PROPOSALS),
    ),
    Rule::new(
        Method::DELETE,
        "/api/dao/daos/{dao}/delegation",
        Check(Write, PROPOSALS),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/daos/{dao}/settings",
        Check(Read, DAO),
    ),
    // `admin` on a microDAO is its owners' alone.
    Rule::new(
        Method::PUT,
        "/api/dao/daos/{dao}/settings",
        Check(Admin, DAO),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/proposals/{proposal}",
        Check(Read, PROPOSAL),
    ),
    Rule::new(
        Method::PATCH,
        "/api/dao/proposals/{proposal}",
        Check(Write, PROPOSAL),
    ),
    Rule::new(
        Method::POST,
        "/api/dao/proposals/{proposal}/open",
        Check(Write, PROPOSAL),
    ),
    Rule::new(
        Method::POST,
        "/api/dao/proposals/{proposal}/cancel",
        Check(Write, PROPOSAL),
    ),
    Rule::new(
        Method::POST,
        "/api/dao/proposals/{proposal}/votes",
        Check(Write, PROPOSAL),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/proposals/{proposal}/receipt",
        Check(Read, PROPOSAL),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/proposals/{proposal}/tally",
        Check(Read, PROPOSAL),
    ),
    Rule::new(
        Method::GET,
        "/api/dao/proposals/{proposal}/record",
        Check(Read, PROPOSAL),
    ),
    // A failed execution is tried again by the microDAO's admins.
    Rule::new(
        Method::POST,
        "/api/dao/proposals/{proposal}/execute",
        Check(Manage, PROPOSAL),
    ),
];

/// A proposal (or, named by the microDAO's slug, its proposals as a
/// whole) as the policies see it.
pub fn proposal_resource(id: &str, dao: &str, public: bool, agents_vote: bool) -> Resource {
    Resource::new(Kind::Proposal, id)
        .in_dao(dao)
        .attr("public", Attr::Bool(public))
        .attr("agents_vote", Attr::Bool(agents_vote))
}

pub struct GovernanceResources {
    pub db: Db,
}

impl GovernanceResources {
    async fn proposals_of(&self, dao: &str, id: &str) -> Result<Option<Resource>, ApiError> {
        let Some(community) = daarion_microdao::store::dao(&self.db, dao).await? else {
            return Ok(None);
        };
        let settings = store::settings(&self.db, dao).await?;
        Ok(Some(proposal_resource(
            id,
            dao,
            community.visibility == Visibility::Public,
            settings.agents_vote,
        )))
    }
}

#[async_trait]
impl Resources for GovernanceResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Proposal if id.starts_with("prp_") && id.len() <= 64 => {
                match store::dao_of(&self.db, id).await? {
                    Some(dao) => self.proposals_of(&dao, id).await,
                    None => Ok(None),
                }
            }
            Kind::Proposal if daarion_kernel::names::is_slug(id) => self.proposals_of(id, id).await,
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
