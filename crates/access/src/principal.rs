//! Who is calling, as established by authentication.

use serde::{Deserialize, Serialize};

use crate::vocab::{Action, Kind};

/// The kinds of principal: people, AI agents, and DAARION's own services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Agent,
    Service,
}

impl PrincipalKind {
    pub fn kind(self) -> Kind {
        match self {
            PrincipalKind::User => Kind::User,
            PrincipalKind::Agent => Kind::Agent,
            PrincipalKind::Service => Kind::Service,
        }
    }

    /// How names of this kind are prefixed: `user`, `agent`, `service`.
    pub fn prefix(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Service => "service",
        }
    }
}

/// How the principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    Session {
        id: String,
    },
    ApiKey {
        id: String,
        #[serde(default)]
        limits: KeyLimits,
    },
    ServiceToken,
}

impl Credential {
    /// The session's or key's id (service tokens have none: they are not
    /// revoked, they expire within minutes).
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Session { id } | Self::ApiKey { id, .. } => Some(id),
            Self::ServiceToken => None,
        }
    }
}

/// What an API key may spend on models, beyond its scopes (like an LLM
/// gateway's "virtual key"): the model aliases it may call and its own
/// per-minute budgets. `None` = no limit of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

impl KeyLimits {
    /// Whether the key may call the model alias `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

const GOVERNANCE_PREFIX: &str = "dao:";

/// The name a microDAO's governance acts under (see
/// [`Principal::governance`]).
pub fn governance_name(dao: &str) -> String {
    format!("service:{GOVERNANCE_PREFIX}{dao}")
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: String,
    /// How the principal is shown to people: a person's username,
    /// `agent:<id>`, `service:<name>` (see [`Principal::handle_for`]).
    pub handle: String,
    /// Role groups held: `city:admin`, `city:citizen`, `dao:<id>:<role>`.
    pub roles: Vec<String>,
    /// For agents: the person the agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// An API key's scopes; `None` means the principal's full rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["city:send_message"]))]
    pub scopes: Option<Vec<Scope>>,
    pub credential: Credential,
}

impl Principal {
    /// One of DAARION's own services (authenticated by a service token).
    pub fn service(name: &str) -> Self {
        Self {
            kind: PrincipalKind::Service,
            id: name.to_owned(),
            handle: Self::handle_for(PrincipalKind::Service, name),
            roles: Vec::new(),
            owner: None,
            scopes: None,
            credential: Credential::ServiceToken,
        }
    }

    /// A microDAO acting through its governance: what its passed
    /// proposals do, carried out by the DAO service with a service token
    /// whose subject is `dao:<slug>`. Named `service:dao:<slug>`, it holds
    /// the microDAO's owner role there and nothing anywhere else.
    pub fn governance(dao: &str) -> Self {
        let id = format!("{GOVERNANCE_PREFIX}{dao}");
        Self {
            kind: PrincipalKind::Service,
            handle: id.clone(),
            id,
            roles: vec![crate::vocab::roles::DaoRole::Owner.group(dao)],
            owner: None,
            scopes: None,
            credential: Credential::ServiceToken,
        }
    }

    /// The microDAO whose governance this principal is, if it is one.
    pub fn governs(&self) -> Option<&str> {
        if self.kind != PrincipalKind::Service {
            return None;
        }
        self.id.strip_prefix(GOVERNANCE_PREFIX)
    }

    /// How the principal is named in logs, events and records:
    /// `user:<id>`, `agent:<id>`, `service:<name>`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.kind.prefix(), self.id)
    }

    /// The handle of a principal: people by username (as in any chat),
    /// agents and services prefixed so they can never pass for a person.
    pub fn handle_for(kind: PrincipalKind, name: &str) -> String {
        match kind {
            PrincipalKind::User => name.to_owned(),
            PrincipalKind::Agent | PrincipalKind::Service => format!("{}:{name}", kind.prefix()),
        }
    }

    /// Whether the credential's scopes let it ask for `action` on `service`
    /// at all (the policies still decide).
    pub fn scope_allows(&self, service: &str, action: Action) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.iter().any(|s| s.allows(service, action)))
    }
}

/// An API key scope: `*`, `<action>`, `<service>:*` or `<service>:<action>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope {
    service: Option<String>,
    action: Option<Action>,
}

impl Scope {
    pub fn allows(&self, service: &str, action: Action) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
            && self.action.is_none_or(|a| a == action)
    }
}

impl TryFrom<String> for Scope {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let (service, action) = match raw.split_once(':') {
            Some((service, action)) => (Some(service), action),
            None => (None, raw.as_str()),
        };
        if let Some(service) = service {
            let valid = !service.is_empty()
                && service.len() <= 32
                && service.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            if !valid {
                return Err(format!("scope {raw:?}: service must be a service name"));
            }
        }
        let action = match action {
            "*" => None,
            other => Some(
                other
                    .parse::<Action>()
                    .map_err(|e| format!("scope {raw:?}: {e}"))?,
            ),
        };
        Ok(Self {
            service: service.map(str::to_owned),
            action,
        })
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        let action = scope.action.map_or("*", Action::as_str);
        match scope.service {
            Some(service) => format!("{service}:{action}"),
            None => action.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(raw: &str) -> Result<Scope, String> {
        Scope::try_from(raw.to_owned())
    }

    #[test]
    fn scopes_parse_and_match() {
        let s = scope("city:send_message").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(s.allows("city", Action::SendMessage));
        assert!(!s.allows("city", Action::Write));
        assert!(!s.allows("auth", Action::SendMessage));
        let any = scope("*").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(any.allows("pdp", Action::Admin));
        let read = scope("read").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(read.allows("city", Action::Read) && !read.allows("city", Action::Write));
        assert!(scope("city:fly").is_err());
        assert!(scope("CITY:read").is_err());
        assert_eq!(
            String::from(scope("city:*").unwrap_or_else(|e| unreachable!("{e}"))),
            "city:*"
        );
    }
}
