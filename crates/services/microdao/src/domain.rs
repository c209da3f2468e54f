//! MicroDAO rules, independent of HTTP and SQL: what a valid community,
//! role change and invitation are, and who may change whose membership.

use daarion_access::vocab::roles::{DaoPermission, DaoRole};
use daarion_bus::BusError;
use daarion_store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DaoError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// An invitation that is unknown, used up, revoked or expired.
    #[error("invitation is unknown, used up, revoked or expired")]
    InviteGone,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<StoreError> for DaoError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for DaoError {
    fn from(error: daarion_store::sql::Error) -> Self {
        StoreError::from(error).into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed, readable and open to join for every citizen.
    Public,
    /// Seen by its members only; joined by invitation.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// A microDAO's slug: its id for good (role groups `dao:<slug>:<role>`,
/// URLs); the name can change, the slug cannot.
pub fn slug(raw: &str) -> Result<String, DaoError> {
    if daarion_kernel::names::is_slug(raw) {
        Ok(raw.to_owned())
    } else {
        Err(DaoError::Invalid(daarion_kernel::names::SLUG_RULE.into()))
    }
}

pub fn name(raw: &str) -> Result<String, DaoError> {
    daarion_kernel::names::display_name(raw, MAX_NAME_CHARS).map_err(DaoError::Invalid)
}

pub fn description(raw: &str) -> Result<String, DaoError> {
    daarion_kernel::names::description(raw, MAX_DESCRIPTION_CHARS).map_err(DaoError::Invalid)
}

pub fn avatar_url(raw: &str) -> Result<String, DaoError> {
    daarion_kernel::names::avatar_url(raw).map_err(DaoError::Invalid)
}

/// A district of the city map: a slug.
pub fn district(raw: &str) -> Result<String, DaoError> {
    if daarion_kernel::names::is_slug(raw) {
        Ok(raw.to_owned())
    } else {
        Err(DaoError::Invalid(format!(
            "district: {}",
            daarion_kernel::names::SLUG_RULE
        )))
    }
}

/// What a member may do in a microDAO: their base role, and what their
/// custom role (if any) grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub role: DaoRole,
    pub permissions: Vec<DaoPermission>,
}

impl Standing {
    #[cfg(test)]
    pub(crate) fn of(role: DaoRole, permissions: &[DaoPermission]) -> Self {
        Self {
            role,
            permissions: permissions.to_vec(),
        }
    }

    pub fn can(&self, permission: DaoPermission) -> bool {
        self.permissions.contains(&permission)
    }
}

/// How much a role may do to others' memberships: owners anything, admins
/// members, guests and agents; the rest nothing.
fn rank(role: DaoRole) -> u8 {
    match role {
        DaoRole::Owner => 3,
        DaoRole::Admin => 2,
        DaoRole::Member | DaoRole::Agent | DaoRole::Guest => 1,
    }
}

/// Whether `actor` (a member with this standing, or a city admin) may move
/// a member from `from` to `to` (`None`: out of the microDAO). Owners may
/// do anything; admins, and those whose custom role grants `write`, only
/// below admin, on both sides.
pub fn may_change(
    actor: Option<&Standing>,
    city_admin: bool,
    from: DaoRole,
    to: Option<DaoRole>,
) -> bool {
    let Some(actor) = actor else {
        return city_admin;
    };
    if city_admin || actor.role == DaoRole::Owner {
        return true;
    }
    (actor.role == DaoRole::Admin || actor.can(DaoPermission::Write))
        && rank(from) < rank(DaoRole::Admin)
        && to.is_none_or(|to| rank(to) < rank(DaoRole::Admin))
}

/// Whether `actor` may invite people as `role`: owners as anything;
/// admins, and those whose custom role grants `invite` or `write`, below
/// admin.
pub fn may_invite(actor: Option<&Standing>, city_admin: bool, role: DaoRole) -> bool {
    may_change(actor, city_admin, DaoRole::Guest, Some(role))
        || actor.is_some_and(|a| a.can(DaoPermission::Invite) && rank(role) < rank(DaoRole::Admin))
}

/// Custom roles one microDAO may define.
pub const MAX_CUSTOM_ROLES: i64 = 50;

/// A custom role's name: a slug that no base role has.
pub fn custom_role_name(raw: &str) -> Result<String, DaoError> {
    if DaoRole::parse(raw).is_some() {
        return Err(DaoError::Invalid(format!(
            "{raw:?} is a base role; name a custom role otherwise"
        )));
    }
    if !daarion_kernel::names::is_slug(raw) || raw.len() > 32 {
        return Err(DaoError::Invalid(format!(
            "a role name is 2-32 characters: {}",
            daarion_kernel::names::SLUG_RULE
        )));
    }
    Ok(raw.to_owned())
}

/// Permissions by name, each known to the policies, sorted and without repeats.
pub fn permissions(raw: &[String]) -> Result<Vec<DaoPermission>, DaoError> {
    let mut out = raw
        .iter()
        .map(|name| {
            DaoPermission::parse(name).ok_or_else(|| {
                let known: Vec<&str> = DaoPermission::ALL.iter().map(|p| p.as_str()).collect();
                DaoError::Invalid(format!(
                    "unknown permission {name:?}: one of {}",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Agents hold the agent role and only it; people never do.
pub fn role_fits(principal: &str, role: DaoRole) -> Result<(), DaoError> {
    let agent = principal.starts_with("agent:");
    if agent != (role == DaoRole::Agent) {
        return Err(DaoError::Invalid(if agent {
            "an agent's role in a microDAO is `agent`".into()
        } else {
            "only agents hold the `agent` role".into()
        }));
    }
    Ok(())
}

/// A member's principal name as written in paths: `user:<id>` or `agent:<id>`.
pub fn member_name(raw: &str) -> Result<String, DaoError> {
    match daarion_access::Subject::parse(raw) {
        Ok(daarion_access::Subject::User(_) | daarion_access::Subject::Agent(_)) => {
            Ok(raw.to_owned())
        }
        _ => Err(DaoError::Invalid(
            "a member is `user:<id>` or `agent:<id>`".into(),
        )),
    }
}

pub const MAX_INVITE_USES: u32 = 10_000;
pub const MAX_INVITE_DAYS: u32 = 90;

/// An invitation's limits, checked.
pub fn invite_limits(
    max_uses: Option<u32>,
    expires_in_days: Option<u32>,
) -> Result<(u32, u32), DaoError> {
    let uses = max_uses.unwrap_or(1);
    let days = expires_in_days.unwrap_or(7);
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Err(DaoError::Invalid(format!(
            "max_uses must be between 1 and {MAX_INVITE_USES}"
        )));
    }
    if !(1..=MAX_INVITE_DAYS).contains(&days) {
        return Err(DaoError::Invalid(format!(
            "expires_in_days must be between 1 and {MAX_INVITE_DAYS}"
        )));
    }
    Ok((uses, days))
}

/// The prefix of invitation codes, so a pasted code is recognisable.
pub const INVITE_PREFIX: &str = "mdi_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_change_anyone_admins_only_those_below_them() {
        use DaoRole::*;
        let owner = &Standing::of(Owner, &[]);
        let admin = &Standing::of(Admin, &[]);
        assert!(may_change(Some(owner), false, Admin, Some(Owner)));
        assert!(may_change(Some(owner), false, Owner, None));
        assert!(may_change(Some(admin), false, Member, Some(Guest)));
        assert!(may_change(Some(admin), false, Agent, None));
        assert!(!may_change(Some(admin), false, Member, Some(Admin)));
        assert!(!may_change(Some(admin), false, Admin, None));
        assert!(!may_change(Some(admin), false, Owner, Some(Member)));
        assert!(!may_change(
            Some(&Standing::of(Member, &[])),
            false,
            Guest,
            None
        ));
        assert!(!may_change(None, false, Guest, None));
        assert!(may_change(None, true, Owner, None));
    }

    #[test]
    fn a_custom_role_granting_write_changes_members_like_an_admin() {
        use DaoRole::*;
        let steward = &Standing::of(Member, &[DaoPermission::Write]);
        assert!(may_change(Some(steward), false, Guest, Some(Member)));
        assert!(may_change(Some(steward), false, Member, None));
        assert!(!may_change(Some(steward), false, Member, Some(Admin)));
        assert!(!may_change(Some(steward), false, Admin, None));
        let inviter = &Standing::of(Member, &[DaoPermission::Invite]);
        assert!(!may_change(Some(inviter), false, Guest, None));
        assert!(may_invite(Some(inviter), false, Member));
        assert!(!may_invite(Some(inviter), false, Admin));
        assert!(!may_invite(Some(&Standing::of(Member, &[])), false, Guest));
        assert!(may_invite(Some(&Standing::of(Owner, &[])), false, Owner));
    }

    #[test]
    fn custom_roles_are_named_apart_from_base_roles_and_grant_known_permissions() {
        assert!(custom_role_name("treasurer").is_ok());
        assert!(custom_role_name("admin").is_err());
        assert!(custom_role_name("Bad Name").is_err());
        assert!(custom_role_name(&"r".repeat(33)).is_err());
        let granted = permissions(&["treasury".into(), "invite".into(), "invite".into()]);
        assert_eq!(
            granted.unwrap(),
            vec![DaoPermission::Invite, DaoPermission::Treasury]
        );
        assert!(permissions(&["archive".into()]).is_err());
    }

    #[test]
    fn agents_hold_the_agent_role_and_people_do_not() {
        assert!(role_fits("agent:helper", DaoRole::Agent).is_ok());
        assert!(role_fits("agent:helper", DaoRole::Member).is_err());
        assert!(role_fits("user:u1", DaoRole::Agent).is_err());
        assert!(role_fits("user:u1", DaoRole::Owner).is_ok());
    }

    #[test]
    fn fields_are_checked() {
        assert!(name("  Kyiv Makers ").is_ok_and(|n| n == "Kyiv Makers"));
        assert!(name("").is_err());
        assert!(name(&"x".repeat(81)).is_err());
        assert!(avatar_url("javascript:alert(1)").is_err());
        assert!(avatar_url("https://example.org/a b.png").is_err());
        assert!(avatar_url("https://example.org/a.png").is_ok());
        assert!(member_name("dao:x").is_err());
        assert!(member_name("user:abc").is_ok());
        assert!(invite_limits(Some(0), None).is_err());
        assert!(invite_limits(None, Some(91)).is_err());
        assert_eq!(invite_limits(None, None).unwrap(), (1, 7));
    }
}
