//! The one typed vocabulary services and policies share. The original
//! system's services asked for actions its PDP did not know, so every guarded
//! write failed; here an action or entity kind outside these enums does not
//! compile, and a test checks the enums against the Cedar schema.

use std::{fmt, str::FromStr, sync::LazyLock};

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde::{Deserialize, Serialize};

/// What a principal wants to do (the original's eight actions).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Write,
    Manage,
    Invite,
    SendMessage,
    ExecTool,
    ViewUsage,
    Admin,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Write,
        Action::Manage,
        Action::Invite,
        Action::SendMessage,
        Action::ExecTool,
        Action::ViewUsage,
        Action::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Manage => "manage",
            Action::Invite => "invite",
            Action::SendMessage => "send_message",
            Action::ExecTool => "exec_tool",
            Action::ViewUsage => "view_usage",
            Action::Admin => "admin",
        }
    }

    /// Reading never changes state; every other decision is audited.
    pub fn changes_state(self) -> bool {
        !matches!(self, Action::Read | Action::ViewUsage)
    }

    pub(crate) fn uid(self) -> &'static EntityUid {
        static UIDS: LazyLock<Vec<EntityUid>> = LazyLock::new(|| {
            let action_type = type_name("Action");
            Action::ALL
                .iter()
                .map(|a| {
                    EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
                })
                .collect()
        });
        &UIDS[self as usize]
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}"))
    }
}

/// Every kind of principal and resource the policies know.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Kind {
    Role,
    City,
    User,
    Agent,
    Service,
    MicroDao,
    Room,
    Message,
    Proposal,
    Project,
    Knowledge,
    Document,
    Fact,
    Tool,
    Usage,
    Prompt,
    Quota,
    Policy,
    Audit,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::Role,
        Kind::City,
        Kind::User,
        Kind::Agent,
        Kind::Service,
        Kind::MicroDao,
        Kind::Room,
        Kind::Message,
        Kind::Proposal,
        Kind::Project,
        Kind::Knowledge,
        Kind::Document,
        Kind::Fact,
        Kind::Tool,
        Kind::Usage,
        Kind::Prompt,
        Kind::Quota,
        Kind::Policy,
        Kind::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Role => "Role",
            Kind::City => "City",
            Kind::User => "User",
            Kind::Agent => "Agent",
            Kind::Service => "Service",
            Kind::MicroDao => "MicroDao",
            Kind::Room => "Room",
            Kind::Message => "Message",
            Kind::Proposal => "Proposal",
            Kind::Project => "Project",
            Kind::Knowledge => "Knowledge",
            Kind::Document => "Document",
            Kind::Fact => "Fact",
            Kind::Tool => "Tool",
            Kind::Usage => "Usage",
            Kind::Prompt => "Prompt",
            Kind::Quota => "Quota",
            Kind::Policy => "Policy",
            Kind::Audit => "Audit",
        }
    }

    pub(crate) fn type_name(self) -> &'static EntityTypeName {
        static NAMES: LazyLock<Vec<EntityTypeName>> =
            LazyLock::new(|| Kind::ALL.iter().map(|k| type_name(k.as_str())).collect());
        &NAMES[self as usize]
    }

    pub(crate) fn uid(self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.type_name().clone(), EntityId::new(id))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown entity type {s:?}"))
    }
}

pub(crate) const NAMESPACE: &str = "Daarion";

// The names are the fixed identifiers of this file; `every_name_parses`
// proves each one at test time.
#[allow(clippy::expect_used)]
fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(&format!("{NAMESPACE}::{name}")).expect("valid Cedar type name")
}

/// City-wide roles.
pub mod roles {
    /// The role groups the policies name.
    pub const CITY_ADMIN: &str = "city:admin";
    pub const CITY_CITIZEN: &str = "city:citizen";

    /// A person's role in the city, as stored (`citizen`, `admin`) and sent.
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
    )]
    #[serde(rename_all = "snake_case")]
    pub enum CityRole {
        Citizen,
        Admin,
    }

    impl CityRole {
        pub fn as_str(self) -> &'static str {
            match self {
                CityRole::Citizen => "citizen",
                CityRole::Admin => "admin",
            }
        }

        pub fn parse(raw: &str) -> Option<Self> {
            match raw {
                "citizen" => Some(CityRole::Citizen),
                "admin" => Some(CityRole::Admin),
                _ => None,
            }
        }

        /// The role groups a holder is in: every person is a citizen.
        pub fn groups(self) -> Vec<String> {
            match self {
                CityRole::Citizen => vec![CITY_CITIZEN.to_owned()],
                CityRole::Admin => vec![CITY_CITIZEN.to_owned(), CITY_ADMIN.to_owned()],
            }
        }
    }

    /// A microDAO role, as the role group the policies name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum DaoRole {
        Owner,
        Admin,
        Member,
        Guest,
        Agent,
    }

    impl DaoRole {
        pub const ALL: [DaoRole; 5] = [
            DaoRole::Owner,
            DaoRole::Admin,
            DaoRole::Member,
            DaoRole::Guest,
            DaoRole::Agent,
        ];

        pub fn as_str(self) -> &'static str {
            match self {
                DaoRole::Owner => "owner",
                DaoRole::Admin => "admin",
                DaoRole::Member => "member",
                DaoRole::Guest => "guest",
                DaoRole::Agent => "agent",
            }
        }

        /// The role directly above in the nesting (owner ⊂ admin ⊂ member ⊂
        /// guest; agent ⊂ member): holding a role grants every role it nests in.
        pub fn parent(self) -> Option<DaoRole> {
            match self {
                DaoRole::Owner => Some(DaoRole::Admin),
                DaoRole::Admin | DaoRole::Agent => Some(DaoRole::Member),
                DaoRole::Member => Some(DaoRole::Guest),
                DaoRole::Guest => None,
            }
        }

        pub fn group(self, dao: &str) -> String {
            format!("dao:{dao}:{}", self.as_str())
        }

        pub fn parse(raw: &str) -> Option<Self> {
            Self::ALL.into_iter().find(|r| r.as_str() == raw)
        }

        /// The microDAO and role a role group names (`dao:<slug>:<role>`);
        /// `None` for city roles and permission groups.
        pub fn of_group(group: &str) -> Option<(&str, Self)> {
            let (dao, role) = group.strip_prefix("dao:")?.split_once(':')?;
            Some((dao, Self::parse(role)?))
        }
    }

    /// What a microDAO's own (custom) roles may grant, beyond the base role
    /// a member holds. Each is a group on the holder's principal
    /// (`dao:<slug>:can:<permission>`) that `microdao.cedar` and
    /// `room.cedar` name through the microDAO's attributes.
    #[derive(
        Debug,
        Clone,
        Copy,
        PartialEq,
        Eq,
        PartialOrd,
        Ord,
        serde::Serialize,
        serde::Deserialize,
        utoipa::ToSchema,
    )]
    #[serde(rename_all = "snake_case")]
    pub enum DaoPermission {
        /// Edit the microDAO's settings, change and remove members below
        /// admin, add agents and open rooms (what admins `write`).
        Write,
        /// Issue and revoke invitations.
        Invite,
        /// Change and archive the microDAO's rooms.
        Rooms,
        /// Mint points and move the microDAO's own points.
        Treasury,
    }

    impl DaoPermission {
        pub const ALL: [DaoPermission; 4] = [
            DaoPermission::Write,
            DaoPermission::Invite,
            DaoPermission::Rooms,
            DaoPermission::Treasury,
        ];

        pub fn as_str(self) -> &'static str {
            match self {
                DaoPermission::Write => "write",
                DaoPermission::Invite => "invite",
                DaoPermission::Rooms => "rooms",
                DaoPermission::Treasury => "treasury",
            }
        }

        pub fn parse(raw: &str) -> Option<Self> {
            Self::ALL.into_iter().find(|p| p.as_str() == raw)
        }

        /// The microDAO attribute naming its holders' group.
        pub fn attribute(self) -> &'static str {
            match self {
                DaoPermission::Write => "writers",
                DaoPermission::Invite => "inviters",
                DaoPermission::Rooms => "room_managers",
                DaoPermission::Treasury => "treasurers",
            }
        }

        pub fn group(self, dao: &str) -> String {
            format!("dao:{dao}:can:{}", self.as_str())
        }

        /// The microDAO and permission a permission group names.
        pub fn of_group(group: &str) -> Option<(&str, Self)> {
            let (dao, rest) = group.strip_prefix("dao:")?.split_once(':')?;
            Some((dao, Self::parse(rest.strip_prefix("can:")?)?))
        }
    }
}
