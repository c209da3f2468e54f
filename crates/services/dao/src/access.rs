//! What each governance endpoint needs (`microdao.cedar`): a microDAO's
//! members read and write its proposals (writing one is proposing and
//! voting), everyone reads a public microDAO's, its agents take part only
//! where its settings let them, and its owners set those settings.
//! Whose draft it is, and who was in the electorate at the snapshot, the
//! store decides on top.

use std::time::Duration;

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

/// How long what the policies need of a microDAO (whether it is public,
/// whether its agents vote) is kept: a change reaches votes on every
/// replica within this (each vote would otherwise read both again).
const STANDING_TTL: Duration = Duration::from_secs(1);

/// Per microDAO: whether it is public, whether its agents vote (this
/// replica's own settings changes drop their entry at once).
pub type Standing = moka::sync::Cache<String, (bool, bool)>;

pub fn standing() -> Standing {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(STANDING_TTL)
        .build()
}

pub struct GovernanceResources {
    db: Db,
    /// Each proposal's microDAO, which never changes.
    daos: moka::sync::Cache<String, String>,
    standing: Standing,
}

impl GovernanceResources {
    pub fn new(db: Db, standing: Standing) -> Self {
        Self {
            db,
            daos: moka::sync::Cache::new(100_000),
            standing,
        }
    }

    async fn dao_of(&self, id: &str) -> Result<Option<String>, ApiError> {
        if let Some(dao) = self.daos.get(id) {
            return Ok(Some(dao));
        }
        let dao = store::dao_of(&self.db, id).await?;
        if let Some(dao) = &dao {
            self.daos.insert(id.to_owned(), dao.clone());
        }
        Ok(dao)
    }

    async fn proposals_of(&self, dao: &str, id: &str) -> Result<Option<Resource>, ApiError> {
        let (public, agents_vote) = match self.standing.get(dao) {
            Some(standing) => standing,
            None => {
                let Some(community) = daarion_microdao::store::dao(&self.db, dao).await? else {
                    return Ok(None);
                };
                let settings = store::settings(&self.db, dao).await?;
                let standing = (
                    community.visibility == Visibility::Public,
                    settings.agents_vote,
                );
                self.standing.insert(dao.to_owned(), standing);
                standing
            }
        };
        Ok(Some(proposal_resource(id, dao, public, agents_vote)))
    }
}

#[async_trait]
impl Resources for GovernanceResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Proposal if id.starts_with("prp_") && id.len() <= 64 => {
                match self.dao_of(id).await? {
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
