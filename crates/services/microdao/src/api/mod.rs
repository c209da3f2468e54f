//! HTTP routes and wire types. Handlers parse, call the domain and store,
//! relay what the store staged, and map [`DaoError`] to [`ApiError`] once.
//! One module per aggregate; the wire types live beside their handlers.

mod daos;
mod invites;
mod members;
mod roles;
mod treasury;

pub use daos::{CreateDao, DaoView, UpdateDao};
pub use invites::{AcceptDaoInvite, CreateDaoInvite, DaoInviteView, NewDaoInviteView};
pub use members::{AddAgent, DaoMemberView, DaoMembershipView, RemoveParams, SetDaoRole};
pub use roles::{CustomRoleView, DefineCustomRole};
pub use treasury::{BalanceView, MintPoints, MovementView, TransferPoints, TreasuryView};

use daarion_access::{
    Principal,
    vocab::roles::{DaoPermission, DaoRole},
};
use daarion_kernel::ApiError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    DaoState,
    domain::{self, DaoError},
    store::Actor,
};

impl From<DaoError> for ApiError {
    fn from(error: DaoError) -> Self {
        match &error {
            DaoError::Invalid(message) => ApiError::validation(message.clone()),
            DaoError::NotFound(message) => ApiError::not_found(message.clone()),
            DaoError::Forbidden(message) => ApiError::forbidden(message.clone()),
            DaoError::Conflict(message) => ApiError::conflict(message.clone()),
            DaoError::InviteGone => ApiError::not_found(error.to_string()),
            DaoError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            DaoError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

/// What the caller's custom role in `slug` grants, from their principal.
fn permissions_in(principal: &Principal, slug: &str) -> Vec<DaoPermission> {
    principal
        .roles
        .iter()
        .filter_map(|r| DaoPermission::of_group(r))
        .filter_map(|(dao, permission)| (dao == slug).then_some(permission))
        .collect()
}

/// The caller's role in `slug`, from the role groups on their principal.
fn role_in(principal: &Principal, slug: &str) -> Option<DaoRole> {
    principal
        .roles
        .iter()
        .filter_map(|r| DaoRole::of_group(r))
        .find_map(|(dao, role)| (dao == slug).then_some(role))
}

pub fn router() -> OpenApiRouter<DaoState> {
    OpenApiRouter::new()
        .routes(routes!(daos::list_daos, daos::create_dao))
        .routes(routes!(daos::get_dao, daos::update_dao))
        .routes(routes!(daos::archive_dao))
        .routes(routes!(members::list_dao_members))
        .routes(routes!(members::join_dao))
        .routes(routes!(members::leave_dao))
        .routes(routes!(
            members::set_member_role,
            members::remove_dao_member
        ))
        .routes(routes!(members::add_agent))
        .routes(routes!(roles::list_dao_roles))
        .routes(routes!(roles::define_dao_role, roles::delete_dao_role))
        .routes(routes!(roles::grant_dao_role, roles::revoke_dao_role))
        .routes(routes!(
            invites::list_dao_invites,
            invites::create_dao_invite
        ))
        .routes(routes!(invites::revoke_dao_invite))
        .routes(routes!(invites::accept_dao_invite))
        .routes(routes!(treasury::treasury))
        .routes(routes!(treasury::treasury_movements))
        .routes(routes!(treasury::mint))
        .routes(routes!(treasury::transfer))
}

fn parse_role(raw: &str) -> Result<DaoRole, DaoError> {
    DaoRole::parse(raw).ok_or_else(|| {
        DaoError::Invalid("role is one of owner, admin, member, guest, agent".into())
    })
}

/// A slug from the path that the enforcement layer already found.
fn slug_of(raw: &str) -> Result<String, ApiError> {
    Ok(domain::slug(raw)?)
}
