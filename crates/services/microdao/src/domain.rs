//! MicroDAO rules, independent of HTTP and SQL: what a valid community,
//! role change and invitation are, and who may change whose membership.

use daarion_access::vocab::roles::DaoRole;
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
pub const MAX_AVATAR_URL_BYTES: usize = 512;

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
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(DaoError::Invalid(format!(
            "name must be 1-{MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

pub fn description(raw: &str) -> Result<String, DaoError> {
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DaoError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// An avatar is an `https://` image address (never `javascript:` or data).
pub fn avatar_url(raw: &str) -> Result<String, DaoError> {
    let url = raw.trim();
    let valid = url.starts_with("https://")
        && url.len() <= MAX_AVATAR_URL_BYTES
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(url.to_owned())
    } else {
        Err(DaoError::Invalid(format!(
            "avatar_url must be an https:// address of at most {MAX_AVATAR_URL_BYTES} bytes"
        )))
    }
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

pub fn role(raw: &str) -> Option<DaoRole> {
    DaoRole::ALL.into_iter().find(|r| r.as_str() == raw)
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

/// Whether `actor` (holding `actor_role`, or a city admin) may move a member
/// from `from` to `to` (`None`: out of the microDAO). Owners may do
/// anything; admins only below admin, on both sides.
pub fn may_change(
    actor_role: Option<DaoRole>,
    city_admin: bool,
    from: DaoRole,
    to: Option<DaoRole>,
) -> bool {
    if city_admin || actor_role == Some(DaoRole::Owner) {
        return true;
    }
    actor_role == Some(DaoRole::Admin)
        && rank(from) < rank(DaoRole::Admin)
        && to.is_none_or(|to| rank(to) < rank(DaoRole::Admin))
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
        assert!(may_change(Some(Owner), false, Admin, Some(Owner)));
        assert!(may_change(Some(Owner), false, Owner, None));
        assert!(may_change(Some(Admin), false, Member, Some(Guest)));
        assert!(may_change(Some(Admin), false, Agent, None));
        assert!(!may_change(Some(Admin), false, Member, Some(Admin)));
        assert!(!may_change(Some(Admin), false, Admin, None));
        assert!(!may_change(Some(Admin), false, Owner, Some(Member)));
        assert!(!may_change(Some(Member), false, Guest, None));
        assert!(!may_change(None, false, Guest, None));
        assert!(may_change(None, true, Owner, None));
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
