//! What each microDAO endpoint needs (`microdao.cedar`) and how a
//! microDAO looks to the policies. Who may change whose membership is a
//! domain rule on top (`domain::may_change`): the policies let admins
//! write, the rule keeps an admin from removing an owner. A custom role's
//! permissions reach the policies as groups on its holders' principals,
//! which the microDAO's attributes name (`Resource::micro_dao`).

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::{Admin, Invite, Manage, Read, Write},
    Attr, Kind, Resource, Resources, Rule,
    Target::{City, Path},
};
use daarion_kernel::ApiError;
use daarion_store::Db;

use crate::domain::Visibility;

const DAO: daarion_access::Target = Path(Kind::MicroDao, "dao");

const fn rule(method: Method, path: &'static str, access: daarion_access::Access) -> Rule {
    Rule::new(method, path, access)
}

pub static RULES: &[Rule] = &[
    rule(Method::GET, "/api/microdao/daos", Check(Read, City)),
    rule(Method::POST, "/api/microdao/daos", Check(Write, City)),
    rule(Method::GET, "/api/microdao/daos/{dao}", Check(Read, DAO)),
    rule(Method::PATCH, "/api/microdao/daos/{dao}", Check(Write, DAO)),
    // `admin` on a microDAO is its owners' alone: archiving it and
    // deciding what its custom roles grant and to whom.
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/archive",
        Check(Admin, DAO),
    ),
    rule(
        Method::GET,
        "/api/microdao/daos/{dao}/roles",
        Check(Read, DAO),
    ),
    rule(
        Method::PUT,
        "/api/microdao/daos/{dao}/roles/{role}",
        Check(Admin, DAO),
    ),
    rule(
        Method::DELETE,
        "/api/microdao/daos/{dao}/roles/{role}",
        Check(Admin, DAO),
    ),
    rule(
        Method::PUT,
        "/api/microdao/daos/{dao}/roles/{role}/holders/{member}",
        Check(Admin, DAO),
    ),
    rule(
        Method::DELETE,
        "/api/microdao/daos/{dao}/roles/{role}/holders/{member}",
        Check(Admin, DAO),
    ),
    rule(
        Method::GET,
        "/api/microdao/daos/{dao}/members",
        Check(Read, DAO),
    ),
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/join",
        Check(Read, DAO),
    ),
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/leave",
        Check(Read, DAO),
    ),
    rule(
        Method::PUT,
        "/api/microdao/daos/{dao}/members/{member}",
        Check(Write, DAO),
    ),
    rule(
        Method::DELETE,
        "/api/microdao/daos/{dao}/members/{member}",
        Check(Write, DAO),
    ),
    // Its admins add agents their owners bring (`api::add_agent`).
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/agents",
        Check(Write, DAO),
    ),
    rule(
        Method::GET,
        "/api/microdao/daos/{dao}/invites",
        Check(Invite, DAO),
    ),
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/invites",
        Check(Invite, DAO),
    ),
    rule(
        Method::DELETE,
        "/api/microdao/daos/{dao}/invites/{id}",
        Check(Invite, DAO),
    ),
    rule(
        Method::GET,
        "/api/microdao/daos/{dao}/treasury",
        Check(Read, DAO),
    ),
    rule(
        Method::GET,
        "/api/microdao/daos/{dao}/treasury/movements",
        Check(Read, DAO),
    ),
    // `manage` on a microDAO is minting: its owners, and custom roles
    // granting `treasury`.
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/treasury/mint",
        Check(Manage, DAO),
    ),
    // Members move their own points, admins the microDAO's (`treasury::may_debit`).
    rule(
        Method::POST,
        "/api/microdao/daos/{dao}/treasury/transfers",
        Check(Read, DAO),
    ),
    // The code is the permission; who accepts is checked against bans.
    rule(Method::POST, "/api/microdao/invites/accept", SignedIn),
];

/// A microDAO as the policies see it.
pub fn dao_resource(slug: &str, visibility: Visibility) -> Resource {
    Resource::micro_dao(slug).attr("public", Attr::Bool(visibility == Visibility::Public))
}

pub struct DaoResources {
    pub db: Db,
}

#[async_trait]
impl Resources for DaoResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        if kind != Kind::MicroDao || !daarion_kernel::names::is_slug(id) {
            return Ok(None);
        }
        let dao = crate::store::dao(&self.db, id).await?;
        Ok(dao.map(|d| dao_resource(&d.slug, d.visibility)))
    }
}
